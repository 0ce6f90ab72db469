"""Reductions, scans and sorting written on the primitives: min, prod, var/std, any/all,
argmax/argmin, cumsum/cumprod, cummax/cummin, logcumsumexp, sort/argsort/topk.

Every op here is a composite, so its gradient, evaluation and lowering are those of the
primitives. min, any and all would shadow Python's builtins, which this code calls on shapes:
they are written as _min, _any and _all and served as ops.min, ops.any and ops.all (and so
compiler.min, ...) by ops' module __getattr__.
"""
from __future__ import annotations

import math

import numpy as np
import sympy

from . import scalar_functions as sf
from .dtypes import float_result
from .errors import fail
from .graph import Node, as_node, const, scalar_symbol
from .layout import static_size, take
from .ops import (_is_int, _is_number, _keep, _nonempty, _reduction_axes, _sympy_number, astype, equal, max, mean,
                  not_equal, stop_gradient, sum, where)
from .gathers import take_along_axis
from .primitives import make_broadcast, make_map, make_pad, make_reshape, make_transpose, size_of
from .primitives.layouts import make_surrogate
from .shapes import normalize_axes

def _one_axis(x: Node, axis, op: str) -> int:
    if not _is_int(axis):
        raise fail(op, f"axis must be an int, got {axis!r}")
    return normalize_axes(int(axis), x.ndim, op)[0]


def _iota(n: int, axis: int, ndim: int, dtype="int64") -> Node:
    """0, 1, ..., n-1 along `axis` of a rank-`ndim` tensor, size 1 elsewhere."""
    return const(np.arange(n, dtype=dtype).reshape(tuple(n if i == axis else 1 for i in range(ndim))))


def _flat(x: Node, op: str) -> Node:
    """x as one axis (NumPy's axis=None for argmax and the scans); needs a concrete shape."""
    if any(isinstance(d, str) for d in x.shape):
        raise fail(op, f"axis=None flattens {x.shape}, whose size is symbolic; give an axis")
    return make_reshape(x, (math.prod(x.shape),))


def _min(x, axis=None, keepdims=False):
    """Minimum over axes, as -max(-x): NaN propagates, the gradient of a tie is split evenly among the minima."""
    x = as_node(x)
    axes = _reduction_axes(x, axis, "min")
    _nonempty(x, axes, "min")
    if x.dtype == "bool":
        return _all(x, axes, keepdims)
    return -max(-x, axes, keepdims)


def _product_tree(rows: Node) -> Node:
    """Product over the last axis (kept, size 1): multiply its two halves until one element is left; the
    odd element out of a level joins a carried product."""
    carry, last = None, rows.ndim - 1
    while rows.shape[last] > 1:
        n, half = rows.shape[last], rows.shape[last] // 2
        if n % 2:
            odd = take(rows, last, n - 1, n)
            carry = odd if carry is None else carry * odd
        rows = take(rows, last, 0, half) * take(rows, last, half, 2 * half)
    return rows if carry is None else rows * carry


def prod(x, axis=None, keepdims=False):
    """Product over axes (1 over nothing); bool and int32 give int64, as NumPy's.

    A log-depth tree of elementwise products of slices (pairwise, like a tree sum), so the gradient is
    the chain rule through multiplications: exact with zeros (with exactly one zero, the zero's gradient
    is the product of the others; with two, every gradient is 0, as torch's), and differentiable again.
    The reduced axes must have concrete sizes.
    """
    x = as_node(x)
    axes = _reduction_axes(x, axis, "prod")
    if x.dtype in ("bool", "int32"):
        x = astype(x, "int64")
    if not axes:
        return x
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    n = math.prod(static_size(x, a, "prod") for a in axes)
    shape = tuple(x.shape[i] for i in kept)
    if n == 0:
        result = make_broadcast(const(1, x.dtype), shape)
    else:
        rows = make_reshape(make_transpose(x, kept + axes), shape + (n,))
        result = make_reshape(_product_tree(rows), shape)
    return _keep(result, x, axes, keepdims)


def var(x, axis=None, correction=1, keepdims=False):
    """Variance over axes: sum((x - mean)**2) / max(N - correction, 0), torch's ``correction`` (NumPy's
    ``ddof``); N - correction <= 0 gives inf, or nan where every deviation is 0, as both do."""
    x = as_node(x)
    axes = normalize_axes(axis, x.ndim, "var")
    if not _is_number(correction) or isinstance(correction, bool):
        raise fail("var", f"correction must be a number, got {correction!r}")
    dtype = float_result(x.dtype)
    x = astype(x, dtype)
    deviation = x - mean(x, axes, keepdims=True)
    total = sum(deviation * deviation, axes, keepdims)
    count = size_of(x.shape, axes, dtype)
    if isinstance(count, Node):
        divisor = make_map(sf.Maximum(scalar_symbol(0) - _sympy_number(correction), 0), [count], dtype)
    elif count - correction <= 0:  # a sum of squares over 0: inf, or nan where it is 0 (or nan); the
        # gradient is torch's, 2 (x - mean) / (N - correction): +-inf, or nan where x is the mean, at 0;
        # finite below. Written with the deviation held constant, so 1/0 meets each element once.
        value = make_map(sf.Where(sf.Greater(scalar_symbol(0), 0), sympy.oo, sympy.nan), [total], dtype, "var")
        reciprocal = 1.0 / (count - correction) if count != correction else math.inf  # IEEE's 1/0, a constant
        linear = sum(2 * stop_gradient(deviation) * x, axes, keepdims)
        raw = make_map(scalar_symbol(0) * scalar_symbol(1), [linear, const(reciprocal, dtype)], dtype, op_name="var")
        return make_surrogate(value, raw)
    else:
        divisor = const(count - correction, dtype)
    return make_map(scalar_symbol(0) / scalar_symbol(1), [total, divisor], dtype, op_name="var")


def std(x, axis=None, correction=1, keepdims=False):
    """sqrt(var(x, axis, correction, keepdims)), with torch's gradient 0 where the result is 0 (a constant
    row): sqrt's derivative is infinite there and the variance's 0, whose product is nan."""
    v = var(x, axis, correction, keepdims)
    at_zero = sf.Equal(scalar_symbol(0), 0)
    root = sf.Where(at_zero, 0, sympy.sqrt(sf.Where(at_zero, 1, scalar_symbol(0))))
    return make_map(root, [v], v.dtype, "std")


def _any(x, axis=None, keepdims=False):
    """Whether any element over axes is nonzero (NaN is), as bool; False over nothing. No gradient."""
    x = as_node(x)
    count = sum(not_equal(x, 0), _reduction_axes(x, axis, "any"), keepdims)
    return make_map(sf.Greater(scalar_symbol(0), 0), [count], "bool", op_name="any")


def _all(x, axis=None, keepdims=False):
    """Whether every element over axes is nonzero (NaN is), as bool; True over nothing. No gradient."""
    x = as_node(x)
    count = sum(equal(x, 0), _reduction_axes(x, axis, "all"), keepdims)
    return make_map(sf.Equal(scalar_symbol(0), 0), [count], "bool", op_name="all")


def _arg_extreme(x, axis, keepdims: bool, op: str, largest: bool) -> Node:
    """First index of the max (largest) or min along one axis, int64, as NumPy's: a NaN is the extreme.

    The smallest index where x equals its extreme: min over axis of where(hit, iota, n), through
    stop_gradient (an index has no gradient).
    """
    x = as_node(x)
    if x.dtype == "bool":
        x = astype(x, "int64")
    if axis is None:
        _nonempty(x, tuple(range(x.ndim)), op)
        index = _arg_extreme(_flat(x, op), 0, False, op, largest)
        return make_reshape(index, (1,) * x.ndim) if keepdims else index
    if x.ndim == 0:
        _one_axis(make_reshape(x, (1,)), axis, op)  # NumPy: a 0-d tensor is one element, axis 0 or -1
        return const(0, "int64")
    axis = _one_axis(x, axis, op)
    n = static_size(x, axis, op)
    _nonempty(x, (axis,), op)
    key = stop_gradient(x if largest else -x)
    best = max(key, axis, keepdims=True)
    a, b = scalar_symbol(0), scalar_symbol(1)
    hit = make_map(sf.Where(sf.NotEqual(b, b), sf.NotEqual(a, a), sf.Equal(a, b)), [key, best], "bool", op)
    # indices as float64 (exact below 2**53) keep the where in the reduction's loop; then int64
    return astype(_min(where(hit, _iota(n, axis, x.ndim, "float64"), float(n)), axis, keepdims), "int64")


def argmax(x, axis=None, keepdims=False):
    """Index of the first maximum along `axis` (of the flattened tensor if None), int64; a NaN is the
    maximum, as in NumPy and torch. Raises over a static size-0 axis, as NumPy."""
    return _arg_extreme(x, axis, keepdims, "argmax", largest=True)


def argmin(x, axis=None, keepdims=False):
    """Index of the first minimum along `axis` (of the flattened tensor if None), int64; a NaN is the
    minimum, as in NumPy and torch."""
    return _arg_extreme(x, axis, keepdims, "argmin", largest=False)


def _scan(x, axis, op: str, identity: int) -> Node:
    """Inclusive scan by Hillis-Steele: y = y (+ or *) (y shifted by k along axis, padded with the
    identity) for k = 1, 2, 4, ... < n: log2(n) steps of slices, pads and maps, so the gradient is the
    primitives' (exact, zeros included, and differentiable again). The axis must be concrete."""
    x = as_node(x)
    if x.dtype in ("bool", "int32"):
        x = astype(x, "int64")
    if axis is None or x.ndim == 0:
        if axis is not None:
            _one_axis(make_reshape(x, (1,)), axis, op)  # NumPy: a 0-d tensor scans as one element
        x, axis = _flat(x, op), 0
    else:
        axis = _one_axis(x, axis, op)
    n = static_size(x, axis, op)
    y, shift = x, 1
    while shift < n:
        widths = tuple(shift if i == axis else 0 for i in range(x.ndim))
        shifted = make_pad(take(y, axis, 0, n - shift), widths, (0,) * x.ndim, identity)
        y = y + shifted if identity == 0 else y * shifted
        shift *= 2
    return y


def cumsum(x, axis=None):
    """Running sum along `axis` (of the flattened tensor if None, as NumPy's; torch requires an axis);
    bool and int32 give int64. A log-depth scan, see _scan."""
    return _scan(x, axis, "cumsum", 0)


def cumprod(x, axis=None):
    """Running product along `axis` (of the flattened tensor if None); a log-depth scan of products,
    so the gradient is exact where x has zeros."""
    return _scan(x, axis, "cumprod", 1)


def _scan_input(x, axis, op: str) -> tuple:
    """(x, axis, n) for torch's cumulative ops: an int axis (0 or -1 of a 0-d tensor, scanned as one
    element), whose size must be concrete."""
    x = as_node(x)
    if x.ndim == 0:
        _one_axis(make_reshape(x, (1,)), axis, op)
        return make_reshape(x, (1,)), 0, 1
    axis = _one_axis(x, axis, op)
    return x, axis, static_size(x, axis, op)


def _shifted(y: Node, axis: int, n: int, shift: int, fill) -> Node:
    """y moved `shift` places along axis, the first `shift` filled with `fill` (a Hillis-Steele step)."""
    widths = tuple(shift if i == axis else 0 for i in range(y.ndim))
    return make_pad(take(y, axis, 0, n - shift), widths, (0,) * y.ndim, fill)


# whether the later element b (x1) beats the earlier a (x0, index x2; -1 for the padding): torch's
# cummax rule, b >= a (ties go to the later index), a NaN beating everything and the later NaN winning
def _later_wins(compare):
    a, b, a_index = scalar_symbol(0), scalar_symbol(1), scalar_symbol(2)
    b_wins = sf.Where(sf.NotEqual(b, b), 1, sf.Where(sf.NotEqual(a, a), 0, compare(b, a)))
    return sf.Where(sf.Less(a_index, 0), 1, b_wins)


_LATER_MAX, _LATER_MIN = _later_wins(sf.GreaterEqual), _later_wins(sf.LessEqual)


def _cumulative_extreme(x, axis, op: str, largest: bool) -> tuple:
    """(values, int64 indices) of torch.cummax (cummin): a log-depth scan of (value, index) pairs whose
    combination keeps the later one on ties (associative, so the tree gives the sequential answer).
    The values' gradient is that of gathering x at the indices, as torch's (a tie's gradient goes to
    the index torch returns, not split)."""
    x0 = as_node(x)
    x, axis, n = _scan_input(x0, axis, op)
    key = stop_gradient(astype(x, "int64") if x.dtype == "bool" else x)
    index = make_broadcast(_iota(n, axis, x.ndim), x.shape)
    shift = 1
    while shift < n:
        earlier, earlier_index = _shifted(key, axis, n, shift, 0), _shifted(index, axis, n, shift, -1)
        later = make_map(_LATER_MAX if largest else _LATER_MIN, [earlier, key, earlier_index], "bool", op)
        key, index = where(later, key, earlier), where(later, index, earlier_index)
        shift *= 2
    if x.dtype == "bool":
        key = astype(key, "bool")
    elif x.dtype.startswith("float"):
        key = make_surrogate(key, take_along_axis(x, index, axis))
    if x0.ndim == 0:
        return make_reshape(key, ()), make_reshape(index, ())
    return key, index


def cummax(x, axis):
    """(values, indices) of the running maximum along `axis`, as torch.cummax: indices int64, the last
    index among equal maxima, a NaN the maximum from where it stands on (the latest NaN's index). The
    gradient of each value goes to x at its index. The axis must be concrete; O(n log n) work."""
    return _cumulative_extreme(x, axis, "cummax", largest=True)


def cummin(x, axis):
    """(values, indices) of the running minimum along `axis`, as torch.cummin (ties: the last index;
    NaN as in cummax)."""
    return _cumulative_extreme(x, axis, "cummin", largest=False)


def _log_add_exp(shift: int) -> sympy.Expr:
    """log(exp(a) + exp(b)) as max(a, b) + softplus(-|a - b|), never overflowing, and (a + b) / 2 + log 2
    where a == b: the same value, a derivative of 1/2 each at a tie, and equal infinities give
    themselves (their difference would be nan). A NaN propagates. b alone where the position (x2, an
    integer operand) is below the shift, so a is the padding. The integer operand keeps the passes from
    composing the scan's maps (or their gradients) into one body, which would grow exponentially."""
    a, b, position = scalar_symbol(0), scalar_symbol(1), scalar_symbol(2)
    both = sf.Where(sf.Equal(a, b), (a + b) / 2 + sympy.log(2), sf.Maximum(a, b) + sf.Softplus(-sympy.Abs(a - b)))
    return sf.Where(sf.Less(position, shift), b, both)


def logcumsumexp(x, axis):
    """log(cumsum(exp(x))) along `axis`, as torch.logcumsumexp, without overflow or underflow: a
    log-depth scan of the stable log-add-exp (leading -inf stay -inf, +inf stays +inf). Integers give
    floats (torch rejects them).

    The gradient is the scan's, exp(x_j - r_i) summed over i >= j; where torch's (a log-space formula)
    is nan it is made nan too: at +inf entries, along the leading run of -inf (where r = -inf) and over
    a whole row holding a NaN."""
    x0 = as_node(x)
    x, axis, n = _scan_input(x0, axis, "logcumsumexp")
    x = astype(x, float_result(x.dtype)) if not x.dtype.startswith("float") else x
    y, shift, position = x, 1, _iota(n, axis, x.ndim)
    while shift < n:
        y = make_map(_log_add_exp(shift), [_shifted(y, axis, n, shift, 0), y, position], x.dtype, "logcumsumexp")
        shift *= 2
    if n:
        a, b, c = scalar_symbol(0), scalar_symbol(1), scalar_symbol(2)
        undefined = sf.Where(sf.Greater(c, 0), 1, sf.Where(sf.Equal(a, sympy.oo), 1, sf.Equal(b, -sympy.oo)))
        has_nan = sum(make_map(sf.NotEqual(a, a), [x], "bool", "logcumsumexp"), axis, keepdims=True)
        nan_where = make_map(sf.Where(undefined, sympy.nan, 0), [x, y, has_nan], x.dtype, "logcumsumexp")
        y = make_surrogate(y, y + stop_gradient(nan_where) * x)
    return make_reshape(y, ()) if x0.ndim == 0 else y


# ascending: element j goes before element i (x1, x0 = their keys, x2 < x3 their indices): smaller, or
# tied and earlier; a NaN goes after every number, as in NumPy and torch.
_BEFORE_ASCENDING = sf.Where(sf.Less(scalar_symbol(0), scalar_symbol(1)), 1, sf.Where(
    sf.NotEqual(scalar_symbol(1), scalar_symbol(1)),
    sf.Where(sf.NotEqual(scalar_symbol(0), scalar_symbol(0)), sf.Less(scalar_symbol(2), scalar_symbol(3)), 1),
    sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), sf.Less(scalar_symbol(2), scalar_symbol(3)), 0)))
# descending: larger, or tied and earlier; a NaN goes before every number, as torch's.
_BEFORE_DESCENDING = sf.Where(sf.Greater(scalar_symbol(0), scalar_symbol(1)), 1, sf.Where(
    sf.NotEqual(scalar_symbol(0), scalar_symbol(0)),
    sf.Where(sf.NotEqual(scalar_symbol(1), scalar_symbol(1)), sf.Less(scalar_symbol(2), scalar_symbol(3)), 1),
    sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), sf.Less(scalar_symbol(2), scalar_symbol(3)), 0)))


def _ordered(x, axis, descending: bool, k, op: str):
    """(values, int64 indices) of the first k elements of x in sorted order along axis (all if k is None).

    A stable sort by pairwise comparisons, O(n^2) work and memory per row (fine for the rows of attention
    or top-k sampling, not for long ones): rank_i = #{j before i}, P[k, i] = (rank_i == k) (no gradient),
    value_k = sum_i where(P[k, i], x_i, 0). A `where`, not an einsum of P and x, so a NaN or an infinity
    stays in its own position; the gradient of value_k goes to the element it came from.
    """
    x = as_node(x)
    if x.ndim == 0:
        raise fail(op, "a 0-d tensor has no axis to sort along (NumPy raises too)")
    axis = _one_axis(x, axis, op)
    n = static_size(x, axis, op)
    if k is None:
        k = n
    elif not _is_int(k) or not 0 <= k <= n:
        raise fail(op, f"k must be an int in [0, {n}] (the size of axis {axis} of {x.shape}), got {k!r}")
    boolean = x.dtype == "bool"
    if boolean:
        x = astype(x, "int64")
    perm = tuple(i for i in range(x.ndim) if i != axis) + (axis,)
    rows = make_transpose(x, perm)                                          # (..., n)
    column = make_reshape(rows, rows.shape + (1,))                          # x_i at [..., i, 0]
    row = make_reshape(rows, rows.shape[:-1] + (1, n))                      # x_j at [..., 0, j]
    keys_i, keys_j = stop_gradient(column), stop_gradient(row)
    i, j = _iota(n, 0, 2), _iota(n, 1, 2)
    # bool, so the (..., n, n) comparisons are computed inside the loop that counts them, never stored
    before = make_map(_BEFORE_DESCENDING if descending else _BEFORE_ASCENDING, [keys_j, keys_i, j, i], "bool", op)
    rank = make_reshape(sum(before, -1), rows.shape[:-1] + (1, n))          # rank_i at [..., 0, i]
    chosen = make_map(sf.Equal(scalar_symbol(0), scalar_symbol(1)), [rank, _iota(k, 0, 2)], "bool", op)
    values = sum(where(chosen, row, 0), -1)                                 # (..., k)
    indices = astype(sum(where(chosen, _iota(n, 1, 2, "float64"), 0.0), -1), "int64")  # float64 likewise
    if boolean:
        values = astype(values, "bool")
    inverse = tuple(sorted(range(x.ndim), key=perm.__getitem__))
    return make_transpose(values, inverse), make_transpose(indices, inverse)


def sort(x, axis=-1, descending=False):
    """x sorted along axis, the values only (as NumPy's sort; argsort gives the indices). Stable; NaN
    last (first when descending, as torch). The gradient of each output goes to the element it came from.
    O(n^2) in the axis length: see _ordered."""
    return _ordered(x, axis, descending, None, "sort")[0]


def argsort(x, axis=-1, descending=False):
    """int64 indices that sort x along axis (stable: ties keep their order, as NumPy's kind='stable')."""
    return _ordered(x, axis, descending, None, "argsort")[1]


def topk(x, k, axis=-1, largest=True):
    """(values, indices) of the k largest (smallest if not largest) elements along axis, in order, as
    torch.topk; indices int64, ties taken lower index first, NaN the largest. Gradient to the chosen."""
    return _ordered(x, axis, largest, k, "topk")


