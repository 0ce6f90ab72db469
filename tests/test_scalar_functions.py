"""Rounding, division, sign, inverse-trigonometric and hyperbolic functions: every one
lowered, compared with NumPy, differentiated, and rejected when the compiler cannot lower it.

- mathlib: the functions computed in double (tan, atan, atan2, asin, acos, sinh, cosh,
  asinh, acosh, atanh) over the magnitudes of tests/test_mathlib.py; fmod, remainder and
  floor_divide bit for bit (the sign of zero included) on special values and on random
  pairs across the whole exponent range;
- scalar lowering: floor, ceil, round (halfway cases to even), trunc, sign, copysign bit
  for bit on edge values;
- compiler.ops end to end: compiled against compiler.evaluate and NumPy, float32 and
  float64; integer floor division and remainder stay integers;
- gradients: compiled against the evaluator's, and both against central differences
  (test_grad_ops.py has a row for each op too);
- a sympy function without a lowering is rejected when `elementwise` is called.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy

import compiler as C
from compiler.codegen.mathlib import math_call
from compiler.codegen.scalar import SUPPORTED, lower_expr, unsupported_functions
from compiler.errors import GraphError
from compiler.scalar_functions import Copysign, Ceil, Floor, Round, Trunc
from jit_loops import jit_loops
from test_mathlib import assert_close, wide_inputs

DTYPES = (np.float32, np.float64)
IDS = lambda d: d.__name__  # noqa: E731

UNARY = {  # name: (NumPy reference, float32 and float64 relative tolerance)
    "tan": np.tan, "atan": np.arctan, "asin": np.arcsin, "acos": np.arccos, "sinh": np.sinh,
    "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
}
BINARY = {"atan2": np.arctan2, "fmod": np.fmod, "remainder": np.remainder, "floor_divide": np.floor_divide}
# float32 is computed in double and rounded once: within one float32 ulp; float64 within ~2 ulp measured
RTOL = {np.float32: 1.2e-7, np.float64: 1e-15}

ROUNDING = {"floor": (Floor, np.floor), "ceil": (Ceil, np.ceil), "round": (Round, np.round),
            "trunc": (Trunc, np.trunc), "sign": (sympy.sign, np.sign)}


@pytest.fixture(scope="module")
def kernels():
    x, y = sympy.symbols("x y", real=True)
    specs = {}
    for dtype in DTYPES:
        for name in UNARY:
            specs[name, dtype] = (dtype, 1, 1, lambda b, xs, name=name: [math_call(b, name, xs)])
        for name in BINARY:
            specs[name, dtype] = (dtype, 2, 1, lambda b, xs, name=name: [math_call(b, name, xs)])
        for name, (function, _) in ROUNDING.items():
            specs[name, dtype] = (dtype, 1, 1, lambda b, xs, f=function: [
                lower_expr(b, f(x), {x: xs[0]}, xs[0].type)])
        specs["copysign", dtype] = (dtype, 2, 1, lambda b, xs: [
            lower_expr(b, Copysign(x, y), {x: xs[0], y: xs[1]}, xs[0].type)])
    loops = jit_loops(specs, "test_scalar_functions")
    return {key: (lambda *arrays, run=run: run(*arrays)[0]) for key, run in loops.items()}


def assert_identical(got, expected, inputs, what):
    """Equal values, equal signs of zero, NaN where NumPy gives NaN."""
    expected = np.asarray(expected, dtype=got.dtype)
    same = ((got == expected) & (np.signbit(got) == np.signbit(expected))) | (np.isnan(got) & np.isnan(expected))
    if not same.all():
        bad = ~same
        rows = list(zip(*[np.asarray(a)[bad][:6] for a in inputs], got[bad][:6], expected[bad][:6]))
        raise AssertionError(f"{what}: {bad.sum()} differ from NumPy (inputs..., got, numpy): {rows}")


def special_values(dtype):
    finfo = np.finfo(dtype)
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 1.5, -2.5, 2.5, 3.0, -7.0, 7.0, 1e-3,
              5.5, 2.0**60, -2.0**60, 1e30, -1e-30, float(finfo.max), -float(finfo.max), float(finfo.tiny),
              float(finfo.smallest_subnormal), -float(finfo.smallest_subnormal), math.pi, 0.1]
    with np.errstate(over="ignore"):
        return np.array(values, dtype=dtype)


# ---- the functions computed in double --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_numpy_over_wide_ranges(kernels, name, dtype):
    x = wide_inputs(dtype)
    if name == "tan":  # the sin/cos reduction: accurate below 2**29, NaN beyond (as sin and cos)
        x = np.concatenate([x[np.abs(x) < 2**28], np.array([np.inf, -np.inf, np.nan], dtype)])
    if name in ("asin", "acos", "atanh", "acosh"):  # the interesting part of the domain, densely
        x = np.concatenate([x, np.linspace(-1.2, 1.2, 24001).astype(dtype), np.linspace(1, 3, 4001).astype(dtype)])
    with np.errstate(all="ignore"):
        reference = UNARY[name](x.astype(np.float64))
    assert_close(kernels[name, dtype](x), reference, x, dtype, RTOL[dtype], 0, f"{name} {dtype.__name__}")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_special_values_exactly_as_numpy(kernels, name, dtype):
    ends = [1.0, -1.0, 1.5, -1.5] if name in ("asin", "acos", "atanh", "acosh") else []  # ends of the domain
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan] + ends, dtype)
    with np.errstate(all="ignore"):
        expected = UNARY[name](x)
    assert_identical(kernels[name, dtype](x), expected, [x], name)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_tan_large_arguments_and_poles(kernels, dtype):
    rng = np.random.default_rng(3)
    x = rng.uniform(1e3, 2.0**28, 20000).astype(dtype)
    reference = np.tan(x.astype(np.float64))
    assert_close(kernels["tan", dtype](x), reference, x, dtype, RTOL[dtype], 0, "tan")
    # next to a pole the reduced argument is ~1e-16 and the 3-part pi/4 of the reduction leaves ~1e-15 of
    # it in float64 (glibc reduces exactly): documented, within 1e-14
    near_poles = (np.pi / 2 * np.arange(-7, 8, 2)).astype(dtype)
    assert_close(kernels["tan", dtype](near_poles), np.tan(near_poles.astype(np.float64)), near_poles, dtype,
                 RTOL[dtype] if dtype == np.float32 else 1e-14, 0, "tan near poles")
    assert np.isnan(kernels["tan", dtype](np.array([2.0**29, -1e12], dtype))).all()


# ---- two-argument functions --------------------------------------------------------------------

def pairs(dtype, seed=0):
    """Every pair of special values, random pairs over the whole exponent range, ordinary pairs."""
    rng = np.random.default_rng(seed)
    special = special_values(dtype)
    a, b = (grid.ravel() for grid in np.meshgrid(special, special))
    top = 38 if dtype == np.float32 else 308
    bottom = -45 if dtype == np.float32 else -323
    magnitudes = 10.0 ** rng.uniform(bottom, top, 20000)
    with np.errstate(over="ignore", under="ignore"):
        wide_a = (magnitudes * rng.choice([-1, 1], magnitudes.size)).astype(dtype)
        wide_b = (rng.permutation(magnitudes) * rng.choice([-1, 1], magnitudes.size)).astype(dtype)
    near_a = (rng.normal(size=20000) * 10).astype(dtype)
    near_b = (rng.normal(size=20000) * 3).astype(dtype)
    integers = rng.integers(-20, 20, (2, 2000)).astype(dtype)  # exact multiples: remainders of zero
    return (np.concatenate([a, wide_a, near_a, integers[0]]), np.concatenate([b, wide_b, near_b, integers[1]]))


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", ["fmod", "remainder", "floor_divide"])
def test_division_functions_bit_for_bit(kernels, name, dtype):
    a, b = pairs(dtype)
    with np.errstate(all="ignore"):
        expected = BINARY[name](a, b)
    assert_identical(kernels[name, dtype](a, b), expected, [a, b], f"{name} {dtype.__name__}")


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_fmod_across_the_whole_exponent_range(kernels, dtype):
    finfo = np.finfo(dtype)
    a = np.array([finfo.max, -finfo.max, finfo.max, 1e30, 3.0, finfo.max], dtype)
    b = np.array([finfo.smallest_subnormal, 3 * finfo.smallest_subnormal, finfo.tiny, 7e-30, finfo.max, 0.1],
                 dtype)
    for name in ("fmod", "remainder", "floor_divide"):
        with np.errstate(all="ignore"):
            expected = BINARY[name](a, b)
        assert_identical(kernels[name, dtype](a, b), expected, [a, b], name)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_atan2(kernels, dtype):
    y, x = pairs(dtype, seed=1)
    with np.errstate(all="ignore"):
        reference = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    got = kernels["atan2", dtype](y, x)
    assert_close(got, reference, y, dtype, RTOL[dtype], 0, f"atan2 {dtype.__name__}")
    special = special_values(dtype)[:5]  # zeros, infinities and NaN: C99's table, signs of zero included
    sy, sx = (grid.ravel() for grid in np.meshgrid(special, special))
    assert_identical(kernels["atan2", dtype](sy, sx), np.arctan2(sy, sx), [sy, sx], "atan2 special values")


# ---- rounding and sign -----------------------------------------------------------------------

def rounding_inputs(dtype):
    finfo = np.finfo(dtype)
    below_half = np.nextafter(dtype(0.5), dtype(0))  # floor(x + 0.5) rounds it to 1
    mantissa = finfo.nmant
    halfway = [k + 0.5 for k in range(-6, 6)] + [2.0**(mantissa - 1) + 0.5, -(2.0**(mantissa - 1)) - 0.5,
                                                  2.0**mantissa - 0.5, 2.0**mantissa + 1]
    rng = np.random.default_rng(2)
    return np.concatenate([special_values(dtype), np.array(halfway, dtype), [below_half, -below_half],
                           (rng.normal(size=4000) * 10).astype(dtype),
                           (rng.normal(size=4000) * 1e8).astype(dtype)]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("name", sorted(ROUNDING))
def test_rounding_bit_for_bit(kernels, name, dtype):
    x = rounding_inputs(dtype)
    assert_identical(kernels[name, dtype](x), ROUNDING[name][1](x), [x], f"{name} {dtype.__name__}")


def test_round_halfway_cases_go_to_even(kernels):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997], np.float32)
    np.testing.assert_array_equal(kernels["round", np.float32](x), [0, 2, 2, -0.0, -2, -2, 0])


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_copysign_bit_for_bit(kernels, dtype):
    a, b = pairs(dtype, seed=4)
    assert_identical(kernels["copysign", dtype](a, b), np.copysign(a, b), [a, b], "copysign")


# ---- compiler.ops end to end ----------------------------------------------------------------

OPS = {  # name: (graph, NumPy, domain of x, of y)
    "floor": (lambda x, y: C.floor(x), lambda x, y: np.floor(x)),
    "ceil": (lambda x, y: C.ceil(x), lambda x, y: np.ceil(x)),
    "round": (lambda x, y: C.round(x), lambda x, y: np.round(x)),
    "trunc": (lambda x, y: C.trunc(x), lambda x, y: np.trunc(x)),
    "sign": (lambda x, y: C.sign(x), lambda x, y: np.sign(x)),
    "remainder": (lambda x, y: C.remainder(x, y), np.remainder),
    "mod operator": (lambda x, y: x % y, np.remainder),
    "fmod": (lambda x, y: C.fmod(x, y), np.fmod),
    "floor_divide": (lambda x, y: C.floor_divide(x, y), np.floor_divide),
    "floordiv operator": (lambda x, y: x // y, np.floor_divide),
    "reflected operators": (lambda x, y: 7.5 // y + 7.5 % y, lambda x, y: 7.5 // y + 7.5 % y),
    "copysign": (lambda x, y: C.copysign(x, y), np.copysign),
    "tan": (lambda x, y: C.tan(x), lambda x, y: np.tan(x)),
    "asin": (lambda x, y: C.asin(x), lambda x, y: np.arcsin(x)),
    "acos": (lambda x, y: C.acos(x), lambda x, y: np.arccos(x)),
    "atan": (lambda x, y: C.atan(x), lambda x, y: np.arctan(x)),
    "atan2": (lambda x, y: C.atan2(x, y), np.arctan2),
    "sinh": (lambda x, y: C.sinh(x), lambda x, y: np.sinh(x)),
    "cosh": (lambda x, y: C.cosh(x), lambda x, y: np.cosh(x)),
    "asinh": (lambda x, y: C.asinh(x), lambda x, y: np.arcsinh(x)),
    "acosh": (lambda x, y: C.acosh(x), lambda x, y: np.arccosh(x)),
    "atanh": (lambda x, y: C.atanh(x), lambda x, y: np.arctanh(x)),
    "erf": (lambda x, y: C.erf(x), lambda x, y: np.vectorize(math.erf, otypes=[float])(x)),
    "log1p": (lambda x, y: C.log1p(x), lambda x, y: np.log1p(x)),
    "expm1": (lambda x, y: C.expm1(x), lambda x, y: np.expm1(x)),
    "sympy floor, ceiling and Mod in a user body": (
        lambda x, y: C.elementwise(lambda a, b: sympy.floor(a) + sympy.ceiling(b) + sympy.Mod(a, b))(x, y),
        lambda x, y: np.floor(x) + np.ceil(y) + np.remainder(x, y)),
}


def op_inputs(dtype):
    """Every pair of special values, then ordinary values in the domains of asin and acosh."""
    special = special_values(dtype)
    x, y = (grid.ravel() for grid in np.meshgrid(special, special))
    rng = np.random.default_rng(5)
    ordinary_x = np.concatenate([rng.uniform(-1, 1, 300), rng.uniform(1, 5, 300), rng.normal(size=300) * 5])
    ordinary_y = rng.choice([-1, 1], 900) * rng.uniform(0.1, 4, 900)
    return np.concatenate([x, ordinary_x]).astype(dtype), np.concatenate([y, ordinary_y]).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_ops_compiled_match_evaluate_and_numpy(dtype):
    X, Y = op_inputs(dtype)
    x, y = C.Input("x", ("n",), dtype.__name__), C.Input("y", ("n",), dtype.__name__)
    outputs = [build(x, y) for build, _ in OPS.values()]
    compiled = C.compile(outputs)(x=X, y=Y)
    evaluated = C.evaluate(outputs, {"x": X, "y": Y})
    rtol = 4 * RTOL[dtype] if dtype == np.float64 else 2.5e-7
    for name, (_, reference), got, ev in zip(OPS, OPS.values(), compiled, evaluated):
        assert got.dtype == dtype and ev.dtype == dtype, name
        with np.errstate(all="ignore"):
            expected = np.asarray(reference(X.astype(np.float64), Y.astype(np.float64)))
            exact = np.asarray(reference(X, Y)).astype(dtype)
        if name in ("tan",):  # NaN beyond 2**29, as sin and cos (documented)
            keep = ~(np.abs(X) >= 2**29)
        else:
            keep = np.ones(X.shape, bool)
        if name in ("floor", "ceil", "round", "trunc", "sign", "remainder", "mod operator", "fmod", "floor_divide",
                    "floordiv operator", "copysign", "sympy floor, ceiling and Mod in a user body",
                    "reflected operators"):
            assert_identical(got, exact, [X, Y], f"compiled {name}")
            assert_identical(ev.astype(dtype), exact, [X, Y], f"evaluated {name}")
        else:
            assert_close(got[keep], expected[keep], X[keep], dtype, rtol, 0, f"compiled {name} {dtype.__name__}")
            assert_close(ev[keep], expected[keep], X[keep], dtype, rtol, 0, f"evaluated {name} {dtype.__name__}")


def test_integer_floor_division_and_remainder_stay_integers():
    a = C.Input("a", (6,), "int64")
    b = C.Input("b", (6,), "int64")
    A = np.array([7, -7, 7, -7, 0, 12], np.int64)
    B = np.array([2, 2, -2, -2, 3, 5], np.int64)
    outputs = [a // b, a % b, C.fmod(a, b), C.floor(a), C.sign(a), a // 2, 20 % b]
    expected = [A // B, A % B, np.fmod(A, B), A, np.sign(A), A // 2, 20 % B]
    for what in (C.compile(outputs)(a=A, b=B), C.evaluate(outputs, {"a": A, "b": B})):
        for got, want, node in zip(what, expected, outputs):
            assert node.dtype == "int64" and got.dtype == np.int64
            np.testing.assert_array_equal(got, want)


def test_float_functions_of_integers_are_float64():
    a = C.Input("a", (3,), "int64")
    assert C.atan(a).dtype == "float64" and C.copysign(a, -1).dtype == "float64"
    assert C.erf(C.Input("f", (3,), "float32")).dtype == "float32"


def test_new_functions_vectorise():
    """Branch-free lowering: the loop around a float32 atan2, remainder, asinh and round vectorises
    (any vector width); float64 fmod iterates until done, so it stays scalar (documented)."""
    x, y = C.Input("x", ("n",), "float32"), C.Input("y", ("n",), "float32")
    for out in (C.atan2(x, y), x % y, C.asinh(x), C.round(x), C.tan(x)):
        optimized = C.compile([out]).llvm_ir(optimized=True)
        assert re.search(r"<\d+ x float>", optimized), out


# ---- gradients ------------------------------------------------------------------------------

GRADIENTS = {  # name: (graph of x and y, domain of x, of y)
    "floor": (lambda x, y: C.floor(x) * y, 0.3, 1.0),
    "round": (lambda x, y: C.round(x) * y, 0.3, 1.0),
    "sign trunc ceil": (lambda x, y: (C.sign(x) + C.trunc(x) + C.ceil(x)) * y, 0.3, 1.0),
    "remainder": (lambda x, y: x % y, 0.3, 1.0),
    "fmod": (lambda x, y: C.fmod(x, y), 0.3, 1.0),
    "floor_divide": (lambda x, y: (x // y) * x, 0.3, 1.0),
    "copysign": (lambda x, y: C.copysign(x, y), 0.3, 1.0),
    "tan": (lambda x, y: C.tan(x) * y, 0.0, 0.0),
    "asin acos": (lambda x, y: C.asin(x * 0.4) + C.acos(y * 0.4), 0.0, 0.0),
    "atan atan2": (lambda x, y: C.atan(x) + C.atan2(y, x + 3), 0.0, 0.0),
    "hyperbolic": (lambda x, y: C.sinh(x) + C.cosh(y) + C.asinh(x * y) + C.acosh(y * y + 1.5) + C.atanh(x * 0.3),
                   0.0, 0.0),
    "erf log1p expm1": (lambda x, y: C.erf(x) * C.log1p(y * y) + C.expm1(x), 0.0, 0.0),
}


def gradient_inputs(shift_x, shift_y, n=12):
    """Values in (-2, 2), away from the jumps: x at least 0.1 from every multiple of 1/2 and y in
    {+-1, +-1/2} where they are rounded or divided (x / y is then 0.2 from an integer); anything in
    the smooth rows."""
    rng = np.random.default_rng(6)
    x = 0.5 * rng.integers(-4, 4, n) + 0.25 + rng.uniform(-0.15, 0.15, n) if shift_x else rng.uniform(-1.5, 1.5, n)
    y = rng.choice([-1.0, -0.5, 0.5, 1.0], n) if shift_y else rng.uniform(-1.5, 1.5, n)
    return x, y


def central_differences(f, x, y, step=1e-4):
    """d sum(f) / dx and / dy, one element at a time (five-point stencil)."""
    out = []
    for which in (0, 1):
        base = [x, y]
        grad = np.zeros_like(base[which])
        for i in range(grad.size):
            values = []
            for offset in (-2, -1, 1, 2):
                shifted = [v.copy() for v in base]
                shifted[which][i] += offset * step
                values.append(np.sum(f(*shifted)))
            grad[i] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * step)
        out.append(grad)
    return out


@pytest.mark.parametrize("name", sorted(GRADIENTS))
def test_gradients_match_central_differences(name):
    build, shift_x, shift_y = GRADIENTS[name]
    X, Y = gradient_inputs(shift_x, shift_y)
    x, y = C.Input("x", (X.size,), "float64"), C.Input("y", (Y.size,), "float64")
    out = C.sum(build(x, y))
    gx, gy = C.grad(out, [x, y])
    evaluated = C.evaluate([gx, gy], {"x": X, "y": Y})
    compiled = _call(C.compile([gx, gy]), {"x": X, "y": Y})
    expected = central_differences(lambda a, b: C.evaluate(out, {"x": a, "y": b}), X, Y)
    for got_e, got_c, want in zip(evaluated, compiled, expected):
        np.testing.assert_allclose(got_e, want, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(got_c, got_e, rtol=1e-13, atol=1e-14)


def _call(executable, values):
    """Call with the inputs the compiled program reads (a zero gradient reads none)."""
    return executable(**{name: value for name, value in values.items() if name in executable._argument_names})


def test_rounding_gradients_are_zero_and_remainder_gradients_are_torchs():
    a, b = C.Input("a", (4,), "float64"), C.Input("b", (4,), "float64")
    A, B = np.array([5.5, -5.5, 5.5, -5.5]), np.array([2.0, 2.0, -2.0, -2.0])
    ga, gb = C.grad(C.sum(a % b), [a, b])
    values = C.evaluate([ga, gb], {"a": A, "b": B})
    np.testing.assert_array_equal(values[0], 1.0)
    np.testing.assert_array_equal(values[1], -np.floor_divide(A, B))
    ga, gb = C.grad(C.sum(C.fmod(a, b)), [a, b])
    np.testing.assert_array_equal(C.evaluate(gb, {"a": A, "b": B}), -np.trunc(A / B))
    for op in (C.floor, C.ceil, C.round, C.trunc, C.sign):
        np.testing.assert_array_equal(C.evaluate(C.grad(C.sum(op(a)), a), {"a": A}), 0.0)
    np.testing.assert_array_equal(C.evaluate(C.grad(C.sum(C.copysign(a, b)), a), {"a": np.array([0.0, 2, -2, 1]),
                                                                                  "b": np.array([1.0, -1, -1, 1])}),
                                  [0.0, -1, 1, 1])


# ---- declaration-time rejection -----------------------------------------------------------------

@pytest.mark.parametrize("function, name", [(sympy.gamma, "gamma"), (lambda t: sympy.besselj(0, t), "besselj"),
                                            (sympy.zeta, "zeta"), (lambda t: sympy.Derivative(sympy.Function("f")(t), t),
                                                                   "Derivative")])
def test_unsupported_function_rejected_when_declared(function, name):
    op = C.elementwise(function, name="special")
    x = C.Input("x", (3,), "float64")
    with pytest.raises(GraphError, match=rf"special.*uses {name}.*cannot lower"):
        op(x)


def test_every_supported_function_lowers():
    """The list the declaration check reads is the list the printer lowers: each function, applied to
    symbols, passes the check and lowers to IR."""
    import llvmlite.ir as ir
    t, u, v = sympy.symbols("t u v", real=True)
    for function in SUPPORTED:
        if function is sympy.Piecewise:
            expr = sympy.Piecewise((t, t > u), (v, True))
        else:
            expr = next(e for e in (_apply(function, t), _apply(function, t, u), _apply(function, t, u, v)) if e is not None)
        assert unsupported_functions(expr) == [], function
        module = ir.Module()
        fn = ir.Function(module, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3), "f")
        builder = ir.IRBuilder(fn.append_basic_block())
        builder.ret(lower_expr(builder, expr, dict(zip((t, u, v), fn.args)), ir.DoubleType()))


def _apply(function, *args):
    try:
        return function(*args)
    except (TypeError, ValueError):
        return None


def test_constants_and_known_forms_are_accepted():
    x = C.Input("x", (3,), "float64")
    node = C.elementwise(lambda t: sympy.gamma(sympy.Rational(1, 2)) * t + sympy.pi + sympy.floor(t))(x)
    np.testing.assert_allclose(C.compile([node])(x=np.array([0.5, 1.5, -2.2]))[0],
                               math.sqrt(math.pi) * np.array([0.5, 1.5, -2.2]) + math.pi + np.floor([0.5, 1.5, -2.2]))
