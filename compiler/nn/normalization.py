"""BatchNorm1d and BatchNorm2d: batch normalisation over the channel axis, with running statistics.

The layer is one graph for both modes: a training step normalises with the batch
statistics and updates the running ones in place; ``compiler.inference`` (which
``step.function`` and ``fit``'s validation use) switches it to the running ones.
"""
from __future__ import annotations

import numbers

from .. import ops
from ..errors import fail
from ..graph import Node
from .dense import check_flag
from .layer import Layer, check_rank, check_same_dim, concrete_dim, float_dtype


class BatchNorm(Layer):
    """weight (gamma, ones) and bias (beta, zeros) of shape (C,) when `affine`; Buffers running_mean
    (zeros) and running_var (ones); C from the first input."""

    ranks, layout = (), ""

    def __init__(self, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, name: str | None = None):
        super().__init__(name)
        layer = self.describe()
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
            raise fail(layer, f"eps: expected a positive number, got {eps!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
            raise fail(layer, f"momentum: expected a number in [0, 1], got {momentum!r}")
        self.eps, self.momentum = float(eps), float(momentum)
        self.affine = check_flag(affine, "affine", layer)
        self.weight = self.bias = self.running_mean = self.running_var = None

    def build(self, x: Node) -> None:
        check_rank(self, x, self.ranks, self.layout)
        dtype = float_dtype(self, x)
        channels = concrete_dim(self, x, 1, "channels")
        if self.affine:
            self.weight = self.param("weight", (channels,), "ones", dtype)
            self.bias = self.param("bias", (channels,), "zeros", dtype)
        self.running_mean = self.buffer("running_mean", (channels,), "zeros", dtype)
        self.running_var = self.buffer("running_var", (channels,), "ones", dtype)

    def check_reuse(self, x: Node) -> None:
        check_rank(self, x, self.ranks, self.layout)
        check_same_dim(self, x, 1, "channels")

    def forward(self, x: Node) -> Node:
        return ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, training=True,
                              momentum=self.momentum, eps=self.eps)


class BatchNorm1d(BatchNorm):
    """torch.nn.BatchNorm1d with num_features inferred: x (N, C) or (N, C, L)."""

    kind, ranks, layout = "batch_norm", (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(BatchNorm):
    """torch.nn.BatchNorm2d with num_features inferred: x (N, C, H, W)."""

    kind, ranks, layout = "batch_norm", (4,), "(N, C, H, W)"
