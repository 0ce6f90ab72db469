"""Model files for images and signals: convolutions, pooling, normalisation and upsampling layer types.

    [model]
    input_shape = [1, 8, 8]                 # (channels, height, width); [8, 8] for conv1d: (channels, length)
    layers = [{ type = "conv2d", filters = 16, kernel_size = 3, padding = 1, activation = "relu" },
              { type = "group_norm", num_groups = 4 },
              { type = "max_pool2d", kernel_size = 2, ceil_mode = true },
              { type = "adaptive_avg_pool2d", output_size = 1 },
              { type = "flatten" }, { type = "dense", units = 10 }]

``model_file`` reads everything else and calls in here for these layer types (keys and defaults are
torch.nn's; a size is an integer or [h, w] for the 2-d types, an integer for the 1-d ones):

- ``conv2d``: filters, kernel_size, stride = 1, padding = 0 (or "same", "valid"), dilation = 1,
  groups = 1, activation = "linear"; ``conv1d``: the same over (batch, channels, length)
- ``conv_transpose2d``, ``conv_transpose1d``: filters, kernel_size, stride = 1, padding = 0, output_padding = 0,
  dilation = 1, groups = 1, activation = "linear" (a decoder's upsampling)
- ``max_pool2d``, ``max_pool1d``: kernel_size, stride = kernel_size, padding = 0, dilation = 1, ceil_mode = false
- ``avg_pool2d``, ``avg_pool1d``: kernel_size, stride = kernel_size, padding = 0, ceil_mode = false,
  count_include_pad = true, divisor_override (absent: none)
- ``adaptive_avg_pool2d``, ``adaptive_max_pool2d``, ``adaptive_avg_pool1d``: output_size (1: global pooling)
- ``batch_norm``: momentum = 0.1, eps = 1e-5 (over the channels of (batch, C), (batch, C, L) or (batch, C, H, W))
- ``group_norm``: num_groups, eps = 1e-5, affine = true
- ``instance_norm``: eps = 1e-5, momentum = 0.1, affine = false, track_running_stats = false
- ``upsample``: scale_factor or size, mode = "nearest" (or "nearest-exact", "linear", "bilinear"),
  align_corners (linear modes only; absent: false)
- ``pixel_shuffle``: upscale_factor, (batch, C r^2, H, W) -> (batch, C, H r, W r)
"""
from __future__ import annotations

from . import nn
from .graph import Node
from .model_file_values import (PADDING, SIZE, as_size, is_count, is_flag, is_natural, is_number, is_padding,
                                is_positive, is_size, read_activation)

IMAGES = "(batch, channels, height, width)"
SIGNALS = "(batch, channels, length)"
ANY_CHANNELS = "(batch, channels), (batch, channels, length) or (batch, channels, height, width)"
IMAGE_INPUT_LAYOUTS = {  # ranks of (batch, ...) each layer type takes, spelled for errors
    "conv2d": ((4,), IMAGES), "conv1d": ((3,), SIGNALS), "conv_transpose2d": ((4,), IMAGES),
    "conv_transpose1d": ((3,), SIGNALS),
    "max_pool2d": ((4,), IMAGES), "avg_pool2d": ((4,), IMAGES), "max_pool1d": ((3,), SIGNALS),
    "avg_pool1d": ((3,), SIGNALS), "adaptive_avg_pool2d": ((4,), IMAGES), "adaptive_max_pool2d": ((4,), IMAGES),
    "adaptive_avg_pool1d": ((3,), SIGNALS), "batch_norm": ((2, 3, 4), ANY_CHANNELS),
    "group_norm": ((2, 3, 4), ANY_CHANNELS), "instance_norm": ((3, 4), f"{SIGNALS} or {IMAGES}"),
    "upsample": ((3, 4), f"{SIGNALS} or {IMAGES}"), "pixel_shuffle": ((4,), IMAGES),
}
IMAGE_LAYER_TYPES = tuple(IMAGE_INPUT_LAYOUTS)
IMAGE_WIDTH_KEYS = {kind: "filters" for kind in ("conv2d", "conv1d", "conv_transpose2d", "conv_transpose1d")}
LAYERS = {"conv2d": nn.Conv2d, "conv1d": nn.Conv1d, "conv_transpose2d": nn.ConvTranspose2d,
          "conv_transpose1d": nn.ConvTranspose1d,
          "max_pool2d": nn.MaxPool2d, "avg_pool2d": nn.AvgPool2d, "max_pool1d": nn.MaxPool1d,
          "avg_pool1d": nn.AvgPool1d, "adaptive_avg_pool2d": nn.AdaptiveAvgPool2d,
          "adaptive_max_pool2d": nn.AdaptiveMaxPool2d, "adaptive_avg_pool1d": nn.AdaptiveAvgPool1d,
          "group_norm": nn.GroupNorm, "upsample": nn.Upsample, "pixel_shuffle": nn.PixelShuffle}
MODES = ("nearest", "nearest-exact", "linear", "bilinear")


def _sizes(kind: str) -> tuple:
    """(words, check) for a size and for a padding of this layer type: pairs for 2-d types, integers for 1-d."""
    if kind.endswith("1d"):
        return ("a positive integer", is_count), ("a non-negative integer", is_natural)
    return (SIZE, is_size), (PADDING, is_padding)


def _scale(value) -> bool:
    return is_positive(value) or (isinstance(value, list) and len(value) == 2 and all(is_positive(v) for v in value))


def _convolution(kind: str, entry) -> dict:
    (size, is_a_size), (padding, is_a_padding) = _sizes(kind)
    paddings = (padding, is_a_padding)
    transposed = kind.startswith("conv_transpose")
    if not transposed:
        paddings = (f'{padding}, "same" or "valid"', lambda v: is_a_padding(v) or v in ("same", "valid"))
    arguments = {"out_channels": entry.take("filters", "a positive integer", is_count),
                 "kernel_size": as_size(entry.take("kernel_size", size, is_a_size)),
                 "stride": as_size(entry.take("stride", size, is_a_size, default=1)),
                 "padding": as_size(entry.take("padding", *paddings, default=0)),
                 "dilation": as_size(entry.take("dilation", size, is_a_size, default=1)),
                 "groups": entry.take("groups", "a positive integer", is_count, default=1),
                 "activation": read_activation(entry)}
    if transposed:
        arguments["output_padding"] = as_size(entry.take("output_padding", padding, is_a_padding, default=0))
    return arguments


def _pooling(kind: str, entry) -> dict:
    (size, is_a_size), (padding, is_a_padding) = _sizes(kind)
    arguments = {"kernel_size": as_size(entry.take("kernel_size", size, is_a_size)),
                 "stride": as_size(entry.take("stride", size, is_a_size, default=None)),
                 "padding": as_size(entry.take("padding", padding, is_a_padding, default=0)),
                 "ceil_mode": entry.take("ceil_mode", "true or false", is_flag, default=False)}
    if kind.startswith("max"):
        arguments["dilation"] = as_size(entry.take("dilation", size, is_a_size, default=1))
    else:
        arguments["count_include_pad"] = entry.take("count_include_pad", "true or false", is_flag, default=True)
        arguments["divisor_override"] = entry.take("divisor_override", "a positive integer", is_count, default=None)
    return arguments


def read_image_layer(kind: str, entry) -> dict:
    """The nn constructor arguments of an image or signal layer entry (a model_file.Table)."""
    eps = ("eps", "a number > 0", is_positive)
    if kind.startswith("conv"):
        return _convolution(kind, entry)
    if kind.startswith(("max_pool", "avg_pool")):
        return _pooling(kind, entry)
    if kind.startswith("adaptive"):
        size, is_a_size = _sizes(kind)[0]
        return {"output_size": as_size(entry.take("output_size", size, is_a_size))}
    if kind == "batch_norm":
        return {"momentum": entry.take("momentum", "a number in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1,
                                       default=0.1),
                "eps": entry.take(*eps, default=1e-5)}
    if kind == "group_norm":
        return {"num_groups": entry.take("num_groups", "a positive integer dividing the channels", is_count),
                "eps": entry.take(*eps, default=1e-5),
                "affine": entry.take("affine", "true or false", is_flag, default=True)}
    if kind == "instance_norm":
        return {"eps": entry.take(*eps, default=1e-5),
                "momentum": entry.take("momentum", "a number in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1,
                                       default=0.1),
                "affine": entry.take("affine", "true or false", is_flag, default=False),
                "track_running_stats": entry.take("track_running_stats", "true or false", is_flag, default=False)}
    if kind == "upsample":
        scale = entry.take("scale_factor", "a number > 0 or an array of 2", _scale, default=None)
        size = entry.take("size", SIZE, is_size, default=None)
        if (scale is None) == (size is None):
            raise entry.error(entry.key("scale_factor"), "expected exactly one of scale_factor and size, found "
                              + ("both" if scale is not None else "neither"))
        return {"scale_factor": as_size(scale), "size": as_size(size), "mode": entry.choice("mode", MODES, "nearest"),
                "align_corners": entry.take("align_corners", "true or false", is_flag, default=None)}
    return {"upscale_factor": entry.take("upscale_factor", "a positive integer", is_count)}  # pixel_shuffle


def make_image_layer(kind: str, arguments: dict, x: Node, name: str) -> nn.Layer:
    """The nn layer of an entry for input `x` (batch and instance norm's kinds follow the input's rank)."""
    if kind == "batch_norm":
        return (nn.BatchNorm2d if x.ndim == 4 else nn.BatchNorm1d)(name=name, **arguments)
    if kind == "instance_norm":
        return (nn.InstanceNorm2d if x.ndim == 4 else nn.InstanceNorm1d)(name=name, **arguments)
    if kind == "pixel_shuffle":
        return nn.PixelShuffle(arguments["upscale_factor"], name=name)
    return LAYERS[kind](name=name, **arguments)
