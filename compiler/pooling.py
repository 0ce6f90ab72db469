"""Pooling, written on the primitives: the ``window`` view of the padded input and a map or reduction over the taps.

Arguments, output sizes and gradients are PyTorch's (``torch.nn.functional``): x is
``(N, C, L)`` or ``(N, C, H, W)``; with ``ceil_mode`` an axis gets one more window when the
last one starts inside the input or its left padding, and that window reads past the padded
input (max: -inf, never chosen; average: zeros, out of the divisor). The 1-d poolings are the
2-d ones over ``(N, C, 1, L)``, so both share one implementation and one set of tests.

Adaptive pooling splits each axis of length L into ``out`` bins ``[floor(i L / out),
ceil((i + 1) L / out))``. Bins that tile the axis (out divides L) are a plain pooling; an
output of one is a mean (or max) over the spatial axes; other bins are gathered as windows
through constant index tables (see ``adaptive_avg_pool2d`` and ``adaptive_max_pool2d``).
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from . import scalar_functions as sf
from .conv import _Failure, _check_input, _tuple
from .graph import Node, as_node, const, scalar_symbol
from .gathers import take
from .primitives import make_broadcast, make_map, make_reduce, make_reshape, make_stop_gradient, \
    make_transpose
from .primitives.layouts import make_pad, make_slice, make_surrogate, make_window

SMALL_WINDOW = 16  # windows of at most this many taps pool as one map over the taps, not a reduction loop


# ---- arguments and output sizes -------------------------------------------------------------------

def _output_length(length: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: floor (or ceil) of (L + 2p - span) / s, plus one; in ceil_mode a
    last window starting past the input and its left padding is dropped."""
    count = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (count - 1) * s >= length + p:
        count -= 1
    return count


class _Pooling:
    """A pooling's checked arguments over a 4-D view of x: kernel, stride, dilation, padding and
    output size per axis; `pads` are (low, high), high extended for ceil_mode's last window."""

    def __init__(self, x, kernel_size, stride, padding, dilation, ceil_mode, spatial: int, op: str):
        self.x, self.op, self.spatial = as_node(x), op, spatial
        error = self.error = _Failure(op, x=self.x.shape)
        _check_input(self.x, spatial, error)
        kernel = _tuple(kernel_size, spatial, "kernel_size", error)
        stride = kernel if stride is None else _tuple(stride, spatial, "stride", error)
        padding = _tuple(padding, spatial, "padding", error)
        dilation = _tuple(dilation, spatial, "dilation", error)
        if min(kernel) < 1 or min(stride) < 1:
            raise error(f"kernel_size and stride must be >= 1, got {kernel} and {stride}")
        if min(dilation) < 1:
            raise error(f"dilation must be >= 1, got {dilation}")
        if any(p < 0 or 2 * p > k for p, k in zip(padding, kernel)):
            raise error(f"padding must be between 0 and half the kernel size {kernel} (as in PyTorch), got {padding}")
        if not isinstance(ceil_mode, (bool, np.bool_)):
            raise error(f"ceil_mode must be True or False, got {ceil_mode!r}")
        lengths = self.x.shape[2:]
        out = tuple(_output_length(*a, bool(ceil_mode)) for a in zip(lengths, kernel, stride, padding, dilation))
        for j, (n, k, d, p, length) in enumerate(zip(out, kernel, dilation, padding, lengths)):
            if n < 1:
                raise error(f"the kernel spans {d * (k - 1) + 1} elements on spatial axis {j}, more than the "
                            f"{length + 2 * p} of the padded input (kernel_size {kernel}, dilation {dilation})")
        # x as (N, C, H, W): a 1-d pooling is the 2-d one over a height of 1
        one = (1,) if spatial == 1 else ()
        self.x4 = make_reshape(self.x, self.x.shape[:2] + (1,) + lengths) if spatial == 1 else self.x
        self.kernel, self.stride, self.dilation = one + kernel, one + stride, one + dilation
        self.padding, self.out = (0,) * len(one) + padding, one + out
        self.pads = tuple((p, max(p, (n - 1) * s + d * (k - 1) + 1 - length - p))
                          for p, n, s, d, k, length in zip(self.padding, self.out, self.stride, self.dilation,
                                                           self.kernel, self.x4.shape[2:]))

    def result(self, y: Node) -> Node:
        """y (N, C, Ho, Wo) in x's layout: (N, C, Lo) for a 1-d pooling."""
        return make_reshape(y, y.shape[:2] + y.shape[3:]) if self.spatial == 1 else y

    def windows(self, x: Node, fill: float) -> Node:
        return _pool_windows(x, self.kernel, self.stride, self.dilation, self.pads, fill)


def _pool_windows(x: Node, kernel: tuple, stride: tuple, dilation: tuple, pads: tuple, fill: float) -> Node:
    """The pooling windows of x (N, C, H, W) as (N, C, Ho, Wo, kh, kw). Windows that tile the input
    (stride equal to the kernel, no padding, no dilation) are a split reshape and a transpose: read
    at affine indices, and their cotangent is stored once, in the input's layout, by one loop."""
    if stride != kernel or dilation != (1, 1) or any(p != (0, 0) for p in pads):
        padded = make_pad(x, (0, 0) + tuple(p[0] for p in pads), (0, 0) + tuple(p[1] for p in pads), fill)
        for j, (k, s, d) in enumerate(zip(kernel, stride, dilation)):
            padded = make_window(padded, 2 + j, k, s, d)
        return padded
    (n, c, h, w), (kh, kw) = x.shape, kernel
    ho, wo = h // kh, w // kw
    cut = make_slice(x, (0, 0, 0, 0), (n, c, ho * kh, wo * kw))
    return make_transpose(make_reshape(cut, (n, c, ho, kh, wo, kw)), (0, 1, 2, 4, 3, 5))


# ---- max pooling ------------------------------------------------------------------------------------

def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Node:
    """The maximum of each window, as torch.nn.functional.max_pool2d (padding reads -inf); the gradient
    goes to the first maximum of each window in row-major order (to the last NaN of a window holding
    NaNs), never to padding, as PyTorch's does. A window of padding only (possible with dilation)
    is -inf and passes no gradient."""
    return _max_pool(_Pooling(x, kernel_size, stride, padding, dilation, ceil_mode, 2, "max_pool2d"))


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Node:
    """torch.nn.functional.max_pool1d over x (N, C, L), with max_pool2d's gradient rule."""
    return _max_pool(_Pooling(x, kernel_size, stride, padding, dilation, ceil_mode, 1, "max_pool1d"))


def _max_pool(pool: _Pooling) -> Node:
    x = pool.x4
    windows = pool.windows(x, -math.inf)
    # taps inside the input: a padded tap is never a maximum's position (PyTorch's rule)
    inside = None
    if any(p != (0, 0) for p in pool.pads):
        inside = pool.windows(make_broadcast(const(np.asarray(1.0, dtype=x.dtype)), x.shape), 0.0)
    return pool.result(_max_of_windows(windows, pool.kernel, inside))


def _max_of_windows(windows: Node, kernel: tuple, inside: Node | None) -> Node:
    """The maximum over the taps of windows (N, C, Ho, Wo, kh, kw), with the gradient of selecting
    the first tap (row-major) holding it among the taps `inside` marks, or the last NaN."""
    count, dtype = kernel[0] * kernel[1], windows.dtype
    if count > SMALL_WINDOW:
        return _max_pool_reduced(windows, kernel, inside)
    # one loop over the output: the maximum of the taps; the gradient is that of selecting the
    # first tap holding it (found without gradient: a chain of comparisons, no reduction)
    taps = _taps(windows, kernel)
    peak = make_map(sympy.Max(*(scalar_symbol(t) for t in range(count))), taps, dtype)
    frozen = [make_stop_gradient(t) for t in taps] + [make_stop_gradient(peak)]
    real = [] if inside is None else _taps(inside, kernel)
    chosen: sympy.Expr = sympy.Integer(count)
    for t in reversed(range(count)):  # the first tap holding the maximum...
        is_peak = _holds_maximum(scalar_symbol(t), scalar_symbol(count),
                                 scalar_symbol(count + 1 + t) if real else None)
        chosen = sf.Where(is_peak, t, chosen)
    for t in range(count):  # ...unless the window holds a NaN: then the last NaN, as PyTorch's kernel
        chosen = sf.Where(sf.NotEqual(scalar_symbol(t), scalar_symbol(t)), t, chosen)
    first_tap = make_map(chosen, frozen + real, dtype)
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


# ---- average pooling --------------------------------------------------------------------------------

def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None) -> Node:
    """The mean of each window, as torch.nn.functional.avg_pool2d: padding reads 0; the divisor is
    the window's size clipped to the padded input (count_include_pad) or to the input, or
    divisor_override (a nonzero int) for every window."""
    pool = _Pooling(x, kernel_size, stride, padding, 1, ceil_mode, 2, "avg_pool2d")
    return _avg_pool(pool, count_include_pad, divisor_override)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None) -> Node:
    """torch.nn.functional.avg_pool1d over x (N, C, L); divisor_override as avg_pool2d's (torch's
    avg_pool1d lacks it)."""
    pool = _Pooling(x, kernel_size, stride, padding, 1, ceil_mode, 1, "avg_pool1d")
    return _avg_pool(pool, count_include_pad, divisor_override)


def _avg_pool(pool: _Pooling, count_include_pad, divisor_override) -> Node:
    x = pool.x4
    if not isinstance(count_include_pad, (bool, np.bool_)):
        raise pool.error(f"count_include_pad must be True or False, got {count_include_pad!r}")
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         not isinstance(divisor_override, (int, np.integer)) or divisor_override == 0):
        raise pool.error(f"divisor_override must be a nonzero int or None, got {divisor_override!r}")
    windows = pool.windows(x, 0.0)
    kernel = pool.kernel
    count = kernel[0] * kernel[1]
    if count > SMALL_WINDOW:
        total = make_reduce("sum", windows, (4, 5))
    else:
        total = make_map(sum(scalar_symbol(t) for t in range(count)), _taps(windows, kernel), x.dtype)
    divisors = _divisors(pool, count_include_pad)
    if divisor_override is not None:
        divisor = const(np.asarray(int(divisor_override), dtype=x.dtype))
    elif np.all(divisors == divisors.flat[0]):
        divisor = const(np.asarray(divisors.flat[0], dtype=x.dtype))
    else:
        divisor = const(divisors.astype(x.dtype))
    return pool.result(make_map(scalar_symbol(0) / scalar_symbol(1), [total, divisor], x.dtype))


def _divisors(pool: _Pooling, count_include_pad: bool) -> np.ndarray:
    """torch's divisor of each window (Ho, Wo): its taps inside the padded input (count_include_pad;
    less than the kernel only for ceil_mode's last window) or inside the input."""
    counts = []
    for length, k, s, p, n in zip(pool.x4.shape[2:], pool.kernel, pool.stride, pool.padding, pool.out):
        starts = np.arange(n) * s - p
        ends = np.minimum(starts + k, length + p)
        counts.append(ends - starts if count_include_pad else np.minimum(ends, length) - np.maximum(starts, 0))
    return np.outer(counts[0], counts[1])


# ---- adaptive pooling -------------------------------------------------------------------------------

def _adaptive_setup(x, output_size, spatial: int, op: str):
    x = as_node(x)
    error = _Failure(op, x=x.shape)
    _check_input(x, spatial, error)
    lengths = x.shape[2:]
    single = isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool)
    sizes = (output_size,) * spatial if single else output_size
    if not isinstance(sizes, (tuple, list)) or len(sizes) != spatial or not all(
            (s is None and spatial > 1) or (isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1)
            for s in sizes):
        spelled = "an int >= 1" if spatial == 1 else f"an int >= 1 or {spatial} of them (None keeps a size)"
        raise error(f"output_size must be {spelled}, got {output_size!r}")
    return x, tuple(length if s is None else int(s) for s, length in zip(sizes, lengths))


def _bins(length: int, out: int) -> tuple:
    """torch's adaptive bins of an axis: starts floor(i L / out), ends ceil((i + 1) L / out)."""
    i = np.arange(out)
    return (i * length) // out, -((-(i + 1) * length) // out)


def adaptive_avg_pool2d(x, output_size) -> Node:
    """torch.nn.functional.adaptive_avg_pool2d: the mean of each of torch's bins, x (N, C, H, W).

    An output of one is a mean over the spatial axes; bins that tile the input are a plain
    pooling (kernel = stride = L / out). Other bins, one axis at a time, are gathered as windows
    of the longest bin (index tables, one graph whatever the sizes) and summed with a mask, so the
    gradient is one scatter-add. Constant pooling matrices (einsum) would multiply every element
    by the zeros outside its bins, so one inf or NaN would spread to every bin (0 * inf), and
    slices with a concatenation make a reduction and a gradient piece per bin. On (32, 64, 13, 13)
    to 7 x 7 in float32, value and gradient, the gathered windows ran in 3.1 ms, the matrices in
    3.8 ms and the slices in 4.5 ms (28 x 28 to 6 x 6: 7.7, 8.2 and 11.7 ms)."""
    x, out = _adaptive_setup(x, output_size, 2, "adaptive_avg_pool2d")
    return _adaptive_avg(x, out)


def adaptive_avg_pool1d(x, output_size) -> Node:
    """torch.nn.functional.adaptive_avg_pool1d over x (N, C, L), as adaptive_avg_pool2d."""
    x, out = _adaptive_setup(x, output_size, 1, "adaptive_avg_pool1d")
    return _adaptive_avg(x, out)


def _adaptive_avg(x: Node, out: tuple) -> Node:
    lengths = x.shape[2:]
    if out == lengths:
        return x
    axes = tuple(range(2, x.ndim))
    if all(o == 1 for o in out):  # global average pooling
        total = make_reduce("sum", x, axes)
        mean = make_map(scalar_symbol(0) / math.prod(lengths), [total], x.dtype, op_name="mean")
        return make_reshape(mean, x.shape[:2] + out)
    if all(length % o == 0 for length, o in zip(lengths, out)):
        kernel = tuple(length // o for length, o in zip(lengths, out))
        return avg_pool2d(x, kernel) if x.ndim == 4 else avg_pool1d(x, kernel)
    for j, (length, o) in enumerate(zip(lengths, out)):
        if length != o:
            x = _binned_mean(x, 2 + j, o)
    return x


def _bin_windows(x: Node, axis: int, out: int) -> tuple:
    """x with `axis` replaced by (bin, tap): each bin's elements gathered in order, a bin shorter than
    the longest repeating its last element; and the (bin, tap) mask of the taps that are not repeats."""
    starts, ends = _bins(x.shape[axis], out)
    taps = starts[:, None] + np.arange(int((ends - starts).max()))
    return take(x, const(np.minimum(taps, ends[:, None] - 1).astype(np.int64)), axis), taps < ends[:, None]


def _binned_mean(x: Node, axis: int, out: int) -> Node:
    """The mean of each of torch's `out` bins along `axis`: a masked sum over the gathered taps (a
    select, so an inf or NaN stays in its own bins), divided by the bin's size."""
    windows, real = _bin_windows(x, axis, out)
    trailing = (1,) * (x.ndim - axis - 1)
    mask = const(real.reshape(real.shape + trailing).astype(x.dtype))
    kept = make_map(sf.Where(sf.Equal(scalar_symbol(1), 0), 0, scalar_symbol(0)), [windows, mask], x.dtype)
    sizes = const(real.sum(axis=1).reshape((out,) + trailing).astype(x.dtype))
    return make_map(scalar_symbol(0) / scalar_symbol(1), [make_reduce("sum", kept, (axis + 1,)), sizes], x.dtype)


def adaptive_max_pool2d(x, output_size) -> Node:
    """torch.nn.functional.adaptive_max_pool2d (the values; no indices), x (N, C, H, W), with
    max_pool2d's gradient rule (first maximum of each bin, row-major; last NaN).

    Bins that tile the input are a plain max pooling. Other bins are gathered as windows of the
    largest bin's size, each bin's short rows and columns repeating its last one (a repeat
    changes neither the maximum nor which element is the first maximum or the last NaN): one
    constant-size graph whatever the output, read through index tables, with the gradient a
    scatter-add into x."""
    x, out = _adaptive_setup(x, output_size, 2, "adaptive_max_pool2d")
    lengths = x.shape[2:]
    if out == lengths:
        return x
    if all(length % o == 0 for length, o in zip(lengths, out)):
        return max_pool2d(x, tuple(length // o for length, o in zip(lengths, out)))
    windows = x
    for j, o in enumerate(out):  # (N, C, Ho, kh, W), then (N, C, Ho, kh, Wo, kw)
        windows = _bin_windows(windows, 2 + 2 * j, o)[0]
    kernel = (windows.shape[3], windows.shape[5])
    windows = make_transpose(windows, (0, 1, 2, 4, 3, 5))
    return _max_of_windows(windows, tuple(kernel), None)
