"""TransformerBlock: a pre-norm transformer layer, x + attention(norm(x)), then x + mlp(norm(x))."""
from __future__ import annotations

import math
import numbers

from .. import ops
from ..errors import fail
from ..graph import Node
from .attention import MultiHeadAttention, linear
from .dense import check_count, check_flag, check_probability
from .init import Uniform
from .layer import Layer, check_same_dim, concrete_dim, float_dtype
from .layer_norm import check_eps, LayerNorm
from .naming import inside


class TransformerBlock(Layer):
    """torch.nn.TransformerEncoderLayer(E, num_heads, dim_feedforward=mlp_ratio * E, dropout, "gelu",
    layer_norm_eps=eps, batch_first=True, norm_first=True) with E inferred, over x of shape (..., T, E):

        x = x + dropout(attention(norm1(x)))   # causal self-attention when `causal`, dropout on its weights
        x = x + dropout(linear2(dropout(gelu(linear1(norm2(x))))))

    Params are named as that module's state dict (``<block>.self_attn.in_proj_weight``,
    ``<block>.linear1.weight`` (mlp_ratio * E, E), ``<block>.norm1.weight``, ...), with torch's layouts
    (a linear weight is (out, in)) and initialisation, so its weights load by name. The exact GELU.
    """

    kind = "transformer_block"

    def __init__(self, num_heads: int, mlp_ratio=4, causal: bool = True, dropout: float = 0.0, eps: float = 1e-5,
                 name: str | None = None):
        super().__init__(name)
        layer = self.describe()
        self.num_heads = check_count(num_heads, "num_heads", layer)
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, numbers.Real) or not mlp_ratio > 0:
            raise fail(layer, f"mlp_ratio: expected a positive number, got {mlp_ratio!r}")
        self.mlp_ratio, self.dropout = mlp_ratio, check_probability(dropout, "dropout", layer)
        self.causal = check_flag(causal, "causal", layer)
        with inside(self.name):
            self.self_attn = MultiHeadAttention(num_heads, causal=causal, dropout=self.dropout, name="self_attn")
            self.norm1 = LayerNorm(check_eps(eps, layer), name="norm1")
            self.norm2 = LayerNorm(eps, name="norm2")
        self.linear1_weight = self.linear1_bias = self.linear2_weight = self.linear2_bias = None

    @property
    def params(self) -> list:
        """In the order of torch's state dict: self_attn, linear1, linear2, norm1, norm2."""
        return self.self_attn.params + list(self._params) + self.norm1.params + self.norm2.params

    def build(self, x: Node) -> None:
        if x.ndim < 2:
            raise fail(self.describe(), f"expected an input of shape (..., T, E), got shape {x.shape}")
        dtype = float_dtype(self, x)
        embed = concrete_dim(self, x, -1, "embedding size")
        hidden = self.mlp_ratio * embed
        if hidden != int(hidden):
            raise fail(self.describe(), f"mlp_ratio * E = {self.mlp_ratio} * {embed} must be a whole number")
        hidden = int(hidden)
        self.linear1_weight = self.param("linear1.weight", (hidden, embed), Uniform(1 / math.sqrt(embed)), dtype)
        self.linear1_bias = self.param("linear1.bias", (hidden,), Uniform(1 / math.sqrt(embed)), dtype)
        self.linear2_weight = self.param("linear2.weight", (embed, hidden), Uniform(1 / math.sqrt(hidden)), dtype)
        self.linear2_bias = self.param("linear2.bias", (embed,), Uniform(1 / math.sqrt(hidden)), dtype)

    def check_reuse(self, x: Node) -> None:
        check_same_dim(self, x, -1, "embedding size")

    def _dropout(self, x: Node) -> Node:
        return ops.dropout(x, self.dropout, training=True) if self.dropout else x

    def forward(self, x: Node) -> Node:
        x = x + self._dropout(self.self_attn(self.norm1(x)))
        hidden = self._dropout(ops.gelu(linear(self.norm2(x), self.linear1_weight, self.linear1_bias)))
        return x + self._dropout(linear(hidden, self.linear2_weight, self.linear2_bias))
