"""The gradient op table: one row per op, as JAX's tests do.

A row (``Op``) says how to build the op, an independent NumPy reference, a
hypothesis strategy for shapes and arguments, and an input domain per operand
(grad_op_inputs.py). test_grad_ops.py checks each row's gradient against
central finite differences of the reference; test_grad_second_order.py checks
its Hessian-vector products. Adding an op is one line in ``OPS``; a
composite's own case or reference stands just above the table.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import compiler as C
import conv_reference as CR
import gather_cases as GC
from grad_op_inputs import (SHAPE, SPREAD, above_grid, axis_case, below_grid, broadcast_shapes, broadcast_to_case,
                            concat_case, cross_entropy_case, cross_entropy_nd_case, diagonal_case, distinct,
                            einsum_case, index_case, labels_for_last_axis, labels_for_logits, matmul_case, nonzero,
                            np_pad, off_grid, on_grid, one_shape, pad_case, positive, real, reduction_case, repeat_case,
                            reshape_case, roll_case, tile_case, topk_case, transpose_case, triangle_case, unit,
                            unit_divisor)
from runtime import philox

# ---- NumPy references ------------------------------------------------------------------------


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def np_log_softmax(x, axis):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


def off_integers(rng, shape, shapes):
    """At least 0.2 away from every integer in [-8, 8): clear of relu6's and the hard activations' kinks
    (0, +-3, 6), so a central difference never straddles one."""
    return 2 * off_grid(rng, shape, shapes)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


_erf = np.vectorize(math.erf, otypes=[float])


def np_cross_entropy(logits, labels):
    return -np.mean(np_log_softmax(logits, -1)[np.arange(len(labels)), labels])


def np_cross_entropy_nd(logits, labels):
    return -np.mean(np.take_along_axis(np_log_softmax(logits, -1), labels[..., None].astype(np.int64), -1))


def np_topk(x, axis, k):
    return np.take(-np.sort(-x, axis), np.arange(k), axis)


# ---- the table -------------------------------------------------------------------------------


@dataclass
class Op:
    name: str
    build: object          # (*nodes, **kwargs) -> node
    reference: object      # (*arrays, **kwargs) -> ndarray, in float64
    case: object           # strategy of (shapes, kwargs)
    domains: tuple         # one sampler per operand; a single one is repeated
    dtypes: tuple = ()     # per operand; default float64
    no_gradient: frozenset = field(default_factory=frozenset)  # operands whose gradient must be exactly 0
    forward_rtol: float = 1e-10


swish = C.elementwise(lambda t: t / (1 + sympy.exp(-t)))
damped = C.elementwise(lambda a, b: a * sympy.exp(-b ** 2), name="damped")


@st.composite
def batch_norm_case(draw):
    """x (N, C, ...) of rank 2 to 4 with N >= 2, gamma and beta (C,), and eps."""
    spatial = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    channels = draw(st.integers(1, 3))
    x = (draw(st.integers(2, 4)), channels, *spatial)
    return (x, (channels,), (channels,)), {"eps": draw(st.sampled_from([1e-5, 0.1]))}


def build_batch_norm(x, gamma, beta, eps):
    channels = x.shape[1]
    mean = C.Buffer("grad_row_running_mean", (channels,), dtype="float64")
    var = C.Buffer("grad_row_running_var", (channels,), init="ones", dtype="float64")
    return C.batch_norm(x, gamma, beta, mean, var, eps=eps)


def np_batch_norm(x, gamma, beta, eps):
    """Training mode: the batch's mean and biased variance per channel (axis 1)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    normalised = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + eps)
    return normalised * gamma.reshape(shape) + beta.reshape(shape)

@st.composite
def last_axis_norm_case(draw, operands, sizes=(1, 2, 3, 4, 5)):
    """x of rank 1 to 3 (last axis one of `sizes`), then `operands` - 1 vectors of the last axis (gamma,
    beta), or none of them (no affine transform), and eps."""
    x = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)) + (draw(st.sampled_from(sizes)),)
    affine = draw(st.booleans())
    return ((x,) + ((x[-1],),) * (operands - 1) if affine else (x,)), {"eps": draw(st.sampled_from([1e-5, 0.1]))}


def np_layer_norm(x, gamma=None, beta=None, eps=1e-5):
    out = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)
    return out if gamma is None else out * gamma + beta


def np_rms_norm(x, gamma=None, eps=1e-6):
    out = x / np.sqrt(np.mean(x * x, -1, keepdims=True) + eps)
    return out if gamma is None else out * gamma


@st.composite
def attention_case(draw, kinds):
    """q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) with broadcasting leading dims; no mask, a bool one
    or an additive one (of (Tq, Tk), a broadcast row or column, or with q's leading dims); causal or not."""
    leads = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=2, max_side=3)).input_shapes
    tq, tk, d, dv = (draw(st.integers(1, 4)) for _ in range(4))
    shapes = (leads[0] + (tq, d), leads[1] + (tk, d), leads[2] + (tk, dv))
    kind = draw(st.sampled_from(kinds))
    if kind is not None:
        shapes += (draw(st.sampled_from([(tq, tk), (1, tk), (tq, 1), leads[0] + (tq, tk)])),)
    return shapes, {"causal": draw(st.booleans()), "kind": kind}


def attention_mask(rng, shape, shapes):
    """True (attend) or False per entry, with rows where every key is masked."""
    return (rng.uniform(size=shape) < 0.7) & (rng.uniform(size=shape[:-1] + (1,)) < 0.8)


def additive_mask(rng, shape, shapes):
    """Real values, -inf at about a quarter of the entries (and whole rows now and then)."""
    masked = (rng.uniform(size=shape) < 0.25) | (rng.uniform(size=shape[:-1] + (1,)) < 0.15)
    return np.where(masked, -np.inf, rng.uniform(-2, 2, shape))


def build_attention(q, k, v, mask=None, causal=False, kind=None):
    return C.scaled_dot_product_attention(q, k, v, mask, causal=causal)


def np_attention(q, k, v, mask=None, causal=False, kind=None):
    """softmax(q k^T / sqrt(d) + bias) v; a row whose keys are all masked gives 0."""
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    top = scores.max(-1, keepdims=True)
    e = np.exp(scores - np.where(np.isfinite(top), top, 0.0))
    total = e.sum(-1, keepdims=True)
    return (e / np.where(total > 0, total, 1.0)) @ v


def np_dropout(x, p):
    """Dropout with the mask ``compiler.evaluate`` draws by default: seed 0, counter 1, the graph's one
    random node (stream 0); the mask is fixed, so differences see the scaled identity on kept units."""
    u = philox.random_values("uniform", x.shape, "float64", 0, 0, 1)
    return np.where(u >= p, x * (1 / (1 - p) if p < 1 else 1.0), 0.0)  # p = 1: no uniform reaches 1


def dropout_case():
    return SHAPE.flatmap(lambda s: st.sampled_from([0.2, 0.5, 0.9, 1.0]).map(lambda p: ((s,), {"p": p})))


R, P = real(), positive()

OPS = [
    Op("exp", C.exp, np.exp, one_shape(), (R,)),
    Op("log", C.log, np.log, one_shape(), (P,)),
    Op("sqrt", C.sqrt, np.sqrt, one_shape(), (P,)),
    Op("tanh", C.tanh, np.tanh, one_shape(), (real(-3, 3),)),
    Op("sigmoid", C.sigmoid, np_sigmoid, one_shape(), (real(-4, 4),)),
    Op("relu", C.relu, lambda x: np.maximum(x, 0), one_shape(), (off_grid,)),
    Op("leaky_relu", lambda x, slope: C.leaky_relu(x, slope), lambda x, slope: np.where(x > 0, x, slope * x),
       one_shape(slope=0.1), (off_grid,)),
    Op("leaky_relu_default", C.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), one_shape(), (off_grid,)),
    Op("softplus", C.softplus, lambda x: np.log1p(np.exp(x)), one_shape(), (real(-4, 4),)),
    Op("gelu", C.gelu, lambda x: x * (1 + _erf(x / np.sqrt(2))) / 2, one_shape(), (real(-3, 3),)),
    Op("silu", C.ops.silu, lambda x: x * np_sigmoid(x), one_shape(), (real(-5, 5),)),
    Op("mish", C.ops.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), one_shape(), (real(-5, 5),)),
    Op("relu6", C.ops.relu6, lambda x: np.clip(x, 0, 6), one_shape(), (off_integers,)),
    Op("hardsigmoid", C.ops.hardsigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1), one_shape(), (off_integers,)),
    Op("hardswish", C.ops.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6, one_shape(), (off_integers,)),
    Op("elu", lambda x: C.ops.elu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)), one_shape(), (off_grid,)),
    Op("celu", lambda x: C.ops.celu(x, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x / 0.7)), one_shape(),
       (off_grid,)),
    Op("selu", C.ops.selu, lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
       one_shape(), (off_grid,)),
    Op("sin", C.sin, np.sin, one_shape(), (real(-4, 4),)),
    Op("cos", C.cos, np.cos, one_shape(), (real(-4, 4),)),
    Op("abs", C.abs, np.abs, one_shape(), (off_grid,)),
    Op("builtin_abs", lambda x: abs(x), np.abs, one_shape(), (off_grid,)),
    Op("maximum", C.maximum, np.maximum, broadcast_shapes(2), (off_grid, on_grid)),
    Op("minimum", C.minimum, np.minimum, broadcast_shapes(2), (on_grid, off_grid)),
    Op("maximum_scalar", lambda x: C.maximum(x, 0.5), lambda x: np.maximum(x, 0.5), one_shape(), (off_grid,)),
    Op("where", lambda c, a, b: C.where(c > 0, a, b), lambda c, a, b: np.where(c > 0, a, b),
       broadcast_shapes(3), (nonzero, R, R)),
    Op("where_scalar_branch", lambda c, a: C.where(c < 0, a, 0.0), lambda c, a: np.where(c < 0, a, 0.0),
       broadcast_shapes(2), (nonzero, R)),
    Op("clip", lambda x: C.clip(x, -0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0), one_shape(), (off_grid,)),
    Op("clip_tensor_bounds", C.clip, lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
       broadcast_shapes(3), (off_grid, below_grid, above_grid)),
    Op("floor", C.floor, np.floor, one_shape(), (off_grid,), no_gradient=frozenset({0})),
    Op("ceil", C.ceil, np.ceil, one_shape(), (off_grid,), no_gradient=frozenset({0})),
    Op("round", C.round, np.round, one_shape(), (off_grid,), no_gradient=frozenset({0})),
    Op("trunc", C.trunc, np.trunc, one_shape(), (off_grid,), no_gradient=frozenset({0})),
    Op("sign", C.sign, np.sign, one_shape(), (off_grid,), no_gradient=frozenset({0})),
    Op("remainder", C.remainder, np.remainder, broadcast_shapes(2), (off_grid, unit_divisor)),
    Op("mod_operator", lambda a, b: a % b, np.remainder, broadcast_shapes(2), (off_grid, unit_divisor)),
    Op("fmod", C.fmod, np.fmod, broadcast_shapes(2), (off_grid, unit_divisor)),
    Op("floor_divide", C.floor_divide, np.floor_divide, broadcast_shapes(2), (off_grid, unit_divisor),
       no_gradient=frozenset({0, 1})),
    Op("floordiv_operator", lambda a, b: a // b, np.floor_divide, broadcast_shapes(2), (off_grid, unit_divisor),
       no_gradient=frozenset({0, 1})),
    Op("copysign", C.copysign, np.copysign, broadcast_shapes(2), (nonzero,), no_gradient=frozenset({1})),
    Op("tan", C.tan, np.tan, one_shape(), (real(-1.2, 1.2),)),
    Op("asin", C.asin, np.arcsin, one_shape(), (real(-0.9, 0.9),)),
    Op("acos", C.acos, np.arccos, one_shape(), (real(-0.9, 0.9),)),
    Op("atan", C.atan, np.arctan, one_shape(), (real(-4, 4),)),
    Op("atan2", C.atan2, np.arctan2, broadcast_shapes(2), (nonzero,)),
    Op("sinh", C.sinh, np.sinh, one_shape(), (real(-3, 3),)),
    Op("cosh", C.cosh, np.cosh, one_shape(), (real(-3, 3),)),
    Op("asinh", C.asinh, np.arcsinh, one_shape(), (real(-4, 4),)),
    Op("acosh", C.acosh, np.arccosh, one_shape(), (real(1.2, 4),)),
    Op("atanh", C.atanh, np.arctanh, one_shape(), (real(-0.9, 0.9),)),
    Op("erf", C.erf, _erf, one_shape(), (real(-3, 3),)),
    Op("log1p", C.log1p, np.log1p, one_shape(), (real(-0.9, 3),)),
    Op("expm1", C.expm1, np.expm1, one_shape(), (real(-3, 3),)),
    Op("matmul", C.matmul, np.matmul, matmul_case(), (R,)),
    Op("matmul_operator", lambda a, b: a @ b, np.matmul, matmul_case(), (R,)),
    Op("einsum", lambda *xs, spec: C.einsum(spec, *xs), lambda *xs, spec: np.einsum(spec, *xs), einsum_case(), (R,)),
    Op("concat", lambda *xs, axis: C.concat(list(xs), axis=axis), lambda *xs, axis: np.concatenate(xs, axis=axis),
       concat_case(), (R,)),
    Op("stack", lambda *xs, axis: C.stack(list(xs), axis=axis), lambda *xs, axis: np.stack(xs, axis=axis),
       concat_case(same_shapes=True), (R,)),
    Op("broadcast_to", C.broadcast_to, np.broadcast_to, broadcast_to_case(), (R,)),
    Op("reshape", lambda x, shape, as_method: x.reshape(*shape) if as_method else C.reshape(x, shape),
       lambda x, shape, as_method: x.reshape(shape), reshape_case(), (R,)),
    Op("transpose", lambda x, axes: x.T if axes is None else x.transpose(*axes),
       lambda x, axes: np.transpose(x, axes), transpose_case(), (R,)),
    Op("transpose_function", lambda x, axes: C.transpose(x, axes) if axes else C.transpose(x),
       lambda x, axes: np.transpose(x, axes), transpose_case(), (R,)),
    Op("getitem", lambda x, index: x[index], lambda x, index: x[index], index_case(), (R,)),
    Op("pad", C.pad, np_pad, pad_case(), (R,)),
    Op("flip", C.flip, np.flip, axis_case(), (R,)),
    Op("flip_all", C.flip, np.flip, one_shape(), (R,)),
    Op("roll", C.roll, np.roll, roll_case(), (R,)),
    Op("tile", C.tile, np.tile, tile_case(), (R,)),
    Op("repeat", C.repeat, np.repeat, repeat_case(), (R,)),
    Op("diagonal", C.diagonal, np.diagonal, diagonal_case(), (R,)),
    Op("tril", C.tril, lambda x, diagonal: np.tril(x, diagonal), triangle_case(), (R,)),
    Op("triu", C.triu, lambda x, diagonal: np.triu(x, diagonal), triangle_case(), (R,)),
    Op("sum", lambda x, **kw: x.sum(**kw), np.sum, reduction_case(), (R,)),
    Op("sum_function", C.sum, np.sum, reduction_case(), (R,)),
    Op("mean", lambda x, **kw: x.mean(**kw), np.mean, reduction_case(), (R,)),
    Op("max", lambda x, **kw: x.max(**kw), np.max, reduction_case(), (distinct,)),
    Op("max_function", C.max, np.max, reduction_case(), (distinct,)),
    Op("min", lambda x, **kw: x.min(**kw), np.min, reduction_case(), (distinct,)),
    Op("min_function", C.min, np.min, reduction_case(), (distinct,)),
    Op("prod", C.prod, np.prod, reduction_case(), (R,)),
    Op("var", lambda x, **kw: C.var(x, correction=0, **kw), np.var, reduction_case(), (R,)),
    Op("std", C.std, lambda x, axis: np.std(x, axis, ddof=1), one_shape(SPREAD, axis=-1), (distinct,)),
    Op("any", lambda x, **kw: C.any(x > 0, **kw), lambda x, **kw: np.any(x > 0, **kw), reduction_case(), (off_grid,)),
    Op("all", lambda x, **kw: C.all(x > 0, **kw), lambda x, **kw: np.all(x > 0, **kw), reduction_case(), (off_grid,)),
    Op("argmax", C.argmax, np.argmax, axis_case(), (distinct,)),
    Op("argmin", C.argmin, np.argmin, axis_case(), (distinct,)),
    Op("cumsum", C.cumsum, np.cumsum, axis_case(), (R,)),
    Op("cumprod", C.cumprod, np.cumprod, axis_case(), (R,)),
    Op("sort", C.sort, np.sort, axis_case(), (distinct,)),
    Op("argsort", C.argsort, lambda x, axis: np.argsort(x, axis, kind="stable"), axis_case(), (distinct,)),
    Op("topk", lambda x, axis, k: C.topk(x, k, axis)[0], np_topk, topk_case(), (distinct,)),
    Op("softmax", C.softmax, lambda x, axis: np.exp(np_log_softmax(x, axis)), axis_case(), (real(-5, 5),)),
    Op("log_softmax", C.log_softmax, np_log_softmax, axis_case(), (real(-5, 5),)),
    Op("logsumexp", C.logsumexp, np_logsumexp, reduction_case(), (real(-5, 5),)),
    Op("mse", C.mse, lambda a, b: np.mean((a - b) ** 2), broadcast_shapes(2), (R,)),
    Op("cross_entropy", C.cross_entropy, np_cross_entropy, cross_entropy_case(), (real(-5, 5), labels_for_logits),
       dtypes=("float64", "int64")),
    Op("cross_entropy_int32_labels", C.cross_entropy, np_cross_entropy, cross_entropy_case(),
       (real(-5, 5), labels_for_logits), dtypes=("float64", "int32")),
    Op("cross_entropy_nd", C.cross_entropy, np_cross_entropy_nd, cross_entropy_nd_case(),
       (real(-5, 5), labels_for_last_axis), dtypes=("float64", "int64")),
    Op("binary_cross_entropy_with_logits", C.binary_cross_entropy_with_logits,
       lambda x, y: np.mean(np.logaddexp(0, x) - x * y), broadcast_shapes(2), (real(-5, 5), unit)),
    Op("stop_gradient", lambda x, y: C.stop_gradient(x) * y, lambda x, y: x * y, broadcast_shapes(2), (R,),
       no_gradient=frozenset({0})),
    Op("stop_gradient_alone", C.stop_gradient, lambda x: x, one_shape(), (R,), no_gradient=frozenset({0})),
    Op("add", lambda a, b: a + b, np.add, broadcast_shapes(2), (R,)),
    Op("sub", lambda a, b: a - b, np.subtract, broadcast_shapes(2), (R,)),
    Op("mul", lambda a, b: a * b, np.multiply, broadcast_shapes(2), (R,)),
    Op("div", lambda a, b: a / b, np.divide, broadcast_shapes(2), (R, nonzero)),
    Op("pow", lambda a, b: a ** b, np.power, broadcast_shapes(2), (P, R)),
    Op("neg", lambda a: -a, np.negative, one_shape(), (R,)),
    Op("scalar_left_operands", lambda a: 2.0 - a + 3 * a - 1.5 / a + 2.0 ** a,
       lambda a: 2.0 - a + 3 * a - 1.5 / a + 2.0 ** a, one_shape(), (nonzero,)),
    Op("integer_powers", lambda a: a ** 2 + a ** 3 - a ** -1, lambda a: a ** 2 + a ** 3 - a ** -1.0, one_shape(),
       (nonzero,)),
    Op("fractional_power", lambda a: a ** 0.5 + a ** 1.5, lambda a: a ** 0.5 + a ** 1.5, one_shape(), (P,)),
    Op("astype_float32", lambda a: a.astype("float32"), lambda a: a, one_shape(), (R,), forward_rtol=1e-6),
    Op("astype_roundtrip", lambda a: a.astype("float32").astype("float64") * 2, lambda a: a * 2, one_shape(), (R,),
       forward_rtol=1e-6),
    Op("swish", swish, lambda t: t / (1 + np.exp(-t)), one_shape(), (real(-4, 4),)),
    Op("user_binary_elementwise", damped, lambda a, b: a * np.exp(-b ** 2), broadcast_shapes(2), (R,)),
    Op("batch_norm", build_batch_norm, np_batch_norm, batch_norm_case(), (distinct, R, R)),
    Op("dropout", C.ops.dropout, np_dropout, dropout_case(), (R,)),
    Op("layer_norm", lambda x, *affine, eps: C.layer_norm(x, *affine, eps=eps), np_layer_norm,
       last_axis_norm_case(3, (1, 3, 4, 5)), (distinct, R, R)),  # two values normalise to +-1 whatever they are:
    #    a gradient of size eps / sigma**3, which finite differences cannot resolve relatively
    Op("rms_norm", lambda x, *gamma, eps: C.rms_norm(x, *gamma, eps=eps), np_rms_norm, last_axis_norm_case(2),
       (nonzero, R)),
    Op("scaled_dot_product_attention", build_attention, np_attention,
       attention_case([None, "additive"]), (R, R, R, additive_mask)),
    Op("scaled_dot_product_attention_bool_mask", build_attention, np_attention,
       attention_case(["bool"]), (R, R, R, attention_mask),
       dtypes=("float64", "float64", "float64", "bool")),
    Op("composite_chain", lambda x, W: C.tanh(x @ W).sum(axis=-1) * C.sigmoid(x).mean(),
       lambda x, W: np.tanh(x @ W).sum(axis=-1) * np_sigmoid(x).mean(),
       st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)).map(lambda s: (((s[0], s[1]), (s[1], s[2])), {})),
       (R,)),
    # convolution and pooling (conv_reference.py: explicit padding and loops)
    Op("conv1d", lambda x, w, b=None, **kw: C.conv1d(x, w, b, **kw),
       lambda x, w, b=None, **kw: CR.conv1d(x, w, b, **kw), CR.conv_case(1), (R,)),
    Op("conv_transpose2d", lambda x, w, b=None, **kw: C.ops.conv_transpose2d(x, w, b, **kw),
       lambda x, w, b=None, **kw: CR.conv_transpose2d(x, w, b, **kw), CR.conv_transpose_case(), (R,)),
    Op("conv2d", lambda x, w, b=None, **kw: C.conv2d(x, w, b, **kw),
       lambda x, w, b=None, **kw: CR.conv2d(x, w, b, **kw), CR.conv_case(2, max_extra=2), (R,)),
    Op("max_pool2d", C.max_pool2d, CR.max_pool2d, CR.pool_case(average=False), (distinct,)),
    Op("avg_pool2d", C.avg_pool2d, CR.avg_pool2d, CR.pool_case(average=True), (R,)),
    # windows of more than 16 taps pool by a reduction over the taps, smaller ones by a map
    Op("max_pool2d_large_window", C.max_pool2d, CR.max_pool2d,
       CR.pool_case(average=False, min_kernel=5, max_kernel=6, max_extra=2, max_batch=1), (distinct,)),
    Op("avg_pool2d_large_window", C.avg_pool2d, CR.avg_pool2d,
       CR.pool_case(average=True, min_kernel=5, max_kernel=6, max_extra=2, max_batch=1), (R,)),
    Op("flatten", C.flatten, CR.flatten, CR.flatten_case(), (R,)),
    # gathers and scatter-adds (gather_cases.py): ids with repeats, integer operands get no gradient
    Op("take", C.take, GC.np_take, GC.take_case(), (R, GC.ids_for), dtypes=("float64", "int64")),
    Op("take_along_axis", C.take_along_axis, GC.np_take_along_axis, GC.along_axis_case(), (R, GC.ids_for),
       dtypes=("float64", "int64")),
    Op("embedding", C.embedding, GC.np_embedding, GC.embedding_case(), (R, GC.ids_for), dtypes=("float64", "int32")),
    Op("index_add", lambda a, ids, source, axis: C.index_add(a, axis, ids, source), GC.np_index_add,
       GC.index_add_case(), (R, GC.ids_for, R), dtypes=("float64", "int64", "float64")),
    Op("scatter_add", lambda a, ids, source, axis: C.scatter_add(a, axis, ids, source), GC.np_scatter_add,
       GC.scatter_add_case(), (R, GC.ids_for, R), dtypes=("float64", "int64", "float64")),
]
