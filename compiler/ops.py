"""The operations users call, written on the primitives of ``graph``.

Elementwise functions are maps whose body is a sympy expression; everything
else is a reduce, an einsum or a layout op. Composites (softmax, logsumexp,
cross-entropy) are numerically stable by construction: the max-shift passes
through ``stop_gradient``.
"""
from __future__ import annotations

import math
import string

import numpy as np
import sympy
from sympy.codegen.cfunctions import expm1 as _expm1, log1p as _log1p

from . import scalar_functions as sf
from .dtypes import canonical_dtype, float_result, promote
from .errors import GraphError, fail
from .codegen.scalar import unsupported_functions
from .graph import Node, as_node, const, is_python_number, scalar_symbol
from .primitives import (make_broadcast, make_concat, make_einsum, make_map, make_pad, make_reduce, make_reshape,
                         make_slice, make_stop_gradient, make_transpose, size_of)
from .label_ranges import require as require_labels
from .layout import diagonal, expand_einsum, flip, pad, repeat, roll, tile, tril, triu
from .shapes import broadcast_shapes, normalize_axes, reshape_target

__all__ = [
    "elementwise", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "leaky_relu", "softplus", "gelu",
    "sin", "cos", "abs", "maximum", "minimum", "where", "clip", "equal", "not_equal", "matmul", "einsum",
    "concat", "stack", "broadcast_to", "reshape", "transpose", "sum", "mean", "max", "softmax",
    "log_softmax", "logsumexp", "mse", "cross_entropy", "binary_cross_entropy_with_logits",
    "stop_gradient", "one_hot",
    "floor", "ceil", "round", "trunc", "sign", "remainder", "fmod", "floor_divide", "copysign", "tan", "asin",
    "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "erf", "log1p", "expm1", "pad", "flip", "roll", "tile", "repeat", "diagonal", "tril", "triu",
]

_builtin_abs, _builtin_sum, _builtin_max = abs, sum, max


def _sympy_number(value):
    """A Python number as an exact sympy number (0.1 -> 1/10, as written)."""
    if isinstance(value, (bool, np.bool_)):
        return sympy.Integer(int(value))
    if isinstance(value, (int, np.integer)):
        return sympy.Integer(int(value))
    value = float(value)
    if math.isnan(value):
        return sympy.nan
    if math.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    return sympy.Rational(repr(value))


def _is_number(value) -> bool:
    return is_python_number(value)


def _is_non_finite(value) -> bool:
    """A Python nan or inf: kept as a constant tensor, since sympy folds x*nan to nan and
    x + inf to inf, which would drop x's gradient (torch gives nan and 1)."""
    return isinstance(value, (float, np.floating)) and not math.isfinite(value)


def check_body(body, name: str):
    """The body in canonical form (compiler.scalar_functions.canonical_body), or a GraphError
    naming each function the compiler cannot lower: rejected when declared, never at compile."""
    body = sf.canonical_body(body)
    missing = unsupported_functions(body)
    if missing:
        raise fail(name, f"the body {body} uses {', '.join(missing)}, which the compiler cannot lower; "
                   f"elementwise bodies may use arithmetic, powers, comparisons, Piecewise and "
                   f"{', '.join(sorted({getattr(f, '__name__', str(f)) for f in _supported_functions()}))}")
    return body


def _supported_functions():
    from .codegen.scalar import SUPPORTED
    return SUPPORTED


class Elementwise:
    """An elementwise op from a function of sympy scalars; broadcasts like NumPy.

    ``swish = elementwise(lambda t: t / (1 + sympy.exp(-t)))``. Its derivative is
    ``sympy.diff`` of the body: nobody writes one.
    """

    def __init__(self, fn, name: str | None = None, dtype=None, float_only: bool = False):
        self.fn, self.name = fn, name or getattr(fn, "__name__", "elementwise")
        self.dtype, self.float_only = dtype, float_only

    def __call__(self, *args):
        nodes, scalars, weak, non_finite = [], [], [], {}
        keep_non_finite = any(isinstance(a, Node) or not _is_number(a) for a in args)
        for a in args:
            if isinstance(a, Node):
                scalars.append(scalar_symbol(len(nodes)))
                nodes.append(a)
            elif _is_number(a) and keep_non_finite and _is_non_finite(a):
                non_finite[len(nodes)] = float(a)
                scalars.append(scalar_symbol(len(nodes)))
                nodes.append(None)
                weak.append(a)
            elif _is_number(a):
                scalars.append(_sympy_number(a))
                weak.append(a)
            else:
                a = const(a)
                scalars.append(scalar_symbol(len(nodes)))
                nodes.append(a)
        dtypes = [n.dtype for n in nodes if n is not None]
        dtype = self.dtype
        if dtype is None:
            dtype = promote(dtypes, weak) if nodes else promote([], weak)
            if self.float_only:
                dtype = float_result(dtype)
        for i, value in non_finite.items():
            nodes[i] = const(value, float_result(promote(dtypes, weak)))
        body = check_body(self.fn(*scalars), self.name)
        if not nodes:
            return const(float(body), dtype)
        return make_map(body, nodes, dtype, op_name=self.name)

    def __repr__(self):
        return f"elementwise({self.name})"


def elementwise(fn, name: str | None = None, dtype=None) -> Elementwise:
    """A new differentiable elementwise op from a Python function of sympy scalars."""
    return Elementwise(fn, name, None if dtype is None else canonical_dtype(dtype))


def _float_op(fn, name):
    return Elementwise(fn, name, float_only=True)


exp = _float_op(sympy.exp, "exp")
log = _float_op(sympy.log, "log")
sqrt = _float_op(sympy.sqrt, "sqrt")
tanh = _float_op(sympy.tanh, "tanh")
sin = _float_op(sympy.sin, "sin")
cos = _float_op(sympy.cos, "cos")
sigmoid = _float_op(sf.Sigmoid, "sigmoid")
softplus = _float_op(sf.Softplus, "softplus")
gelu = _float_op(lambda t: t * (1 + sympy.erf(t / sympy.sqrt(2))) / 2, "gelu")
relu = Elementwise(sf.Relu, "relu")
abs = Elementwise(sympy.Abs, "abs")
maximum = Elementwise(sf.Maximum, "maximum")
minimum = Elementwise(sf.Minimum, "minimum")
equal = Elementwise(sf.Equal, "equal", dtype="bool")
not_equal = Elementwise(sf.NotEqual, "not_equal", dtype="bool")
_comparisons = {name: Elementwise(fn, name, dtype="bool") for name, fn in
                [("less", sf.Less), ("less_equal", sf.LessEqual), ("greater", sf.Greater),
                 ("greater_equal", sf.GreaterEqual)]}


def leaky_relu(x, negative_slope=0.01):
    return Elementwise(lambda t: sf.Where(sf.Greater(t, 0), t, _sympy_number(negative_slope) * t), "leaky_relu")(x)


def where(condition, a, b):
    """a where condition is true (nonzero), else b."""
    values = [v for v in (a, b) if isinstance(v, Node)]
    weak = [v for v in (a, b) if _is_number(v)]
    dtype = promote([v.dtype for v in values], weak) if values else _dtype_of_numbers(weak)
    return Elementwise(sf.Where, "where", dtype=dtype)(as_node(condition), a, b)


def _dtype_of_numbers(values) -> str:
    """torch.where's dtype for Python scalars alone: bool, int64, or float32 if any is a float."""
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if any(isinstance(v, (float, np.floating)) for v in values):
        return "float32"
    return "int64"


_clip = Elementwise(sf.Clip, "clip")


def clip(x, lo, hi):
    """min(max(x, lo), hi); the gradient at a bound goes to x (torch.clamp)."""
    return _clip(x, lo, hi)


# rounding, division and sign (integers stay integers, as in torch); derivatives in scalar_functions
floor = Elementwise(sf.Floor, "floor")
ceil = Elementwise(sf.Ceil, "ceil")
round = Elementwise(sf.Round, "round")  # halfway cases to even, as NumPy and torch
trunc = Elementwise(sf.Trunc, "trunc")
sign = Elementwise(sympy.sign, "sign")
remainder = Elementwise(sf.Remainder, "remainder")  # a % b: the sign of b
fmod = Elementwise(sf.FMod, "fmod")  # the sign of a
floor_divide = Elementwise(sf.FloorDivide, "floor_divide")  # a // b
copysign = _float_op(sf.Copysign, "copysign")
tan = _float_op(sympy.tan, "tan")
asin = _float_op(sympy.asin, "asin")
acos = _float_op(sympy.acos, "acos")
atan = _float_op(sympy.atan, "atan")
atan2 = _float_op(sympy.atan2, "atan2")  # atan2(y, x)
sinh = _float_op(sympy.sinh, "sinh")
cosh = _float_op(sympy.cosh, "cosh")
asinh = _float_op(sympy.asinh, "asinh")
acosh = _float_op(sympy.acosh, "acosh")
atanh = _float_op(sympy.atanh, "atanh")
erf = _float_op(sympy.erf, "erf")
log1p = _float_op(_log1p, "log1p")
expm1 = _float_op(_expm1, "expm1")


# ---- reductions ---------------------------------------------------------------------------

def _keep(result: Node, x: Node, axes, keepdims: bool) -> Node:
    if not keepdims:
        return result
    return make_reshape(result, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _reduction_axes(x: Node, axis, op: str) -> tuple:
    """normalize_axes, with NumPy's rule for a 0-d tensor: a reduction with an identity or a ufunc
    (sum, max, min, prod, any, all) accepts the integer axis 0 or -1 there and reduces nothing."""
    if x.ndim == 0 and _is_int(axis) and int(axis) in (0, -1):
        return ()
    return normalize_axes(axis, x.ndim, op)


def _nonempty(x: Node, axes, op: str):
    """A reduction without identity (max, min, argmax) of a static size-0 axis has no value: NumPy raises."""
    empty = [a for a in axes if x.shape[a] == 0]
    if empty:
        raise fail(op, f"zero-size reduction over axis {empty[0]} of shape {x.shape} has no value (NumPy raises "
                   f"too); sum, prod, any and all have identities")


def sum(x, axis=None, keepdims=False):
    """Sum over axes (0 over nothing); bool and int32 give int64, as NumPy's."""
    x = as_node(x)
    axes = _reduction_axes(x, axis, "sum")
    return _keep(make_reduce("sum", x, axes), x, axes, keepdims)


def max(x, axis=None, keepdims=False):
    """Maximum over axes; NaN propagates; the gradient of a tie is split evenly among the maxima."""
    x = as_node(x)
    axes = _reduction_axes(x, axis, "max")
    _nonempty(x, axes, "max")
    return _keep(make_reduce("max", x, axes), x, axes, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over axes; nan over nothing, as NumPy's (which also rejects axis=0 of a 0-d tensor)."""
    x = as_node(x)
    axes = normalize_axes(axis, x.ndim, "mean")
    total = sum(x, axes, keepdims)
    dtype = float_result(x.dtype)
    count = size_of(x.shape, axes, dtype)
    if isinstance(count, Node):
        return make_map(scalar_symbol(0) / scalar_symbol(1), [total, count], dtype, op_name="mean")
    if count == 0:
        return make_broadcast(const(np.nan, dtype), total.shape)
    return make_map(scalar_symbol(0) / count, [total], dtype, op_name="mean")


# ---- reductions, scans and sorting written on the primitives -------------------------------------
#
# Every op here is a composite, so its gradient, evaluation and lowering are those of the primitives.
# min, any and all would shadow Python's builtins, which code in this module calls on shapes: they are
# written as _min, _any and _all and served as ops.min, ops.any and ops.all (and so compiler.min, ...)
# by the module __getattr__ below.


def _concrete_size(x: Node, axis: int, op: str) -> int:
    """The size of `axis`, which must be concrete: constants (an index iota) and pads are built from it."""
    n = x.shape[axis]
    if isinstance(n, str):
        raise fail(op, f"axis {axis} of shape {x.shape} is the symbolic dimension {n!r}; {op} needs a concrete size")
    return n


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


def _take(x: Node, axis: int, start: int, stop: int) -> Node:
    """x[..., start:stop, ...] along `axis`."""
    return make_slice(x, tuple(start if i == axis else 0 for i in range(x.ndim)),
                      tuple(stop if i == axis else d for i, d in enumerate(x.shape)))


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
            odd = _take(rows, last, n - 1, n)
            carry = odd if carry is None else carry * odd
        rows = _take(rows, last, 0, half) * _take(rows, last, half, 2 * half)
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
    n = math.prod(_concrete_size(x, a, "prod") for a in axes)
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
    elif count - correction <= 0:  # a sum of squares over 0: inf, or nan where it is 0 (or nan)
        return make_map(sf.Where(sf.Greater(scalar_symbol(0), 0), sympy.oo, sympy.nan), [total], dtype, "var")
    else:
        divisor = const(count - correction, dtype)
    return make_map(scalar_symbol(0) / scalar_symbol(1), [total, divisor], dtype, op_name="var")


def std(x, axis=None, correction=1, keepdims=False):
    """sqrt(var(x, axis, correction, keepdims))."""
    return sqrt(var(x, axis, correction, keepdims))


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
    n = _concrete_size(x, axis, op)
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
    n = _concrete_size(x, axis, op)
    y, shift = x, 1
    while shift < n:
        widths = tuple(shift if i == axis else 0 for i in range(x.ndim))
        shifted = make_pad(_take(y, axis, 0, n - shift), widths, (0,) * x.ndim, identity)
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
    n = _concrete_size(x, axis, op)
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


__all__ += ["min", "prod", "var", "std", "any", "all", "argmax", "argmin", "cumsum", "cumprod", "sort", "argsort",
            "topk"]
_SHADOWING = {"min": _min, "any": _any, "all": _all}


def __getattr__(name):
    """ops.min, ops.any and ops.all (see the comment above _concrete_size)."""
    if name in _SHADOWING:
        return _SHADOWING[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _name, _method in [("min", _min), ("prod", prod), ("var", var), ("std", std), ("any", _any), ("all", _all),
                       ("argmax", argmax), ("argmin", argmin), ("cumsum", cumsum), ("cumprod", cumprod)]:
    setattr(Node, _name, _method)


# ---- contraction -----------------------------------------------------------------------------

def einsum(spec: str, *operands):
    """Einstein summation as NumPy reads it: an implicit spec ('ij,jk') sums indices that appear
    twice, '...' stands for broadcast leading axes, an index repeated in one operand ('ii->i',
    'ii->') takes its diagonal."""
    operands = [as_node(o) for o in operands]
    spec, operands = expand_einsum(spec, operands)
    return make_einsum(spec, *operands)


def matmul(a, b):
    """NumPy's matmul: 1-D and 2-D operands, and batched with broadcast batch dims."""
    a, b = as_node(a), as_node(b)
    if a.ndim == 0 or b.ndim == 0:
        raise fail("matmul", f"operands must be at least 1-D, got shapes {a.shape} and {b.shape}")
    k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise fail("matmul", f"shapes {a.shape} and {b.shape} are not aligned: "
                   f"{k_a} (last dim of the first) != {k_b} ({'second-to-last' if b.ndim > 1 else 'only'} dim of the second)")
    try:
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    except GraphError:
        raise fail("matmul", f"the batch dims of shapes {a.shape} and {b.shape} do not broadcast") from None
    letters = "".join(string.ascii_lowercase[3:3 + len(batch)])

    def spec(x, own):
        if x.ndim <= 2:
            return x, own
        if x.shape[:-2] != batch:
            x = broadcast_to(x, batch + x.shape[-2:])
        return x, letters + own

    a, a_spec = spec(a, "ik" if a.ndim > 1 else "k")
    b, b_spec = spec(b, "kj" if b.ndim > 1 else "k")
    out = letters + ("i" if a.ndim > 1 else "") + ("j" if b.ndim > 1 else "")
    return make_einsum(f"{a_spec},{b_spec}->{out}", a, b)


# ---- layout ---------------------------------------------------------------------------------

def reshape(x, *shape):
    x = as_node(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return make_reshape(x, reshape_target(x.shape, shape))


def transpose(x, *axes):
    x = as_node(x)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        axes = tuple(reversed(range(x.ndim)))
    if sorted(a % x.ndim for a in axes) != list(range(x.ndim)) or len(axes) != x.ndim:
        raise fail("transpose", f"axes {axes} are not a permutation of the {x.ndim} axes of shape {x.shape}")
    return make_transpose(x, tuple(a % x.ndim for a in axes))


def broadcast_to(x, shape):
    x = as_node(x)
    shape = tuple(shape)
    if len(shape) < x.ndim:
        raise fail("broadcast_to", f"cannot broadcast {x.shape} to the lower-rank shape {shape}")
    if any(d != 1 and d != t for d, t in zip(reversed(x.shape), reversed(shape))):
        raise fail("broadcast_to", f"cannot broadcast {x.shape} to {shape}")
    if len(shape) > x.ndim:
        x = make_reshape(x, (1,) * (len(shape) - x.ndim) + x.shape)
    return make_broadcast(x, shape)


def concat(xs, axis=0):
    xs = [as_node(x) for x in xs]
    if not xs:
        raise fail("concat", "needs at least one tensor")
    axis = normalize_axes(axis, xs[0].ndim, "concat")[0]
    return make_concat(xs, axis)


def stack(xs, axis=0):
    xs = [as_node(x) for x in xs]
    if not xs:
        raise fail("stack", "needs at least one tensor")
    if any(x.shape != xs[0].shape for x in xs):
        raise fail("stack", f"tensors must have one shape, got {', '.join(str(x.shape) for x in xs)}")
    axis = normalize_axes(axis, xs[0].ndim + 1, "stack")[0]
    return make_concat([make_reshape(x, x.shape[:axis] + (1,) + x.shape[axis:]) for x in xs], axis)


def getitem(x: Node, index):
    """Basic indexing: integers, slices with any step (``x[::-1]``, ``x[5:0:-2]``), None and one Ellipsis."""
    if not isinstance(index, tuple):
        index = (index,)
    if _builtin_sum(1 for i in index if i is Ellipsis) > 1:
        raise fail("getitem", "only one Ellipsis allowed")
    n_real = _builtin_sum(1 for i in index if i is not None and i is not Ellipsis)
    if n_real > x.ndim:
        raise fail("getitem", f"too many indices ({n_real}) for shape {x.shape}")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - n_real) + index[at + 1:]
    else:
        index = index + (slice(None),) * (x.ndim - n_real)
    starts, stops, steps, out_shape, axis = [], [], [], [], 0
    for item in index:
        if item is None:
            out_shape.append(1)
            continue
        d = x.shape[axis]
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if isinstance(d, str):
                raise fail("getitem", f"cannot index the symbolic dimension {d!r} of {x.shape} with an integer")
            i = int(item) + (d if item < 0 else 0)
            if not 0 <= i < d:
                raise fail("getitem", f"index {item} out of range for axis {axis} of size {d}")
            starts.append(i), stops.append(i + 1), steps.append(1)
        elif isinstance(item, slice):
            if item.step == 0:
                raise fail("getitem", f"slice step cannot be zero (got {item})")
            if isinstance(d, str):
                if item != slice(None):
                    raise fail("getitem", f"only ':' can slice the symbolic dimension {d!r}")
                starts.append(0), stops.append(d), steps.append(1), out_shape.append(d)
            else:
                start, stop, step = item.indices(d)
                starts.append(start), stops.append(stop), steps.append(step)
                out_shape.append(len(range(start, stop, step)))
        else:
            raise fail("getitem", f"unsupported index {item!r}: use ints, slices, None or ...")
        axis += 1
    sliced = make_slice(x, tuple(starts), tuple(stops), tuple(steps))
    return make_reshape(sliced, tuple(out_shape))


def astype(x, dtype):
    x = as_node(x)
    return make_map(scalar_symbol(0), [x], canonical_dtype(dtype, "astype"), op_name="astype")


def stop_gradient(x):
    """x, through which no gradient flows."""
    return make_stop_gradient(as_node(x))


# ---- composites -------------------------------------------------------------------------------

_finite_or_zero = Elementwise(lambda m: sf.Where(sf.Less(sympy.Abs(m), sympy.oo), m, 0), "finite_or_zero")


def _shift(x, axes):
    """max over axes (kept as size 1), without gradient; 0 where the max is not finite or the axes are empty."""
    m = make_reshape(make_reduce("max", x, axes), tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return stop_gradient(_finite_or_zero(m))


def logsumexp(x, axis=None, keepdims=False):
    x = as_node(x)
    axes = normalize_axes(axis, x.ndim, "logsumexp")
    m = _shift(x, axes)
    result = m + log(sum(exp(x - m), axes, keepdims=True))
    return result if keepdims else make_reshape(result, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def log_softmax(x, axis=-1):
    x = as_node(x)
    return x - logsumexp(x, axis, keepdims=True)


def softmax(x, axis=-1):
    x = as_node(x)
    e = exp(x - _shift(x, normalize_axes(axis, x.ndim, "softmax")))
    return e / sum(e, axis, keepdims=True)


def one_hot(labels, num_classes: int, dtype="float32"):
    labels = as_node(labels)
    classes = const(np.arange(num_classes, dtype=labels.dtype if labels.dtype != "bool" else "int64"))
    return require_labels(make_map(sf.Equal(scalar_symbol(0), scalar_symbol(1)),
                                   [make_reshape(labels, labels.shape + (1,)), classes], canonical_dtype(dtype),
                                   "one_hot"), labels, num_classes, "one_hot")


def mse(prediction, target):
    """Mean over every element of (prediction - target)**2."""
    prediction, target = as_node(prediction), as_node(target, prediction)
    return mean((prediction - target) ** 2)


def cross_entropy(logits, labels):
    """Softmax cross-entropy of logits (..., classes) with integer labels (...), mean over every label.

    The class axis is last (the transformer convention; a sequence model's (batch, time, classes) logits
    go in as they are). torch puts it at dim 1 for N-d input: this is
    ``torch.nn.functional.cross_entropy(logits.movedim(-1, 1), labels)``, the same thing for (batch,
    classes) and for unbatched (classes,) logits with a 0-d label. A label outside [0, classes) raises
    IndexError: labels given as an Input are checked before the program runs, labels computed in the
    graph after it (``label_ranges``).
    """
    logits, labels = as_node(logits), as_node(labels)
    if logits.ndim < 1 or labels.shape != logits.shape[:-1] or labels.dtype not in ("int32", "int64"):
        raise fail("cross_entropy", f"expected logits (..., classes) and integer labels (...) of the leading "
                   f"shape, got {logits.shape} {logits.dtype} and {labels.shape} {labels.dtype}")
    logp = log_softmax(logits, -1)
    classes = const(np.arange(_concrete_size(logits, logits.ndim - 1, "cross_entropy"), dtype=labels.dtype))
    picked = make_map(sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), scalar_symbol(2), 0),
                      [make_reshape(labels, labels.shape + (1,)), classes, logp], logp.dtype, "pick")
    require_labels(picked, labels, classes.shape[0], "cross_entropy")
    return -mean(sum(picked, axis=-1))


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of softplus(x) - x*y: stable for any logit magnitude."""
    logits, targets = as_node(logits), as_node(targets, logits)
    return mean(Elementwise(lambda x, y: sf.Softplus(x) - x * y, "bce_with_logits", float_only=True)(logits, targets))


# ---- Python operators on nodes ------------------------------------------------------------

def _binary(body, name):
    op = Elementwise(body, name)
    return (lambda self, other: op(self, other)), (lambda self, other: op(other, self))


def _install_operators():
    for dunder, body, name in [("add", lambda a, b: a + b, "add"), ("sub", lambda a, b: a - b, "sub"),
                               ("mul", lambda a, b: a * b, "mul"), ("pow", lambda a, b: a ** b, "pow")]:
        forward, reflected = _binary(body, name)
        setattr(Node, f"__{dunder}__", forward)
        setattr(Node, f"__r{dunder}__", reflected)
    div = _float_op(lambda a, b: a / b, "div")

    def truediv(self, other):
        if _is_number(other) and other == 0 and math.copysign(1.0, float(other)) < 0:
            return div(-self, 0.0)  # x / -0.0: sympy has no signed zero
        return div(self, other)
    Node.__truediv__ = truediv
    Node.__rtruediv__ = lambda self, other: div(other, self)
    Node.__floordiv__ = lambda self, other: floor_divide(self, other)
    Node.__rfloordiv__ = lambda self, other: floor_divide(other, self)
    Node.__mod__ = lambda self, other: remainder(self, other)
    Node.__rmod__ = lambda self, other: remainder(other, self)
    Node.__neg__ = lambda self: Elementwise(lambda a: -a, "neg")(self)
    Node.__pos__ = lambda self: self
    Node.__abs__ = lambda self: abs(self)
    Node.__matmul__ = lambda self, other: matmul(self, other)
    Node.__rmatmul__ = lambda self, other: matmul(other, self)
    Node.__lt__ = lambda self, other: _comparisons["less"](self, other)
    Node.__le__ = lambda self, other: _comparisons["less_equal"](self, other)
    Node.__gt__ = lambda self, other: _comparisons["greater"](self, other)
    Node.__ge__ = lambda self, other: _comparisons["greater_equal"](self, other)
    Node.__getitem__ = getitem
    Node.sum = sum
    Node.mean = mean
    Node.max = max
    Node.reshape = reshape
    Node.transpose = transpose
    Node.astype = astype
    Node.T = property(lambda self: transpose(self))


_install_operators()
