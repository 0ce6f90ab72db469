"""Normalisation over channels: BatchNorm1d/2d, InstanceNorm1d/2d and GroupNorm (torch.nn's).

A layer with running statistics is one graph for both modes: a training step
normalises with the input's statistics and updates the running ones in place;
``compiler.inference`` (which ``step.function`` and ``fit``'s validation use)
switches it to the running ones. Params and Buffers carry torch's state-dict
names (weight, bias, running_mean, running_var), so torch weights load by name.
"""
from __future__ import annotations

import numbers

from .. import ops
from ..errors import fail
from ..graph import Node
from .dense import check_flag
from .layer import Layer, check_rank, check_same_dim, concrete_dim, float_dtype
from .layer_norm import check_eps


def check_eps_and_momentum(eps, momentum, layer: str) -> tuple:
    eps = check_eps(eps, layer)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise fail(layer, f"momentum: expected a number in [0, 1], got {momentum!r}")
    return eps, float(momentum)


class ChannelNorm(Layer):
    """A per-channel normalisation with torch's Params and Buffers: weight (ones) and bias (zeros) of
    shape (C,) when `affine`, Buffers running_mean (zeros) and running_var (ones) when it tracks running
    statistics; C from the first input."""

    ranks, layout = (), ""

    def __init__(self, eps: float, momentum: float, affine: bool, track_running_stats: bool, name: str | None):
        super().__init__(name)
        self.eps, self.momentum = check_eps_and_momentum(eps, momentum, self.describe())
        self.affine = check_flag(affine, "affine", self.describe())
        self.track_running_stats = check_flag(track_running_stats, "track_running_stats", self.describe())
        self.weight = self.bias = self.running_mean = self.running_var = None

    def build(self, x: Node) -> None:
        check_rank(self, x, self.ranks, self.layout)
        dtype = float_dtype(self, x)
        channels = concrete_dim(self, x, 1, "channels")
        if self.affine:
            self.weight = self.param("weight", (channels,), "ones", dtype)
            self.bias = self.param("bias", (channels,), "zeros", dtype)
        if self.track_running_stats:
            self.running_mean = self.buffer("running_mean", (channels,), "zeros", dtype)
            self.running_var = self.buffer("running_var", (channels,), "ones", dtype)

    def check_reuse(self, x: Node) -> None:
        check_rank(self, x, self.ranks, self.layout)
        check_same_dim(self, x, 1, "channels")


class BatchNorm(ChannelNorm):
    """Batch statistics while training, running statistics (always tracked) after compiler.inference."""

    def __init__(self, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True, name: str | None = None):
        super().__init__(eps, momentum, affine, True, name)

    def forward(self, x: Node) -> Node:
        return ops.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, training=True,
                              momentum=self.momentum, eps=self.eps)


class BatchNorm1d(BatchNorm):
    """torch.nn.BatchNorm1d with num_features inferred: x (N, C) or (N, C, L)."""

    kind, ranks, layout = "batch_norm", (2, 3), "(N, C) or (N, C, L)"


class BatchNorm2d(BatchNorm):
    """torch.nn.BatchNorm2d with num_features inferred: x (N, C, H, W)."""

    kind, ranks, layout = "batch_norm", (4,), "(N, C, H, W)"


class InstanceNorm(ChannelNorm):
    """Each sample's statistics per channel; torch's defaults: no affine transform, no running statistics."""

    kind = "instance_norm"

    def __init__(self, affine: bool = False, track_running_stats: bool = False, momentum: float = 0.1,
                 eps: float = 1e-5, name: str | None = None):
        super().__init__(eps, momentum, affine, track_running_stats, name)

    def forward(self, x: Node) -> Node:
        """The input's statistics; with running statistics, the running ones after compiler.inference
        (torch's eval mode, where an InstanceNorm without them keeps using the input's)."""
        return ops.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                 use_input_stats=True, momentum=self.momentum, eps=self.eps)


class InstanceNorm1d(InstanceNorm):
    """torch.nn.InstanceNorm1d with num_features inferred: x (N, C, L), L > 1."""

    ranks, layout = (3,), "(N, C, L)"


class InstanceNorm2d(InstanceNorm):
    """torch.nn.InstanceNorm2d with num_features inferred: x (N, C, H, W), H x W > 1."""

    ranks, layout = (4,), "(N, C, H, W)"


class GroupNorm(Layer):
    """torch.nn.GroupNorm(num_groups, num_channels, eps, affine) with num_channels inferred: x (N, C, ...)
    normalised over each sample's groups of C / num_groups consecutive channels and their positions.
    weight (ones) and bias (zeros) of shape (C,) when `affine`."""

    kind = "group_norm"

    def __init__(self, num_groups: int, affine: bool = True, eps: float = 1e-5, name: str | None = None):
        super().__init__(name)
        if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups < 1:
            raise fail(self.describe(), f"num_groups: expected a positive int, got {num_groups!r}")
        self.num_groups = int(num_groups)
        self.eps = check_eps(eps, self.describe())
        self.affine = check_flag(affine, "affine", self.describe())
        self.weight = self.bias = None

    def build(self, x: Node) -> None:
        self.check_rank(x)
        dtype = float_dtype(self, x)
        channels = concrete_dim(self, x, 1, "channels")
        if channels % self.num_groups:
            raise fail(self.describe(), f"num_groups={self.num_groups} must divide the input's channels, got "
                                        f"{channels} (shape {x.shape})")
        if self.affine:
            self.weight = self.param("weight", (channels,), "ones", dtype)
            self.bias = self.param("bias", (channels,), "zeros", dtype)

    def check_rank(self, x: Node) -> None:
        if x.ndim < 2:
            raise fail(self.describe(), f"expected an input of shape (N, C, ...), got shape {x.shape}")

    def check_reuse(self, x: Node) -> None:
        self.check_rank(x)
        check_same_dim(self, x, 1, "channels")

    def forward(self, x: Node) -> Node:
        return ops.group_norm(x, self.num_groups, self.weight, self.bias, eps=self.eps)
