"""Resampling, as torch.nn.functional has it: interpolate, pixel_shuffle and pixel_unshuffle.

``interpolate`` resamples each spatial axis on its own (torch's kernels are separable
too), so everything about one axis is decided at declaration time from four numbers:
the input length, the output length, the scale factor (if one was given) and
align_corners. The source positions are computed here, once, in NumPy, with the
arithmetic torch's CPU kernels use, and become constants of the graph:

- **nearest / nearest-exact** read one source element per output element. Where the
  source indices are ``i // k`` (an integer upsampling factor) the axis is a
  broadcast and a reshape, as ``repeat`` is: no index is stored or loaded, and the
  gradient is a plain sum over the k copies. Indices ``start + i * step`` (integer
  downsampling) are a strided slice; any other pattern is a ``take`` at constant ids,
  whose gradient is one scatter-add.
- **linear / bilinear / trilinear** read two source elements per output element
  along each axis, ``lambda0 * x[i0] + lambda1 * x[i1]``: two ``take`` reads at
  constant ids and their weights in one map, which the gathers' consumer fuses into
  its loop; the gradient is two scatter-adds per axis. The other candidate, a
  product with a constant (out, in) interpolation matrix per axis (``einsum``), is
  exact too and gets its transposed gradient from the GEMM, but costs ``in``
  multiply-adds per output instead of two. Measured (float32, bilinear x2, value
  and gradient, 512 image planes, best of several runs): the product is slower
  from 8x8 inputs on (2.1 against 1.6 ms at 8x8, 3.5 against 3.3 ms at 16x16, 6.5
  against 1.8 ms at 64x64 over as many elements) and ahead only at 4x4 (0.17
  against 0.21 ms). The two-tap form also keeps torch's inf and nan behaviour: a
  non-finite input reaches only the outputs that read it, where a dense product
  spreads it (0 * inf) along the whole axis. Axes are resampled in order of their
  ratio out / in, the shrinking ones first, so later axes work on less.

Torch's index rules, followed exactly (``tests/test_resampling_torch.py``):

- The output length is ``size``, or ``floor(in * scale_factor)`` in double precision.
  A given scale factor is also what positions are computed from (``1 / scale_factor``,
  not ``in / out``), as torch's default ``recompute_scale_factor=None`` does; so
  ``scale_factor=1.5`` on 5 elements gives 7 outputs spaced 2/3 apart, not 5/7.
  align_corners=True ignores the factor and spaces outputs ``(in - 1) / (out - 1)``.
- Positions are computed in the input's precision (float32 for float32 and
  integer inputs, float64 for float64) and floored after a conversion to float32,
  as torch's ``floorf`` does; nearest-exact and linear (align_corners=False) compute
  ``scale * (i + 0.5) - 0.5`` with one rounding, as the fused multiply-add of
  torch's vectorised (AVX2, AVX-512) builds does. Linear modes copy an axis whose
  length does not change, whatever the scale factor; torch reads it as
  ``1 * x[i] + 0 * x[i]``, so an inf there becomes nan, and so it does here.
- Torch's 2-d nearest kernels have rules of their own: a float32 scale whatever the
  dtype, and (nearest) an output of the input's length or twice it read as a copy
  or ``i // 2`` whatever the scale factor. Its 1-d and 3-d nearest *backward*
  kernels use those rules too, unlike their forwards, so there torch's gradient is
  not the adjoint of its value (``scale_factor=1.1`` on 4 elements reads
  ``[0, 0, 1, 2]`` but sends the gradient to ``[0, 1, 2, 3]``). Here the gradient
  is always the adjoint of the value.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import sympy

from . import scalar_functions as sf
from .errors import fail
from .graph import Node, as_node, const, scalar_symbol
from .primitives import make_broadcast, make_map, make_reshape, make_transpose
from .primitives.layouts import make_surrogate

NEAREST = ("nearest", "nearest-exact")
LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}  # the spatial rank each interpolating mode takes
LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_options(mode, align_corners, op: str):
    """(mode, align_corners) as the kernels use them; align_corners defaults to False for the
    interpolating modes and must stay None for the nearest ones (torch's rule)."""
    if mode not in NEAREST and mode not in LINEAR:
        raise fail(op, f"mode: expected one of {', '.join(map(repr, NEAREST + tuple(LINEAR)))}, got {mode!r}")
    if mode in NEAREST:
        if align_corners is not None:
            raise fail(op, f"align_corners: expected None with mode {mode!r} (it applies to the interpolating "
                           f"modes 'linear', 'bilinear' and 'trilinear'), got {align_corners!r}")
        return mode, False
    if align_corners is None:
        return mode, False
    if not isinstance(align_corners, (bool, np.bool_)):
        raise fail(op, f"align_corners: expected True, False or None, got {align_corners!r}")
    return mode, bool(align_corners)


def check_sizes(size, scale_factor, op: str):
    """Validate size / scale_factor without an input (exactly one of them; positive ints, positive numbers)."""
    if (size is None) == (scale_factor is None):
        given = "both" if size is not None else "neither"
        raise fail(op, f"size, scale_factor: expected exactly one of them, got {given} (size={size!r}, "
                       f"scale_factor={scale_factor!r})")
    value, argument = (size, "size") if size is not None else (scale_factor, "scale_factor")
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if size is not None:
        good = values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in values)
        expected = "an int >= 1 or one per spatial axis"
    else:
        good = values and all(_number(v) and math.isfinite(v) and v > 0 for v in values)
        expected = "a number > 0 or one per spatial axis"
    if not good:
        raise fail(op, f"{argument}: expected {expected}, got {value!r}")


def _output(x: Node, size, scale_factor, spatial: int, op: str):
    """(output lengths, scale factors or Nones) per spatial axis."""
    check_sizes(size, scale_factor, op)
    value, argument = (size, "size") if size is not None else (scale_factor, "scale_factor")
    if isinstance(value, (tuple, list)):
        if len(value) != spatial:
            raise fail(op, f"{argument}: expected {spatial} value{'s' * (spatial > 1)} for an input of shape "
                           f"{x.shape}, got {value!r}")
        values = tuple(value)
    else:
        values = (value,) * spatial
    lengths = x.shape[2:]
    if size is not None:
        return tuple(int(v) for v in values), (None,) * spatial
    factors = tuple(float(v) for v in values)
    out = tuple(int(float(n) * f) for n, f in zip(lengths, factors))
    if min(out) < 1:
        raise fail(op, f"scale_factor: {value!r} makes an empty output {out} from the spatial size {lengths}")
    return out, factors


# ---- source positions, with torch's arithmetic ------------------------------------------------


def _scale(n: int, m: int, factor, align_corners: bool, T):
    """torch's area_pixel_compute_scale in precision T."""
    if align_corners:
        return T(n - 1) / T(m - 1) if m > 1 else T(0)
    if factor is not None:
        return T(1.0 / factor)
    return T(n) / T(m)


def _centres(scale, m: int, T) -> np.ndarray:
    """scale * (i + 0.5) - 0.5 for i < m, rounded once to T (a fused multiply-add)."""
    i = np.arange(m, dtype=np.float64)
    if T is np.float32:  # a float32 product is exact in float64
        return (np.float64(scale) * (i + 0.5) - 0.5).astype(np.float32)
    s = Fraction(float(scale))
    return np.array([float(s * Fraction(2 * k + 1, 2) - Fraction(1, 2)) for k in range(m)], dtype=np.float64)


def _floor(real: np.ndarray, n: int) -> np.ndarray:
    """torch's min(floorf(real), n - 1): floored after a conversion to float32."""
    return np.minimum(np.floor(real.astype(np.float32)).astype(np.int64), n - 1)


def nearest_indices(n: int, m: int, factor, exact: bool, dtype: str, spatial: int = 1) -> np.ndarray:
    """The source index of each of the m outputs of an axis of n (mode nearest or nearest-exact)
    in an input of `spatial` spatial axes: torch's 2-d kernel has rules of its own."""
    if spatial == 2:
        return _nearest_2d_indices(n, m, factor, exact)
    T = np.float64 if dtype == "float64" else np.float32
    scale = _scale(n, m, factor, False, T)
    if not exact:
        return _floor(scale * np.arange(m).astype(T), n)
    real = np.maximum(_centres(scale, m, T), T(0))
    return _floor(real.astype(np.float64) + 0.5, n)


def _nearest_2d_indices(n: int, m: int, factor, exact: bool) -> np.ndarray:
    """torch's nearest_idx and nearest_neighbor_exact_idx: a float32 scale whatever the dtype, and
    (nearest) an output of the input's length or twice it read as a copy or i // 2."""
    if not exact and m in (n, 2 * n):
        return np.arange(m) // (m // n)
    scale = _scale(n, m, factor, False, np.float32)
    if exact:
        return _floor((np.arange(m) + 0.5) * np.float64(scale), n)
    return _floor(np.arange(m).astype(np.float32) * scale, n)


def linear_taps(n: int, m: int, factor, align_corners: bool, dtype: str):
    """(i0, i1, lambda0, lambda1) of linear interpolation from an axis of n to m: output i is
    lambda0[i] x[i0[i]] + lambda1[i] x[i1[i]] (None: the axis is copied)."""
    if m == n:
        return None
    T = np.float64 if dtype == "float64" else np.float32
    scale = _scale(n, m, factor, align_corners, T)
    if align_corners:
        real = scale * np.arange(m).astype(T)
    else:
        real = np.maximum(_centres(scale, m, T), T(0))
    i0 = _floor(real, n)
    lambda1 = np.clip(real - i0.astype(T), T(0), T(1)).astype(T)
    return i0, i0 + (i0 < n - 1), (T(1) - lambda1).astype(T), lambda1


# ---- interpolate ------------------------------------------------------------------------------


def interpolate(x, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Node:
    """torch.nn.functional.interpolate for x (N, C, L), (N, C, H, W) or (N, C, D, H, W): modes
    'nearest', 'nearest-exact', 'linear' (3-d), 'bilinear' (4-d), 'trilinear' (5-d); size or
    scale_factor an int/number or one per spatial axis; recompute_scale_factor=None, no antialias."""
    op = "interpolate"
    x = as_node(x)
    mode, corners = check_options(mode, align_corners, op)
    spatial = x.ndim - 2
    if mode in LINEAR and spatial != LINEAR[mode]:
        want = LINEAR[mode]
        raise fail(op, f"x: mode {mode!r} expects a {want + 2}-d input {LAYOUTS[want]}, got shape {x.shape}")
    if spatial not in LAYOUTS:
        raise fail(op, f"x: expected a 3-d, 4-d or 5-d input (N, C, *spatial), got shape {x.shape}")
    if any(not isinstance(d, int) for d in x.shape[2:]):
        raise fail(op, f"x: the spatial sizes must be numbers, got shape {x.shape}")
    if mode in LINEAR and not x.dtype.startswith("float"):
        raise fail(op, f"x: mode {mode!r} needs a float input, got {x.dtype}")
    out, factors = _output(x, size, scale_factor, spatial, op)
    axes = list(zip(range(2, x.ndim), x.shape[2:], out, factors))
    if mode in NEAREST:
        exact = mode == "nearest-exact"
        return _nearest(x, [(a, nearest_indices(n, m, f, exact, x.dtype, spatial)) for a, n, m, f in axes])
    if any(n == m for _, n, m, _ in axes):
        x = _inf_to_nan(x)
    for axis, n, m, f in sorted(axes, key=lambda item: item[2] / item[1]):  # downsampling first: less work after
        x = _two_taps(x, axis, linear_taps(n, m, f, corners, x.dtype))
    return x


def _inf_to_nan(x: Node) -> Node:
    """torch's linear kernels read an axis whose length does not change as 1 * x[i] + 0 * x[i], so an inf
    there is nan (0 * inf) in every output that reads it; copying the axis would keep the inf. The gradient
    stays the copy's (1)."""
    nan = const(np.asarray(np.nan, dtype=x.dtype))
    value = make_map(sf.Where(sf.Equal(sympy.Abs(scalar_symbol(0)), sympy.oo), scalar_symbol(1), scalar_symbol(0)),
                     [x, nan], x.dtype)
    return make_surrogate(value, x)


def _nearest(x: Node, picks: list) -> Node:
    """x read at the given source indices per axis: strided slices and takes first, then every
    integer repetition at once as one broadcast and reshape."""
    from .gathers import take
    from .layout import take as take_range
    repeats = {}
    for axis, ids in picks:
        n, m = x.shape[axis], len(ids)
        if m % n == 0 and np.array_equal(ids, np.arange(m) // (m // n)):
            if m != n:
                repeats[axis] = m // n
            continue
        step = int(ids[1] - ids[0]) if m > 1 else 1
        if step >= 1 and np.array_equal(ids, ids[0] + step * np.arange(m)):
            x = take_range(x, axis, int(ids[0]), int(ids[-1]) + 1, step)
        else:
            x = take(x, const(ids.astype(np.int64)), axis)
    if not repeats:
        return x
    split = sum(((d, 1) if a in repeats else (d,) for a, d in enumerate(x.shape)), ())
    spread = sum(((d, repeats[a]) if a in repeats else (d,) for a, d in enumerate(x.shape)), ())
    return make_reshape(make_broadcast(make_reshape(x, split), spread),
                        tuple(d * repeats.get(a, 1) for a, d in enumerate(x.shape)))


def _two_taps(x: Node, axis: int, taps) -> Node:
    """lambda0 x[i0] + lambda1 x[i1] along an axis: two takes at constant ids in one map."""
    from .gathers import take
    if taps is None:
        return x
    i0, i1, lambda0, lambda1 = taps
    column = tuple(-1 if a == axis else 1 for a in range(x.ndim))
    weights = [const(w.reshape(column), x.dtype) for w in (lambda0, lambda1)]
    reads = [take(x, const(i.astype(np.int64)), axis) for i in (i0, i1)]
    return make_map(scalar_symbol(0) * scalar_symbol(1) + scalar_symbol(2) * scalar_symbol(3),
                    [reads[0], weights[0], reads[1], weights[1]], x.dtype)


# ---- pixel shuffle ----------------------------------------------------------------------------


def _factor(value, argument: str, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise fail(op, f"{argument}: expected an int >= 1, got {value!r}")
    return int(value)


def _planes(x, op: str) -> Node:
    x = as_node(x)
    if x.ndim < 3:
        raise fail(op, f"x: expected an input of shape (*, C, H, W), got shape {x.shape}")
    if any(not isinstance(d, int) for d in x.shape[-3:]):
        raise fail(op, f"x: the channel and spatial sizes must be numbers, got shape {x.shape}")
    return x


def pixel_shuffle(x, upscale_factor: int) -> Node:
    """torch.nn.functional.pixel_shuffle: (*, C r^2, H, W) -> (*, C, H r, W r), out[c, h r + i, w r + j] =
    x[c r^2 + i r + j, h, w]. A reshape, a transpose and a reshape (the sub-pixel convolution's output)."""
    op = "pixel_shuffle"
    x = _planes(x, op)
    r = _factor(upscale_factor, "upscale_factor", op)
    *batch, c, h, w = x.shape
    if c % (r * r):
        raise fail(op, f"x: expected a channel count divisible by upscale_factor^2 = {r * r}, got {c} "
                       f"(shape {x.shape})")
    b = len(batch)
    y = make_reshape(x, (*batch, c // (r * r), r, r, h, w))
    y = make_transpose(y, (*range(b), b, b + 3, b + 1, b + 4, b + 2))
    return make_reshape(y, (*batch, c // (r * r), h * r, w * r))


def pixel_unshuffle(x, downscale_factor: int) -> Node:
    """torch.nn.functional.pixel_unshuffle, pixel_shuffle's inverse: (*, C, H r, W r) -> (*, C r^2, H, W)."""
    op = "pixel_unshuffle"
    x = _planes(x, op)
    r = _factor(downscale_factor, "downscale_factor", op)
    *batch, c, h, w = x.shape
    if h % r or w % r:
        raise fail(op, f"x: expected height and width divisible by downscale_factor {r}, got {h} and {w} "
                       f"(shape {x.shape})")
    b = len(batch)
    y = make_reshape(x, (*batch, c, h // r, r, w // r, r))
    y = make_transpose(y, (*range(b), b, b + 2, b + 4, b + 1, b + 3))
    return make_reshape(y, (*batch, c * r * r, h // r, w // r))
