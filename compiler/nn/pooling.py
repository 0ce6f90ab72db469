"""MaxPool2d and AvgPool2d: window reductions over (N, C, H, W) inputs (no Params)."""
from __future__ import annotations

from .. import ops
from ..errors import fail
from ..graph import Node
from .convolution import sizes
from .dense import check_flag
from .layer import Layer, check_rank


class Pool2d(Layer):
    """kernel_size, stride (default: kernel_size) and padding, each an int or a pair."""

    def __init__(self, kernel_size, stride=None, padding=0, name: str | None = None):
        super().__init__(name)
        layer = self.describe()
        self.kernel_size = sizes(kernel_size, 2, "kernel_size", layer, 1)
        self.stride = self.kernel_size if stride is None else sizes(stride, 2, "stride", layer, 1)
        self.padding = sizes(padding, 2, "padding", layer, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise fail(layer, f"padding: expected at most half the kernel size {self.kernel_size} (as in PyTorch), "
                              f"got {padding!r}")

    def __call__(self, x: Node) -> Node:
        if isinstance(x, Node):
            check_rank(self, x, (4,), "(N, C, H, W)")
        return super().__call__(x)


class MaxPool2d(Pool2d):
    """torch.nn.MaxPool2d: the largest value of each window (padding counts as -inf)."""

    kind = "max_pool2d"

    def forward(self, x: Node) -> Node:
        return ops.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class AvgPool2d(Pool2d):
    """torch.nn.AvgPool2d: the mean of each window; count_include_pad=False divides by the unpadded count."""

    kind = "avg_pool2d"

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = True, name: str | None = None):
        super().__init__(kernel_size, stride, padding, name)
        self.count_include_pad = check_flag(count_include_pad, "count_include_pad", self.describe())

    def forward(self, x: Node) -> Node:
        return ops.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding,
                              count_include_pad=self.count_include_pad)
