"""Training and inference modes: one graph, two behaviours, and in-place Buffer updates.

A ``training`` node (compiler.primitives.modes) is its training value in evaluate, compile and a
training step, and its inference value after compiler.inference; its (Buffer, new value) updates
are written in place by a compiled training step only. A counting Buffer (+1 per update) makes the
number of updates visible.
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
from compiler import optim
from compiler.graph import is_buffer
from compiler.modes import buffer_updates, inference
from compiler.optim import update_graph
from compiler.primitives.modes import make_training, training_updates
from compiler.traversal import topological_order


def counted(x, count):
    """2x in training, 3x in inference; each training step adds 1 to `count`."""
    return make_training(x * 2.0, x * 3.0, updates=[(count, count + 1.0)])


def test_inference_switches_every_training_node_and_keeps_the_rest():
    x = C.Input("m_x", (2, 3), "float64")
    count = C.Buffer("m_count", (), dtype="float64")
    inner = counted(x, count)
    outer = make_training(C.tanh(inner), inner * 0.0)  # a training node inside another's branches
    out = C.sum(outer)
    switched = inference(out)
    assert not any(node.op == "training" for node in topological_order([switched]))
    assert inference(C.tanh(x)) is C.tanh(x)  # nothing to switch: the same node
    a = np.arange(6.0).reshape(2, 3)
    assert C.evaluate(switched, {"m_x": a}) == 0.0
    assert C.evaluate(out, {"m_x": a}) == pytest.approx(np.tanh(2 * a).sum())
    both = inference([out, inner])
    assert isinstance(both, list) and C.evaluate(both[1], {"m_x": a, "m_count": np.float64(0)}).tolist() == (3 * a).tolist()


def test_evaluate_and_compile_run_training_mode_without_inference_only_buffers():
    x = C.Input("e_x", ("batch", 2), "float64")
    count = C.Buffer("e_count", (), dtype="float64")
    running = C.Buffer("e_running", (2,), dtype="float64")
    out = make_training(x * 2.0, x - running, updates=[(count, count + 1.0)])
    a = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(C.evaluate(out, {"e_x": a}), 2 * a)
    f = C.compile(out)
    assert [spec["name"] for _, spec in f.arguments] == ["e_x"]
    np.testing.assert_array_equal(f(e_x=a), 2 * a)
    g = C.compile(inference(out))
    assert sorted(spec["name"] for _, spec in g.arguments) == ["e_running", "e_x"]
    np.testing.assert_array_equal(g(e_x=a, e_running=np.array([1.0, 1.0])), a - 1)
    assert not any(node.op == "training" for node in topological_order([C.simplify(out)]))


def test_the_gradient_follows_the_mode():
    x = C.Input("g_x", (2,), "float64")
    count = C.Buffer("g_count", (), dtype="float64")
    out = C.sum(counted(x, count))
    values = {"g_x": np.ones(2), "g_count": np.float64(0)}
    np.testing.assert_array_equal(C.evaluate(C.grad(out, x), values), [2.0, 2.0])
    np.testing.assert_array_equal(C.evaluate(C.grad(inference(out), x), values), [3.0, 3.0])


def test_buffer_updates_lists_each_update_once_in_graph_order():
    x = C.Input("u_x", ("batch", 2), "float64")
    first, second = C.Buffer("u_first", (), dtype="float64"), C.Buffer("u_second", (), dtype="float64")
    a = counted(x, first)
    b = counted(a, second)
    updates = buffer_updates(C.sum(b) + C.sum(a))
    assert [buffer.name for buffer, _ in updates] == ["u_first", "u_second"]
    assert training_updates(a) == [(first, first + 1.0)]
    assert buffer_updates(inference(C.sum(b))) == []


def test_a_buffer_updated_twice_gets_both_updates_in_graph_order():
    """A layer called twice (shared weights) updates its statistics twice, as a PyTorch module would."""
    x = C.Input("t_x", (2,), "float64")
    count = C.Buffer("t_count", (), dtype="float64")
    once = counted(x, count)
    doubled = make_training(once * 1.0, once, updates=[(count, count * 2.0)])  # reads what `once` wrote
    ((buffer, value),) = buffer_updates(C.sum(doubled))
    assert buffer is count
    assert float(C.evaluate(value, {"t_count": np.float64(5)})) == (5 + 1) * 2
    w = C.Param("t_w", (2,), init="ones", dtype="float64")
    shared = C.sum(counted(counted(x * w, count), count))
    step = C.compile_step(shared, optim.SGD(lr=0.0), seed=0)
    for _ in range(3):
        step(t_x=np.ones(2))
    assert float(step.buffers["t_count"]) == 6.0


def test_make_training_checks_its_arguments():
    x = C.Input("c_x", (3,), "float64")
    buffer = C.Buffer("c_buffer", (3,), dtype="float64")
    with pytest.raises(C.GraphError, match=r"training value \(3,\) float64 and the inference value \(3, 1\)"):
        make_training(x, C.reshape(x, (3, 1)))
    with pytest.raises(C.GraphError, match="must be a compiler.Buffer, got <param 'c_param'"):
        make_training(x, x, updates=[(C.Param("c_param", (3,), dtype="float64"), x)])
    with pytest.raises(C.GraphError, match=r"buffer 'c_buffer' \(3,\) has shape \(\)"):
        make_training(x, x, updates=[(buffer, C.sum(x))])
    cast = training_updates(make_training(x, x, updates=[(C.Buffer("c_f32", (3,)), x)]))[0][1]
    assert cast.dtype == "float32"  # a new value is stored in the buffer's dtype
    assert is_buffer(buffer) and not is_buffer(C.Param("c_plain", (3,)))


def test_a_step_updates_buffers_in_place_and_its_functions_do_not():
    x = C.Input("s_x", ("batch", 2), "float64")
    w = C.Param("s_w", (2,), init="ones", dtype="float64")
    count = C.Buffer("s_count", (), dtype="float64")
    total = C.Buffer("s_total", (2,), dtype="float64")
    hidden = make_training(counted(x * w, count), x * w, updates=[(total, total + C.sum(x, 0))])
    loss = C.mean(hidden * hidden)
    step = C.compile_step(loss, optim.SGD(lr=0.0), seed=0)
    assert set(step.buffers) == {"s_count", "s_total"} and set(step.params) == {"s_w"}
    data = np.arange(14.0).reshape(7, 2)
    for _ in range(3):
        step(s_x=data[:2])
    assert float(step.buffers["s_count"]) == 3.0
    np.testing.assert_array_equal(step.buffers["s_total"], 3 * data[:2].sum(0))
    step.run_epoch({"s_x": data}, batch_size=3, shuffle=False)  # three batches: 3, 3 and 1 rows
    assert float(step.buffers["s_count"]) == 6.0
    np.testing.assert_array_equal(step.buffers["s_total"], 3 * data[:2].sum(0) + data.sum(0))
    predict = step.function(hidden)
    for _ in range(2):
        np.testing.assert_array_equal(predict(s_x=data), data)  # the inference value: x * w
    assert float(step.buffers["s_count"]) == 6.0


def test_update_graph_evaluates_the_buffer_updates():
    x = C.Input("r_x", (2,), "float64")
    w = C.Param("r_w", (2,), dtype="float64")
    count = C.Buffer("r_count", (), dtype="float64")
    graph = update_graph(C.sum(counted(x * w, count)), optim.SGD(lr=0.5))
    assert [b.name for b in graph.buffers] == ["r_count"] and list(graph.new_buffers) == ["r_count"]
    result = graph.evaluate({"r_w": np.ones(2)}, {}, 1, 0.5, {"r_x": np.array([1.0, 2.0])},
                            buffers={"r_count": np.float64(4)})
    assert result.loss == 6.0 and float(result.buffers["r_count"]) == 5.0
    np.testing.assert_array_equal(result.params["r_w"], [0.0, -1.0])
    loss, params, state, buffers = result  # a tuple of four
    assert buffers is result.buffers


def test_ids_stay_range_checked_in_the_inference_graph():
    """inference() rebuilds a gather whose table passes through dropout: its ids are still checked."""
    table, ids = C.Param("t", (5, 3)), C.Input("ids", (4,), "int64")
    f = C.compile(C.inference(C.ops.sum(C.ops.embedding(C.ops.dropout(table, 0.5), ids))))
    assert float(f(t=np.ones((5, 3), np.float32), ids=np.array([0, 1, 2, 4]))) == 12.0
    with pytest.raises(IndexError, match="value 9 .* out of range for embedding"):
        f(t=np.ones((5, 3), np.float32), ids=np.array([0, 1, 2, 9]))
