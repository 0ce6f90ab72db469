"""Compiled code computes what the NumPy reference evaluator computes, for every op and its gradient.

One row per op (and per interesting variant: broadcasting, axes, ranks), in
compile_op_table.py. Each row declares its operands with a symbolic
``"batch"`` dimension wherever the op allows one, and is compiled once per
dtype into two programs: the op's
value alone (forward fusion: one loop where the rules allow), and the value
with the gradient of a weighted sum ``sum(out * w)`` with respect to every
float operand (the weights ``w`` are an Input too, so the program stays
batch-generic). Hypothesis draws two different batch sizes and the
values; the same compiled function runs both bindings, and neither may load
new machine code.

The oracle is ``compiler.evaluate``, which runs the graph with NumPy and is
itself checked against NumPy references and finite differences in
``test_grad_ops.py``. Agreement: 1e-5 relative in float32 and 1e-12 in
float64, as ``assert_allclose(rtol, atol=rtol * scale)`` with ``scale`` the
largest magnitude in the expected array, or the size of the terms the result
was summed from if larger: a sum that cancels is only as exact as its terms'
rounding (inputs and weights are drawn at magnitude ~1, so a value computed
with a sum or contraction has terms of at least 1; a gradient's terms are the
weights times local derivatives).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler as C
from compile_op_table import B, F, ROW_IDS, ROWS, Row
from compiler import Input, evaluate, grad
from compiler.traversal import topological_order
from runtime.engine import Engine

RTOL = {"float32": 1e-5, "float64": 1e-12}
DTYPES = ("float32", "float64")
MAX_EXAMPLES = 10


def test_every_op_has_a_row():
    covered = {row.op for row in ROWS}
    missing = [name for name in C.ops.__all__ if name not in covered]
    assert not missing, f"ops without a compiled row: {missing}"


# ---- compiling each row once per dtype -----------------------------------------------------------


@dataclass
class Compiled:
    forward: object  # the value alone
    fn: object       # the value and the gradients
    outputs: list    # [op value, gradient per float operand...] as graph nodes, for evaluate
    operands: list   # Input nodes, in row order
    weights: Input | None
    sums: bool       # whether the value is summed from terms (a sum or a contraction)


_compiled: dict = {}


def compiled(row: Row, dtype: str) -> Compiled:
    key = (row.name, dtype)
    if key not in _compiled:
        dtypes = [dtype if d == F else d for d in (row.dtypes or (F,) * len(row.shapes))]
        operands = [Input(f"{row.name}_{i}", shape, dtype=d) for i, (shape, d) in enumerate(zip(row.shapes, dtypes))]
        out = row.build(*operands)
        outputs, weights = [out], None
        differentiable = [x for x in operands if x.dtype.startswith("float")]
        if out.dtype.startswith("float") and differentiable:
            weights = Input("weights", out.shape, dtype=out.dtype)
            outputs += grad((out * weights).sum(), differentiable)
        sums = any(node.op in ("sum", "einsum") for node in topological_order([out]))
        _compiled[key] = Compiled(C.compile(out), C.compile(outputs), outputs, operands, weights, sums)
    return _compiled[key]


def concrete(shape, batch: int) -> tuple:
    return tuple(batch if d == B else d for d in shape)


def arguments(row: Row, program: Compiled, batch: int, rng) -> dict:
    domains = row.domains * len(row.shapes) if len(row.domains) == 1 else row.domains
    values = {x.name: np.asarray(domain(rng, concrete(x.shape, batch))).astype(x.dtype)
              for x, domain in zip(program.operands, domains)}
    if program.weights is not None:
        values["weights"] = rng.normal(size=concrete(program.weights.shape, batch)).astype(program.weights.dtype)
    if any(leaf.name == "rng_counter" for leaf in C.leaves(program.outputs)):  # random ops: one named draw
        values.update(rng_seed=np.int64(rng.integers(-2 ** 62, 2 ** 62)), rng_counter=np.int64(rng.integers(1, 2 ** 40)))
    return values


def assert_close(actual, expected, what: str, scale: float = 0.0):
    """|actual - expected| <= rtol * (|expected| + scale), scale at least the largest |expected|,
    rtol that of the array's dtype (a float64 graph may return float32: astype)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype}, expected {expected.dtype}"
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(scale, float(finite.max()) if finite.size else 0.0)
    rtol = RTOL[str(expected.dtype)]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def check_row(row: Row, dtype: str, batches, seed: int):
    program = compiled(row, dtype)
    engine = Engine.instance()
    objects_before = len(engine._loaded_objects)
    rng = np.random.default_rng(seed)
    for batch in sorted({max(batch, row.min_batch) for batch in batches}):
        values = arguments(row, program, batch, rng)
        actual = program.fn(**values)
        expected = evaluate(program.outputs, values)
        assert isinstance(actual, tuple) and len(actual) == len(expected)
        value_scale = 1.0 if program.sums else 0.0
        assert_close(actual[0], np.asarray(expected[0]), f"{row.name} {dtype} batch={batch} value", value_scale)
        forward = program.forward(**{k: v for k, v in values.items() if k != "weights"})
        assert_close(forward, np.asarray(expected[0]), f"{row.name} {dtype} batch={batch} forward only",
                     value_scale)
        # A gradient sums terms of the size of the weights (the cotangent seed) times local derivatives,
        # some formed by cancellation (1 - tanh(x)**2 near saturation): that size bounds its rounding.
        seed_scale = float(np.abs(values["weights"]).max()) if program.weights is not None else 0.0
        for k, (a, e) in enumerate(zip(actual[1:], expected[1:])):
            assert_close(a, np.asarray(e), f"{row.name} {dtype} batch={batch} gradient {k}", seed_scale)
    assert len(engine._loaded_objects) == objects_before, "a new batch size loaded new machine code"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          database=None)
@given(batches=st.lists(st.integers(1, 6), min_size=2, max_size=2, unique=True), seed=st.integers(0, 2 ** 32 - 1))
def test_compiled_matches_evaluate(row, dtype, batches, seed):
    check_row(row, dtype, batches, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), ((5, 4), (2, 1), (2, 1))], ids=["small", "large"])
def test_compiled_max_pool2d_gradient_goes_to_the_first_maximum(kernel, stride, padding, dtype):
    """At ties (small integers) the compiled gradient puts each window's cotangent on its first maximum
    in row-major order, as PyTorch's (conv_reference.max_pool2d_backward), at two batch sizes; windows
    of 9 taps (a map over the taps) and of 20 (a reduction)."""
    import conv_reference

    x = Input("tied_x", (B, 2, 5, 6), dtype=dtype)
    out = C.max_pool2d(x, kernel, stride=stride, padding=padding)
    weights = Input("weights", out.shape, dtype=dtype)
    fn = C.compile([out, grad((out * weights).sum(), x)])
    rng = np.random.default_rng(7)
    for batch in (1, 4):
        xs = rng.integers(-1, 2, (batch, 2, 5, 6)).astype(dtype)
        ws = rng.integers(1, 5, (batch,) + out.shape[1:]).astype(dtype)  # exact in float32: sums of small integers
        value, gradient = fn(tied_x=xs, weights=ws)
        np.testing.assert_array_equal(value, conv_reference.max_pool2d(xs, kernel, stride, padding).astype(dtype))
        np.testing.assert_array_equal(
            gradient, conv_reference.max_pool2d_backward(xs, ws, kernel, stride, padding).astype(dtype))


# ---- static shapes drawn by hypothesis (one compile per example) ------------------------------------


@settings(max_examples=8, deadline=None, database=None)
@given(shapes=st.sampled_from([((3, 1, 4), (5, 1)), ((1,), (2, 3)), ((), (4,)), ((2, 3), (2, 3)), ((4, 1), (1, 4))]),
       axis=st.sampled_from([None, 0, -1]), seed=st.integers(0, 2 ** 32 - 1))
def test_broadcast_then_reduce_on_drawn_static_shapes(shapes, axis, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes
    a, b = Input("static_a", a_shape, dtype="float64"), Input("static_b", b_shape, dtype="float64")
    out = C.sum(C.tanh(a) * b + a, axis=axis) if len(np.broadcast_shapes(a_shape, b_shape)) else C.tanh(a) * b + a
    fn = C.compile([out] + grad(out.sum(), [a, b]))
    va, vb = rng.normal(size=a_shape), rng.normal(size=b_shape)
    expected = evaluate([out] + grad(out.sum(), [a, b]), {"static_a": va, "static_b": vb})
    for actual, e in zip(fn(static_a=va, static_b=vb), expected):
        assert_close(actual, np.asarray(e), f"{shapes} axis={axis}")


# ---- convolution and pooling on drawn arguments, batch symbolic ---------------------------------------


@st.composite
def _window_op_case(draw):
    import conv_reference as CR

    name = draw(st.sampled_from(["conv1d", "conv2d", "max_pool2d", "avg_pool2d"]))
    if name.startswith("conv"):
        shapes, kwargs = draw(CR.conv_case(1 if name == "conv1d" else 2, max_extra=3))
    else:
        shapes, kwargs = draw(CR.pool_case(average=name == "avg_pool2d", max_kernel=5))
    return name, shapes, kwargs, draw(st.sampled_from(DTYPES))


@settings(max_examples=12, deadline=None, database=None)
@given(case=_window_op_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_window_ops_on_drawn_arguments_with_a_symbolic_batch(case, seed):
    """conv1d/conv2d/max_pool2d/avg_pool2d with drawn strides, paddings, dilations, groups and kernels,
    x's batch symbolic: one compiled program (value and gradients) equals the NumPy reference and the
    evaluator at two batch sizes."""
    import conv_reference as CR

    name, shapes, kwargs, dtype = case
    nodes = [Input(f"operand{i}", (B,) + s[1:] if i == 0 else s, dtype=dtype) for i, s in enumerate(shapes)]
    out = getattr(C, name)(*nodes, **kwargs)
    weights = Input("weights", out.shape, dtype=dtype)
    outputs = [out] + grad((out * weights).sum(), nodes)
    fn = C.compile(outputs)
    rng = np.random.default_rng(seed)
    for batch in (1, 3):
        arrays = [rng.normal(size=(batch,) + s[1:] if i == 0 else s).astype(dtype) for i, s in enumerate(shapes)]
        values = {f"operand{i}": a for i, a in enumerate(arrays)}
        values["weights"] = rng.normal(size=(batch,) + out.shape[1:]).astype(dtype)
        got = fn(**values)
        reference = getattr(CR, name)(*[a.astype(np.float64) for a in arrays], **kwargs).astype(dtype)
        assert_close(got[0], reference, f"{name} {kwargs} batch={batch} value",
                     float(max(np.abs(a).max() for a in arrays)) ** 2)
        for k, (a, e) in enumerate(zip(got[1:], evaluate(outputs[1:], values))):
            assert_close(a, np.asarray(e), f"{name} {kwargs} batch={batch} gradient {k}",
                         float(np.abs(values["weights"]).max()))


@pytest.mark.parametrize("dtypes", [("float32", "float64"), ("float64", "float32"), ("int64", "float32"),
                                    ("float32", "int32")])
def test_products_of_mixed_dtypes_compile_to_the_promoted_dtype(dtypes):
    """A matmul or einsum of two dtypes casts the other operand to the result's dtype (NumPy's promotion)
    and equals the evaluator; the cast's import once failed at compile time."""
    rng = np.random.default_rng(0)
    a, b = C.Input("a", ("n", 3), dtypes[0]), C.Input("b", (3, 4), dtypes[1])
    values = {"a": (rng.standard_normal((5, 3)) * 3).astype(dtypes[0]),
              "b": (rng.standard_normal((3, 4)) * 3).astype(dtypes[1])}
    for node in (a @ b, C.einsum("ij,jk->ki", a, b)):
        got = C.compile(node)(**values)
        expected = C.evaluate(node, values)
        assert got.dtype == expected.dtype == np.result_type(*dtypes)
        np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("shapes", [((8, 8), (8, 0)), ((0, 8), (8, 8)), ((0, 8), (8, 0)), ((8, 0), (0, 8)),
                                    ((2, 8, 0), (0, 3))])
def test_products_with_an_empty_dimension_compile(shapes):
    """A matmul with a zero-length dimension is empty, or zeros where the contracted length is 0 (NumPy,
    torch); its gradients too. Lowering once collapsed it to a scalar and failed."""
    a, b = C.Input("a", shapes[0], "float64"), C.Input("b", shapes[1], "float64")
    values = {"a": np.ones(shapes[0]), "b": np.ones(shapes[1])}
    out = a @ b
    nodes = [out] + C.grad((out * 2.0).sum(), [a, b])
    got = C.compile(nodes)(**values)
    assert got[0].shape == (values["a"] @ values["b"]).shape
    for g, e in zip(got, C.evaluate(nodes, values)):
        np.testing.assert_array_equal(g, e)
