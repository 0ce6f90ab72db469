"""Pooling layers over (N, C, L) and (N, C, H, W) inputs (no Params): torch.nn's constructors and semantics.

Arguments are checked when the layer is made, so a bad one names the layer before any input
exists; the output size (ceil_mode, a kernel larger than the input) is checked by the op.
"""
from __future__ import annotations

from .. import ops
from ..errors import fail
from ..graph import Node
from .convolution import sizes
from .dense import check_flag
from .layer import Layer, check_rank

LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)"}


class Pool(Layer):
    """kernel_size, stride (default: kernel_size), padding (at most half the kernel) and ceil_mode,
    each size an int or one per spatial axis."""

    spatial = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, name: str | None = None):
        super().__init__(name)
        layer, n = self.describe(), self.spatial
        self.kernel_size = sizes(kernel_size, n, "kernel_size", layer, 1)
        self.stride = self.kernel_size if stride is None else sizes(stride, n, "stride", layer, 1)
        self.padding = sizes(padding, n, "padding", layer, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise fail(layer, f"padding: expected at most half the kernel size {self.kernel_size} (as in PyTorch), "
                              f"got {padding!r}")
        self.ceil_mode = check_flag(ceil_mode, "ceil_mode", layer)

    def __call__(self, x: Node) -> Node:
        if isinstance(x, Node):
            check_rank(self, x, (2 + self.spatial,), LAYOUTS[self.spatial])
        return super().__call__(x)


def _no_indices(return_indices, layer: str) -> None:
    if return_indices is not False:
        raise fail(layer, f"return_indices: expected False (the indices are not returned), got {return_indices!r}")


class MaxPool(Pool):
    """The largest value of each window (padding counts as -inf); dilation spaces the taps.
    return_indices must be False."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False, name: str | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode, name)
        self.dilation = sizes(dilation, self.spatial, "dilation", self.describe(), 1)
        _no_indices(return_indices, self.describe())

    def forward(self, x: Node) -> Node:
        return getattr(ops, self.kind)(x, self.kernel_size, stride=self.stride, padding=self.padding,
                                       dilation=self.dilation, ceil_mode=self.ceil_mode)


class MaxPool2d(MaxPool):
    """torch.nn.MaxPool2d over (N, C, H, W)."""

    kind = "max_pool2d"


class MaxPool1d(MaxPool):
    """torch.nn.MaxPool1d over (N, C, L)."""

    kind = "max_pool1d"
    spatial = 1


class AvgPool(Pool):
    """The mean of each window; count_include_pad=False divides by the unpadded count,
    divisor_override (a nonzero int) replaces every divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None, name: str | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode, name)
        self.count_include_pad = check_flag(count_include_pad, "count_include_pad", self.describe())
        if divisor_override is not None and (isinstance(divisor_override, bool) or not isinstance(divisor_override, int)
                                             or divisor_override == 0):
            raise fail(self.describe(), f"divisor_override: expected a nonzero int or None, got {divisor_override!r}")
        self.divisor_override = divisor_override

    def forward(self, x: Node) -> Node:
        return getattr(ops, self.kind)(x, self.kernel_size, stride=self.stride, padding=self.padding,
                                       ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                                       divisor_override=self.divisor_override)


class AvgPool2d(AvgPool):
    """torch.nn.AvgPool2d over (N, C, H, W)."""

    kind = "avg_pool2d"


class AvgPool1d(AvgPool):
    """torch.nn.AvgPool1d over (N, C, L) (also divisor_override, which torch's lacks)."""

    kind = "avg_pool1d"
    spatial = 1


class AdaptivePool(Layer):
    """output_size bins per axis (an int, or one per spatial axis, None keeping that axis's size),
    as torch's adaptive poolings split them."""

    spatial = 2

    def __init__(self, output_size, name: str | None = None):
        super().__init__(name)
        n = self.spatial
        values = (output_size,) * n if isinstance(output_size, int) else output_size
        if (not isinstance(values, (tuple, list)) or len(values) != n or not all(
                (v is None and n > 1) or (isinstance(v, int) and not isinstance(v, bool) and v >= 1) for v in values)):
            spelled = "an int >= 1" if n == 1 else f"an int >= 1 or {n} of them (None keeps a size)"
            raise fail(self.describe(), f"output_size: expected {spelled}, got {output_size!r}")
        self.output_size = tuple(values)

    def __call__(self, x: Node) -> Node:
        if isinstance(x, Node):
            check_rank(self, x, (2 + self.spatial,), LAYOUTS[self.spatial])
        return super().__call__(x)

    def forward(self, x: Node) -> Node:
        return getattr(ops, self.kind)(x, self.output_size)


class AdaptiveAvgPool2d(AdaptivePool):
    """torch.nn.AdaptiveAvgPool2d: the mean of each bin; AdaptiveAvgPool2d(1) is global average pooling."""

    kind = "adaptive_avg_pool2d"


class AdaptiveMaxPool2d(AdaptivePool):
    """torch.nn.AdaptiveMaxPool2d: the largest value of each bin (return_indices must be False)."""

    kind = "adaptive_max_pool2d"

    def __init__(self, output_size, return_indices: bool = False, name: str | None = None):
        super().__init__(output_size, name)
        _no_indices(return_indices, self.describe())


class AdaptiveAvgPool1d(AdaptivePool):
    """torch.nn.AdaptiveAvgPool1d over (N, C, L)."""

    kind = "adaptive_avg_pool1d"
    spatial = 1
