"""Deep graphs: a chain of 20,000 operations declares, differentiates, evaluates and prints
under Python's default recursion limit, and an unrolled 128-step LSTM compiles and agrees
with the reference evaluator. Nothing walks a graph by recursing per node.

Compile time (linear in the chain length): benchmarks/bench_deep.py.
"""
import itertools

import numpy as np
import pytest

import compiler as C
from compiler.passes import simplify
from compiler.traversal import topological_order

_fresh = itertools.count()


pytestmark = pytest.mark.usefixtures("default_recursion_limit")


def mixed_chain(length: int):
    """`length` operations, cycling through an affine tanh map, a matmul, a column roll (slice and
    concat) and a transpose added back: (loss, params, values, NumPy loss of the values)."""
    tag = next(_fresh)
    x = C.Input(f"x{tag}", (4, 4), "float64")
    W = C.Param(f"W{tag}", (4, 4), dtype="float64")
    w, b = C.Param(f"w{tag}", (4,), dtype="float64"), C.Param(f"b{tag}", (4,), dtype="float64")
    h = x
    for i in range(length):
        step = i % 4
        if step == 0:
            h = C.tanh(h * w + b)
        elif step == 1:
            h = h @ W
        elif step == 2:
            h = C.concat([h[:, 1:], h[:, :1]], axis=1)
        else:
            h = C.transpose(h) * 0.5 + h * 0.5
    loss = C.sum(h * h)
    rng = np.random.default_rng(0)
    values = {f"x{tag}": rng.normal(size=(4, 4)), f"W{tag}": np.eye(4) + 0.1 * rng.normal(size=(4, 4)),
              f"w{tag}": rng.uniform(0.5, 1.0, 4), f"b{tag}": rng.uniform(-0.2, 0.2, 4)}
    return loss, [W, w, b], values


def numpy_chain(length: int, x, W, w, b) -> float:
    h = x
    for i in range(length):
        step = i % 4
        if step == 0:
            h = np.tanh(h * w + b)
        elif step == 1:
            h = h @ W
        elif step == 2:
            h = np.concatenate([h[:, 1:], h[:, :1]], axis=1)
        else:
            h = h.T * 0.5 + h * 0.5
    return float(np.sum(h * h))


def test_chain_of_20000_ops_differentiates_evaluates_and_prints():
    length = 20_000
    loss, params, values = mixed_chain(length)
    grads = C.grad(loss, params)
    assert len(topological_order([loss] + grads)) > 5 * length
    results = C.evaluate([loss] + grads, values)
    names = [p.name for p in params]
    x, W, w, b = (values[k] for k in sorted(values, key=lambda k: "xWwb".index(k[0])))
    assert results[0] == pytest.approx(numpy_chain(length, x, W, w, b), rel=1e-9)
    direction, eps = np.array([1.0, -0.5, 0.25, 2.0]), 1e-6
    central = (numpy_chain(length, x, W, w, b + eps * direction)
               - numpy_chain(length, x, W, w, b - eps * direction)) / (2 * eps)
    assert float(results[names.index(params[2].name) + 1] @ direction) == pytest.approx(central, rel=1e-5, abs=1e-8)
    text = C.show([loss] + grads)
    assert text.count("\n") > 5 * length
    assert C.to_dot([loss] + grads, forward=[loss]).startswith("digraph")


def test_simplify_a_chain_deeper_than_the_recursion_limit():
    length = 1_500
    loss, params, values = mixed_chain(length)
    outputs = [loss] + C.grad(loss, params)
    simplified = simplify(outputs)
    expected = C.evaluate(outputs, values)
    for got, want in zip(C.evaluate(simplified, values), expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def lstm(steps: int, batch: int = 2, hidden: int = 4, features: int = 3):
    tag = next(_fresh)
    xs = C.Input(f"xs{tag}", (steps, batch, features))
    Wx = C.Param(f"Wx{tag}", (features, 4 * hidden))
    Wh = C.Param(f"Wh{tag}", (hidden, 4 * hidden))
    b = C.Param(f"b{tag}", (4 * hidden,))
    h = c = C.const(np.zeros((batch, hidden), "float32"))
    for t in range(steps):
        z = xs[t] @ Wx + h @ Wh + b
        i, f, g, o = (z[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c = C.sigmoid(f) * c + C.sigmoid(i) * C.tanh(g)
        h = C.sigmoid(o) * C.tanh(c)
    loss = C.sum(h * h)
    rng = np.random.default_rng(1)
    values = {xs.name: rng.normal(size=xs.shape).astype("float32"),
              Wx.name: (0.5 * rng.normal(size=Wx.shape)).astype("float32"),
              Wh.name: (0.5 * rng.normal(size=Wh.shape)).astype("float32"),
              b.name: (0.1 * rng.normal(size=b.shape)).astype("float32")}
    return loss, [Wx, Wh, b], values


def test_unrolled_lstm_of_128_steps_compiles_and_matches_evaluate():
    loss, params, values = lstm(128)
    outputs = [loss] + C.grad(loss, params)
    expected = C.evaluate(outputs, values)
    got = C.compile(outputs)(**values)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=2e-4, atol=1e-5)
