"""The compiled-op table: one row per op, and per interesting variant (broadcasting, axes, ranks).

A row (``Row``) names the ``compiler.ops`` op it covers, builds it from its
operands, and gives each operand a shape (``B``, "batch", is a symbolic
dimension bound per call), an input domain ``fn(rng, shape) -> float64 array``
and a dtype (``F`` stands for the float dtype under test). test_compile_ops.py
compiles each row per dtype, value and gradient, and checks it against the
evaluator. Adding an op is one line in ``ROWS``; the domains stand above it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy

import compiler as C

F = "F"  # stands for the dtype under test in a row's operand dtypes
B = "batch"


# ---- input domains: fn(rng, shape) -> float64 array ----------------------------------------------


def real(lo=-2.0, hi=2.0):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def positive(lo=0.5, hi=3.0):
    return real(lo, hi)


def nonzero(rng, shape):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def off_grid(rng, shape):
    """At least 0.1 away from every multiple of 0.5: clear of the kinks of relu, abs and clip."""
    return 0.5 * rng.integers(-4, 4, shape) + 0.25 + rng.uniform(-0.15, 0.15, shape)


def on_grid(rng, shape):
    return 0.5 * rng.integers(-4, 4, shape) + rng.uniform(-0.05, 0.05, shape)


def unit_divisor(rng, shape):
    """+-1/2 or +-1: off_grid values divided by one are clear of integers (remainder's jumps)."""
    return rng.choice([-1.0, -0.5, 0.5, 1.0], shape)


def small_integers(rng, shape):
    """Exact small integers as floats: comparisons see ties."""
    return rng.integers(-2, 3, shape).astype(np.float64)


def unit(rng, shape):
    return rng.uniform(0.0, 1.0, shape)


def attention_mask(rng, shape):
    """True (attend) or False, with rows where every key is masked (their output is 0)."""
    return (rng.uniform(size=shape) < 0.7) & (rng.uniform(size=shape[:-1] + (1,)) < 0.8)


def additive_mask(rng, shape):
    """Real values, -inf at about a quarter of the entries and along some whole rows."""
    masked = (rng.uniform(size=shape) < 0.25) | (rng.uniform(size=shape[:-1] + (1,)) < 0.15)
    return np.where(masked, -np.inf, rng.uniform(-2, 2, shape))


def labels(classes):
    return lambda rng, shape: rng.integers(0, classes, shape)


R, P = real(), positive()


# ---- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    op: str                # the compiler.ops name this row covers
    build: object          # (*nodes) -> node
    shapes: tuple          # per operand; "batch" is bound per call
    domains: tuple         # per operand (one is repeated)
    dtypes: tuple = ()     # per operand, F = the dtype under test; default all F
    min_batch: int = 1     # the smallest batch the op takes (batch norm in training: 2 values per channel)


swish = C.elementwise(lambda t: t / (1 + sympy.exp(-t)), name="swish")
damped = C.elementwise(lambda a, b: a * sympy.exp(-b ** 2), name="damped")


def batch_norm_row(x, gamma, beta):
    """Training mode (the batch's statistics); the running statistics are no argument of the program."""
    channels = x.shape[1]
    return C.batch_norm(x, gamma, beta, C.Buffer("row_running_mean", (channels,), dtype=x.dtype),
                        C.Buffer("row_running_var", (channels,), init="ones", dtype=x.dtype))


def instance_norm_row(x):
    """Training mode, as batch_norm_row: the statistics of each sample's channels (the affine transform is
    group_norm's, already covered)."""
    channels = x.shape[1]
    return C.instance_norm(x, C.Buffer("row_instance_mean", (channels,), dtype=x.dtype),
                           C.Buffer("row_instance_var", (channels,), init="ones", dtype=x.dtype))


UNARY = ((B, 3),)
PAIR = ((B, 3), (B, 3))
BROADCAST_PAIR = ((B, 1, 3), (4, 1))

ROWS = [
    # maps
    Row("exp", "exp", C.exp, UNARY, (real(-5, 5),)),
    Row("exp_wide", "exp", C.exp, UNARY, (real(-80, 80),)),
    Row("log", "log", C.log, UNARY, (real(0.01, 100),)),
    Row("sqrt", "sqrt", C.sqrt, UNARY, (real(0.01, 100),)),
    Row("tanh", "tanh", C.tanh, UNARY, (real(-4, 4),)),
    Row("tanh_wide", "tanh", C.tanh, UNARY, (real(-30, 30),)),
    Row("sigmoid", "sigmoid", C.sigmoid, UNARY, (real(-30, 30),)),
    Row("relu", "relu", C.relu, UNARY, (off_grid,)),
    Row("leaky_relu", "leaky_relu", lambda x: C.leaky_relu(x, 0.1), UNARY, (off_grid,)),
    Row("leaky_relu_default", "leaky_relu", C.leaky_relu, UNARY, (off_grid,)),
    Row("softplus", "softplus", C.softplus, UNARY, (real(-30, 30),)),
    Row("gelu", "gelu", C.gelu, UNARY, (real(-4, 4),)),
    Row("silu", "silu", C.ops.silu, UNARY, (real(-6, 6),)),
    Row("mish", "mish", C.ops.mish, UNARY, (real(-6, 6),)),
    Row("relu6", "relu6", C.ops.relu6, UNARY, (real(-8, 8),)),
    Row("hardsigmoid", "hardsigmoid", C.ops.hardsigmoid, UNARY, (real(-5, 5),)),
    Row("hardswish", "hardswish", C.ops.hardswish, UNARY, (real(-5, 5),)),
    Row("elu", "elu", lambda x: C.ops.elu(x, 0.7), UNARY, (real(-4, 4),)),
    Row("celu", "celu", lambda x: C.ops.celu(x, 0.7), UNARY, (real(-4, 4),)),
    Row("selu", "selu", C.ops.selu, UNARY, (real(-4, 4),)),
    Row("isnan", "isnan", C.ops.isnan, UNARY, (real(-4, 4),)),
    Row("isinf", "isinf", C.ops.isinf, UNARY, (real(-4, 4),)),
    Row("isfinite", "isfinite", C.ops.isfinite, UNARY, (real(-4, 4),)),
    Row("sin", "sin", C.sin, UNARY, (real(-4, 4),)),
    Row("cos", "cos", C.cos, UNARY, (real(-4, 4),)),
    Row("abs", "abs", C.abs, UNARY, (off_grid,)),
    Row("maximum", "maximum", C.maximum, BROADCAST_PAIR, (off_grid, on_grid)),
    Row("minimum", "minimum", C.minimum, ((B, 3), (3,)), (on_grid, off_grid)),
    Row("maximum_scalar", "maximum", lambda x: C.maximum(x, 0.5), UNARY, (off_grid,)),
    Row("where", "where", lambda c, a, b: C.where(c > 0, a, b), ((B, 3), (1, 3), (B, 1)), (nonzero, R, R)),
    Row("where_scalar_branch", "where", lambda c, a: C.where(c < 0, a, 0.0), ((B, 1), (3,)), (nonzero, R)),
    Row("clip", "clip", lambda x: C.clip(x, -0.5, 1.0), UNARY, (off_grid,)),
    Row("clip_tensor_bounds", "clip", C.clip, ((B, 3), (3,), (B, 1)), (off_grid, on_grid, on_grid)),
    Row("floor", "floor", lambda x: C.floor(x) * x, UNARY, (off_grid,)),  # times x: a zero gradient reads no weights
    Row("ceil", "ceil", lambda x: C.ceil(x) * x, UNARY, (off_grid,)),
    Row("round", "round", lambda x: C.round(x) * x, UNARY, (off_grid,)),
    Row("trunc", "trunc", lambda x: C.trunc(x) * x, UNARY, (off_grid,)),
    Row("sign", "sign", lambda x: C.sign(x) * x, UNARY, (off_grid,)),
    Row("remainder", "remainder", C.remainder, BROADCAST_PAIR, (off_grid, unit_divisor)),
    Row("mod_operator", "remainder", lambda a, b: a % b, PAIR, (real(-30, 30), nonzero)),
    Row("fmod", "fmod", C.fmod, BROADCAST_PAIR, (off_grid, unit_divisor)),
    Row("floor_divide", "floor_divide", lambda a, b: C.floor_divide(a, b) * a, BROADCAST_PAIR, (off_grid, unit_divisor)),
    Row("floordiv_operator", "floor_divide", lambda a, b: (a // b) * b, PAIR, (real(-30, 30), nonzero)),
    Row("copysign", "copysign", C.copysign, BROADCAST_PAIR, (R, nonzero)),
    Row("tan", "tan", C.tan, UNARY, (real(-1.2, 1.2),)),
    Row("asin", "asin", C.asin, UNARY, (real(-0.9, 0.9),)),
    Row("acos", "acos", C.acos, UNARY, (real(-0.9, 0.9),)),
    Row("atan", "atan", C.atan, UNARY, (real(-10, 10),)),
    Row("atan2", "atan2", C.atan2, BROADCAST_PAIR, (nonzero,)),
    Row("sinh", "sinh", C.sinh, UNARY, (real(-5, 5),)),
    Row("cosh", "cosh", C.cosh, UNARY, (real(-5, 5),)),
    Row("asinh", "asinh", C.asinh, UNARY, (real(-10, 10),)),
    Row("acosh", "acosh", C.acosh, UNARY, (real(1.1, 10),)),
    Row("atanh", "atanh", C.atanh, UNARY, (real(-0.9, 0.9),)),
    Row("erf", "erf", C.erf, UNARY, (real(-3, 3),)),
    Row("log1p", "log1p", C.log1p, UNARY, (real(-0.9, 5),)),
    Row("expm1", "expm1", C.expm1, UNARY, (real(-5, 5),)),
    Row("less", "less", lambda a, b: a < b, BROADCAST_PAIR, (small_integers,)),
    Row("less_equal", "less_equal", lambda a, b: a <= b, BROADCAST_PAIR, (small_integers,)),
    Row("greater", "greater", lambda a, b: a > b, BROADCAST_PAIR, (small_integers,)),
    Row("greater_equal", "greater_equal", lambda a, b: a >= b, BROADCAST_PAIR, (small_integers,)),
    Row("equal", "equal", C.equal, BROADCAST_PAIR, (small_integers,)),
    Row("not_equal", "not_equal", C.not_equal, BROADCAST_PAIR, (small_integers,)),
    Row("comparison_as_mask", "greater", lambda a, b: (a > b).astype(a.dtype) * a, PAIR, (off_grid, on_grid)),
    # arithmetic
    Row("add", "add", lambda a, b: a + b, BROADCAST_PAIR, (R,)),
    Row("sub", "sub", lambda a, b: a - b, ((3,), (B, 3)), (R,)),
    Row("mul", "mul", lambda a, b: a * b, BROADCAST_PAIR, (R,)),
    Row("div", "div", lambda a, b: a / b, BROADCAST_PAIR, (R, nonzero)),
    Row("pow", "pow", lambda a, b: a ** b, BROADCAST_PAIR, (P, R)),
    Row("neg", "neg", lambda a: -a, UNARY, (R,)),
    Row("scalar_left_operands", "arithmetic", lambda a: 2.0 - a + 3 * a - 1.5 / a + 2.0 ** a, UNARY, (nonzero,)),
    Row("integer_powers", "arithmetic", lambda a: a ** 2 + a ** 3 - a ** -1, UNARY, (nonzero,)),
    Row("fractional_power", "arithmetic", lambda a: a ** 0.5 + a ** 1.5, UNARY, (P,)),
    # dtypes
    Row("astype_float32", "astype", lambda a: a.astype("float32") * 3, UNARY, (R,)),
    Row("astype_float64", "astype", lambda a: a.astype("float64") * 3, UNARY, (R,)),
    Row("astype_int32", "astype", lambda a: a.astype("int32"), UNARY, (real(-100, 100),)),
    Row("astype_from_int64", "astype", lambda a, n: a * n.astype(a.dtype), PAIR, (R, labels(7)), (F, "int64")),
    Row("one_hot", "one_hot", lambda n: C.one_hot(n, 4), ((B,),), (labels(4),), ("int64",)),
    # user maps
    Row("swish", "elementwise", swish, UNARY, (real(-6, 6),)),
    Row("user_binary", "elementwise", damped, BROADCAST_PAIR, (R,)),
    # contractions
    Row("matmul_vector_vector", "matmul", C.matmul, ((B,), (B,)), (R,)),
    Row("matmul_matrix_vector", "matmul", C.matmul, ((B, 4), (4,)), (R,)),
    Row("matmul_vector_matrix", "matmul", C.matmul, ((4,), (4, B)), (R,)),
    Row("matmul_2d", "matmul", lambda a, b: a @ b, ((B, 4), (4, 3)), (R,)),
    Row("matmul_2d_symbolic_inner", "matmul", C.matmul, ((3, B), (B, 2)), (R,)),
    Row("matmul_batched", "matmul", C.matmul, ((B, 2, 3), (B, 3, 4)), (R,)),
    Row("matmul_broadcast_batch", "matmul", C.matmul, ((B, 1, 2, 4), (3, 4, 5)), (R,)),
    Row("matmul_broadcast_batch_right", "matmul", C.matmul, ((2, 3), (B, 3, 4)), (R,)),
    Row("einsum_outer", "einsum", lambda a, b: C.einsum("i,j->ij", a, b), ((B,), (3,)), (R,)),
    Row("einsum_batched", "einsum", lambda a, b: C.einsum("bij,bjk->bik", a, b), ((B, 2, 3), (B, 3, 4)), (R,)),
    Row("einsum_sum_only_index", "einsum", lambda a, b: C.einsum("ijk,jl->il", a, b), ((B, 3, 2), (3, 4)), (R,)),
    Row("einsum_three_operands", "einsum", lambda a, b, c: C.einsum("ij,jk,kl->il", a, b, c),
        ((B, 3), (3, 4), (4, 2)), (R,)),
    Row("einsum_symbolic_in_output_group", "einsum", lambda a, b: C.einsum("bi,j->bij", a, b), ((B, 2), (3,)), (R,)),
    Row("einsum_symbolic_in_contracted_group", "einsum", lambda a, b: C.einsum("bxi,bxj->ij", a, b),
        ((B, 2, 3), (B, 2, 4)), (R,)),
    Row("einsum_rowwise_dot", "einsum", lambda a, b: C.einsum("bi,bi->b", a, b), ((B, 3), (B, 3)), (R,)),
    Row("einsum_full_sum", "einsum", lambda a: C.einsum("ij->", a), ((B, 3),), (R,)),
    Row("einsum_transpose", "einsum", lambda a: C.einsum("ij->ji", a), ((B, 3),), (R,)),
    Row("einsum_implicit", "einsum", lambda a, b: C.einsum("ij,jk", a, b), ((B, 3), (3, 2)), (R,)),
    # layout
    Row("concat", "concat", lambda a, b: C.concat([a, b], axis=1), ((B, 2), (B, 3)), (R,)),
    Row("concat_three_last_axis", "concat", lambda a, b, c: C.concat([a, b, c], axis=-1),
        ((B, 2, 1), (B, 2, 3), (B, 2, 2)), (R,)),
    Row("stack", "stack", lambda a, b: C.stack([a, b], axis=0), PAIR, (R,)),
    Row("stack_last_axis", "stack", lambda a, b: C.stack([a, b], axis=-1), PAIR, (R,)),
    Row("broadcast_to", "broadcast_to", lambda a: C.broadcast_to(a, (B, 4)), ((B, 1),), (R,)),
    Row("broadcast_to_new_axes", "broadcast_to", lambda a, b: C.broadcast_to(a, (2, B, 3)) * b,
        ((3,), (B, 3)), (R,)),
    Row("reshape_merge", "reshape", lambda a: C.reshape(a, (B, 6)), ((B, 2, 3),), (R,)),
    Row("reshape_split", "reshape", lambda a: a.reshape(B, 3, 2), ((B, 6),), (R,)),
    Row("reshape_symbolic_product", "reshape", lambda a: (C.tanh(a.reshape(-1, 3)) * 2).reshape(B, 6), ((B, 2, 3),), (R,)),
    Row("reshape_symbolic_product_back", "reshape", lambda a: a.reshape(-1, 3).mean(0) + a.reshape(B, 6).sum(1).sum(),
        ((B, 2, 3),), (R,)),
    Row("reshape_unit_axes", "reshape", lambda a: a.reshape(1, B, 1, 3), ((B, 3),), (R,)),
    Row("reshape_of_transpose", "reshape", lambda a: C.transpose(a, (0, 2, 1)).reshape(B, 6), ((B, 2, 3),), (R,)),
    Row("reshape_of_map", "reshape", lambda a: C.tanh(a).reshape(B, 6) * 2, ((B, 2, 3),), (R,)),
    Row("transpose", "transpose", lambda a: C.transpose(a, (2, 0, 1)), ((B, 2, 3),), (R,)),
    Row("transpose_T", "transpose", lambda a: a.T, ((B, 3),), (R,)),
    Row("getitem_int", "getitem", lambda a: a[:, 1], ((B, 4, 3),), (R,)),
    Row("getitem_slices", "getitem", lambda a: a[:, 1:3, -2:], ((B, 4, 3),), (R,)),
    Row("getitem_ellipsis_none", "getitem", lambda a: a[..., None, 0], ((B, 4, 3),), (R,)),
    Row("getitem_negative", "getitem", lambda a: a[:, -1, :2], ((B, 4, 3),), (R,)),
    Row("getitem_strided", "getitem", lambda a: a[:, ::2, 2:0:-1], ((B, 5, 3),), (R,)),
    Row("getitem_reversed", "getitem", lambda a: a[:, ::-1], ((B, 4),), (R,)),
    Row("pad_constant", "pad", lambda a: C.pad(a, ((0, 0), (1, 2)), value=0.5), ((B, 3),), (R,)),
    Row("pad_reflect", "pad", lambda a: C.pad(a, ((0, 0), (2, 1)), "reflect"), ((B, 4),), (R,)),
    Row("pad_replicate", "pad", lambda a: C.pad(a, ((0, 0), (1, 3)), "replicate"), ((B, 3),), (R,)),
    Row("pad_circular", "pad", lambda a: C.pad(a, ((0, 0), (3, 1)), "circular"), ((B, 4),), (R,)),
    Row("flip", "flip", lambda a: C.flip(a, -1), ((B, 2, 3),), (R,)),
    Row("roll", "roll", lambda a: C.roll(a, -2, 1), ((B, 5),), (R,)),
    Row("tile", "tile", lambda a: C.tile(a, (1, 2, 3)), ((B, 2, 2),), (R,)),
    Row("repeat", "repeat", lambda a: C.repeat(a, 2, axis=1), ((B, 3),), (R,)),
    Row("diagonal", "diagonal", lambda a: C.diagonal(a, 1, 1, 2), ((B, 3, 4),), (R,)),
    Row("tril", "tril", lambda a: C.tril(a, -1), ((B, 3, 3),), (R,)),
    Row("triu", "triu", C.triu, ((B, 3, 4),), (R,)),
    Row("einsum_repeated_index", "einsum", lambda a: C.einsum("bii->bi", a), ((B, 3, 3),), (R,)),
    Row("einsum_ellipsis", "einsum", lambda a, b: C.einsum("...ij,jk->...ik", a, b), ((B, 2, 3), (3, 4)), (R,)),
    # reductions
    Row("sum_all", "sum", lambda a: a.sum(), ((B, 3, 4),), (R,)),
    Row("sum_batch_axis", "sum", lambda a: C.sum(a, axis=0), ((B, 3, 4),), (R,)),
    Row("sum_inner_keepdims", "sum", lambda a: a.sum(axis=1, keepdims=True), ((B, 3, 4),), (R,)),
    Row("sum_two_axes", "sum", lambda a: a.sum(axis=(0, 2)), ((B, 3, 4),), (R,)),
    Row("mean_all", "mean", lambda a: a.mean(), ((B, 3, 4),), (R,)),
    Row("mean_batch_axis_keepdims", "mean", lambda a: C.mean(a, axis=0, keepdims=True), ((B, 3, 4),), (R,)),
    Row("mean_last_axis", "mean", lambda a: a.mean(axis=-1), ((B, 3, 4),), (R,)),
    Row("max_all", "max", lambda a: a.max(), ((B, 3, 4),), (R,)),
    Row("max_batch_axis", "max", lambda a: C.max(a, axis=0), ((B, 3, 4),), (R,)),
    Row("max_last_axis_keepdims", "max", lambda a: a.max(axis=-1, keepdims=True), ((B, 3, 4),), (R,)),
    Row("max_ties", "max", lambda a: a.max(axis=1), ((B, 5),), (small_integers,)),
    Row("min_last_axis", "min", lambda a: C.min(a, -1), ((B, 5),), (R,)),
    Row("min_ties_batch_axis", "min", lambda a: a.min(axis=0), ((B, 4),), (small_integers,)),
    Row("prod_last_axis", "prod", lambda a: C.prod(a, -1), ((B, 5),), (R,)),
    Row("var", "var", lambda a: C.var(a, 1), ((B, 4),), (R,)),
    Row("std", "std", lambda a: C.std(a, -1, correction=0), ((B, 4),), (R,)),
    Row("any", "any", lambda a: C.any(a > 1, axis=1), ((B, 4),), (R,)),
    Row("all", "all", lambda a: C.all(a, axis=-1), ((B, 3),), (small_integers,)),
    Row("argmax", "argmax", lambda a: C.argmax(a, 1), ((B, 5),), (small_integers,)),
    Row("argmin", "argmin", lambda a: C.argmin(a, -1), ((B, 5),), (small_integers,)),
    Row("cumsum", "cumsum", lambda a: C.cumsum(a, 1), ((B, 6),), (R,)),
    Row("cumprod", "cumprod", lambda a: C.cumprod(a, 1), ((B, 5),), (R,)),
    Row("sort", "sort", lambda a: C.sort(a, -1), ((B, 5),), (R,)),
    Row("argsort", "argsort", lambda a: C.argsort(a, -1), ((B, 5),), (small_integers,)),
    Row("topk", "topk", lambda a: C.topk(a, 2)[0], ((B, 5),), (R,)),
    Row("cummax", "cummax", lambda a: C.cummax(a, 1)[0], ((B, 4),), (R,)),
    Row("cummin_ties", "cummin", lambda a: C.cummin(a, -1)[0], ((B, 3),), (small_integers,)),
    Row("logcumsumexp", "logcumsumexp", lambda a: C.logcumsumexp(a, 1), ((B, 4),), (real(-50, 50),)),
    Row("cosine_similarity_broadcast", "cosine_similarity", C.cosine_similarity, ((B, 4), (4,)), (nonzero,)),
    Row("normalize_p3", "normalize", lambda a: C.normalize(a, 3.0), ((B, 4),), (nonzero,)),
    # composites
    Row("softmax", "softmax", C.softmax, ((B, 5),), (real(-10, 10),)),
    Row("softmax_batch_axis", "softmax", lambda a: C.softmax(a, axis=0), ((B, 5),), (real(-10, 10),)),
    Row("log_softmax", "log_softmax", C.log_softmax, ((B, 5),), (real(-10, 10),)),
    Row("logsumexp_all", "logsumexp", C.logsumexp, ((B, 5),), (real(-10, 10),)),
    Row("logsumexp_keepdims", "logsumexp", lambda a: C.logsumexp(a, axis=1, keepdims=True), ((B, 5),),
        (real(-50, 50),)),
    Row("mse", "mse", C.mse, PAIR, (R,)),
    Row("mse_broadcast", "mse", C.mse, ((B, 3), (3,)), (R,)),
    Row("cross_entropy", "cross_entropy", C.cross_entropy, ((B, 5), (B,)), (real(-10, 10), labels(5)), (F, "int64")),
    Row("cross_entropy_int32_labels", "cross_entropy", C.cross_entropy, ((B, 5), (B,)), (real(-10, 10), labels(5)),
        (F, "int32")),
    Row("cross_entropy_3d", "cross_entropy", C.cross_entropy, ((B, 3, 5), (B, 3)), (real(-10, 10), labels(5)),
        (F, "int64")),
    Row("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits", C.binary_cross_entropy_with_logits,
        PAIR, (real(-30, 30), unit)),
    # torch's other losses, away from their kinks (tests/test_losses_torch.py has them, against torch)
    Row("nll_loss_weighted", "nll_loss", lambda lp, y: C.nll_loss(lp, y, np.linspace(0.5, 2, 5), ignore_index=-1),
        ((B, 5), (B,)), (real(-10, 0), labels(5)), (F, "int64")),
    Row("l1_loss", "l1_loss", C.l1_loss, PAIR, (off_grid, on_grid)),
    Row("smooth_l1_loss_broadcast", "smooth_l1_loss", lambda x, y: C.smooth_l1_loss(x, y, beta=0.5), ((B, 3), (3,)),
        (off_grid, on_grid)),
    Row("huber_loss", "huber_loss", lambda x, y: C.huber_loss(x, y, "none", delta=1.5), PAIR, (off_grid, on_grid)),
    Row("kl_div_batchmean", "kl_div", lambda x, t: C.kl_div(x, t, "batchmean"), PAIR, (real(-5, 0), real(0.01, 1))),
    Row("binary_cross_entropy", "binary_cross_entropy", C.binary_cross_entropy, PAIR, (real(0.01, 0.99), unit)),
    Row("stop_gradient", "stop_gradient", lambda a, b: C.stop_gradient(a) * b, BROADCAST_PAIR, (R,)),
    Row("batch_norm_2d", "batch_norm", batch_norm_row, ((B, 3), (3,), (3,)), (R,), min_batch=2),
    Row("batch_norm_3d", "batch_norm", batch_norm_row, ((B, 3, 4), (3,), (3,)), (R,)),
    Row("batch_norm_4d", "batch_norm", batch_norm_row, ((B, 2, 3, 3), (2,), (2,)), (R,)),
    Row("group_norm", "group_norm", lambda x, w, b: C.group_norm(x, 2, w, b), ((B, 4, 3, 2), (4,), (4,)), (R,)),
    Row("instance_norm", "instance_norm", instance_norm_row, ((B, 3, 4),), (R,)),
    Row("layer_norm", "layer_norm", C.layer_norm, ((B, 3, 5), (5,), (5,)), (R,)),
    Row("layer_norm_no_affine", "layer_norm", lambda x: C.layer_norm(x, None, None, eps=0.1), ((B, 4),), (R,)),
    Row("rms_norm", "rms_norm", C.rms_norm, ((B, 3, 5), (5,)), (R,)),
    Row("rms_norm_no_gamma", "rms_norm", lambda x: C.rms_norm(x, None, eps=0.1), ((B, 4),), (R,)),
    Row("attention", "scaled_dot_product_attention", C.scaled_dot_product_attention,
        ((B, 4, 3), (B, 5, 3), (B, 5, 2)), (R,)),
    Row("attention_causal_heads", "scaled_dot_product_attention",
        lambda q, k, v: C.scaled_dot_product_attention(q, k, v, causal=True), ((B, 2, 4, 3), (B, 2, 4, 3), (B, 2, 4, 3)),
        (R,)),
    Row("attention_bool_mask", "scaled_dot_product_attention", C.scaled_dot_product_attention,
        ((B, 4, 3), (B, 5, 3), (B, 5, 2), (B, 4, 5)), (R, R, R, attention_mask), (F, F, F, "bool")),
    Row("attention_additive_mask_shared_keys_causal", "scaled_dot_product_attention",
        lambda q, k, v, m: C.scaled_dot_product_attention(q, k, v, m, causal=True), ((B, 4, 3), (5, 3), (5, 2), (4, 5)),
        (R, R, R, additive_mask)),
    Row("dropout", "dropout", lambda a: C.ops.dropout(a, 0.3), ((B, 4),), (R,)),
    Row("dropout_of_a_map_times_a_broadcast", "dropout", lambda a, b: C.ops.dropout(C.tanh(a), 0.5) * b,
        ((B, 2, 3), (3,)), (R,)),
    Row("composite_chain", "composite", lambda x, w: C.tanh(x @ w).sum(axis=-1) * C.sigmoid(x).mean(),
        ((B, 4), (4, 3)), (R,)),
    # convolution and pooling (x (batch, C, *spatial), w (O, C/groups, *kernel), b (O,))
    Row("conv2d", "conv2d", C.conv2d, ((B, 2, 5, 6), (3, 2, 3, 3), (3,)), (R,)),
    Row("conv_transpose2d", "conv_transpose2d", lambda x, w, b: C.ops.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                                                         output_padding=1),
        ((B, 2, 4, 3), (2, 3, 3, 3), (3,)), (R,)),
    Row("conv_transpose1d", "conv_transpose1d", lambda x, w, b: C.ops.conv_transpose1d(x, w, b, stride=2, padding=1,
                                                                                         output_padding=1),
        ((B, 2, 3), (2, 2, 3), (2,)), (R,)),
    Row("conv_transpose2d_groups", "conv_transpose2d",
        lambda x, w: C.ops.conv_transpose2d(x, w, stride=(1, 2), groups=2, dilation=2), ((B, 4, 3, 3), (4, 1, 2, 3)),
        (R,)),
    Row("conv2d_no_bias", "conv2d", C.conv2d, ((B, 2, 5, 4), (3, 2, 2, 3)), (R,)),
    Row("conv2d_stride2", "conv2d", lambda x, w, b: C.conv2d(x, w, b, stride=2), ((B, 2, 7, 6), (3, 2, 3, 3), (3,)),
        (R,)),
    Row("conv2d_padding1", "conv2d", lambda x, w, b: C.conv2d(x, w, b, padding=1), ((B, 2, 4, 5), (3, 2, 3, 3), (3,)),
        (R,)),
    Row("conv2d_dilation2", "conv2d", lambda x, w: C.conv2d(x, w, dilation=2), ((B, 2, 6, 7), (2, 2, 2, 3)), (R,)),
    Row("conv2d_groups2", "conv2d", lambda x, w, b: C.conv2d(x, w, b, groups=2), ((B, 4, 5, 5), (6, 2, 3, 3), (6,)),
        (R,)),
    Row("conv2d_depthwise", "conv2d", lambda x, w: C.conv2d(x, w, padding=1, groups=3), ((B, 3, 4, 4), (3, 1, 3, 3)),
        (R,)),
    Row("conv2d_same_even_kernel", "conv2d", lambda x, w, b: C.conv2d(x, w, b, padding="same"),
        ((B, 2, 5, 4), (3, 2, 2, 4), (3,)), (R,)),
    Row("conv2d_mixed_pairs", "conv2d", lambda x, w, b: C.conv2d(x, w, b, stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
        ((B, 2, 6, 5), (2, 2, 3, 2), (2,)), (R,)),
    Row("conv2d_relu", "conv2d", lambda x, w, b: C.relu(C.conv2d(x, w, b, padding=1)),
        ((B, 1, 5, 5), (4, 1, 3, 3), (4,)), (R,)),
    Row("conv1d", "conv1d", C.conv1d, ((B, 3, 7), (4, 3, 3), (4,)), (R,)),
    Row("conv1d_no_bias", "conv1d", C.conv1d, ((B, 2, 5), (3, 2, 2)), (R,)),
    Row("conv1d_stride2_padding1", "conv1d", lambda x, w, b: C.conv1d(x, w, b, stride=2, padding=1),
        ((B, 2, 8), (3, 2, 3), (3,)), (R,)),
    Row("conv1d_dilation2", "conv1d", lambda x, w: C.conv1d(x, w, dilation=2), ((B, 2, 9), (3, 2, 3)), (R,)),
    Row("conv1d_groups2_same", "conv1d", lambda x, w, b: C.conv1d(x, w, b, padding="same", groups=2),
        ((B, 4, 6), (4, 2, 4), (4,)), (R,)),
    Row("max_pool2d", "max_pool2d", lambda x: C.max_pool2d(x, 2), ((B, 3, 6, 4),), (R,)),
    Row("max_pool2d_ties", "max_pool2d", lambda x: C.max_pool2d(x, 2), ((B, 2, 4, 6),), (small_integers,)),
    Row("max_pool2d_overlapping_padded_ties", "max_pool2d", lambda x: C.max_pool2d(x, 3, stride=2, padding=1),
        ((B, 2, 5, 6),), (small_integers,)),
    Row("max_pool2d_rectangular", "max_pool2d", lambda x: C.max_pool2d(x, (2, 3), stride=(1, 2)), ((B, 2, 5, 7),),
        (R,)),
    Row("max_pool2d_large_window_ties", "max_pool2d", lambda x: C.max_pool2d(x, (5, 4), stride=(2, 3), padding=(2, 1)),
        ((B, 2, 8, 7),), (small_integers,)),  # more than 16 taps: a reduction over the taps
    Row("max_pool2d_large_window", "max_pool2d", lambda x: C.max_pool2d(x, 5, stride=1), ((B, 1, 6, 7),), (R,)),
    Row("avg_pool2d", "avg_pool2d", lambda x: C.avg_pool2d(x, 2), ((B, 3, 6, 4),), (R,)),
    # windows that tile the input leave its last rows and columns out when the kernel does not divide it
    Row("max_pool2d_tiles_remainder", "max_pool2d", lambda x: C.max_pool2d(x, (2, 3)), ((B, 2, 7, 8),), (R,)),
    Row("avg_pool2d_tiles_remainder", "avg_pool2d", lambda x: C.avg_pool2d(x, 3), ((B, 2, 7, 5),), (R,)),
    Row("avg_pool2d_large_window_exclude_pad", "avg_pool2d",
        lambda x: C.avg_pool2d(x, (4, 5), stride=2, padding=2, count_include_pad=False), ((B, 2, 7, 6),), (R,)),
    Row("avg_pool2d_padded", "avg_pool2d", lambda x: C.avg_pool2d(x, 3, stride=2, padding=1), ((B, 2, 5, 6),), (R,)),
    Row("avg_pool2d_exclude_pad", "avg_pool2d",
        lambda x: C.avg_pool2d(x, (3, 2), stride=(2, 1), padding=1, count_include_pad=False), ((B, 2, 5, 6),), (R,)),
    # ceil_mode (a last window reading past the input), dilation, 1-d pooling, adaptive bins that overlap
    Row("max_pool1d_ceil_mode_dilation_ties", "max_pool1d",
        lambda x: C.max_pool1d(x, 3, stride=2, padding=1, dilation=2, ceil_mode=True), ((B, 2, 8),), (small_integers,)),
    Row("avg_pool1d_ceil_mode_exclude_pad", "avg_pool1d",
        lambda x: C.avg_pool1d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), ((B, 2, 8),), (R,)),
    Row("adaptive_avg_pool2d", "adaptive_avg_pool2d", lambda x: C.adaptive_avg_pool2d(x, (3, 2)), ((B, 2, 5, 5),),
        (R,)),
    Row("adaptive_max_pool2d_ties", "adaptive_max_pool2d", lambda x: C.adaptive_max_pool2d(x, (3, 2)), ((B, 2, 5, 5),),
        (small_integers,)),
    Row("adaptive_avg_pool1d", "adaptive_avg_pool1d", lambda x: C.adaptive_avg_pool1d(x, 4), ((B, 2, 7),), (R,)),
    Row("flatten", "flatten", C.flatten, ((B, 2, 3, 4),), (R,)),
    Row("flatten_inner", "flatten", lambda x: C.flatten(x, 2, 3) * 2, ((B, 2, 3, 4, 2),), (R,)),
    # gathers read inside the consumer's loop; their gradients are scatter-add kernels (ids repeat)
    Row("take", "take", lambda a, i: C.take(a, i, 0), ((5, 3), (B, 4)), (R, labels(5)), (F, "int64")),
    Row("take_batch_axis", "take", lambda a, i: C.take(C.tanh(a), i, 1) * 2, ((B, 6, 3), (8,)), (R, labels(6)),
        (F, "int32")),
    Row("take_of_a_transpose", "take", lambda a, i: C.take(a.T, i, 0), ((3, 5), (B,)), (R, labels(5)), (F, "int64")),
    Row("take_along_axis", "take_along_axis", lambda a, i: C.take_along_axis(a, i, 1), ((B, 5), (B, 3)),
        (R, labels(5)), (F, "int64")),
    Row("take_along_axis_broadcast", "take_along_axis", lambda a, i: C.take_along_axis(a, i, 1),
        ((B, 4, 3), (B, 6, 1)), (R, labels(4)), (F, "int64")),
    Row("embedding", "embedding", C.embedding, ((7, 4), (B, 3)), (R, labels(7)), (F, "int64")),
    Row("embedding_padded", "embedding", lambda t, i: C.pad(C.embedding(t, i), ((0, 0), (1, 1), (2, 0))) + 1,
        ((7, 4), (B, 3)), (R, labels(7)), (F, "int64")),
    Row("index_add", "index_add", lambda a, i, s: C.index_add(a, 0, i, s), ((6, 3), (B,), (B, 3)),
        (R, labels(6), R), (F, "int64", F)),
    Row("index_add_batch_tensor", "index_add", lambda a, i, s: C.index_add(C.exp(a), 1, i, s * 2),
        ((B, 5), (7,), (B, 7)), (R, labels(5), R), (F, "int64", F)),
    Row("scatter_add", "scatter_add", lambda a, i, s: C.scatter_add(a, 1, i, s), ((B, 5), (B, 4), (B, 4)),
        (R, labels(5), R), (F, "int64", F)),
    # resampling: integer nearest upsampling is a broadcast, other factors and linear modes gathers
    Row("interpolate_nearest", "interpolate", lambda x: C.tanh(C.interpolate(x, scale_factor=(2, 1.5))),
        ((B, 2, 3, 4),), (R,)),
    Row("interpolate_bilinear", "interpolate", lambda x: C.interpolate(x, size=(5, 9), mode="bilinear"),
        ((B, 2, 3, 7),), (R,)),
    Row("pixel_shuffle", "pixel_shuffle", lambda x: C.pixel_shuffle(x, 2), ((B, 8, 2, 3),), (R,)),
    Row("pixel_unshuffle", "pixel_unshuffle", lambda x: C.pixel_unshuffle(x, 2) * 2, ((B, 2, 4, 6),), (R,)),
]

ROW_IDS = [row.name for row in ROWS]
assert len(set(ROW_IDS)) == len(ROW_IDS)
