"""Convolution and pooling, written on the primitives: a ``window`` view and an einsum or reduction.

A convolution is the contraction of the windows of its (padded) input with its
weights: ``window`` gives, without copying, the view ``x[n, c, i*stride + k*dilation]``
with the window position ``i`` and the tap ``k`` as axes of their own, and
``einsum`` contracts channels and taps with the weights. The einsum lowering
makes it a batched matrix product whose window operand is stored once per call by
a fused loop (im2col) and multiplied by the register-tiled GEMM
(``docs/architecture.md``, "Convolution"). Its gradients are the gradients of
those primitives: two more products and the scatter of the window's cotangent,
all visible in the symbolic backward graph. Pooling reduces over the taps.

Layouts and defaults are PyTorch's: x ``(N, C, *spatial)``, w ``(O, C/groups, *kernel)``.
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from . import scalar_functions as sf
from .errors import fail
from .graph import Node, as_node, const, scalar_symbol
from .primitives import (make_broadcast, make_einsum, make_map, make_reduce, make_reshape, make_stop_gradient,
                         make_transpose)
from .primitives.layouts import make_pad, make_slice, make_surrogate, make_window, window_count
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


def _pool_windows(x: Node, kernel: tuple, stride: tuple, pads: tuple, fill: float, op: str) -> Node:
    """The pooling windows of x as (N, C, Ho, Wo, kh, kw). Windows that tile the input (stride equal
    to the kernel, no padding) are a split reshape and a transpose: read at affine indices, and
    their cotangent is stored once, in the input's layout, by one loop."""
    if stride != kernel or any(p != (0, 0) for p in pads):
        return _windows(x, 2, kernel, stride, (1, 1), pads, fill, op, f"x {x.shape}")
    (n, c, h, w), (kh, kw) = x.shape, kernel
    ho, wo = h // kh, w // kw
    if ho < 1 or wo < 1:
        raise fail(op, f"the kernel {kernel} is larger than the input {x.shape}")
    cut = make_slice(x, (0, 0, 0, 0), (n, c, ho * kh, wo * kw))
    return make_transpose(make_reshape(cut, (n, c, ho, kh, wo, kw)), (0, 1, 2, 4, 3, 5))


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


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1) -> Node:
    """torch.nn.functional.conv_transpose2d: x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw), b (C_out,)
    or None; out (N, C_out, (H - 1) stride - 2 padding + dilation (k - 1) + output_padding + 1, ...).

    It is the gradient of conv2d with respect to its input, and built as that: the vector-Jacobian
    product of ``conv2d(z, w, stride, padding, dilation, groups)`` with x as the cotangent, for a
    placeholder z the result never reads. So no zeros are inserted between x's elements (no FLOP is
    wasted on them): the graph is the conv's backward pass, a product and the windows' scatter."""
    from .autodiff import backward
    from .graph import Input
    from .traversal import topological_order
    x, w = as_node(x), as_node(w)
    error = _Failure("conv_transpose2d", x=x.shape, w=w.shape)
    _check_input(x, 2, error)
    if w.ndim != 4 or not all(isinstance(d, int) for d in w.shape):
        raise error("w must have shape (in_channels, out_channels/groups, kh, kw)")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise error(f"groups must be a positive int, got {groups!r}")
    if x.shape[1] != w.shape[0] or w.shape[0] % groups:
        raise error(f"x has {x.shape[1]} channels, w expects {w.shape[0]} (divisible by groups {groups})")
    stride, dilation = _tuple(stride, 2, "stride", error), _tuple(dilation, 2, "dilation", error)
    padding, extra = _tuple(padding, 2, "padding", error), _tuple(output_padding, 2, "output_padding", error)
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(extra) < 0:
        raise error(f"stride and dilation must be >= 1, padding and output_padding >= 0, got {stride}, "
                    f"{dilation}, {padding} and {extra}")
    if any(e >= s and e >= d for e, s, d in zip(extra, stride, dilation)):
        raise error(f"output_padding {extra} must be smaller than stride {stride} or dilation {dilation}")
    out = tuple((size - 1) * s - 2 * p + d * (k - 1) + e + 1
                for size, s, p, d, k, e in zip(x.shape[2:], stride, padding, dilation, w.shape[2:], extra))
    if min(out) < 1:
        raise error(f"the output would have spatial size {out}")
    z = Input("conv_transpose2d.z", (x.shape[0], w.shape[1] * groups) + out, x.dtype)
    y = _conv(z, w, None, stride, padding, dilation, groups, 2, "conv_transpose2d")
    # an output padding of at least the stride (allowed below the dilation) makes the convolution of z
    # longer than x: the cotangent's extra rows are zeros (no input element reaches them)
    extra_rows = tuple(a - b for a, b in zip(y.shape[2:], x.shape[2:]))
    cotangent = x if extra_rows == (0, 0) else make_pad(x, (0, 0, 0, 0), (0, 0) + extra_rows, 0.0)
    y = backward(topological_order(y), y, cotangent)[z]
    if b is not None:
        b = as_node(b)
        if b.shape != (y.shape[1],):
            raise fail("conv_transpose2d", f"b must have shape ({y.shape[1]},), got {b.shape} ({error.shapes})")
        y = make_map(scalar_symbol(0) + scalar_symbol(1), [y, make_reshape(b, (y.shape[1], 1, 1))], y.dtype)
    return y


def _pool_setup(x, kernel_size, stride, padding, op: str):
    x = as_node(x)
    error = _Failure(op, x=x.shape)
    _check_input(x, 2, error)
    kernel = _tuple(kernel_size, 2, "kernel_size", error)
    stride = kernel if stride is None else _tuple(stride, 2, "stride", error)
    pads = _tuple(padding, 2, "padding", error)
    if min(kernel) < 1 or min(stride) < 1:
        raise error(f"kernel_size and stride must be >= 1, got {kernel} and {stride}")
    if any(p < 0 or 2 * p > k for p, k in zip(pads, kernel)):
        raise error(f"padding must be between 0 and half the kernel size {kernel} (as in PyTorch), got {pads}")
    return x, kernel, stride, tuple((p, p) for p in pads)


SMALL_WINDOW = 16  # windows of at most this many taps pool as one map over the taps, not a reduction loop


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Node:
    """The maximum of each window, as torch.nn.functional.max_pool2d (padding reads -inf); the gradient
    goes to the first maximum of each window in row-major order (to the last NaN of a window holding
    NaNs), never to padding, as PyTorch's does."""
    x, kernel, stride, pads = _pool_setup(x, kernel_size, stride, padding, "max_pool2d")
    windows = _pool_windows(x, kernel, stride, pads, -math.inf, "max_pool2d")
    count = kernel[0] * kernel[1]
    # taps inside the input: a padded tap is never a maximum's position (PyTorch's rule)
    inside = None
    if any(p != (0, 0) for p in pads):
        ones = make_broadcast(const(np.asarray(1.0, dtype=x.dtype)), x.shape)
        inside = _pool_windows(ones, kernel, stride, pads, 0.0, "max_pool2d")
    if count > SMALL_WINDOW:
        return _max_pool_reduced(windows, kernel, inside)
    # one loop over the output: the maximum of the taps; the gradient is that of selecting the
    # first tap holding it (found without gradient: a chain of comparisons, no reduction)
    taps = _taps(windows, kernel)
    peak = make_map(sympy.Max(*(scalar_symbol(t) for t in range(count))), taps, x.dtype)
    frozen = [make_stop_gradient(t) for t in taps] + [make_stop_gradient(peak)]
    real = [] if inside is None else _taps(inside, kernel)
    chosen: sympy.Expr = sympy.Integer(count)
    for t in reversed(range(count)):  # the first tap holding the maximum...
        is_peak = _holds_maximum(scalar_symbol(t), scalar_symbol(count),
                                 scalar_symbol(count + 1 + t) if real else None)
        chosen = sf.Where(is_peak, t, chosen)
    for t in range(count):  # ...unless the window holds a NaN: then the last NaN, as PyTorch's kernel
        chosen = sf.Where(sf.NotEqual(scalar_symbol(t), scalar_symbol(t)), t, chosen)
    first_tap = make_map(chosen, frozen + real, x.dtype)
    return make_surrogate(peak, _select_tap(windows, kernel, first_tap))


def _holds_maximum(value, peak, inside=None) -> sympy.Expr:
    """1 where a tap equals its window's maximum and is inside the input when `inside` says so; else 0."""
    holds = sf.Equal(value, peak)
    return holds if inside is None else sf.Where(inside, holds, 0)


def _select_tap(windows: Node, kernel: tuple, tap: Node) -> Node:
    """The element of each window at tap number `tap` (row-major), as a sum over the taps: its
    gradient is one loop over the windows, in the windows' layout."""
    number = const(np.arange(kernel[0] * kernel[1], dtype=np.float64).reshape(kernel).astype(windows.dtype))
    chosen = make_map(sf.Where(sf.Equal(scalar_symbol(1), scalar_symbol(2)), scalar_symbol(0), 0),
                      [windows, number, make_reshape(tap, tap.shape + (1, 1))], windows.dtype)
    return make_reduce("sum", chosen, (4, 5))


def _taps(windows: Node, kernel: tuple) -> list:
    """The (N, C, Ho, Wo) view of each tap of the windows, in row-major tap order."""
    start = (0,) * windows.ndim
    return [make_reshape(make_slice(windows, start[:4] + (i, j), windows.shape[:4] + (i + 1, j + 1)),
                         windows.shape[:4])
            for i in range(kernel[0]) for j in range(kernel[1])]


def _max_pool_reduced(windows: Node, kernel: tuple, inside: Node | None) -> Node:
    """Max pooling of large windows: a max reduction over the taps, and the gradient of selecting
    the first tap holding it (the least tap number where the window holds its maximum), or the
    last NaN of a window holding one."""
    taps, dtype, count = (4, 5), windows.dtype, kernel[0] * kernel[1]
    peak = make_reduce("max", windows, taps)
    number = const(np.arange(count, dtype=np.float64).reshape(kernel).astype(dtype))
    args = [make_stop_gradient(windows), make_reshape(make_stop_gradient(peak), peak.shape + (1, 1)), number]
    is_peak = _holds_maximum(scalar_symbol(0), scalar_symbol(1), scalar_symbol(3) if inside is not None else None)
    at_peak = make_map(sf.Where(is_peak, scalar_symbol(2), count), args + ([inside] if inside is not None else []),
                       dtype)
    negated = make_map(-scalar_symbol(0), [at_peak], dtype)
    first = make_map(-scalar_symbol(0), [make_reduce("max", negated, taps)], dtype)
    # a window holding a NaN: its last NaN, as PyTorch's kernel
    nan_tap = make_map(sf.Where(sf.NotEqual(scalar_symbol(0), scalar_symbol(0)), scalar_symbol(1), -1),
                       [make_stop_gradient(windows), number], dtype)
    last_nan = make_reduce("max", nan_tap, taps)
    chosen = make_map(sf.Where(sf.GreaterEqual(scalar_symbol(0), 0), scalar_symbol(0), scalar_symbol(1)),
                      [last_nan, first], dtype)
    return make_surrogate(peak, _select_tap(windows, kernel, chosen))


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True) -> Node:
    """The mean of each window, as torch.nn.functional.avg_pool2d (padding reads 0; without
    count_include_pad the divisor counts only the elements inside the input)."""
    x, kernel, stride, pads = _pool_setup(x, kernel_size, stride, padding, "avg_pool2d")
    windows = _pool_windows(x, kernel, stride, pads, 0.0, "avg_pool2d")
    count = kernel[0] * kernel[1]
    if count > SMALL_WINDOW:
        total = make_reduce("sum", windows, (4, 5))
    else:
        total = make_map(sum(scalar_symbol(t) for t in range(count)), _taps(windows, kernel), x.dtype)
    if count_include_pad:
        divisor = const(np.asarray(count, dtype=x.dtype))
    else:
        divisor = const(_valid_counts(x.shape[2:], kernel, stride, pads).astype(x.dtype))
    return make_map(scalar_symbol(0) / scalar_symbol(1), [total, divisor], x.dtype)


def _valid_counts(size: tuple, kernel: tuple, stride: tuple, pads: tuple) -> np.ndarray:
    """How many elements of each window lie inside the unpadded input (Ho, Wo)."""
    counts = []
    for length, k, s, (low, high) in zip(size, kernel, stride, pads):
        positions = np.arange(window_count(length + low + high, k, s, 1)) * s - low
        counts.append(np.clip(positions + k, 0, length) - np.clip(positions, 0, length))
    return np.outer(counts[0], counts[1])


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
