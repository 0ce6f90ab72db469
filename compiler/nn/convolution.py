"""Conv1d, Conv2d, ConvTranspose1d and ConvTranspose2d: convolution layers over (N, C, L) and (N, C, H, W) inputs."""
from __future__ import annotations

import math

from .. import ops
from ..errors import fail
from ..graph import Node
from .activations import activation_function
from .dense import check_count, check_flag
from .init import bias_init, weight_init
from .layer import Layer, check_rank, check_same_dim, concrete_dim, float_dtype


def sizes(value, n: int, argument: str, layer: str, minimum: int) -> tuple:
    """An int or n ints, each >= minimum, as a tuple of n ints."""
    values = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(values, (tuple, list)) or len(values) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values)):
        spelled = "an int" if n == 1 else f"an int or {n} ints"
        raise fail(layer, f"{argument}: expected {spelled} >= {minimum}, got {value!r}")
    return tuple(values)


def paddings(value, n: int, layer: str):
    """An int, n ints (each >= 0), "same" or "valid"."""
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise fail(layer, f"padding: expected an int, 'same' or 'valid', got {value!r}")
        return value
    return sizes(value, n, "padding", layer, 0)


class Convolution(Layer):
    """The shared part of Conv1d and Conv2d: weight (out_channels, in_channels/groups, *kernel_size), bias
    (out_channels,), in_channels from the first input; PyTorch's default initialisation unless `init`."""

    spatial = 0
    layout = ""

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias: bool = True,
                 activation=None, name: str | None = None, init=None):
        super().__init__(name)
        layer, n = self.describe(), self.spatial
        self.out_channels = check_count(out_channels, "out_channels", layer)
        self.kernel_size = sizes(kernel_size, n, "kernel_size", layer, 1)
        self.stride = sizes(stride, n, "stride", layer, 1)
        self.padding = paddings(padding, n, layer)
        self.dilation = sizes(dilation, n, "dilation", layer, 1)
        self.groups = check_count(groups, "groups", layer)
        if out_channels % groups:
            raise fail(layer, f"groups: expected a divisor of out_channels {out_channels}, got {groups}")
        self.use_bias = check_flag(bias, "bias", layer)
        self.activation = activation_function(activation, layer)
        self.init = init
        weight_init(init, 1, 1, layer)  # reject an unknown init now, not at the first call
        self.weight = self.bias = None

    def build(self, x: Node) -> None:
        check_rank(self, x, (2 + self.spatial,), self.layout)
        dtype = float_dtype(self, x)
        channels = concrete_dim(self, x, 1, "channels")
        if channels % self.groups:
            raise fail(self.describe(), f"groups {self.groups} must divide the input channels, got {channels} "
                                        f"channels (input shape {x.shape})")
        shape, fan_in, fan_out = self.weight_layout(channels)
        self.weight = self.param("weight", shape, weight_init(self.init, fan_in, fan_out, self.describe()), dtype)
        if self.use_bias:
            self.bias = self.param("bias", (self.out_channels,), bias_init(fan_in), dtype)

    def check_reuse(self, x: Node) -> None:
        check_rank(self, x, (2 + self.spatial,), self.layout)
        check_same_dim(self, x, 1, "channels")

    def forward(self, x: Node) -> Node:
        y = self.convolve(x)
        return y if self.activation is None else self.activation(y)

    def weight_layout(self, channels: int) -> tuple:
        """(weight shape, fan_in, fan_out) for `channels` input channels, as torch computes the fans."""
        receptive = math.prod(self.kernel_size)
        shape = (self.out_channels, channels // self.groups, *self.kernel_size)
        return shape, channels // self.groups * receptive, self.out_channels // self.groups * receptive

    def convolve(self, x: Node) -> Node:
        raise NotImplementedError


class Conv2d(Convolution):
    """torch.nn.Conv2d with in_channels inferred: x (N, C, H, W) -> (N, out_channels, H', W')."""

    kind, spatial, layout = "conv2d", 2, "(N, C, H, W)"

    def convolve(self, x: Node) -> Node:
        return ops.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                          dilation=self.dilation, groups=self.groups)


class ConvTranspose2d(Convolution):
    """torch.nn.ConvTranspose2d with in_channels inferred: x (N, C, H, W) -> (N, out_channels, H', W'),
    H' = (H - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1 (a decoder's or a GAN
    generator's upsampling). Weight (in_channels, out_channels/groups, kh, kw), as torch's; initialised
    as torch's, whose fan_in is out_channels/groups x taps for this layout."""

    kind, spatial, layout = "conv_transpose2d", 2, "(N, C, H, W)"

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias: bool = True, dilation=1, activation=None, name: str | None = None, init=None):
        super().__init__(out_channels, kernel_size, stride, padding, dilation, groups, bias, activation, name, init)
        if isinstance(self.padding, str):
            spelled = "an int" if self.spatial == 1 else f"an int or {self.spatial} ints"
            raise fail(self.describe(), f"padding: expected {spelled} >= 0, got {padding!r}")
        self.output_padding = sizes(output_padding, self.spatial, "output_padding", self.describe(), 0)

    def weight_layout(self, channels: int) -> tuple:
        receptive = math.prod(self.kernel_size)
        shape = (channels, self.out_channels // self.groups, *self.kernel_size)
        return shape, self.out_channels // self.groups * receptive, channels * receptive

    def convolve(self, x: Node) -> Node:
        transpose = ops.conv_transpose1d if self.spatial == 1 else ops.conv_transpose2d
        return transpose(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                         output_padding=self.output_padding, groups=self.groups, dilation=self.dilation)


class ConvTranspose1d(ConvTranspose2d):
    """torch.nn.ConvTranspose1d with in_channels inferred: x (N, C, L) -> (N, out_channels, L'), L' as
    ConvTranspose2d's H'; weight (in_channels, out_channels/groups, k). The 2-d layer over one axis."""

    kind, spatial, layout = "conv_transpose1d", 1, "(N, C, L)"


class Conv1d(Convolution):
    """torch.nn.Conv1d with in_channels inferred: x (N, C, L) -> (N, out_channels, L')."""

    kind, spatial, layout = "conv1d", 1, "(N, C, L)"

    def convolve(self, x: Node) -> Node:
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return ops.conv1d(x, self.weight, self.bias, stride=self.stride[0], padding=padding,
                          dilation=self.dilation[0], groups=self.groups)
