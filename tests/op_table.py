"""The checks behind the op tables of test_reductions.py and test_composites.py.

A row declares an op over operands of given shapes (a ``"batch"`` entry is a symbolic dimension), an
independent NumPy reference, and an input domain per operand. Three checks per row:

- ``check_forward``: ``compiler.evaluate`` in float64 equals the reference, dtype and shape included;
- ``check_gradient``: ``grad`` of ``sum(out * w)`` (float64, random ``w``) matches a five-point central
  difference of the reference with a relative error below 1e-6;
- ``check_compiled``: one ``compiler.compile`` of the op and its gradient per dtype (float32, float64),
  run at two batch sizes: the value equals the NumPy reference, the gradients the evaluator's (checked
  against differences above), to 1e-5 (float32) or 1e-12 (float64) relative to the magnitudes involved.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import compiler as C
from compiler import Input, const, evaluate, grad

F = "F"          # an operand dtype: the float dtype under test
B = "batch"      # a symbolic dimension
RTOL = {"float32": 1e-5, "float64": 1e-12}
GRADIENT_TOLERANCE = 1e-6
STEP = 1e-3
GRADIENT_BATCH = 3
COMPILED_BATCHES = (2, 5)


# ---- input domains: fn(rng, shape) -> float64 array --------------------------------------------


def real(lo=-2.0, hi=2.0):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def positive(lo=0.5, hi=2.0):
    return real(lo, hi)


def distinct(rng, shape):
    """Values at least 0.1 apart (no tie within a stencil step): sort, min and argmax are smooth there."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) - n / 2) * 0.25 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


def with_zeros(rng, shape):
    """Magnitudes 0.5 to 1.5 of either sign, about a third of them exactly 0 (several per row)."""
    x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 1.5, shape)
    return np.where(rng.uniform(size=shape) < 0.35, 0.0, x)


def small_integers(rng, shape):
    """Exact small integers as floats: ties and zeros."""
    return rng.integers(-2, 3, shape).astype(np.float64)


def integers(lo, hi):
    return lambda rng, shape: rng.integers(lo, hi, shape)


@dataclass
class Row:
    name: str
    build: object            # (*nodes) -> node
    reference: object        # (*arrays) -> ndarray, NumPy (float64 operands for float ones)
    shapes: tuple            # per operand
    domains: tuple = (real(),)  # per operand; a single one is repeated
    dtypes: tuple = ()       # per operand; F (default) = the float dtype under test
    gradient: bool = True    # False where the domain has ties or kinks (checked exactly elsewhere)


def ids(rows) -> list:
    names = [row.name for row in rows]
    assert len(set(names)) == len(names), "row names must be unique"
    return names


def _concrete(shape, batch: int) -> tuple:
    return tuple(batch if d == B else d for d in shape)


def _operands(row: Row, dtype: str, batch: int | None = None):
    """Inputs of the row; with `batch`, of concrete shapes."""
    dtypes = [dtype if d == F else d for d in (row.dtypes or (F,) * len(row.shapes))]
    shapes = [shape if batch is None else _concrete(shape, batch) for shape in row.shapes]
    return [Input(f"{row.name}_{i}", shape, dtype=d) for i, (shape, d) in enumerate(zip(shapes, dtypes))]


def _arrays(row: Row, nodes, batch: int, rng) -> list:
    domains = row.domains * len(row.shapes) if len(row.domains) == 1 else row.domains
    return [np.asarray(domain(rng, _concrete(x.shape, batch))).astype(x.dtype) for x, domain in zip(nodes, domains)]


def _reference(row: Row, arrays) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(row.reference(*[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]))


def check_forward(row: Row, seed: int = 0):
    nodes = _operands(row, "float64")
    out = row.build(*nodes)
    arrays = _arrays(row, nodes, GRADIENT_BATCH, np.random.default_rng(seed))
    expected = _reference(row, arrays)
    actual = evaluate(out, {x.name: a for x, a in zip(nodes, arrays)})
    assert out.dtype == expected.dtype.name, f"{row.name}: dtype {out.dtype}, NumPy's {expected.dtype}"
    assert actual.shape == expected.shape, f"{row.name}: shape {actual.shape}, NumPy's {expected.shape}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=row.name)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12, err_msg=row.name)


def central_difference(f, arrays, i):
    """d f(arrays) / d arrays[i] by a five-point central stencil (error O(h^4); exact for polynomials of
    degree 4 in each element, such as products)."""
    x = arrays[i]
    result = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        values = []
        for offset in (-2, -1, 1, 2):
            shifted = x.copy()
            shifted[index] += offset * STEP
            values.append(f(*arrays[:i], shifted, *arrays[i + 1:]))
        result[index] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * STEP)
    return result


def relative_error(actual, expected) -> float:
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-5))


def check_gradient(row: Row, seed: int = 0):
    nodes = _operands(row, "float64", GRADIENT_BATCH)
    out = row.build(*nodes)
    floats = [i for i, x in enumerate(nodes) if x.dtype == "float64"]
    assert out.dtype == "float64" and floats, f"{row.name} has no gradient to check"
    rng = np.random.default_rng(seed)
    arrays = _arrays(row, nodes, GRADIENT_BATCH, rng)
    values = {x.name: a for x, a in zip(nodes, arrays)}
    weights = rng.normal(size=evaluate(out, values).shape)
    gradients = evaluate(grad((out * const(weights)).sum(), [nodes[i] for i in floats]), values)

    def weighted(*xs):
        return float(np.sum(row.reference(*xs) * weights))

    for i, g in zip(floats, gradients):
        assert g.shape == arrays[i].shape and g.dtype == np.float64
        error = relative_error(g, central_difference(weighted, arrays, i))
        assert error < GRADIENT_TOLERANCE, f"{row.name} operand {i}: relative error {error:.2e}"


def assert_close(actual, expected, what: str, scale: float = 0.0):
    """|actual - expected| <= rtol * (|expected| + scale), scale at least the largest finite |expected|;
    integers and bools exactly; NaN where NaN is expected."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if expected.dtype.kind in "biu":
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(scale, float(finite.max()) if finite.size else 0.0)
    rtol = RTOL[str(actual.dtype)]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


_compiled: dict = {}


def _program(row: Row, dtype: str):
    if (row.name, dtype) not in _compiled:
        nodes = _operands(row, dtype)
        out = row.build(*nodes)
        outputs, weights = [out], None
        floats = [x for x in nodes if x.dtype.startswith("float")]
        if out.dtype.startswith("float") and floats:
            weights = Input("weights", out.shape, dtype=out.dtype)
            outputs += grad((out * weights).sum(), floats)
        _compiled[row.name, dtype] = (nodes, outputs, weights, C.compile(outputs))
    return _compiled[row.name, dtype]


def check_compiled(row: Row, dtype: str, seed: int = 0):
    nodes, outputs, weights, fn = _program(row, dtype)
    rng = np.random.default_rng(seed)
    for batch in COMPILED_BATCHES:
        arrays = _arrays(row, nodes, batch, rng)
        values = {x.name: a for x, a in zip(nodes, arrays)}
        if weights is not None:
            values["weights"] = rng.normal(size=_concrete(weights.shape, batch)).astype(dtype)
        actual = fn(**values)
        what = f"{row.name} {dtype} batch={batch}"
        # the reference runs in float64 on the same (rounded) inputs; a sum or a product in the op rounds
        # at the size of its terms, which are at most the largest input
        expected = _reference(row, arrays)
        if expected.dtype.kind == "f":
            expected = expected.astype(outputs[0].dtype)
        terms = max([float(np.abs(a).max()) for a in arrays if a.size and a.dtype.kind == "f"], default=0.0)
        assert_close(actual[0], expected, f"{what} value", terms)
        if weights is not None:
            seed_scale = float(np.abs(values["weights"]).max())
            for k, (a, e) in enumerate(zip(actual[1:], evaluate(outputs[1:], values))):
                assert_close(a, e, f"{what} gradient {k}", seed_scale)


def has_gradient(row: Row) -> bool:
    """Whether the row's output is float and some operand is the float dtype under test."""
    return row.gradient and (F in (row.dtypes or (F,))) and row.build(*_operands(row, "float64")).dtype == "float64"


def dtypes_under_test(row: Row) -> tuple:
    """float32 and float64 when an operand takes the dtype under test, else one run."""
    return ("float32", "float64") if F in (row.dtypes or (F,)) else ("float64",)


def table_tests(rows):
    """The three checks of a table, as test functions a test module binds to its own names."""
    import pytest

    gradient_rows = [row for row in rows if has_gradient(row)]
    compiled = [(row, dtype) for row in rows for dtype in dtypes_under_test(row)]

    @pytest.mark.parametrize("row", rows, ids=ids(rows))
    def test_value_matches_numpy(row):
        for seed in range(3):
            check_forward(row, seed)

    @pytest.mark.parametrize("row", gradient_rows, ids=ids(gradient_rows))
    def test_gradient_matches_finite_differences(row):
        for seed in range(3):
            check_gradient(row, seed)

    @pytest.mark.parametrize("row,dtype", compiled, ids=[f"{row.name}-{dtype}" for row, dtype in compiled])
    def test_compiled_matches_numpy(row, dtype):
        check_compiled(row, dtype)

    return test_value_matches_numpy, test_gradient_matches_finite_differences, test_compiled_matches_numpy
