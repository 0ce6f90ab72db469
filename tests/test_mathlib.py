"""The IR math functions (compiler.codegen.mathlib) against NumPy.

Every function runs in a JIT-compiled loop `y[i] = f(x[i])`, float32 and
float64, over magnitudes from 1e-30 to 1e30 (and the float64 range), both
signs, random values, subnormals, overflow thresholds and special values.
Errors are measured against NumPy evaluated in float64 on the same inputs.
"""
from __future__ import annotations

import math
import re

import llvmlite.ir as ir
import numpy as np
import pytest

from compiler.codegen.mathlib import FUNCTIONS, math_call
from jit_loops import IR_TYPES, jit_loops, loop_function
from runtime.engine import Engine

DTYPES = (np.float32, np.float64)
UNARY = ["cos", "erf", "exp", "expm1", "log", "log1p", "sigmoid", "sin", "softplus", "sqrt", "tanh"]
# the functions computed in double, fmod, remainder and floor_divide: tests/test_scalar_functions.py


# ---------------------------------------------------------------- JIT helpers

def elementwise_loop(module, name, ty, arity, body):
    """void name(ty* x0, ..., ty* y, i64 n): y[i] = body(builder, [x0[i], ...])."""
    return loop_function(module, name, ty, arity, 1, lambda b, xs: [body(b, xs)])


@pytest.fixture(scope="module")
def kernels():
    specs = {}
    for dtype in DTYPES:
        for name in UNARY:
            specs[name, dtype] = (dtype, 1, lambda b, xs, name=name: math_call(b, name, xs))
        specs["pow", dtype] = (dtype, 2, lambda b, xs: math_call(b, "pow", xs))
    loops = jit_loops({key: (dtype, arity, 1, lambda b, xs, f=body: [f(b, xs)])
                       for key, (dtype, arity, body) in specs.items()}, "test_mathlib")
    return {key: (lambda *arrays, run=run: run(*arrays)[0]) for key, run in loops.items()}


# ---------------------------------------------------------------- oracles

def _sigmoid(x):
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


REFERENCES = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "erf": np.vectorize(math.erf, otypes=[float]),
    "sin": np.sin,
    "cos": np.cos,
    "sqrt": np.sqrt,
}

# (relative tolerance, absolute tolerance); float64 references are NumPy's
# own float64 functions, good to ~1 ulp, so float64 bounds include their error.
TOLERANCES = {
    np.float32: {
        "exp": (2.5e-7, 0), "log": (2.5e-7, 0), "log1p": (2.5e-7, 0), "sigmoid": (2.5e-7, 0),
        "softplus": (2.5e-7, 0), "expm1": (4e-7, 0), "tanh": (4e-7, 0), "erf": (4e-7, 0),
        "sin": (0, 2e-7), "cos": (0, 2e-7), "sqrt": (6e-8, 0),
    },
    np.float64: {
        "exp": (6e-16, 0), "log": (6e-16, 0), "log1p": (6e-16, 0), "sigmoid": (1e-15, 0),
        "softplus": (1e-15, 0), "expm1": (1e-15, 0), "tanh": (1e-15, 0), "erf": (1e-15, 0),
        "sin": (0, 4e-16), "cos": (0, 4e-16), "sqrt": (1.2e-16, 0),
    },
}


def wide_inputs(dtype, seed=0):
    rng = np.random.default_rng(seed)
    magnitudes = [np.logspace(-30, 30, 3001)]
    if dtype == np.float64:
        magnitudes.append(np.logspace(-320, 308, 2001))
    else:
        magnitudes.append(np.logspace(-45, 38, 1001))
    magnitudes = np.concatenate(magnitudes)
    finfo = np.finfo(dtype)
    log_max = math.log(float(finfo.max))
    log_min = math.log(float(finfo.smallest_subnormal))
    thresholds = np.array([log_max, log_min, math.log(float(finfo.tiny)), 0.5 * log_max, -0.5 * log_max])
    thresholds = np.concatenate([thresholds * (1 + d) for d in (-1e-6, -1e-7, 0, 1e-7, 1e-6)])
    values = np.concatenate([
        magnitudes, -magnitudes, thresholds, -thresholds,
        rng.normal(size=5000) * 3, rng.uniform(-100, 100, 5000), rng.uniform(-1000, 1000, 2000),
        rng.uniform(-1, 1, 2000) * 1e-3, [finfo.smallest_subnormal, finfo.tiny, finfo.max],
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, math.log(2), 0.35, -0.35],
    ])
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def assert_close(got, ref, x, dtype, rtol, atol, what):
    """NaN where the reference is NaN, equal infinities, elsewhere
    |got - ref| <= rtol |ref| + atol (+ one subnormal step for tiny results)."""
    with np.errstate(over="ignore"):
        ref_rounded = ref.astype(dtype)
    got64 = got.astype(np.float64)
    nan_mismatch = np.isnan(got64) != np.isnan(ref_rounded)
    assert not nan_mismatch.any(), (
        f"{what}: NaN mismatch at x={x[nan_mismatch][:5]}: got {got[nan_mismatch][:5]}, "
        f"numpy {ref[nan_mismatch][:5]}")
    bound = rtol * np.abs(ref) + atol + 2 * float(np.finfo(dtype).smallest_subnormal)
    with np.errstate(invalid="ignore"):
        error = np.abs(got64 - ref)
        within = error <= bound
    overflows = np.isinf(ref_rounded)  # the correctly rounded result is infinite
    inf_mismatch = overflows & (got64 != ref_rounded) & ~within
    assert not inf_mismatch.any(), (
        f"{what}: infinity mismatch at x={x[inf_mismatch][:5]}: got {got[inf_mismatch][:5]}")
    finite = np.isfinite(ref_rounded)
    x, got, ref, error, bound = x[finite], got[finite], ref[finite], error[finite], bound[finite]
    bad = ~(error <= bound)
    if bad.any():
        worst = np.argmax(np.where(bad, error / bound, 0))
        raise AssertionError(
            f"{what}: {bad.sum()} values out of tolerance; worst x={x[worst]!r} "
            f"got {got[worst]!r} numpy {ref[worst]!r} "
            f"(error {error[worst]:.3g}, bound {bound[worst]:.3g})")


# ---------------------------------------------------------------- accuracy

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", UNARY)
def test_matches_numpy_over_wide_ranges(kernels, name, dtype):
    x = wide_inputs(dtype)
    if name in ("sin", "cos"):
        x = np.concatenate([x[np.abs(x) <= 1e4], np.linspace(-1e4, 1e4, 20001, dtype=dtype),
                            np.array([np.inf, -np.inf, np.nan], dtype=dtype)])
    with np.errstate(all="ignore"):
        reference = REFERENCES[name](x.astype(np.float64))
    rtol, atol = TOLERANCES[dtype][name]
    assert_close(kernels[name, dtype](x), reference, x, dtype, rtol, atol, f"{name} {dtype.__name__}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_large_arguments(kernels, name, dtype):
    """The reduction runs in double: accurate up to 2**29, NaN beyond (documented)."""
    rng = np.random.default_rng(1)
    x = rng.uniform(1e4, 2.0**29, 20000).astype(dtype)
    atol = TOLERANCES[dtype][name][1]
    reference = getattr(np, name)(x.astype(np.float64))
    assert_close(kernels[name, dtype](x), reference, x, dtype, 0, atol, name)
    beyond = np.array([2.0**29, -1e12, 3e30], dtype=dtype)
    assert np.isnan(kernels[name, dtype](beyond)).all()


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", UNARY)
def test_special_values_exactly_as_numpy(kernels, name, dtype):
    x = SPECIAL.astype(dtype)
    with np.errstate(all="ignore"):
        expected = REFERENCES[name](SPECIAL).astype(dtype)
    got = kernels[name, dtype](x)
    same = (got == expected) & (np.signbit(got) == np.signbit(expected))
    same |= np.isnan(got) & np.isnan(expected)
    assert same.all(), f"{name}({x}) = {got}, numpy gives {expected}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_exp_overflow_and_underflow(kernels, dtype):
    finfo = np.finfo(dtype)
    log_max = math.log(float(finfo.max))
    log_min = math.log(float(finfo.smallest_subnormal))
    x = np.array([log_max * (1 - 1e-6), log_max * (1 + 1e-6), 1e4, log_min - 1, -1e4], dtype=dtype)
    got = kernels["exp", dtype](x)
    assert np.isfinite(got[0]) and got[0] > finfo.max / 2
    assert got[1] == np.inf and got[2] == np.inf
    assert got[3] == 0 and got[4] == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_sigmoid_and_softplus_far_tails(kernels, dtype):
    x = np.array([-100.0, -1000.0, 1000.0, 100.0], dtype=dtype)
    sigmoid = kernels["sigmoid", dtype](x)
    softplus = kernels["softplus", dtype](x)
    if dtype == np.float64:
        assert sigmoid[0] == pytest.approx(math.exp(-100) / (1 + math.exp(-100)), rel=1e-15)
    else:  # exp(-100) is a float32 subnormal: a tiny value, not a cancellation artefact
        assert 0 <= sigmoid[0] < 1e-43
    assert sigmoid[1] == 0 and sigmoid[2] == 1 and sigmoid[3] == 1
    assert softplus[2] == 1000 and softplus[3] == 100
    assert 0 <= float(softplus[1]) < 1e-300
    assert softplus[0] == pytest.approx(math.exp(-100), rel=1e-6, abs=2e-45)


# ---------------------------------------------------------------- pow

POW_CASES = [  # C99 / NumPy special cases
    (2, 3), (-2, 3), (-2, 2), (-2, 0.5), (-8, 1 / 3), (0, -1), (-0.0, -1), (-0.0, -2), (0, 0),
    (-0.0, 3), (0, 2.5), (np.inf, -2), (np.inf, 0.5), (-np.inf, 3), (-np.inf, 2), (-np.inf, -3),
    (1, np.nan), (1, np.inf), (-1, np.inf), (-1, -np.inf), (-1, 3), (0.5, -np.inf), (2, -np.inf),
    (0.5, np.inf), (2, np.inf), (np.nan, 0), (np.nan, 1), (3, np.nan), (-1, np.nan), (-3, 1e30),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_pow_special_cases(kernels, dtype):
    """Zeros, infinities, NaN and signs exactly as NumPy; ordinary results within 2 ulp."""
    a, b = (np.array(column, dtype=dtype) for column in zip(*POW_CASES))
    with np.errstate(all="ignore"):
        expected = np.power(a, b)
    got = kernels["pow", dtype](a, b)
    ordinary = np.isfinite(expected) & (expected != 0)
    same = (got == expected) & (np.signbit(got) == np.signbit(expected))
    same |= np.isnan(got) & np.isnan(expected)
    with np.errstate(invalid="ignore"):
        same |= ordinary & (np.abs(got - expected) <= 2 * np.finfo(dtype).eps * np.abs(expected))
    assert same.all(), list(zip(a[~same], b[~same], got[~same], expected[~same]))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_pow_random(kernels, dtype):
    """float32 goes through double: ~correctly rounded. float64 computes
    exp(b log|a|): relative error grows like |b log a| * 2**-53 (documented)."""
    rng = np.random.default_rng(2)
    a = np.exp(rng.uniform(-20, 20, 20000)) * rng.choice([1, -1], 20000)
    b = np.where(rng.uniform(size=20000) < 0.5, np.round(rng.uniform(-15, 15, 20000)),
                 rng.uniform(-15, 15, 20000))
    a, b = a.astype(dtype), b.astype(dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(all="ignore"):
        reference = np.power(a64, b64)
    if dtype == np.float32:
        rtol = 6e-8
    else:
        rtol = 2.3e-16 * (2 + np.abs(b64 * np.log(np.abs(a64))))
        finite = np.isfinite(reference)
        rtol = np.where(finite, rtol, 0)
    got = kernels["pow", dtype](a, b)
    assert_close(got, reference, a, dtype, rtol, 0, f"pow {dtype.__name__}")


# ---------------------------------------------------------------- code shape

def _optimised_assembly(name, dtype):
    module = ir.Module()
    elementwise_loop(module, "loop", IR_TYPES[dtype], 1, lambda b, xs: math_call(b, name, xs))
    engine = Engine.instance()
    optimised = engine.optimize(str(module))
    return str(optimised), engine.emit_assembly(optimised)


@pytest.mark.parametrize("name", ["exp", "tanh"])
def test_float32_loop_is_vectorised(name):
    ir_text, assembly = _optimised_assembly(name, np.float32)
    assert re.search(r"\b[yz]mm\d+\b", assembly), f"{name} loop has no vector registers"
    assert not re.search(r"call [^@]*@(?!llvm\.)", ir_text), f"{name} was not inlined"


def test_each_function_is_defined_once_per_module():
    module = ir.Module()

    def body(b, xs):
        once = math_call(b, "softplus", xs)
        return math_call(b, "softplus", [math_call(b, "exp", [once])])

    elementwise_loop(module, "loop", ir.FloatType(), 1, body)
    text = str(module)
    assert text.count('define internal float @"symprop.softplusf"') == 1
    assert text.count('define internal float @"symprop.expf"') == 1
    assert text.count('define internal float @"symprop.logf"') == 1
    assert "alwaysinline" in text


def test_rejects_unknown_names_and_types():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.FloatType(), ir.IntType(32)]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    with pytest.raises(ValueError, match="unknown math function"):
        math_call(b, "gamma", [fn.args[0]])
    with pytest.raises(TypeError):
        math_call(b, "exp", [fn.args[1]])
