"""sympy scalar bodies lowered to LLVM IR (compiler.codegen.scalar) against lambdify.

Every row of the table is lowered into a JIT-compiled loop over arrays of up
to three inputs, float64 and float32, and compared with
`sympy.lambdify(..., modules=[NUMPY_IMPLEMENTATIONS, "numpy"])` evaluated in
float64 -- the same reference the graph evaluator uses. All kernels of this
file are compiled once, in one module.
"""
from __future__ import annotations

import zlib

import hypothesis.extra.numpy as hnp
import llvmlite.ir as ir
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.codegen.scalar import lower_cse, lower_expr
from compiler.scalar_functions import (
    NUMPY_IMPLEMENTATIONS, Equal, Greater, GreaterEqual, Less, LessEqual, Maximum, Minimum,
    NotEqual, Relu, Sigmoid, Softplus, Step, Where,
)
from sympy.codegen.cfunctions import expm1, log1p

from jit_loops import IR_TYPES, jit_loops

x, y, z = SYMBOLS = sympy.symbols("x y z", real=True)
DTYPES = (np.float64, np.float32)
N = 600

gelu = x / 2 * (1 + sympy.erf(x / sympy.sqrt(2)))
gelu_tanh = x / 2 * (1 + sympy.tanh(sympy.sqrt(2 / sympy.pi) * (x + sympy.Rational(44715, 10**6) * x**3)))
swish = x * Sigmoid(x)
b1, b2 = sympy.Rational(9, 10), sympy.Rational(999, 1000)
adam = x - sympy.Float(1e-3) * (b1 * y + (1 - b1) * z) / (sympy.sqrt(b2 * y**2 + (1 - b2) * z**2) + sympy.Float(1e-8))

# id -> (expression, domain of each symbol). Domains: "real" uniform(-3, 3),
# "positive" uniform(0.05, 4), "integer" integers in [-4, 4], "ties" like x
# but equal to x at every third point.
TABLE = {
    "add": (x + y + z, {}),
    "sub": (x - 2 * y - z / 3, {}),
    "mul div": (2 * x * y / (3 * z), {}),
    "neg": (-x, {}),
    "constants": (sympy.pi * x + sympy.E - sympy.sqrt(2) * y + sympy.Rational(1, 3), {}),
    "integer powers": (x**2 + x**3 - y**7 + z**-1 + (x + y)**-3, {}),
    "large integer power": ((1 + x / 100)**1000, {}),
    "sqrt": (sympy.sqrt(x), {x: "positive"}),
    "half powers": (x**sympy.Rational(3, 2) + y**sympy.Rational(-1, 2) - x**sympy.Rational(-5, 2), {x: "positive", y: "positive"}),
    "float power": (x**0.3 + y**2.0 + x**-0.5, {x: "positive"}),
    "general power": (x**y, {x: "positive"}),
    "negative base integer exponent": (x**y, {y: "integer"}),
    "exp": (sympy.exp(x), {}),
    "log": (sympy.log(x), {x: "positive"}),
    "tanh": (sympy.tanh(x), {}),
    "sin cos": (sympy.sin(x) * sympy.cos(y), {}),
    "erf": (sympy.erf(x), {}),
    "log1p expm1": (log1p(x) + expm1(y), {x: "positive"}),
    "abs sign": (sympy.Abs(x) + sympy.sign(y) * z, {}),
    "sigmoid": (Sigmoid(4 * x), {}),
    "softplus": (Softplus(5 * x), {}),
    "step relu": (Step(x) + Relu(y), {}),
    "comparisons": (Greater(x, y) + 2 * GreaterEqual(x, y) + 4 * Less(x, y) + 8 * LessEqual(x, y)
                    + 16 * Equal(x, y) + 32 * NotEqual(x, y), {y: "ties"}),
    "where": (Where(Greater(x, y), x, y), {y: "ties"}),
    "nested where": (Where(Greater(x, 0), Where(Less(y, 0), x * y, x + y), Where(z, z, -x)), {}),
    "maximum minimum": (Maximum(x, y) - 2 * Minimum(y, z), {y: "ties"}),
    "max min": (sympy.Max(x, y, z) + sympy.Min(x, 0), {}),
    "heaviside": (sympy.Heaviside(x) + 2 * sympy.Heaviside(y, 0), {}),
    "piecewise": (sympy.Piecewise((x, x > 1), (y, (y < 0) & (z > 0)), (z, True)), {}),
    "piecewise no default": (sympy.Piecewise((x, x > 0), (y, y > z)), {}),
    "nested": (sympy.exp(Sigmoid(x)) * Softplus(-x) + sympy.tanh(x * y) / (1 + x**2), {}),
    "gelu": (gelu, {}),
    "d gelu": (sympy.diff(gelu, x) * y, {}),
    "d gelu tanh": (sympy.diff(gelu_tanh, x) * y, {}),
    "d swish": (sympy.diff(swish, x), {}),
    "d2 swish": (sympy.diff(swish, x, 2), {}),
    "d softplus": (sympy.diff(Softplus(x) * y, x), {}),
    "d2 softplus": (sympy.diff(Softplus(x), x, 2), {}),
    "d relu": (sympy.diff(Relu(x) * y, x), {}),
    "d maximum": (sympy.diff(Maximum(x, y) * z, x) + sympy.diff(Minimum(x, y) * z, y), {y: "ties"}),
    "d where": (sympy.diff(Where(Greater(x, y), x**2, sympy.sin(x)), x), {}),
    "d tanh squared": (sympy.diff(sympy.tanh(x)**2, x), {}),
    "d power": (sympy.diff(x**y, y) + sympy.diff(x**y, x), {x: "positive"}),
    "d norm": (sympy.diff(sympy.sqrt(x**2 + y**2 + 1), x), {}),
    "d log sigmoid": (sympy.diff(sympy.log(Sigmoid(x)), x), {}),
    "adam": (adam, {}),
}

# Looser bounds: exp(y log x) (documented in compiler.codegen.mathlib), and
# (1 + x/100)**1000, which multiplies the rounding error of its base by 1000.
F64_TOLERANCE = {"general power": 1e-13, "negative base integer exponent": 1e-13,
                 "d power": 1e-13, "float power": 1e-13, "large integer power": 5e-13}
F32_TOLERANCE = {"large integer power": 2e-4}


def samples(domain, rng, like=None):
    if domain == "positive":
        return rng.uniform(0.05, 4, N)
    if domain == "integer":
        return rng.integers(-4, 5, N).astype(float)
    values = rng.uniform(-3, 3, N)
    values[::7] = 0.0
    if domain == "ties":
        values[::3] = like[::3]
    return values


def inputs(row_id):
    rng = np.random.default_rng(zlib.crc32(row_id.encode()))
    expr, domains = TABLE[row_id]
    xs = samples(domains.get(x, "real"), rng)
    return [xs] + [samples(domains.get(s, "real"), rng, like=xs) for s in (y, z)]


def reference(expr, arrays):
    f = sympy.lambdify(SYMBOLS, expr, modules=[NUMPY_IMPLEMENTATIONS, "numpy"])
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(f(*arrays), dtype=np.float64), arrays[0].shape)


# ---------------------------------------------------------------- JIT helpers

def jit(specs):
    """{key: (dtype, n_outputs, body(builder, env, ty))} -> {key: run(x, y, z) -> list of outputs}."""
    return jit_loops({key: (dtype, len(SYMBOLS), n_outputs,
                            lambda b, values, body=body, ty=IR_TYPES[dtype]: body(b, dict(zip(SYMBOLS, values)), ty))
                      for key, (dtype, n_outputs, body) in specs.items()}, "test_scalar")


def _cse_body(exprs):
    return lambda b, env, ty: lower_cse(b, exprs, env, ty)


def _expr_body(expr):
    return lambda b, env, ty: [lower_expr(b, expr, env, ty)]


MULTI_OUTPUT = [gelu, sympy.diff(gelu, x) * y, swish, sympy.diff(swish, x) * y]
NAN_ROWS = ["comparisons", "where", "maximum minimum", "max min", "abs sign", "step relu",
            "heaviside", "sigmoid", "softplus", "nested where"]


@pytest.fixture(scope="module")
def kernels():
    specs = {}
    for dtype in DTYPES:
        for row_id, (expr, _) in TABLE.items():
            specs[row_id, dtype] = (dtype, 1, _cse_body([expr]))
        specs["multi", dtype] = (dtype, len(MULTI_OUTPUT), _cse_body(MULTI_OUTPUT))
    for row_id in ("nested", "d gelu tanh", "piecewise"):
        specs[row_id, "lower_expr"] = (np.float64, 1, _expr_body(TABLE[row_id][0]))
    return jit(specs)


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("row_id", list(TABLE))
def test_float64_matches_lambdify(kernels, row_id):
    arrays = inputs(row_id)
    expected = reference(TABLE[row_id][0], arrays)
    tol = F64_TOLERANCE.get(row_id, 1e-12)
    np.testing.assert_allclose(kernels[row_id, np.float64](*arrays)[0], expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("row_id", list(TABLE))
def test_float32_matches_lambdify(kernels, row_id):
    arrays = [a.astype(np.float32) for a in inputs(row_id)]
    expected = reference(TABLE[row_id][0], [a.astype(np.float64) for a in arrays])
    got = kernels[row_id, np.float32](*arrays)[0]
    tol = F32_TOLERANCE.get(row_id, 2e-5)
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("row_id", ["nested", "d gelu tanh", "piecewise"])
def test_lower_expr_without_cse_agrees(kernels, row_id):
    arrays = inputs(row_id)
    expected = reference(TABLE[row_id][0], arrays)
    np.testing.assert_allclose(kernels[row_id, "lower_expr"](*arrays)[0], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_lower_cse_several_outputs(kernels, dtype):
    arrays = [a.astype(dtype) for a in inputs("d gelu")]
    outs = kernels["multi", dtype](*arrays)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for expr, got in zip(MULTI_OUTPUT, outs):
        expected = reference(expr, [a.astype(np.float64) for a in arrays])
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.0])


def _all_triples():
    grid = np.array(np.meshgrid(SPECIAL, SPECIAL, SPECIAL, indexing="ij")).reshape(3, -1)
    return list(grid)


def assert_same_values(got, expected, where, rtol=0.0):
    """Same NaNs and infinities; finite values equal within rtol."""
    got = np.asarray(got, dtype=np.float64)
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    with np.errstate(invalid="ignore"):
        same |= np.isfinite(expected) & (np.abs(got - expected) <= rtol * np.abs(expected))
    assert same.all(), f"{where}: inputs {[a[~same][:4] for a in where[1]]} got {got[~same][:4]} expected {expected[~same][:4]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("row_id", NAN_ROWS)
def test_nan_and_infinities_as_numpy(kernels, row_id, dtype):
    """Comparisons, selections and sign functions at NaN, +-inf and +-0, exactly."""
    arrays = _all_triples()
    expected = reference(TABLE[row_id][0], arrays)
    got = kernels[row_id, dtype](*arrays)[0]
    if row_id == "step relu":  # documented: Relu(-inf) = 0, the reference's 0 * -inf is NaN
        expected = np.where(arrays[1] == -np.inf, (arrays[0] > 0).astype(float), expected)
    if row_id == "heaviside":  # documented: NaN like np.heaviside (lambdify's select gives 1)
        expected = np.heaviside(arrays[0], 0.5) + 2 * np.heaviside(arrays[1], 0)
    assert_same_values(got, expected, (row_id, arrays), rtol=1e-15 if dtype == np.float64 else 1e-6)


def test_relu_at_infinities_and_nan(kernels):
    got = kernels["step relu", np.float64](np.full(4, -1.0), np.array([-np.inf, np.inf, np.nan, -0.0]))[0]
    assert got[0] == 0 and got[1] == np.inf and np.isnan(got[2]) and got[3] == 0


finite_or_special = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                              st.sampled_from([0.0, -0.0, 1.0, -1.0]))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, (3, 16), elements=finite_or_special))
def test_selections_on_arbitrary_floats(kernels, values):
    """Maximum/Minimum/Where/comparisons never disagree with NumPy, whatever the floats."""
    for row_id in ("maximum minimum", "comparisons", "where", "nested where", "max min"):
        expected = reference(TABLE[row_id][0], list(values))
        got = kernels[row_id, np.float64](*values)[0]
        assert_same_values(got, expected, (row_id, list(values)))


def test_dirac_delta_of_second_derivatives_is_zero(kernels):
    expr = sympy.diff(sympy.Abs(x) * y, x, 2)  # 2*y*DiracDelta(x)
    assert expr.has(sympy.DiracDelta)
    run = jit({"delta": (np.float64, 1, _cse_body([expr]))})["delta"]
    got = run(np.array([0.0, 1.5, -2.0, np.nan]), np.array([3.0, 3.0, 3.0, 3.0]))[0]
    assert got[:3].tolist() == [0.0, 0.0, 0.0] and np.isnan(got[3])


def test_repeated_subtrees_are_emitted_once():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.DoubleType(), [ir.DoubleType()]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    expr = Sigmoid(x) * (1 - Sigmoid(x)) + Softplus(Sigmoid(x))
    b.ret(lower_expr(b, expr, {x: fn.args[0]}, ir.DoubleType()))
    body = str(fn)
    assert body.count('call double @"symprop.sigmoid"') == 1
    assert body.count('call double @"symprop.softplus"') == 1


def test_contract_is_the_only_fast_math_flag():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.FloatType(), [ir.FloatType()] * 3), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    env = dict(zip(SYMBOLS, fn.args))
    b.ret(lower_cse(b, [x * y + z - x / y, TABLE["d gelu tanh"][0]], env, ir.FloatType())[0])
    text = str(module)
    for flag in ("fast", "nnan", "ninf", "nsz", "arcp", "reassoc", "afn"):
        assert f" {flag} " not in text


def test_errors_name_the_problem():
    module = ir.Module()
    fn = ir.Function(module, ir.FunctionType(ir.DoubleType(), [ir.DoubleType(), ir.FloatType()]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    with pytest.raises(KeyError, match="symbol y has no value"):
        lower_expr(b, x + y, {x: fn.args[0]}, ir.DoubleType())
    with pytest.raises(TypeError, match="symbol y is float"):
        lower_expr(b, x + y, {x: fn.args[0], y: fn.args[1]}, ir.DoubleType())
    with pytest.raises(NotImplementedError, match="gamma"):
        lower_expr(b, sympy.gamma(x), {x: fn.args[0]}, ir.DoubleType())
    with pytest.raises(TypeError, match="float or double"):
        lower_expr(b, x, {x: fn.args[0]}, ir.IntType(32))
