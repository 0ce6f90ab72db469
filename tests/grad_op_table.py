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


def np_nll_loss_weighted(log_probs, labels):
    """nll_loss with per-class weights: sum(w_y * -log_probs[y]) / sum(w_y)."""
    w = np.linspace(0.5, 2, log_probs.shape[-1])[labels]
    return -np.sum(w * np.take_along_axis(log_probs, labels[..., None].astype(np.int64), -1)[..., 0]) / np.sum(w)


# small operands for the losses' rows: a central difference per element is their cost
SMALL_PAIR = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, min_side=1, max_side=3).map(
    lambda b: (tuple(b.input_shapes), {}))


def np_smooth_l1(x, y, beta):
    d = np.abs(x - y)
    return np.sum(np.where(d < beta, d * d / (2 * beta), d - beta / 2))


def np_topk(x, axis, k):
    return np.take(-np.sort(-x, axis), np.arange(k), axis)


def np_cosine_similarity(a, b, dim):
    a, b = np.broadcast_arrays(a, b)
    return np.sum(a * b, dim) / np.sqrt(np.sum(a * a, dim) * np.sum(b * b, dim))


def np_normalize(x, p, dim):
    return x / np.sum(np.abs(x) ** p, dim, keepdims=True) ** (1 / p)


def np_conv_transpose1d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """conv_transpose2d's reference over a height of 1."""
    return CR.conv_transpose2d(x[:, :, None], w[:, :, None], b, (1, stride), (0, padding), (0, output_padding), groups,
                               (1, dilation))[:, :, 0]


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
def group_norm_case(draw, instance=False):
    """x (N, C, ...) whose groups hold at least 3 values (two normalise to +-1 whatever they are), gamma
    and beta (C,) or neither, num_groups (C for instance norm) and eps."""
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    spatial = draw(st.lists(st.integers(1, 3), min_size=1, max_size=2).filter(
        lambda s: math.prod(s) * (1 if instance else channels // groups) >= 3))
    x = (draw(st.integers(1, 2)), channels, *spatial)
    kwargs = {"eps": draw(st.sampled_from([1e-5, 0.1]))} | ({} if instance else {"num_groups": groups})
    return ((x, (channels,), (channels,)) if draw(st.booleans()) else (x,)), kwargs


def np_group_norm(x, gamma=None, beta=None, num_groups=None, eps=1e-5):
    """Each sample's groups of consecutive channels, mean and biased variance (instance norm: one per channel)."""
    grouped = x.reshape(x.shape[0], num_groups or x.shape[1], -1)
    out = ((grouped - grouped.mean(2, keepdims=True)) / np.sqrt(grouped.var(2, keepdims=True) + eps)).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return out if gamma is None else out * gamma.reshape(shape) + beta.reshape(shape)


def build_instance_norm(x, *affine, eps):
    """With running statistics: the training node's training value."""
    channels = x.shape[1]
    mean = C.Buffer("grad_row_instance_mean", (channels,), dtype="float64")
    var = C.Buffer("grad_row_instance_var", (channels,), init="ones", dtype="float64")
    return C.instance_norm(x, mean, var, *affine, eps=eps)

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


def _pool_taps(length, k, s, p, d, n):
    """(positions clipped into the axis, inside mask) of n windows' taps, (n, k), as torch reads them."""
    at = np.arange(n)[:, None] * s - p + np.arange(k) * d
    return np.clip(at, 0, length - 1), (at >= 0) & (at < length)


def np_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, count_include_pad=True,
            divisor_override=None, average=False):
    """torch's max or average pooling over x (N, C, L) or (N, C, H, W), by its definition (its output
    sizes, its divisors clipped to the padded input or the input); 1-d as 2-d over a height of 1."""
    if x.ndim == 3:
        one = lambda v, first=1: (first, v) if isinstance(v, int) else (first,) + tuple(v)  # noqa: E731
        y = np_pool(x[:, :, None], one(kernel_size), one(stride or kernel_size), one(padding, 0), one(dilation),
                    ceil_mode, count_include_pad, divisor_override, average)
        return y[:, :, 0]
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    k, p, d = pair(kernel_size), pair(padding), pair(dilation)
    s = pair(stride) if stride is not None else k
    taps, sizes = [], []
    for j, length in enumerate(x.shape[2:]):
        n = (length + 2 * p[j] - d[j] * (k[j] - 1) - 1 + (s[j] - 1 if ceil_mode else 0)) // s[j] + 1
        n -= ceil_mode and (n - 1) * s[j] >= length + p[j]
        taps.append(_pool_taps(length, k[j], s[j], p[j], d[j], n))
        starts = np.arange(n) * s[j] - p[j]
        ends = np.minimum(starts + k[j], length + p[j])
        sizes.append(ends - starts if count_include_pad else np.minimum(ends, length) - np.maximum(starts, 0))
    (rows, row_in), (cols, col_in) = taps
    windows = x[:, :, rows[:, :, None, None], cols[None, None]]  # (N, C, Ho, kh, Wo, kw)
    inside = row_in[:, :, None, None] & col_in[None, None]
    if not average:
        return np.where(inside, windows, -np.inf).max(axis=(3, 5))
    divisor = divisor_override or np.outer(*sizes)
    return np.where(inside, windows, 0.0).sum(axis=(3, 5)) / divisor


def np_adaptive_pool(x, output_size, reduce):
    """torch's adaptive pooling: bin i of an axis of length L covers [floor(i L / out), ceil((i + 1) L / out))."""
    sizes = (output_size,) * (x.ndim - 2) if isinstance(output_size, int) else output_size
    bins = [[(i * length // o, -(-(i + 1) * length // o)) for i in range(o)]
            for length, o in zip(x.shape[2:], [length if o is None else o for o, length in zip(sizes, x.shape[2:])])]
    out = np.zeros(x.shape[:2] + tuple(len(b) for b in bins))
    for index in np.ndindex(out.shape[2:]):
        cut = tuple(slice(*bins[j][i]) for j, i in enumerate(index))
        out[(..., *index)] = reduce(x[(..., *cut)], axis=tuple(range(2, x.ndim)))
    return out


def pool_cases(cases):
    return st.sampled_from(cases).map(lambda c: ((c[0],), c[1]))


def np_interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """torch's interpolate by its definition, one output position at a time in float64: the source
    position i * scale (nearest), (i + 1/2) scale (nearest-exact), (i + 1/2) scale - 1/2 clipped at 0 or
    i (in - 1) / (out - 1) with align_corners (linear), with scale 1 / scale_factor if given, else in / out."""
    for j, n in enumerate(x.shape[2:]):
        pick = lambda v: v[j] if isinstance(v, tuple) else v  # noqa: E731
        factor = None if scale_factor is None else pick(scale_factor)
        m = pick(size) if size is not None else int(n * factor)
        scale = 1 / factor if factor else n / m
        rows = []
        for i in range(m):
            if mode == "nearest" or mode == "nearest-exact":
                rows.append(x.take(min(math.floor((i + 0.5 * (mode != "nearest")) * scale), n - 1), 2 + j))
                continue
            real = (i * (n - 1) / (m - 1) if m > 1 else 0.0) if align_corners else max((i + 0.5) * scale - 0.5, 0.0)
            low = min(math.floor(real), n - 1) if m != n else i
            weight = real - low if m != n else 0.0
            rows.append((1 - weight) * x.take(low, 2 + j) + weight * x.take(min(low + 1, n - 1), 2 + j))
        x = np.stack(rows, 2 + j)
    return x


def np_pixel_shuffle(x, upscale_factor):
    """out[..., c, h r + i, w r + j] = x[..., c r^2 + i r + j, h, w], element by element."""
    r = upscale_factor
    *batch, c, h, w = x.shape
    out = np.empty((*batch, c // r ** 2, h * r, w * r))
    for k, i, j in np.ndindex(c // r ** 2, r, r):
        out[..., k, i::r, j::r] = x[..., k * r * r + i * r + j, :, :]
    return out


def np_pixel_unshuffle(x, downscale_factor):
    r = downscale_factor
    *batch, c, h, w = x.shape
    out = np.empty((*batch, c * r * r, h // r, w // r))
    for k, i, j in np.ndindex(c, r, r):
        out[..., k * r * r + i * r + j, :, :] = x[..., k, i::r, j::r]
    return out


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
    Op("cummax", lambda x, axis: C.cummax(x, axis)[0], np.maximum.accumulate, axis_case(), (distinct,)),
    Op("cummin", lambda x, axis: C.cummin(x, axis)[0], np.minimum.accumulate, axis_case(), (distinct,)),
    Op("logcumsumexp", C.logcumsumexp, np.logaddexp.accumulate, axis_case(), (real(-5, 5),)),
    Op("cosine_similarity", C.cosine_similarity, np_cosine_similarity, st.sampled_from([
        ((3, 4), (3, 4), 1), ((2, 1, 4), (3, 4), -1), ((4,), (2, 4), 0)]).map(lambda c: (c[:2], {"dim": c[2]})),
       (nonzero,)),
    Op("normalize", C.normalize, np_normalize, st.sampled_from([((3, 4), 2.0, 1), ((2, 3, 2), 3, -1), ((5,), 1, 0),
                                                                 ((2, 3), 0.5, 0)]).map(
        lambda c: ((c[0],), {"p": c[1], "dim": c[2]})), (nonzero,)),
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
    # torch's other losses, away from their kinks (x - y on no multiple of 1/2; tests/test_losses_torch.py has them)
    Op("nll_loss", lambda lp, labels: C.nll_loss(lp, labels, np.linspace(0.5, 2, lp.shape[-1]), ignore_index=-1),
       np_nll_loss_weighted, cross_entropy_case(), (real(-5, 0), labels_for_logits), dtypes=("float64", "int64")),
    Op("l1_loss", C.l1_loss, lambda x, y: np.mean(np.abs(x - y)), SMALL_PAIR, (off_grid, on_grid)),
    Op("smooth_l1_loss", lambda x, y: C.smooth_l1_loss(x, y, "sum", beta=0.5), lambda x, y: np_smooth_l1(x, y, 0.5),
       SMALL_PAIR, (off_grid, on_grid)),
    Op("huber_loss", lambda x, y: C.huber_loss(x, y, "none"),
       lambda x, y: np.where(np.abs(x - y) < 1, (x - y) ** 2 / 2, np.abs(x - y) - 0.5), SMALL_PAIR,
       (off_grid, on_grid)),
    Op("kl_div", lambda x, t: C.kl_div(x, t, "batchmean"), lambda x, t: np.sum(t * np.log(t) - t * x) / (
       x.shape[0] if x.ndim else 1), SMALL_PAIR, (real(-3, 0), real(0.1, 1))),
    Op("binary_cross_entropy", C.binary_cross_entropy, lambda p, t: -np.mean(t * np.log(p) + (1 - t) * np.log1p(-p)),
       SMALL_PAIR.map(lambda c: ((c[0][0],) * 2, {})), (real(0.2, 0.8), unit)),  # 1/p**3 near 0 or 1 outgrows differences
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
    Op("group_norm", lambda x, *affine, num_groups, eps: C.group_norm(x, num_groups, *affine, eps=eps),
       np_group_norm, group_norm_case(), (distinct, R, R)),
    Op("instance_norm", build_instance_norm, np_group_norm, group_norm_case(instance=True), (distinct, R, R)),
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
    Op("conv_transpose1d", lambda x, w, b=None, **kw: C.ops.conv_transpose1d(x, w, b, **kw), np_conv_transpose1d,
       st.sampled_from([((2, 2, 3), (2, 3, 2), {"stride": 2, "padding": 1, "output_padding": 1}),
                        ((1, 4, 4), (4, 1, 3), {"groups": 2, "dilation": 2})]).map(
           lambda c: ((c[0], c[1], (c[1][1] * c[2].get("groups", 1),)), c[2])), (R,)),
    Op("conv2d", lambda x, w, b=None, **kw: C.conv2d(x, w, b, **kw),
       lambda x, w, b=None, **kw: CR.conv2d(x, w, b, **kw), CR.conv_case(2, max_extra=2), (R,)),
    Op("max_pool2d", C.max_pool2d, CR.max_pool2d, CR.pool_case(average=False), (distinct,)),
    Op("avg_pool2d", C.avg_pool2d, CR.avg_pool2d, CR.pool_case(average=True), (R,)),
    # windows of more than 16 taps pool by a reduction over the taps, smaller ones by a map
    Op("max_pool2d_large_window", C.max_pool2d, CR.max_pool2d,
       CR.pool_case(average=False, min_kernel=5, max_kernel=6, max_extra=2, max_batch=1), (distinct,)),
    Op("avg_pool2d_large_window", C.avg_pool2d, CR.avg_pool2d,
       CR.pool_case(average=True, min_kernel=5, max_kernel=6, max_extra=2, max_batch=1), (R,)),
    # ceil_mode (a last window past the input: its divisor), dilation, 1-d and adaptive pooling (np_pool above;
    # 1-d pooling is the 2-d code over a height of 1)
    Op("max_pool1d", C.max_pool1d, np_pool, pool_cases([
        ((2, 2, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True})]), (distinct,)),
    Op("avg_pool1d", C.avg_pool1d, lambda x, **kw: np_pool(x, **kw, average=True),
       pool_cases([((2, 2, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                                "count_include_pad": False}),
                   ((1, 2, 8), {"kernel_size": 2, "stride": 3, "ceil_mode": True, "divisor_override": 3})]), (R,)),
    Op("adaptive_avg_pool2d", C.adaptive_avg_pool2d, lambda x, output_size: np_adaptive_pool(x, output_size, np.mean),
       pool_cases([((1, 2, 5, 4), {"output_size": (3, 3)})]), (R,)),
    Op("adaptive_max_pool2d", C.adaptive_max_pool2d, lambda x, output_size: np_adaptive_pool(x, output_size, np.max),
       pool_cases([((1, 2, 5, 4), {"output_size": (3, 3)})]), (distinct,)),
    Op("adaptive_avg_pool1d", C.adaptive_avg_pool1d, lambda x, output_size: np_adaptive_pool(x, output_size, np.mean),
       pool_cases([((2, 2, 7), {"output_size": 4})]), (R,)),
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
    # resampling (np_interpolate above): a broadcast, a strided slice, takes, two-tap interpolation
    Op("interpolate", C.interpolate, np_interpolate, st.sampled_from([
        ((2, 2, 3), {"scale_factor": 2}), ((1, 2, 4, 3), {"size": (2, 5)}),
        ((1, 2, 6), {"scale_factor": 1.5, "mode": "nearest-exact"}),
        ((2, 1, 5), {"scale_factor": 1.7, "mode": "linear"}),
        ((1, 2, 3, 4), {"size": (5, 7), "mode": "bilinear", "align_corners": True}),
        ((1, 1, 5, 4), {"scale_factor": (0.6, 2.5), "mode": "bilinear"})]).map(lambda c: ((c[0],), c[1])), (R,)),
    Op("pixel_shuffle", C.pixel_shuffle, np_pixel_shuffle,
       st.sampled_from([((2, 8, 2, 3), 2), ((9, 1, 2), 3)]).map(lambda c: ((c[0],), {"upscale_factor": c[1]})), (R,)),
    Op("pixel_unshuffle", C.pixel_unshuffle, np_pixel_unshuffle,
       st.sampled_from([((2, 2, 4, 6), 2), ((1, 3, 3), 3)]).map(lambda c: ((c[0],), {"downscale_factor": c[1]})), (R,)),
]
