"""Every op's gradient agrees with central finite differences of a NumPy reference.

One row per op, as JAX's tests do: how to build it, an independent NumPy
reference, a hypothesis strategy for shapes and arguments (broadcasting
between ranks and size-1 dims included), and an input domain per operand
(positive for ``log``, away from kinks for ``relu``). For each example,
``compiler.grad`` of a random-weighted sum of the op's output, evaluated in
float64, must match a five-point central difference of the reference with a
relative error below 1e-6; the forward value must match the reference too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import compiler as C
from compiler import Input, const, evaluate, grad
import conv_reference as CR
from op_table import central_difference
from runtime import philox

MAX_EXAMPLES = 15
TOLERANCE = 1e-6
STEP = 1e-3

# ---- input domains: fn(rng, shape, all_shapes) -> float64 array -------------------------------


def real(lo=-2.0, hi=2.0):
    return lambda rng, shape, shapes: rng.uniform(lo, hi, shape)


def positive(lo=0.5, hi=3.0):
    return real(lo, hi)


def nonzero(rng, shape, shapes):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def off_grid(rng, shape, shapes):
    """At least 0.1 away from every multiple of 0.5: clear of relu/abs/clip kinks at 0, +-0.5, 1."""
    return 0.5 * rng.integers(-4, 4, shape) + 0.25 + rng.uniform(-0.15, 0.15, shape)


def on_grid(rng, shape, shapes):
    """Within 0.05 of a multiple of 0.5: at least 0.05 away from any off_grid value."""
    return 0.5 * rng.integers(-4, 4, shape) + rng.uniform(-0.05, 0.05, shape)


def unit_divisor(rng, shape, shapes):
    """+-1/2 or +-1: an off_grid value divided by one is at least 0.1 from an integer (clear of the jumps
    of remainder, fmod and floor division)."""
    return rng.choice([-1.0, -0.5, 0.5, 1.0], shape)


def below_grid(rng, shape, shapes):
    """0.02 to 0.04 below a multiple of 0.5: clear of off_grid values and of above_grid ones."""
    return 0.5 * rng.integers(-4, 4, shape) - rng.uniform(0.02, 0.04, shape)


def above_grid(rng, shape, shapes):
    return 0.5 * rng.integers(-4, 4, shape) + rng.uniform(0.02, 0.04, shape)


def distinct(rng, shape, shapes):
    """Values at least 0.15 apart, so a max reduction has no near-tie for the stencil to cross."""
    n = math.prod(shape)
    return ((rng.permutation(n) - n / 2) * 0.25 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


def labels_for_logits(rng, shape, shapes):
    return rng.integers(0, shapes[0][1], shape)


def unit(rng, shape, shapes):
    return rng.uniform(0.0, 1.0, shape)


# ---- shape strategies: each yields (shapes, kwargs) -------------------------------------------

SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
SHAPE_AT_LEAST_1D = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def one_shape(shapes=SHAPE, **kwargs):
    return shapes.map(lambda s: ((s,), kwargs))


def broadcast_shapes(n):
    """n shapes that broadcast together: different ranks, size-1 dims."""
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=3, min_side=1, max_side=4).map(
        lambda b: (tuple(b.input_shapes), {}))


@st.composite
def reduction_case(draw, allow_tuple=True, keepdims=True):
    shape = draw(SHAPE)
    choices = [st.none()] if allow_tuple else []
    if shape:
        choices.append(st.integers(-len(shape), len(shape) - 1))
        if allow_tuple:
            choices.append(hnp.valid_tuple_axes(len(shape)))
    axis = draw(st.one_of(*choices)) if choices else None
    kwargs = {"axis": axis}
    if keepdims:
        kwargs["keepdims"] = draw(st.booleans())
    return (shape,), kwargs


@st.composite
def axis_case(draw):
    shape = draw(SHAPE_AT_LEAST_1D)
    return (shape,), {"axis": draw(st.integers(-len(shape), len(shape) - 1))}


@st.composite
def matmul_case(draw):
    """1-D operands, matrices, and batches whose batch dims broadcast."""
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)).input_shapes
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a = (k,) if draw(st.booleans()) else batch_a + (m, k)
    b = (k,) if draw(st.booleans()) else batch_b + (k, n)
    return (a, b), {}


EINSUM_SPECS = [
    "ij,jk->ik",       # matmul
    "i,j->ij",         # outer product
    "bij,bjk->bik",    # batched
    "ijk,jl->il",      # k appears in one operand only: summed away
    "ij,jkl->ik",      # l likewise, in the second operand
    "ij->",            # a full sum
    "ij->ji",          # a transpose
    "i,i->",           # a dot product
    "bi,bi->b",        # row-wise dots
    "ij,jk,kl->il",    # three operands
    "ij,jk",           # implicit output (NumPy: 'ik')
]


@st.composite
def einsum_case(draw):
    spec = draw(st.sampled_from(EINSUM_SPECS))
    terms = spec.split("->")[0].split(",")
    sizes = {c: draw(st.integers(1, 4)) for c in sorted(set("".join(terms)))}
    return tuple(tuple(sizes[c] for c in t) for t in terms), {"spec": spec}


@st.composite
def concat_case(draw, same_shapes=False):
    base = draw(SHAPE_AT_LEAST_1D)
    count = draw(st.integers(1, 3))
    if same_shapes:
        axis = draw(st.integers(-len(base) - 1, len(base)))
        return (base,) * count, {"axis": axis}
    axis = draw(st.integers(-len(base), len(base) - 1))
    shapes = []
    for _ in range(count):
        s = list(base)
        s[axis] = draw(st.integers(1, 3))
        shapes.append(tuple(s))
    return tuple(shapes), {"axis": axis}


@st.composite
def broadcast_to_case(draw):
    target = draw(SHAPE)
    keep = draw(st.integers(0, len(target)))
    source = tuple(1 if draw(st.booleans()) else d for d in target[len(target) - keep:])
    return (source,), {"shape": target}


@st.composite
def reshape_case(draw):
    shape = draw(SHAPE)
    n = math.prod(shape)
    options = [(n,), shape[::-1], shape + (1,), (1,) + shape, (-1,)]
    if shape:
        options.append((-1,) + shape[-1:])
    target = draw(st.sampled_from(options))
    return (shape,), {"shape": target, "as_method": draw(st.booleans())}


@st.composite
def transpose_case(draw):
    shape = draw(SHAPE)
    perm = draw(st.permutations(range(len(shape))))
    return (shape,), {"axes": None if draw(st.booleans()) else tuple(perm)}


@st.composite
def index_case(draw):
    """Basic indices: ints (also negative), slices with any step (negative too), None and one Ellipsis."""
    shape = draw(SHAPE_AT_LEAST_1D)
    items = []
    for d in shape[:draw(st.integers(1, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            items.append(draw(st.integers(-d, d - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-d, d)))
            stop = draw(st.one_of(st.none(), st.integers(-d, d)))
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -2]))
            items.append(slice(start, stop, step))
        else:
            items.append(slice(None))
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()) and len(items) < len(shape):
        items.append(Ellipsis)  # after the items, which index the leading dims
    index = tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]
    return (shape,), {"index": index}


@st.composite
def pad_case(draw):
    """Per-axis widths a mode can take: reflect up to size-1, circular and replicate up to size."""
    shape = draw(SHAPE_AT_LEAST_1D)
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    limit = {"constant": 3, "reflect": None, "replicate": None, "circular": None}[mode]
    widths = []
    for d in shape:
        top = limit if limit is not None else (d - 1 if mode == "reflect" else d)
        widths.append((draw(st.integers(0, top)), draw(st.integers(0, top))))
    return (shape,), {"widths": tuple(widths), "mode": mode, "value": draw(st.sampled_from([0.0, -1.5]))}


def np_pad(x, widths, mode, value):
    if mode == "constant":
        return np.pad(x, widths, constant_values=value)
    return np.pad(x, widths, {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])


@st.composite
def roll_case(draw):
    shape = draw(SHAPE_AT_LEAST_1D)
    if draw(st.booleans()):
        return (shape,), {"shift": draw(st.integers(-7, 7)), "axis": None}
    return (shape,), {"shift": draw(st.integers(-7, 7)), "axis": draw(st.integers(-len(shape), len(shape) - 1))}


@st.composite
def tile_case(draw):
    shape = draw(SHAPE)
    return (shape,), {"reps": tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))}


@st.composite
def repeat_case(draw):
    shape = draw(SHAPE_AT_LEAST_1D)
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return (shape,), {"repeats": draw(st.integers(0, 3)), "axis": axis}


@st.composite
def diagonal_case(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    axis1, axis2 = draw(st.permutations(range(len(shape))))[:2]
    return (shape,), {"offset": draw(st.integers(-3, 3)), "axis1": axis1, "axis2": axis2}


@st.composite
def triangle_case(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    return (shape,), {"diagonal": draw(st.integers(-3, 3))}


@st.composite
def cross_entropy_case(draw):
    batch, classes = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return ((batch, classes), (batch,)), {}


@st.composite
def cross_entropy_nd_case(draw):
    """Logits (..., classes) with 0 to 2 leading axes, labels of the leading shape."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    return (lead + (draw(st.integers(1, 5)),), lead), {}


def labels_for_last_axis(rng, shape, shapes):
    return rng.integers(0, shapes[0][-1], shape)


@st.composite
def topk_case(draw):
    (shape,), kwargs = draw(axis_case())
    return (shape,), {**kwargs, "k": draw(st.integers(0, shape[kwargs["axis"]]))}


SPREAD = hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)  # std needs 2 distinct values


# ---- NumPy references ------------------------------------------------------------------------


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def np_log_softmax(x, axis):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


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
def last_axis_norm_case(draw, operands):
    """x of rank 1 to 3 (last axis 1 to 5), then `operands` - 1 vectors of the last axis (gamma, beta),
    or none of them (no affine transform), and eps."""
    x = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)) + (draw(st.integers(1, 5)),)
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
       last_axis_norm_case(3), (distinct, R, R)),
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
]


def test_every_op_has_a_row():
    """The table covers every op in compiler.ops (comparisons and one_hot have no gradient to check;
    ``elementwise`` is covered by the user-op rows)."""
    without_gradient = {"equal", "not_equal", "one_hot", "elementwise"}
    covered = {row.name.split("_")[0] for row in OPS} | {row.name for row in OPS}
    missing = [name for name in C.ops.__all__ if name not in covered and name not in without_gradient]
    assert not missing, f"ops without a gradient row: {missing}"


# ---- the check -------------------------------------------------------------------------------


def relative_error(actual, expected):
    """Norm-wise; the floor keeps a zero gradient (whose difference quotient is rounding noise) checkable."""
    return np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-5)


def check_op(row: Op, shapes, kwargs, seed):
    rng = np.random.default_rng(seed)
    domains = row.domains * len(shapes) if len(row.domains) == 1 else row.domains
    dtypes = row.dtypes or ("float64",) * len(shapes)
    names = [f"{row.name}_{i}" for i in range(len(shapes))]
    arrays = [np.asarray(domain(rng, shape, shapes)).astype(dtype)
              for domain, shape, dtype in zip(domains, shapes, dtypes)]
    nodes = [Input(n, shape, dtype=dtype) for n, shape, dtype in zip(names, shapes, dtypes)]

    out = row.build(*nodes, **kwargs)
    expected = np.asarray(row.reference(*arrays, **kwargs), dtype=np.float64)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    values = dict(zip(names, arrays))
    np.testing.assert_allclose(evaluate(out, values), expected, rtol=row.forward_rtol, atol=row.forward_rtol)

    weights = rng.normal(size=expected.shape)
    loss = (out * const(weights)).sum()
    float_operands = [i for i, d in enumerate(dtypes) if d.startswith("float")]
    gradients = evaluate(grad(loss, [nodes[i] for i in float_operands]), values)

    def weighted(*xs):
        return float(np.sum(np.asarray(row.reference(*xs, **kwargs)) * weights))

    for i, g in zip(float_operands, gradients):
        assert g.shape == shapes[i] and g.dtype == np.float64
        if i in row.no_gradient:
            assert np.all(g == 0), f"{row.name}: gradient of operand {i} should be exactly 0"
            continue
        expected_grad = central_difference(weighted, arrays, i)
        error = relative_error(g, expected_grad)
        assert error < TOLERANCE, f"{row.name} operand {i} {shapes} {kwargs}: relative error {error:.2e}"


@pytest.mark.parametrize("row", OPS, ids=[row.name for row in OPS])
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_gradient_matches_finite_differences(row, data):
    shapes, kwargs = data.draw(row.case, label="shapes and arguments")
    seed = data.draw(st.integers(0, 2 ** 32 - 1), label="seed")
    check_op(row, shapes, kwargs, seed)


# ---- conventions at non-differentiable points, checked exactly ----------------------------------


def _grad_at(build, *arrays):
    """Gradients of sum(build(...)) at `arrays`; the simplified gradient graph must agree exactly."""
    nodes = [Input(f"p{i}", a.shape, dtype="float64") for i, a in enumerate(arrays)]
    gradients = grad(build(*nodes).sum(), nodes)
    values = {f"p{i}": a for i, a in enumerate(arrays)}
    declared = evaluate(gradients, values)
    for got, want in zip(evaluate(C.simplify(gradients), values), declared):
        np.testing.assert_array_equal(got, want)
    return declared


def test_relu_derivative_at_zero_is_zero():
    (g,) = _grad_at(C.relu, np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])


def test_abs_derivative_at_zero_is_zero():
    (g,) = _grad_at(C.abs, np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_maximum_tie_splits_gradient_evenly():
    ga, gb = _grad_at(C.maximum, np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0]))
    np.testing.assert_array_equal(ga, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.5])


def test_minimum_tie_splits_gradient_evenly():
    ga, gb = _grad_at(C.minimum, np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0]))
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 0.5])


def test_max_reduction_splits_ties_evenly():
    (g,) = _grad_at(lambda x: x.max(), np.array([1.0, 3.0, 3.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5, 0.0])
    (g,) = _grad_at(lambda x: x.max(axis=1), np.array([[2.0, 2.0, 2.0], [0.0, 1.0, -1.0]]))
    np.testing.assert_allclose(g, [[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]], rtol=1e-15)


def test_max_reduction_tie_gradient_through_keepdims_and_weights():
    x = np.array([[4.0, 1.0, 4.0], [7.0, 7.0, 7.0]])
    node = Input("tied", x.shape, dtype="float64")
    w = np.array([[2.0], [3.0]])
    g = evaluate(grad((node.max(axis=1, keepdims=True) * const(w)).sum(), node), {"tied": x})
    np.testing.assert_allclose(g, [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], rtol=1e-15)


@settings(max_examples=15, deadline=None, database=None)
@given(case=CR.pool_case(average=False), seed=st.integers(0, 2 ** 32 - 1))
def test_max_pool2d_gradient_goes_to_the_first_maximum_of_each_window(case, seed):
    """At ties (values in {-1, 0, 1}) each window's cotangent goes to its first maximum in row-major order,
    as PyTorch's; a window over padding only reads the input where it lies (padding reads -inf)."""
    (shape,), kwargs = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, shape).astype(np.float64)
    node = Input("pooled", shape, dtype="float64")
    out = C.max_pool2d(node, **kwargs)
    weights = rng.normal(size=out.shape)
    expected = CR.max_pool2d_backward(x, weights, **kwargs)
    gradient = grad((out * const(weights)).sum(), node)
    for graph in (gradient, C.simplify(gradient)):
        np.testing.assert_allclose(evaluate(graph, {"pooled": x}), expected, rtol=1e-14, atol=1e-14,
                                   err_msg=f"{shape} {kwargs}")


def test_max_pool2d_gradient_at_non_finite_maxima():
    """As PyTorch: padding is never a window's maximum, even where the input is -inf (each window's
    cotangent goes to its first element inside the input); a NaN is a window's maximum and gets it."""
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 3, 1, 1), np.full((1, 1, 2, 2), -np.inf))
    np.testing.assert_array_equal(g, [[[[4.0, 0.0], [0.0, 0.0]]]])
    x = np.array([[[[1.0, np.nan, 0.5], [2.0, 0.0, -1.0], [0.0, 3.0, 1.0]]]])
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 2, 1), x)
    np.testing.assert_array_equal(g, [[[[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]]])
    # windows of more than 16 taps (a reduction over the taps)
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 5, 1, 2), np.full((1, 1, 3, 4), -np.inf))
    np.testing.assert_array_equal(g, CR.max_pool2d_backward(np.full((1, 1, 3, 4), -np.inf), np.ones((1, 1, 3, 4)), 5, 1, 2))
    assert g[0, 0, 0, 0] == 9.0  # the windows at rows 0-2, columns 0-2 start there
    x = np.arange(25.0).reshape(1, 1, 5, 5) % 7
    x[0, 0, 2, 3] = np.nan
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 5), x)
    np.testing.assert_array_equal(g[0, 0] != 0, np.arange(25).reshape(5, 5) == 13)


# ---- second order: gradients are graphs, differentiable again ---------------------------------------

SECOND_ORDER_EXAMPLES = 5
# stop_gradient also stops second derivatives, where differences of the gradient do not
SECOND_ORDER_OPS = [row for row in OPS if not row.no_gradient]


@pytest.mark.parametrize("row", SECOND_ORDER_OPS, ids=[row.name for row in SECOND_ORDER_OPS])
@settings(max_examples=SECOND_ORDER_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hessian_vector_product_matches_differences_of_the_gradient(row, data):
    """grad(sum(grad(L, x) * v), x) against a central difference of grad(L, x) along v (checked above)."""
    shapes, kwargs = data.draw(row.case, label="shapes and arguments")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    domains = row.domains * len(shapes) if len(row.domains) == 1 else row.domains
    dtypes = row.dtypes or ("float64",) * len(shapes)
    names = [f"{row.name}_{i}" for i in range(len(shapes))]
    arrays = [np.asarray(domain(rng, shape, shapes)).astype(dtype) for domain, shape, dtype in zip(domains, shapes, dtypes)]
    nodes = [Input(n, shape, dtype=dtype) for n, shape, dtype in zip(names, shapes, dtypes)]
    out = row.build(*nodes, **kwargs)
    loss = (out * const(rng.normal(size=out.shape))).sum()
    floats = [i for i, d in enumerate(dtypes) if d.startswith("float")]
    wrt = [nodes[i] for i in floats]
    first = grad(loss, wrt)
    directions = [rng.normal(size=shapes[i]) for i in floats]
    inner = sum((g * const(v)).sum() for g, v in zip(first, directions))
    hvp = evaluate(grad(inner, wrt), dict(zip(names, arrays)))

    def gradient_at(t):
        moved = list(arrays)
        for i, v in zip(floats, directions):
            moved[i] = arrays[i] + t * v
        return evaluate(first, dict(zip(names, moved)))

    samples = [gradient_at(k * STEP) for k in (-2, -1, 1, 2)]
    for h, a, b, c, d in zip(hvp, *samples):
        expected = (a - 8 * b + 8 * c - d) / (12 * STEP)
        error = relative_error(h, expected)
        assert error < TOLERANCE, f"{row.name} {shapes} {kwargs}: relative error {error:.2e}"
