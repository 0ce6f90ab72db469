"""Convolution, written on the primitives: a ``window`` view and an einsum.

A convolution is the contraction of the windows of its (padded) input with its
weights: ``window`` gives, without copying, the view ``x[n, c, i*stride + k*dilation]``
with the window position ``i`` and the tap ``k`` as axes of their own, and
``einsum`` contracts channels and taps with the weights. The einsum lowering
makes it a batched matrix product whose window operand is stored once per call by
a fused loop (im2col) and multiplied by the register-tiled GEMM
(``docs/architecture.md``, "Convolution"). Its gradients are the gradients of
those primitives: two more products and the scatter of the window's cotangent,
all visible in the symbolic backward graph. Pooling (``pooling.py``) reduces over the same windows.

Layouts and defaults are PyTorch's: x ``(N, C, *spatial)``, w ``(O, C/groups, *kernel)``.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import fail
from .graph import Node, as_node, scalar_symbol
from .primitives import make_broadcast, make_einsum, make_map, make_reshape, make_transpose
from .primitives.layouts import make_pad, make_window, window_count
from .shapes import normalize_axes

SPATIAL = "hwd"
DEEP_PRODUCT = 32  # channels x taps from which a convolution's product runs positions-major


class _Failure:
    """Raises the op's GraphError with the shapes it was given, named in every message."""

    def __init__(self, op: str, **shapes):
        self.op = op
        self.shapes = ", ".join(f"{name} {shape}" for name, shape in shapes.items())

    def __call__(self, message: str):
        return fail(self.op, f"{message} ({self.shapes})")


def _tuple(value, n: int, name: str, error: _Failure) -> tuple:
    """An int or a sequence of n ints, as a tuple of n ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    values = tuple(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != n or not all(isinstance(v, (int, np.integer)) for v in values):
        raise error(f"{name} must be an int or {n} ints, got {value!r}")
    return tuple(int(v) for v in values)


def _check_input(x: Node, spatial: int, error: _Failure) -> None:
    if x.ndim != 2 + spatial:
        layout = "(N, C, L)" if spatial == 1 else "(N, C, H, W)"
        raise error(f"x must have shape {layout}, got rank {x.ndim}")
    if any(not isinstance(d, int) for d in x.shape[1:]):
        raise error("only the batch dimension of x may be symbolic")


def _padding(padding, kernel: tuple, dilation: tuple, stride: tuple, error: _Failure) -> tuple:
    """((low, high) per spatial axis) of an int, a sequence, "valid" or "same"."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise error(f"padding must be an int, {n} ints, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise error(f"padding='same' needs stride 1 (as in PyTorch), got stride {stride}")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    pads = _tuple(padding, n, "padding", error)
    if any(p < 0 for p in pads):
        raise error(f"padding must be >= 0, got {padding!r}")
    return tuple((p, p) for p in pads)


def _windows(x: Node, first_axis: int, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple, fill: float,
             op: str, shapes: str) -> Node:
    """x padded with `fill` and viewed as windows: the window positions replace the spatial axes
    (from `first_axis` on) and the taps follow as new last axes."""
    rank = x.ndim
    low = tuple(pads[a - first_axis][0] if a >= first_axis else 0 for a in range(rank))
    high = tuple(pads[a - first_axis][1] if a >= first_axis else 0 for a in range(rank))
    padded = make_pad(x, low, high, fill)
    for j, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
        length = padded.shape[first_axis + j]
        if window_count(length, k, s, d) < 1:
            raise fail(op, f"the kernel spans {d * (k - 1) + 1} elements on spatial axis {j}, more than the "
                           f"{length} of the padded input ({shapes})")
        padded = make_window(padded, first_axis + j, k, s, d)
    return padded


def _conv(x, w, b, stride, padding, dilation, groups, spatial: int, op: str) -> Node:
    x, w = as_node(x), as_node(w)
    error = _Failure(op, x=x.shape, w=w.shape)
    _check_input(x, spatial, error)
    shapes = error.shapes
    if w.ndim != 2 + spatial or not all(isinstance(d, int) for d in w.shape):
        taps = ", ".join("k" + SPATIAL[j] for j in range(spatial))
        raise error(f"w must have shape (out_channels, in_channels/groups, {taps})")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise error(f"groups must be a positive int, got {groups!r}")
    channels, out_channels = x.shape[1], w.shape[0]
    if channels % groups or out_channels % groups:
        raise error(f"groups={groups} must divide the input channels {channels} and the output channels "
                    f"{out_channels}")
    if w.shape[1] * groups != channels:
        raise error(f"x has {channels} channels but w expects {w.shape[1]} x groups {groups} = "
                    f"{w.shape[1] * groups}")
    kernel = w.shape[2:]
    stride = _tuple(stride, spatial, "stride", error)
    dilation = _tuple(dilation, spatial, "dilation", error)
    if min(stride) < 1 or min(dilation) < 1:
        raise error(f"stride and dilation must be >= 1, got {stride} and {dilation}")
    pads = _padding(padding, kernel, dilation, stride, error)
    n, spatial_dims = x.shape[0], x.shape[2:]
    grouped = make_reshape(x, (n, groups, channels // groups) + spatial_dims)
    windows = _windows(grouped, 3, kernel, stride, dilation, pads, 0.0, op, shapes)
    out = windows.shape[3:3 + spatial]
    # the im2col matrix of each sample and group: (taps of every channel) x (output positions),
    # stored once and read by the product, by the weight gradient (transposed) and nowhere else
    taps_first = (0, 1, 2) + tuple(range(3 + spatial, 3 + 2 * spatial)) + tuple(range(3, 3 + spatial))
    depth = (channels // groups) * math.prod(kernel)
    cols = make_reshape(make_transpose(windows, taps_first), (n, groups, depth, math.prod(out)))
    # the weights of each group as a (taps x out channels) matrix, broadcast along the batch (read
    # with stride 0): the weight gradient then multiplies the im2col matrix in place (taps x
    # positions) by the small packed cotangent, and is read transposed by the update
    weights = make_reshape(w, (1, groups, out_channels // groups, depth))
    weights = make_broadcast(make_transpose(weights, (0, 1, 3, 2)), (n, groups, depth, out_channels // groups))
    if groups == 1 and depth >= DEEP_PRODUCT:
        # positions x out channels: the deep matrix read in place, only the weights packed (from 32
        # taps on, packing the matrix per sample costs more than reading the result transposed)
        y = make_transpose(make_einsum("ngkp,ngko->ngpo", cols, weights), (0, 1, 3, 2))
    else:
        y = make_einsum("ngkp,ngko->ngop", cols, weights)
    y = make_reshape(y, (n, out_channels) + out)
    if b is not None:
        b = as_node(b)
        if b.shape != (out_channels,):
            raise fail(op, f"b must have shape ({out_channels},), got {b.shape} ({shapes})")
        y = make_map(scalar_symbol(0) + scalar_symbol(1), [y, make_reshape(b, (out_channels,) + (1,) * spatial)],
                     y.dtype)
    return y


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> Node:
    """2-D cross-correlation, as torch.nn.functional.conv2d: x (N, C, H, W), w (O, C/groups, kh, kw),
    b (O,) or None; stride, padding, dilation an int or a pair; padding also "same" or "valid"."""
    return _conv(x, w, b, stride, padding, dilation, groups, 2, "conv2d")


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> Node:
    """1-D cross-correlation, as torch.nn.functional.conv1d: x (N, C, L), w (O, C/groups, k)."""
    return _conv(x, w, b, stride, padding, dilation, groups, 1, "conv1d")


def _conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation, spatial: int, op: str) -> Node:
    """The gradient of a convolution with respect to its input, built as that: the vector-Jacobian product
    of ``_conv(z, w, stride, padding, dilation, groups)`` with x as the cotangent, for a placeholder z the
    result never reads. So no zeros are inserted between x's elements (no FLOP is wasted on them): the
    graph is the conv's backward pass, a product and the windows' scatter."""
    from .autodiff import backward
    from .graph import Input
    from .traversal import topological_order
    x, w = as_node(x), as_node(w)
    error = _Failure(op, x=x.shape, w=w.shape)
    _check_input(x, spatial, error)
    if w.ndim != 2 + spatial or not all(isinstance(d, int) for d in w.shape):
        taps = ", ".join("k" + SPATIAL[j] for j in range(spatial))
        raise error(f"w must have shape (in_channels, out_channels/groups, {taps})")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise error(f"groups must be a positive int, got {groups!r}")
    if x.shape[1] != w.shape[0] or w.shape[0] % groups:
        raise error(f"x has {x.shape[1]} channels, w expects {w.shape[0]} (divisible by groups {groups})")
    stride, dilation = _tuple(stride, spatial, "stride", error), _tuple(dilation, spatial, "dilation", error)
    padding = _tuple(padding, spatial, "padding", error)
    extra = _tuple(output_padding, spatial, "output_padding", error)
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(extra) < 0:
        raise error(f"stride and dilation must be >= 1, padding and output_padding >= 0, got {stride}, "
                    f"{dilation}, {padding} and {extra}")
    if any(e >= s and e >= d for e, s, d in zip(extra, stride, dilation)):
        raise error(f"output_padding {extra} must be smaller than stride {stride} or dilation {dilation}")
    out = tuple((size - 1) * s - 2 * p + d * (k - 1) + e + 1
                for size, s, p, d, k, e in zip(x.shape[2:], stride, padding, dilation, w.shape[2:], extra))
    if min(out) < 1:
        raise error(f"the output would have spatial size {out}")
    z = Input(f"{op}.z", (x.shape[0], w.shape[1] * groups) + out, x.dtype)
    y = _conv(z, w, None, stride, padding, dilation, groups, spatial, op)
    # an output padding of at least the stride (allowed below the dilation) makes the convolution of z
    # longer than x: the cotangent's extra rows are zeros (no input element reaches them)
    extra_rows = tuple(a - b for a, b in zip(y.shape[2:], x.shape[2:]))
    cotangent = x if not any(extra_rows) else make_pad(x, (0,) * x.ndim, (0, 0) + extra_rows, 0.0)
    y = backward(topological_order(y), y, cotangent)[z]
    if b is not None:
        b = as_node(b)
        if b.shape != (y.shape[1],):
            raise fail(op, f"b must have shape ({y.shape[1]},), got {b.shape} ({error.shapes})")
        y = make_map(scalar_symbol(0) + scalar_symbol(1), [y, make_reshape(b, (y.shape[1],) + (1,) * spatial)],
                     y.dtype)
    return y


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> Node:
    """torch.nn.functional.conv_transpose2d: x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw), b (C_out,)
    or None; out (N, C_out, (H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1, ...).
    It is conv2d's gradient with respect to its input, and built as that (see _conv_transpose)."""
    return _conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation, 2, "conv_transpose2d")


def conv_transpose1d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> Node:
    """torch.nn.functional.conv_transpose1d: x (N, C_in, L), w (C_in, C_out/groups, k), b (C_out,) or None;
    out (N, C_out, (L - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1): conv1d's input
    gradient."""
    return _conv_transpose(x, w, b, stride, padding, output_padding, groups, dilation, 1, "conv_transpose1d")


def flatten(x, start_dim: int = 1, end_dim: int = -1) -> Node:
    """x with the axes start_dim..end_dim merged into one, as torch.flatten."""
    x = as_node(x)
    if x.ndim == 0:
        return make_reshape(x, (1,))
    (start,), (end,) = normalize_axes(start_dim, x.ndim, "flatten"), normalize_axes(end_dim, x.ndim, "flatten")
    if start > end:
        raise fail("flatten", f"start_dim {start_dim} comes after end_dim {end_dim} for shape {x.shape}")
    merged = x.shape[start:end + 1]
    if len(merged) > 1 and any(isinstance(d, str) for d in merged):
        raise fail("flatten", f"cannot merge the symbolic dimension in {merged} of {x.shape}")
    size = merged[0] if len(merged) == 1 else math.prod(merged)
    return make_reshape(x, x.shape[:start] + (size,) + x.shape[end + 1:])
