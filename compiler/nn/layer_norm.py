"""LayerNorm and RMSNorm: normalisation over the last axis of each example (torch.nn's)."""
from __future__ import annotations

import numbers

from .. import sequence_ops
from ..errors import fail
from ..graph import Node
from .dense import check_flag
from .layer import Layer, check_same_dim, concrete_dim, float_dtype


def check_eps(value, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
        raise fail(layer, f"eps: expected a positive number, got {value!r}")
    return float(value)


class LastAxisNorm(Layer):
    """The shared part: the size d of the last axis is inferred from the first input."""

    def build(self, x: Node) -> None:
        if x.ndim < 1:
            raise fail(self.describe(), "expected an input of shape (..., features), got a scalar")
        dtype = float_dtype(self, x)
        self.make_params(concrete_dim(self, x, -1, "features"), dtype)

    def check_reuse(self, x: Node) -> None:
        check_same_dim(self, x, -1, "features")


class LayerNorm(LastAxisNorm):
    """torch.nn.LayerNorm(d, eps, elementwise_affine, bias) with d inferred:
    (x - mean) / sqrt(var + eps) * weight + bias over the last axis (biased variance).
    weight starts at ones, bias at zeros."""

    kind = "layer_norm"

    def __init__(self, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 name: str | None = None):
        super().__init__(name)
        self.eps = check_eps(eps, self.describe())
        self.affine = check_flag(elementwise_affine, "elementwise_affine", self.describe())
        self.use_bias = check_flag(bias, "bias", self.describe())
        self.weight = self.bias = None

    def make_params(self, features: int, dtype: str) -> None:
        if self.affine:
            self.weight = self.param("weight", (features,), "ones", dtype)
            if self.use_bias:
                self.bias = self.param("bias", (features,), "zeros", dtype)

    def forward(self, x: Node) -> Node:
        return sequence_ops.layer_norm(x, self.weight, self.bias, self.eps)


class RMSNorm(LastAxisNorm):
    """torch.nn.RMSNorm(d, eps, elementwise_affine) with d inferred: x / sqrt(mean(x**2) + eps) * weight over
    the last axis; weight starts at ones. The default eps is 1e-6 (torch's None means the dtype's machine
    epsilon: pass it to match)."""

    kind = "rms_norm"

    def __init__(self, eps: float = 1e-6, elementwise_affine: bool = True, name: str | None = None):
        super().__init__(name)
        self.eps = check_eps(eps, self.describe())
        self.affine = check_flag(elementwise_affine, "elementwise_affine", self.describe())
        self.weight = None

    def make_params(self, features: int, dtype: str) -> None:
        if self.affine:
            self.weight = self.param("weight", (features,), "ones", dtype)

    def forward(self, x: Node) -> Node:
        return sequence_ops.rms_norm(x, self.weight, self.eps)
