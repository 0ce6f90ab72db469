"""MultiHeadAttention: self-attention with learned projections, laid out as torch.nn.MultiheadAttention's."""
from __future__ import annotations

import math

from .. import ops, sequence_ops
from ..errors import fail
from ..graph import Node
from .dense import check_count, check_flag, check_probability
from .init import Uniform
from .layer import Layer, check_same_dim, concrete_dim, float_dtype


def linear(x: Node, weight: Node, bias: Node | None) -> Node:
    """torch.nn.functional.linear: x @ weight^T + bias, weight (out, in) as torch stores it."""
    y = x @ ops.transpose(weight, 1, 0)
    return y if bias is None else y + bias


class MultiHeadAttention(Layer):
    """Self-attention over x of shape (..., T, E) (batch first), E (embed_dim) inferred:
    torch.nn.MultiheadAttention(E, num_heads, dropout, bias=bias, batch_first=True)(x, x, x,
    need_weights=False), with a causal mask when `causal` (query t attends to keys 0..t). `dropout`
    drops attention weights in training (not after ``compiler.inference``), as torch's does.

    Params, named and shaped as torch's state dict so its weights load by name: ``in_proj_weight``
    (3E, E: the q, k and v projections stacked), ``in_proj_bias`` (3E,), ``out_proj.weight`` (E, E) and
    ``out_proj.bias`` (E,). Initialised as torch's: in_proj_weight xavier-uniform, out_proj.weight
    uniform(+-1/sqrt(E)), biases zero. Each of the num_heads heads attends with E / num_heads features.
    """

    kind = "multi_head_attention"

    def __init__(self, num_heads: int, causal: bool = False, bias: bool = True, dropout: float = 0.0,
                 name: str | None = None):
        super().__init__(name)
        self.num_heads = check_count(num_heads, "num_heads", self.describe())
        self.dropout = check_probability(dropout, "dropout", self.describe())
        self.causal = check_flag(causal, "causal", self.describe())
        self.use_bias = check_flag(bias, "bias", self.describe())
        self.in_proj_weight = self.in_proj_bias = self.out_proj_weight = self.out_proj_bias = None

    def build(self, x: Node) -> None:
        if x.ndim < 2:
            raise fail(self.describe(), f"expected an input of shape (..., T, E), got shape {x.shape}")
        dtype = float_dtype(self, x)
        embed = concrete_dim(self, x, -1, "embedding size")
        if embed % self.num_heads:
            raise fail(self.describe(), f"the embedding size {embed} (last axis of shape {x.shape}) must be "
                                        f"divisible by num_heads = {self.num_heads}")
        self.in_proj_weight = self.param("in_proj_weight", (3 * embed, embed), Uniform(math.sqrt(6 / (4 * embed))),
                                         dtype)
        if self.use_bias:
            self.in_proj_bias = self.param("in_proj_bias", (3 * embed,), "zeros", dtype)
        self.out_proj_weight = self.param("out_proj.weight", (embed, embed), Uniform(1 / math.sqrt(embed)), dtype)
        if self.use_bias:
            self.out_proj_bias = self.param("out_proj.bias", (embed,), "zeros", dtype)

    def check_reuse(self, x: Node) -> None:
        check_same_dim(self, x, -1, "embedding size")

    def forward(self, x: Node) -> Node:
        embed, heads = x.shape[-1], self.num_heads
        lead, length = x.shape[:-2], x.shape[-2]
        qkv = linear(x, self.in_proj_weight, self.in_proj_bias)                  # (..., T, 3E)
        split = ops.reshape(qkv, lead + (length, 3, heads, embed // heads))      # (..., T, 3, H, E/H)
        n = len(lead)
        per_head = tuple(range(n)) + (n + 1, n + 2, n, n + 3)                    # (..., 3, H, T, E/H)
        q, k, v = (ops.transpose(split, per_head)[(Ellipsis, i, slice(None), slice(None), slice(None))]
                   for i in range(3))
        out = sequence_ops.scaled_dot_product_attention(q, k, v, causal=self.causal,  # (..., H, T, E/H)
                                                        dropout_p=self.dropout)
        merged = ops.reshape(ops.transpose(out, tuple(range(n)) + (n + 1, n, n + 2)), lead + (length, embed))
        return linear(merged, self.out_proj_weight, self.out_proj_bias)
