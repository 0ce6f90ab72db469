"""Gathers and scatter-adds against PyTorch: values and gradients, repeated ids, range errors.

take = torch.index_select (reshaped for n-d ids), take_along_axis = torch.gather, embedding =
torch.nn.functional.embedding, index_add = Tensor.index_add, scatter_add = Tensor.scatter_add. Each
is compiled (float32 and float64) with its gradient, and compared with torch's autograd. Ids
repeat, so scatter-adds accumulate; the compiled gradient is the same bits on every call.
Out-of-range ids (huge and negative; torch refuses negative ids too) raise IndexError naming the
argument, or the op and its line when the ids are computed inside the program.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import compiler as C
import gather_cases as GC
from compiler.errors import GraphError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def compiled_with_gradients(build, arrays: dict, dtype: str, float_names):
    """(value, {name: gradient of sum(value * w)}) of `build` compiled over Inputs of the arrays."""
    nodes = {name: C.Input(name, a.shape, dtype=dtype if a.dtype.kind == "f" else str(a.dtype))
             for name, a in arrays.items()}
    out = build(**nodes)
    w = C.Input("w", out.shape, dtype=dtype)
    loss = (out * w).sum()
    fn = C.compile([out] + C.grad(loss, [nodes[n] for n in float_names]))
    weights = np.random.default_rng(7).standard_normal(out.shape).astype(dtype)
    values = {n: (a.astype(dtype) if a.dtype.kind == "f" else a) for n, a in arrays.items()}
    results = fn(**values, w=weights)
    again = fn(**values, w=weights)
    for first, second in zip(results, again):  # deterministic: the same bits every call
        assert first.tobytes() == second.tobytes()
    return results[0], dict(zip(float_names, results[1:])), weights


def torch_with_gradients(build, arrays: dict, dtype: str, float_names, weights):
    tensors = {n: torch.tensor(a.astype(dtype) if a.dtype.kind == "f" else a, requires_grad=n in float_names)
               for n, a in arrays.items()}
    out = build(**tensors)
    (out * torch.tensor(weights)).sum().backward()
    return out.detach().numpy(), {n: tensors[n].grad.numpy() for n in float_names}


def assert_matches_torch(ours, theirs, dtype):
    rtol = TOLERANCE[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * max(1.0, float(np.abs(theirs).max(initial=0))))


CASES = {
    "take_1d": (lambda a, ids: C.take(a, ids, 1), lambda a, ids: torch.index_select(a, 1, ids),
                {"a": (4, 6, 3), "ids": (9,)}, 1),
    "take_2d_ids": (lambda a, ids: C.take(a, ids, 0),
                    lambda a, ids: torch.index_select(a, 0, ids.reshape(-1)).reshape(ids.shape + a.shape[1:]),
                    {"a": (5, 3), "ids": (4, 7)}, 0),
    "take_last_axis": (lambda a, ids: C.take(a, ids, -1), lambda a, ids: torch.index_select(a, -1, ids),
                       {"a": (2, 3, 5), "ids": (8,)}, 2),
    "take_along_axis": (lambda a, ids: C.take_along_axis(a, ids, 1), lambda a, ids: torch.gather(a, 1, ids),
                        {"a": (4, 5), "ids": (4, 9)}, 1),
    "take_along_axis_shorter_ids": (lambda a, ids: C.take_along_axis(a, ids, 0),
                                    lambda a, ids: torch.gather(a, 0, ids), {"a": (5, 6, 3), "ids": (7, 4, 2)}, 0),
    "embedding": (lambda a, ids: C.embedding(a, ids), lambda a, ids: torch.nn.functional.embedding(ids, a),
                  {"a": (10, 4), "ids": (3, 16)}, 0),
}


def _arrays(shapes: dict, size: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in shapes.items():
        if name == "ids":
            arrays[name] = rng.integers(0, size, shape)  # more ids than rows: repeats
        else:
            arrays[name] = rng.standard_normal(shape)
    return arrays


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_gathers_equal_torch_in_value_and_gradient(case, dtype):
    ours_build, torch_build, shapes, axis = CASES[case]
    arrays = _arrays(shapes, shapes["a"][axis], seed=len(case))
    ours, grads, weights = compiled_with_gradients(ours_build, arrays, dtype, ["a"])
    theirs, torch_grads = torch_with_gradients(torch_build, arrays, dtype, ["a"], weights)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)  # a gather copies: exact
    assert_matches_torch(grads["a"], torch_grads["a"], dtype)
    assert np.unique(arrays["ids"]).size < arrays["ids"].size  # repeated ids: the gradient accumulated


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ids_dtype", ["int64", "int32"])
def test_index_add_equals_torch(dtype, ids_dtype):
    rng = np.random.default_rng(3)
    arrays = {"a": rng.standard_normal((5, 6, 2)), "ids": rng.integers(0, 6, 11).astype(ids_dtype),
              "source": rng.standard_normal((5, 11, 2))}
    ours, grads, weights = compiled_with_gradients(lambda a, ids, source: C.index_add(a, 1, ids, source), arrays,
                                                   dtype, ["a", "source"])
    theirs, torch_grads = torch_with_gradients(lambda a, ids, source: a.index_add(1, ids, source), arrays, dtype,
                                               ["a", "source"], weights)
    assert_matches_torch(ours, theirs, dtype)
    for name in ("a", "source"):
        assert_matches_torch(grads[name], torch_grads[name], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scatter_add_equals_torch(dtype):
    rng = np.random.default_rng(4)
    arrays = {"a": rng.standard_normal((3, 4)), "ids": rng.integers(0, 4, (2, 7)),
              "source": rng.standard_normal((2, 7))}
    ours, grads, weights = compiled_with_gradients(lambda a, ids, source: C.scatter_add(a, 1, ids, source), arrays,
                                                   dtype, ["a", "source"])
    theirs, torch_grads = torch_with_gradients(lambda a, ids, source: a.scatter_add(1, ids, source), arrays, dtype,
                                               ["a", "source"], weights)
    assert_matches_torch(ours, theirs, dtype)
    for name in ("a", "source"):
        assert_matches_torch(grads[name], torch_grads[name], dtype)


def test_scatter_add_of_a_larger_source_adds_its_leading_part_as_torch():
    """(torch's own backward refuses a source larger than the ids: values only.)"""
    rng = np.random.default_rng(6)
    a, ids, source = rng.standard_normal((3, 4)), rng.integers(0, 4, (2, 7)), rng.standard_normal((3, 9))
    fn = C.compile(C.scatter_add(C.Input("a", (3, 4), "float64"), 1, C.Input("ids", (2, 7), "int64"),
                                 C.Input("source", (3, 9), "float64")))
    expected = torch.tensor(a).scatter_add(1, torch.tensor(ids), torch.tensor(source)).numpy()
    np.testing.assert_allclose(fn(a=a, ids=ids, source=source), expected, rtol=1e-12, atol=1e-12)


def test_a_scatter_add_accumulates_in_a_fixed_order():
    """Many float32 additions into one row: the order is row-major over the ids, as np.add.at's."""
    rng = np.random.default_rng(5)
    table, ids = C.Input("table", (3, 8)), C.Input("ids", (1000,), "int64")
    g = C.grad((C.embedding(table, ids) * C.const(rng.standard_normal((1000, 8)).astype(np.float32))).sum(), table)
    fn = C.compile(g)
    ids_value = rng.integers(0, 3, 1000)
    first = fn(ids=ids_value)
    expected = C.evaluate(g, {"table": np.zeros((3, 8), np.float32), "ids": ids_value})
    np.testing.assert_array_equal(first, expected)  # the reference adds in the same order, in float32
    assert all(fn(ids=ids_value).tobytes() == first.tobytes() for _ in range(3))


def test_an_embedding_reads_its_rows_inside_the_consumer_loop_and_its_gradient_is_one_scatter_kernel():
    table, ids = C.Input("table", (10, 4)), C.Input("ids", ("batch", 3), "int64")
    out = C.tanh(C.embedding(table, ids)) * 2.0
    fn = C.compile(out)
    assert len(fn.plan["kernels"]) == 1 and "at i3 = ids" in fn.plan["kernels"][0]["body"]
    ids_value = np.array([[1, 9, 1], [0, 0, 5]])
    table_value = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    np.testing.assert_allclose(fn(table=table_value, ids=ids_value), np.tanh(table_value[ids_value]) * 2, rtol=1e-6)
    gradient = C.compile(C.grad(out.sum(), table))
    kinds = [k["kind"] for k in gradient.plan["kernels"]]
    assert kinds.count("scatter_add") == 1


def test_ids_read_through_layout_ops():
    """Ids padded (the pad value is an id), transposed, reversed and strided, read where they are gathered."""
    a, ids = C.Input("a", (5, 3), "float64"), C.Input("ids", (2, 4), "int64")
    outputs = [C.take(a, C.pad(ids, ((1, 0), (0, 2)), value=3), 0), C.take(a, ids.T[::-1], 0),
               C.take(C.exp(a), ids[:, 1::2], 0) * 2, C.pad(C.embedding(a, ids[1]), 1, value=-1.0)]
    a_value, ids_value = np.random.default_rng(0).standard_normal((5, 3)), np.array([[0, 4, 1, 1], [2, 2, 3, 0]])
    expected = [a_value[np.pad(ids_value, ((1, 0), (0, 2)), constant_values=3)], a_value[ids_value.T[::-1]],
                np.exp(a_value)[ids_value[:, 1::2]] * 2, np.pad(a_value[ids_value[1]], 1, constant_values=-1.0)]
    for got, want in zip(C.compile(outputs)(a=a_value, ids=ids_value), expected):
        np.testing.assert_allclose(got, want, rtol=1e-14)


DRAWN = {  # op -> (build over (tensor, ids[, source]) with the case's axis, case strategy)
    "take": (lambda a, ids, axis: C.take(a, ids, axis), GC.take_case()),
    "take_along_axis": (lambda a, ids, axis: C.take_along_axis(a, ids, axis), GC.along_axis_case()),
    "embedding": (lambda a, ids: C.embedding(a, ids), GC.embedding_case()),
    "index_add": (lambda a, ids, source, axis: C.index_add(a, axis, ids, source), GC.index_add_case()),
    "scatter_add": (lambda a, ids, source, axis: C.scatter_add(a, axis, ids, source), GC.scatter_add_case()),
}


@pytest.mark.parametrize("op", sorted(DRAWN))
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_equals_the_evaluator_on_drawn_shapes(op, data):
    """Values and gradients, float64, on hypothesis-drawn shapes, axes and ids (0-d to 2-d, repeated)."""
    build, case = DRAWN[op]
    shapes, kwargs = data.draw(case, label="shapes and arguments")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    nodes = [C.Input(f"g{k}", shape, "int64" if k == 1 else "float64") for k, shape in enumerate(shapes)]
    arrays = [GC.ids_for(rng, shape, shapes) if k == 1 else rng.standard_normal(shape)
              for k, shape in enumerate(shapes)]
    out = build(*nodes, **kwargs)
    w = C.const(rng.standard_normal(out.shape))
    floats = [n for n in nodes if n.dtype == "float64"]
    outputs = [out] + C.grad((out * w).sum(), floats)
    values = {n.name: a for n, a in zip(nodes, arrays)}
    for got, want in zip(C.compile(outputs)(**values), C.evaluate(outputs, values)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---- ids out of range ------------------------------------------------------------------------------

HUGE = 2 ** 62


def gather_programs():
    """(name, build(a, ids) -> node, size of the indexed axis): a of shape (5, 6)."""
    return [
        ("take", lambda a, ids: C.take(a, ids, 1), 6),
        ("embedding", lambda a, ids: C.embedding(a, ids), 5),
        ("take_along_axis", lambda a, ids: C.take_along_axis(a, C.reshape(ids, (1, 4)), 1), 6),
        ("index_add", lambda a, ids: C.index_add(a, 0, ids, C.const(np.ones((4, 6), np.float32))), 5),
        ("scatter_add", lambda a, ids: C.scatter_add(a, 1, C.reshape(ids, (1, 4)), C.const(np.ones((1, 4), np.float32))), 6),
    ]


@pytest.mark.parametrize("bad", [HUGE, -1, -HUGE, 6])
@pytest.mark.parametrize("op, build, size", gather_programs(), ids=[p[0] for p in gather_programs()])
def test_input_ids_out_of_range_raise_before_the_program_runs(op, build, size, bad):
    a, ids = C.Input("a", (5, 6)), C.Input("ids", (4,), "int64")
    fn = C.compile(build(a, ids))
    a_value = np.ones((5, 6), np.float32)
    bad = bad if bad != 6 else size  # one past the end
    with pytest.raises(IndexError, match=rf"argument 'ids': value {bad} at index \(2,\) is out of range for {op} "
                                         rf"\(expected 0 <= ids < {size}\)"):
        fn(a=a_value, ids=np.array([0, 1, bad, 2]))
    assert np.all(np.isfinite(fn(a=a_value, ids=np.array([0, 1, size - 1, 2]))))


@pytest.mark.parametrize("shift, bad", [(HUGE, HUGE), (-10, -10)])
@pytest.mark.parametrize("op, build, size", gather_programs(), ids=[p[0] for p in gather_programs()])
def test_computed_ids_out_of_range_raise_after_the_call_naming_the_op_and_line(op, build, size, shift, bad):
    a, raw = C.Input("a", (5, 6)), C.Input("raw", (4,), "int64")
    fn = C.compile(build(a, raw + shift))  # the ids are computed inside the program
    line = _line_of(f'("{op}", lambda')  # where the op was called
    a_value = np.ones((5, 6), np.float32)
    raw_value = np.array([0, 1, 2, 0]) - shift
    fn(a=a_value, raw=raw_value)  # in range after the shift
    raw_value[2] = bad - shift
    message = str(pytest.raises(IndexError, fn, a=a_value, raw=raw_value).value)
    assert re.fullmatch(rf"{op} at .*test_gather_torch.py:{line}: ids value {bad} is out of range \(expected 0 <= "
                        rf"ids < {size}\); the ids were computed inside the graph", message), message


def _line_of(text: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def test_a_gradient_alone_checks_its_ids_and_names_the_forward_op():
    """The table's gradient does not read the table, nor the gather: its scatter-add checks the ids."""
    table, ids = C.Param("emb_table", (10, 4)), C.Input("ids", ("batch", 3), "int64")
    gradient = C.compile(C.grad(C.embedding(table, ids).sum(), table))
    with pytest.raises(IndexError, match=r"argument 'ids': value 10 at index \(0, 2\) is out of range for embedding "
                                         r"\(expected 0 <= ids < 10\)"):
        gradient(ids=np.array([[1, 2, 10]]))
    np.testing.assert_array_equal(gradient(ids=np.array([[1, 1, 9]])).sum(axis=1), [0, 8, 0, 0, 0, 0, 0, 0, 0, 4])


def test_constant_ids_out_of_range_raise_at_declaration():
    a = C.Input("a", (5, 6))
    with pytest.raises(IndexError, match=r"take at .*: ids value -1 is out of range \(expected 0 <= ids < 6\)"):
        C.take(a, C.const(np.array([0, -1])), 1)
    with pytest.raises(IndexError, match=r"embedding at .*: ids value 5 is out of range \(expected 0 <= ids < 5\)"):
        C.embedding(a, C.const(np.array([5])))


def test_the_reference_refuses_ids_out_of_range():
    a, ids = C.Input("a", (5, 6)), C.Input("ids", (2,), "int64")
    with pytest.raises(IndexError, match="ids value -1 is out of range"):
        C.evaluate(C.take(a, ids, 1), {"a": np.ones((5, 6), np.float32), "ids": np.array([0, -1])})


def test_a_kernel_never_reads_outside_the_table_whatever_the_ids():
    """Past the range checks (called directly on the native program), bad ids read 0, never memory."""
    table, ids = C.Input("table", (3, 2)), C.Input("ids", (4,), "int64")
    fn = C.compile(C.embedding(table, ids) + 1.0)
    dims = fn.check({"table": np.ones((3, 2), np.float32), "ids": np.zeros(4, np.int64)})
    out = fn.run({"table": np.ones((3, 2), np.float32), "ids": np.array([1, -HUGE, HUGE, 2**31])}, dims)
    np.testing.assert_array_equal(out, [[2, 2], [1, 1], [1, 1], [1, 1]])


# ---- cross_entropy's labels: the same treatment ------------------------------------------------------

@pytest.mark.parametrize("stored", [True, False], ids=["gathered logits", "one-hot selection"])
@pytest.mark.parametrize("bad", [3, -1, HUGE, -HUGE])
def test_cross_entropy_labels_out_of_range_raise(stored, bad):
    x, W, y = C.Input("x", ("batch", 4)), C.Param("ce_W", (4, 3)), C.Input("y", ("batch",), "int64")
    logits = x @ W if stored else x @ W + 1.0  # a product is stored anyway: its labels' logits are gathered
    loss = C.cross_entropy(logits, y)
    assert (loss.op == "surrogate") == stored
    fn = C.compile(loss)
    x_value, W_value = np.ones((3, 4), np.float32), np.ones((4, 3), np.float32)
    with pytest.raises(IndexError, match=rf"argument 'y': value {bad} at index \(1,\).*cross_entropy.*0 <= y < 3"):
        fn(x=x_value, y=np.array([0, bad, 2]), ce_W=W_value)
    computed = C.compile(C.cross_entropy(logits, C.argmax(x, axis=1) + (bad if abs(bad) < 10 else 0)))
    if abs(bad) < 10:
        with pytest.raises(IndexError, match=rf"^cross_entropy: labels value {bad} is out of range \(expected 0 <= "
                                             rf"labels < 3\); the labels were computed inside the graph$"):
            computed(x=x_value, ce_W=W_value)


def test_cross_entropy_by_gather_has_the_one_hot_values_and_gradients_bit_for_bit():
    import compiler.losses as losses
    rng = np.random.default_rng(1)
    values = {"x": rng.standard_normal((6, 4)).astype(np.float32), "y": rng.integers(0, 3, 6),
              "ce_W": rng.standard_normal((4, 3)).astype(np.float32)}
    results = []
    for gathered in (True, False):
        x, W, y = C.Input("x", ("batch", 4)), C.Param("ce_W", (4, 3)), C.Input("y", ("batch",), "int64")
        in_memory = losses._in_memory
        losses._in_memory = in_memory if gathered else (lambda node: False)
        try:
            loss = C.cross_entropy(x @ W, y)
        finally:
            losses._in_memory = in_memory
        assert (loss.op == "surrogate") == gathered
        results.append(C.compile([loss] + C.grad(loss, [x, W]))(**values))
    for ours, one_hot in zip(*results):
        assert ours.tobytes() == one_hot.tobytes()


# ---- declaration errors ------------------------------------------------------------------------------

def test_declaration_errors_name_the_shapes_and_the_line():
    a = C.Input("a", (5, 6))
    with pytest.raises(GraphError, match=r"take: ids must be an int32 or int64 tensor, got float32.*declared at "
                                         r".*test_gather_torch.py"):
        C.take(a, C.Input("f", (3,)), 0)
    with pytest.raises(GraphError, match=r"take_along_axis: ids \(5, 7\) do not fit tensor \(5, 6\) on axis 1"):
        C.take_along_axis(a, C.Input("i", (5, 7), "int64"), 0)
    with pytest.raises(GraphError, match=r"index_add: source must have shape \(5, 2\)"):
        C.index_add(a, 1, C.Input("i", (2,), "int64"), C.Input("s", (5, 3)))
    with pytest.raises(GraphError, match=r"symbolic dimension 'batch'"):
        C.take(C.Input("b", ("batch", 3)), C.Input("i", (2,), "int64"), 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
@pytest.mark.parametrize("ignore_index, label_smoothing, reduction",
                         [(-100, 0.0, "mean"), (-100, 0.2, "mean"), (None, 0.2, "mean"), (None, 0.0, "sum"),
                          (-100, 0.1, "sum"), (None, 0.0, "none"), (3, 0.3, "none")])
def test_cross_entropy_options_equal_torch(dtype, shape, ignore_index, label_smoothing, reduction):
    """ignore_index, label_smoothing and reduction as torch.nn.functional.cross_entropy's (class axis last
    here, at 1 there): values and gradients, evaluated and compiled; ignored labels pass the range check."""
    rng = np.random.default_rng(len(shape) + int(label_smoothing * 10))
    logits = rng.standard_normal(shape).astype(dtype)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(np.int64)
    if ignore_index is not None:
        labels.reshape(-1)[::3] = ignore_index
    node = C.Input("logits", shape, dtype)
    label_node = C.Input("labels", labels.shape, "int64")
    loss = C.cross_entropy(node, label_node, ignore_index=ignore_index, label_smoothing=label_smoothing,
                           reduction=reduction)
    nodes = [loss, C.grad((loss * 1.5).sum(), node)]
    tensor = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tensor.movedim(-1, 1), torch.tensor(labels),
                                                 ignore_index=-100 if ignore_index is None else ignore_index,
                                                 label_smoothing=label_smoothing, reduction=reduction)
    (expected * 1.5).sum().backward()
    tolerance = 1e-10 if dtype == "float64" else 1e-5
    values = {"logits": logits, "labels": labels}
    for got in (C.evaluate(nodes, values), C.compile(nodes)(**values)):
        np.testing.assert_allclose(got[0], expected.detach().numpy(), rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(got[1], tensor.grad.numpy(), rtol=tolerance, atol=tolerance)


def test_cross_entropy_ignore_index_is_the_only_value_outside_the_range():
    """With ignore_index, that value passes the label check (Input, constant and computed labels) and every
    other value outside [0, classes) still raises, naming both; all labels ignored give nan, as torch."""
    logits = C.Input("logits", ("batch", 4), "float64")
    labels = C.Input("labels", ("batch",), "int64")
    loss = C.cross_entropy(logits, labels, ignore_index=-100)
    f = C.compile(loss)
    x = np.zeros((3, 4))
    assert np.isfinite(f(logits=x, labels=np.array([0, -100, 3])))
    assert np.isnan(f(logits=x, labels=np.array([-100, -100, -100])))
    with pytest.raises(IndexError, match=r"value -5 .*0 <= labels < 4 or labels == -100"):
        f(logits=x, labels=np.array([0, -5, 3]))
    with pytest.raises(IndexError, match=r"labels value 4 is out of range .*or labels == -100"):
        C.evaluate(loss, {"logits": x, "labels": np.array([4, -100, 1])})
    computed = C.compile(C.cross_entropy(logits, labels * 1, ignore_index=-100))
    assert np.isfinite(computed(logits=x, labels=np.array([0, -100, 3])))
    with pytest.raises(IndexError, match=r"cross_entropy"):
        computed(logits=x, labels=np.array([0, 7, 3]))


@pytest.mark.parametrize("index", [[0, 2, 2, -1], (slice(None), [3, 0, 3]), (Ellipsis, [2, 0]),
                                   np.array([[4, 0], [1, 1]])])
def test_indexing_by_an_integer_array_equals_torch(index):
    """x[ids] and x[:, ids] with ':' elsewhere are takes along that axis (a constant's negative ids count from
    the end, as in torch); values and the gradient (repeated ids add up), evaluated and compiled."""
    rng = np.random.default_rng(0)
    array = rng.standard_normal((5, 4, 3))
    x = C.Input("x", array.shape, "float64")
    out = x[index]
    nodes = [out, C.grad((out * out).sum(), x)]
    tensor = torch.tensor(array, requires_grad=True)
    torch_index = tuple(torch.tensor(i) if isinstance(i, (list, np.ndarray)) else i for i in
                        (index if isinstance(index, tuple) else (index,)))
    expected = tensor[torch_index]
    (expected * expected).sum().backward()
    for got in (C.evaluate(nodes, {"x": array}), C.compile(nodes)(x=array)):
        np.testing.assert_allclose(got[0], expected.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(got[1], tensor.grad.numpy(), rtol=1e-12)


def test_indexing_by_an_integer_input_and_the_forms_refused():
    x = C.Input("x", (5, 4), "float64")
    ids = C.Input("ids", (3,), "int64")
    array = np.arange(20.0).reshape(5, 4)
    np.testing.assert_array_equal(C.compile(x[:, ids])(x=array, ids=np.array([3, 0, 3])), array[:, [3, 0, 3]])
    with pytest.raises(IndexError, match=r"ids value 5 is out of range"):
        x[[0, 5]]
    with pytest.raises(GraphError, match=r"boolean masks are not supported"):
        x[np.array([True, False, True, True, False])]
    with pytest.raises(GraphError, match=r"one axis with ':' on every other"):
        x[[0, 1], [1, 2]]


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)])
@pytest.mark.parametrize("label_smoothing, reduction", [(0.0, "mean"), (0.3, "sum"), (0.1, "none")])
def test_cross_entropy_against_class_probabilities_equals_torch(shape, label_smoothing, reduction):
    """Soft targets (probabilities of the logits' shape): value and the gradients of both the logits and
    the probabilities, evaluated and compiled; ignore_index is refused for them, as torch ignores it."""
    rng = np.random.default_rng(1)
    logits, targets = rng.standard_normal(shape), rng.dirichlet(np.ones(shape[-1]), shape[:-1])
    nodes = [C.Input("logits", shape, "float64"), C.Input("targets", shape, "float64")]
    loss = C.cross_entropy(*nodes, label_smoothing=label_smoothing, reduction=reduction)
    graph = [loss] + C.grad((loss * 1.5).sum(), nodes)
    tensors = [torch.tensor(a, requires_grad=True) for a in (logits, targets)]
    expected = torch.nn.functional.cross_entropy(*[t.movedim(-1, 1) for t in tensors],
                                                 label_smoothing=label_smoothing, reduction=reduction)
    (expected * 1.5).sum().backward()
    values = {"logits": logits, "targets": targets}
    for got in (C.evaluate(graph, values), C.compile(graph)(**values)):
        for a, e in zip(got, [expected.detach()] + [t.grad for t in tensors]):
            np.testing.assert_allclose(a, e.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(GraphError, match="ignore_index applies to class labels"):
        C.cross_entropy(*nodes, ignore_index=-100)
