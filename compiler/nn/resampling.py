"""Upsample, PixelShuffle and PixelUnshuffle: resampling for generators, decoders and U-Nets (no Params)."""
from __future__ import annotations

from .. import ops
from ..graph import Node
from ..resampling import check_options, check_sizes, _factor
from .layer import Layer


class Upsample(Layer):
    """torch.nn.Upsample: interpolate by `size` or `scale_factor`, mode 'nearest', 'nearest-exact',
    'linear', 'bilinear' or 'trilinear' (align_corners for the last three). The arguments are
    checked here; the input's rank, when called."""

    kind = "upsample"

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 name: str | None = None):
        super().__init__(name)
        check_options(mode, align_corners, self.describe())
        check_sizes(size, scale_factor, self.describe())
        self.size, self.scale_factor, self.mode, self.align_corners = size, scale_factor, mode, align_corners

    def forward(self, x: Node) -> Node:
        return ops.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)


class PixelShuffle(Layer):
    """torch.nn.PixelShuffle: (*, C r^2, H, W) -> (*, C, H r, W r), the sub-pixel convolution's rearrangement."""

    kind = "pixel_shuffle"

    def __init__(self, upscale_factor: int, name: str | None = None):
        super().__init__(name)
        self.upscale_factor = _factor(upscale_factor, "upscale_factor", self.describe())

    def forward(self, x: Node) -> Node:
        return ops.pixel_shuffle(x, self.upscale_factor)


class PixelUnshuffle(Layer):
    """torch.nn.PixelUnshuffle: (*, C, H r, W r) -> (*, C r^2, H, W), PixelShuffle's inverse."""

    kind = "pixel_unshuffle"

    def __init__(self, downscale_factor: int, name: str | None = None):
        super().__init__(name)
        self.downscale_factor = _factor(downscale_factor, "downscale_factor", self.describe())

    def forward(self, x: Node) -> Node:
        return ops.pixel_unshuffle(x, self.downscale_factor)
