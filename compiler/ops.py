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
from .primitives import (make_broadcast, make_concat, make_einsum, make_map, make_reduce, make_reshape,
                         make_stop_gradient, make_transpose, size_of)
from .label_ranges import require as require_labels
from .conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d, flatten
from .pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool1d, avg_pool2d, max_pool1d,
                      max_pool2d)
from .indexing import getitem
from .layout import diagonal, expand_einsum, flip, pad, repeat, roll, tile, tril, triu
from .shapes import broadcast_shapes, normalize_axes, reshape_target

__all__ = [
    "elementwise", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "leaky_relu", "softplus", "gelu",
    "silu", "mish", "relu6", "hardsigmoid", "hardswish", "elu", "celu", "selu", "isnan", "isinf", "isfinite",
    "sin", "cos", "abs", "maximum", "minimum", "where", "clip", "equal", "not_equal", "matmul", "einsum",
    "concat", "stack", "broadcast_to", "reshape", "transpose", "sum", "mean", "max", "softmax",
    "log_softmax", "logsumexp", "mse", "cross_entropy", "binary_cross_entropy_with_logits",
    "stop_gradient", "one_hot",
    "floor", "ceil", "round", "trunc", "sign", "remainder", "fmod", "floor_divide", "copysign", "tan", "asin",
    "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "erf", "log1p", "expm1", "pad", "flip", "roll", "tile", "repeat", "diagonal", "tril", "triu",
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "flatten",
    "max_pool1d", "avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool1d",
]


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


# torch's other activations, with its gradients at the kinks (the branch torch's backward takes there)
silu = _float_op(lambda t: t * sf.Sigmoid(t), "silu")
mish = _float_op(lambda t: t * sympy.tanh(sf.Softplus(t)), "mish")
relu6 = Elementwise(lambda t: sf.Where(sf.LessEqual(t, 0), 0, sf.Where(sf.GreaterEqual(t, 6), 6, t)), "relu6")
hardsigmoid = _float_op(
    lambda t: sf.Where(sf.LessEqual(t, -3), 0, sf.Where(sf.GreaterEqual(t, 3), 1, t / 6 + sympy.S.Half)), "hardsigmoid")
hardswish = _float_op(lambda t: sf.Where(sf.LessEqual(t, -3), 0, sf.Where(sf.GreaterEqual(t, 3), t, t * (t + 3) / 6)),
                      "hardswish")
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1) (torch.nn.functional.elu)."""
    a = _sympy_number(alpha)
    return _float_op(lambda t: sf.Where(sf.Greater(t, 0), t, a * (sympy.exp(t) - 1)), "elu")(x)


def celu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x / alpha) - 1) (torch.nn.functional.celu)."""
    a = _sympy_number(alpha)
    return _float_op(lambda t: sf.Where(sf.Greater(t, 0), t, a * (sympy.exp(t / a) - 1)), "celu")(x)


def selu(x):
    """scale * elu(x, alpha) with torch's constants (self-normalising networks)."""
    a, s = sympy.Float(_SELU_ALPHA, 30), sympy.Float(_SELU_SCALE, 30)
    return _float_op(lambda t: s * sf.Where(sf.Greater(t, 0), t, a * (sympy.exp(t) - 1)), "selu")(x)


isnan = Elementwise(lambda t: sf.NotEqual(t, t), "isnan", dtype="bool")
isinf = Elementwise(lambda t: sf.Equal(sympy.Abs(t), sympy.oo), "isinf", dtype="bool")
isfinite = Elementwise(lambda t: sf.Less(sympy.Abs(t), sympy.oo), "isfinite", dtype="bool")


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


# ---- reductions, scans and sorting (derived_reductions.py) -------------------------------------

from .derived_reductions import (_all, _any, _min, argmax, argmin, argsort, cummax, cummin, cumprod, cumsum,  # noqa: E402
                                 logcumsumexp, prod, sort, std, topk, var)

__all__ += ["min", "prod", "var", "std", "any", "all", "argmax", "argmin", "cumsum", "cumprod", "sort", "argsort",
            "topk", "cummax", "cummin", "logcumsumexp"]
_SHADOWING = {"min": _min, "any": _any, "all": _all}


def __getattr__(name):
    """ops.min, ops.any and ops.all (see derived_reductions: they would shadow Python's builtins)."""
    if name in _SHADOWING:
        return _SHADOWING[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


for _name, _method in [("min", _min), ("prod", prod), ("var", var), ("std", std), ("any", _any), ("all", _all),
                       ("argmax", argmax), ("argmin", argmin), ("cumsum", cumsum), ("cumprod", cumprod)]:
    setattr(Node, _name, _method)


# ---- normalisation (normalization.py) -----------------------------------------------------------

from .normalization import batch_norm, group_norm, instance_norm  # noqa: E402

__all__ += ["batch_norm", "group_norm", "instance_norm"]


# ---- sequence models: normalisation over the last axis, attention (sequence_ops.py) -----------

from .sequence_ops import layer_norm, rms_norm, scaled_dot_product_attention  # noqa: E402

__all__ += ["layer_norm", "rms_norm", "scaled_dot_product_attention"]


# ---- losses (losses.py) ------------------------------------------------------------------------

from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss,  # noqa: E402
                     kl_div, l1_loss, mse, nll_loss, smooth_l1_loss)

__all__ += ["l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss", "kl_div", "binary_cross_entropy"]

# ---- randomness (randomness.py) ----------------------------------------------------------------

from .randomness import dropout  # noqa: E402

__all__ += ["dropout"]


# ---- indexing by integer tensors: gathers and scatter-adds (gathers.py) ------------------------

from .gathers import embedding, index_add, scatter_add, take, take_along_axis  # noqa: E402

__all__ += ["take", "take_along_axis", "embedding", "index_add", "scatter_add"]


# ---- resampling: interpolate, pixel shuffle (resampling.py) ------------------------------------

from .resampling import interpolate, pixel_shuffle, pixel_unshuffle  # noqa: E402

__all__ += ["interpolate", "pixel_shuffle", "pixel_unshuffle"]
from .similarity import cosine_similarity, normalize  # noqa: E402  (norms along an axis: similarity.py)
__all__ += ["cosine_similarity", "normalize"]
