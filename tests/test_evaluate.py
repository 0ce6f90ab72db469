"""The NumPy reference evaluator: values as NumPy computes them, in the dtype declared.

Also: return conventions (a node -> an array, a list -> a list), symbolic
dimensions bound from the values, NaN/inf behaving as in NumPy, and
``compiler.leaves`` listing Inputs and Params in a stable order.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import compiler as C
from compiler import Input, Param, const, evaluate

RNG = np.random.default_rng(0)
X = RNG.normal(size=(3, 4)).astype(np.float32)
Y = RNG.normal(size=(4,)).astype(np.float32)
P = RNG.uniform(0.5, 2.0, size=(3, 4)).astype(np.float32)
I = np.array([3, -1, 2], dtype=np.int32)
L = np.array([1, 0, 3], dtype=np.int64)
VALUES = {"ev_x": X, "ev_y": Y, "ev_p": P, "ev_i": I, "ev_l": L}


def leaves():
    return (Input("ev_x", (3, 4)), Input("ev_y", (4,)), Input("ev_p", (3, 4)),
            Input("ev_i", (3,), dtype="int32"), Input("ev_l", (3,), dtype="int64"))


def np_log_softmax(v, axis):
    m = v.max(axis=axis, keepdims=True)
    return v - m - np.log(np.exp(v - m).sum(axis=axis, keepdims=True))


# (id, graph of the leaves, the same computation in NumPy, rtol); float32 in, float32 out
FORWARD = [
    ("exp", lambda x, y, p, i, l: C.exp(x), lambda: np.exp(X), 1e-6),
    ("log", lambda x, y, p, i, l: C.log(p), lambda: np.log(P), 1e-6),
    ("sqrt", lambda x, y, p, i, l: C.sqrt(p), lambda: np.sqrt(P), 1e-6),
    ("tanh", lambda x, y, p, i, l: C.tanh(x), lambda: np.tanh(X), 1e-6),
    ("sigmoid", lambda x, y, p, i, l: C.sigmoid(x), lambda: 1 / (1 + np.exp(-X)), 1e-6),
    ("softplus", lambda x, y, p, i, l: C.softplus(x), lambda: np.log1p(np.exp(X)), 1e-6),
    ("relu", lambda x, y, p, i, l: C.relu(x), lambda: np.maximum(X, 0), 0),
    ("leaky_relu", lambda x, y, p, i, l: C.leaky_relu(x, 0.2), lambda: np.where(X > 0, X, np.float32(0.2) * X), 1e-6),
    ("sin_cos", lambda x, y, p, i, l: C.sin(x) + C.cos(x), lambda: np.sin(X) + np.cos(X), 1e-6),
    ("abs", lambda x, y, p, i, l: abs(x), lambda: np.abs(X), 0),
    ("maximum", lambda x, y, p, i, l: C.maximum(x, y), lambda: np.maximum(X, Y), 0),
    ("minimum", lambda x, y, p, i, l: C.minimum(x, y), lambda: np.minimum(X, Y), 0),
    ("clip", lambda x, y, p, i, l: C.clip(x, -0.5, 0.5), lambda: np.clip(X, -0.5, 0.5), 0),
    ("where", lambda x, y, p, i, l: C.where(x > y, x, y * 2), lambda: np.where(X > Y, X, Y * 2), 0),
    ("arithmetic", lambda x, y, p, i, l: (x + y) * p - x / p + p ** y, lambda: (X + Y) * P - X / P + P ** Y, 1e-5),
    ("matmul", lambda x, y, p, i, l: x @ y, lambda: X @ Y, 1e-6),
    ("matmul_T", lambda x, y, p, i, l: x @ p.T, lambda: X @ P.T, 1e-6),
    ("einsum", lambda x, y, p, i, l: C.einsum("ij,ij->j", x, p), lambda: np.einsum("ij,ij->j", X, P), 1e-6),
    ("sum", lambda x, y, p, i, l: x.sum(axis=0), lambda: X.sum(axis=0), 1e-6),
    ("mean", lambda x, y, p, i, l: x.mean(axis=1, keepdims=True), lambda: X.mean(axis=1, keepdims=True), 1e-6),
    ("max", lambda x, y, p, i, l: x.max(), lambda: X.max(), 0),
    ("reshape_transpose", lambda x, y, p, i, l: x.reshape(2, 6).T, lambda: X.reshape(2, 6).T, 0),
    ("slice", lambda x, y, p, i, l: x[1:, ::1][:, 2], lambda: X[1:, 2], 0),
    ("concat", lambda x, y, p, i, l: C.concat([x, p], axis=1), lambda: np.concatenate([X, P], axis=1), 0),
    ("stack", lambda x, y, p, i, l: C.stack([x, p], axis=-1), lambda: np.stack([X, P], axis=-1), 0),
    ("broadcast_to", lambda x, y, p, i, l: C.broadcast_to(y, (2, 3, 4)), lambda: np.broadcast_to(Y, (2, 3, 4)), 0),
    ("softmax", lambda x, y, p, i, l: C.softmax(x, axis=0), lambda: np.exp(np_log_softmax(X, 0)), 1e-6),
    ("log_softmax", lambda x, y, p, i, l: C.log_softmax(x), lambda: np_log_softmax(X, -1), 1e-6),
    ("logsumexp", lambda x, y, p, i, l: C.logsumexp(x, axis=1),
     lambda: np.log(np.exp(X).sum(axis=1)), 1e-6),
    ("mse", lambda x, y, p, i, l: C.mse(x, p), lambda: np.mean((X - P) ** 2), 1e-6),
    ("cross_entropy", lambda x, y, p, i, l: C.cross_entropy(x, l),
     lambda: -np.mean(np_log_softmax(X, 1)[np.arange(3), L]), 1e-6),
    ("bce_with_logits", lambda x, y, p, i, l: C.binary_cross_entropy_with_logits(x, C.sigmoid(p)),
     lambda: np.mean(np.log1p(np.exp(X)) - X / (1 + np.exp(-P))), 1e-6),
    ("stop_gradient", lambda x, y, p, i, l: C.stop_gradient(x) * 2, lambda: X * 2, 0),
    ("astype", lambda x, y, p, i, l: x.astype("float64") / 3, lambda: X.astype(np.float64) / 3, 1e-15),
    ("int_sum", lambda x, y, p, i, l: i.sum(), lambda: I.sum(), 0),
    ("int_arithmetic", lambda x, y, p, i, l: i * 2 - 1, lambda: I * 2 - 1, 0),
    ("int_division", lambda x, y, p, i, l: i / 2, lambda: I / 2, 0),
    ("int_and_float", lambda x, y, p, i, l: i + 0.5, lambda: I + 0.5, 0),
    ("comparison", lambda x, y, p, i, l: x >= y, lambda: X >= Y, 0),
    ("one_hot", lambda x, y, p, i, l: C.one_hot(l, 4), lambda: np.eye(4, dtype=np.float32)[L], 0),
    ("equal", lambda x, y, p, i, l: C.equal(l, 0), lambda: L == 0, 0),
]


@pytest.mark.parametrize("build,reference,rtol", [f[1:] for f in FORWARD], ids=[f[0] for f in FORWARD])
def test_forward_values_and_dtypes_match_numpy(build, reference, rtol):
    node = build(*leaves())
    expected = np.asarray(reference())
    got = evaluate(node, VALUES)
    assert isinstance(got, np.ndarray)
    assert got.shape == expected.shape == node.shape
    assert got.dtype == expected.dtype == np.dtype(node.dtype)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)


def test_one_node_gives_an_array_and_a_list_gives_a_list():
    x = Input("ret_x", (2,), dtype="float64")
    value = {"ret_x": np.array([1.0, 2.0])}
    assert isinstance(evaluate(x * 2, value), np.ndarray)
    both = evaluate([x * 2, x + 1], value)
    assert isinstance(both, list) and len(both) == 2
    np.testing.assert_array_equal(both[1], [2.0, 3.0])
    assert isinstance(evaluate((x * 2,), value), list)


def test_values_are_cast_to_the_declared_dtype_and_not_modified():
    x = Input("cast_x", (3,))
    fed = np.array([0.1, 0.2, 0.3])
    got = evaluate(x * 1.5, {"cast_x": fed})
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, fed.astype(np.float32) * np.float32(1.5))
    np.testing.assert_array_equal(fed, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(evaluate(x, {"cast_x": [1, 2, 3]}), np.array([1, 2, 3], np.float32))


def test_params_are_values_by_name_and_extra_values_are_ignored():
    W = Param("ev_W", (2, 2), dtype="float64")
    got = evaluate(W.sum(), {"ev_W": np.ones((2, 2)), "unused": np.zeros(7)})
    assert got == 4.0


def test_symbolic_dimensions_are_bound_per_call():
    x = Input("sym_x", ("batch", 3), dtype="float64")
    y = Input("sym_y", ("batch", 1), dtype="float64")
    mean = (x * y).mean(axis=0)
    for batch in (1, 5):
        a, b = RNG.normal(size=(batch, 3)), RNG.normal(size=(batch, 1))
        np.testing.assert_allclose(evaluate(mean, {"sym_x": a, "sym_y": b}), (a * b).mean(axis=0), rtol=1e-14)
    whole = x.mean()
    np.testing.assert_allclose(evaluate(whole, {"sym_x": np.arange(12.0).reshape(4, 3)}), 5.5)


def test_gradients_evaluate_with_symbolic_batch():
    x = Input("symg_x", ("batch", 3), dtype="float64")
    W = Param("symg_W", (3, 2), dtype="float64")
    g = C.grad(C.mse(x @ W, const(np.zeros(2))), W)
    a, w = RNG.normal(size=(5, 3)), RNG.normal(size=(3, 2))
    np.testing.assert_allclose(evaluate(g, {"symg_x": a, "symg_W": w}), 2 * a.T @ (a @ w) / (5 * 2), rtol=1e-13)


# ---- NaN and inf as in NumPy ----------------------------------------------------------------------

SPECIAL = np.array([-np.inf, -1.0, -0.0, 0.0, 2.0, np.inf, np.nan])


@pytest.mark.parametrize("build,reference", [
    (C.relu, lambda v: np.maximum(v, 0)),
    (C.tanh, np.tanh),
    (C.exp, np.exp),
    (abs, np.abs),
    (C.sigmoid, lambda v: np.where(v >= 0, 1 / (1 + np.exp(-v)), np.exp(v) / (1 + np.exp(v)))),
    (C.softplus, lambda v: np.logaddexp(0, v)),
    (lambda x: C.maximum(x, 1.0), lambda v: np.maximum(v, 1.0)),
    (lambda x: C.minimum(x, 1.0), lambda v: np.minimum(v, 1.0)),
    (lambda x: C.maximum(1.0, x), lambda v: np.maximum(1.0, v)),
    (lambda x: C.clip(x, -0.5, 0.5), lambda v: np.clip(v, -0.5, 0.5)),
    (lambda x: C.where(x > 0, C.log(x), -1.0), lambda v: np.where(v > 0, np.log(np.where(v > 0, v, 1)), -1.0)),
])
def test_special_values_behave_as_in_numpy(build, reference):
    x = Input("special", SPECIAL.shape, dtype="float64")
    with np.errstate(all="ignore"):
        expected = reference(SPECIAL)
    np.testing.assert_allclose(evaluate(build(x), {"special": SPECIAL}), expected, rtol=1e-15, atol=0)


def test_max_and_logsumexp_with_infinities():
    x = Input("inf_x", (2, 3), dtype="float64")
    v = np.array([[-np.inf, -np.inf, -np.inf], [1.0, np.inf, 2.0]])
    np.testing.assert_array_equal(evaluate(x.max(axis=1), {"inf_x": v}), [-np.inf, np.inf])
    np.testing.assert_array_equal(evaluate(C.logsumexp(x, axis=1), {"inf_x": v}), np.logaddexp.reduce(v, axis=1))
    np.testing.assert_array_equal(evaluate(C.softmax(x[:1, :2].reshape(2) * 0 + const(np.array([-np.inf, 0.0])), axis=0),
                                           {"inf_x": v}), [0.0, 1.0])
    assert np.isnan(evaluate(x.max(), {"inf_x": np.array([[1.0, np.nan, 2.0], [0.0, 0.0, 0.0]])}))


# ---- leaves ---------------------------------------------------------------------------------------


def test_leaves_are_inputs_and_params_in_argument_order():
    x, W, b = Input("lv_x", (4, 3)), Param("lv_W", (3, 2)), Param("lv_b", (2,))
    y = x @ W + b
    assert C.leaves(y) == [x, W, b]
    assert C.leaves(b + x @ W) == [b, x, W]
    assert C.leaves([b, y]) == [b, x, W]
    assert C.leaves(C.const(1.0) * x + 2) == [x]


def test_leaves_of_a_gradient_are_those_it_reads():
    x, W = Input("lvg_x", (4, 3)), Param("lvg_W", (3, 2))
    g = C.grad((x @ W).sum(), W)
    assert C.leaves(g) == [x]
    h = C.grad(C.tanh(x @ W).sum(), W)
    assert set(C.leaves(h)) == {x, W}


_LEAVES_SCRIPT = """
import compiler as C
x = C.Input("x", ("batch", 5)); labels = C.Input("labels", ("batch",), dtype="int64")
params = [C.Param(n, s) for n, s in (("W1", (5, 7)), ("b1", (7,)), ("W2", (7, 3)), ("b2", (3,)))]
W1, b1, W2, b2 = params
loss = C.cross_entropy(C.relu(x @ W1 + b1) @ W2 + b2, labels)
print([n.name for n in C.leaves(loss)], [n.name for n in C.leaves(C.grad(loss, params))])
"""


def test_leaves_order_does_not_depend_on_hashing():
    runs = [subprocess.Popen([sys.executable, "-c", _LEAVES_SCRIPT], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONHASHSEED=seed)) for seed in ("1", "2")]
    outputs = {run.communicate(timeout=120)[0] for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(outputs) == 1, outputs
    names = eval(outputs.pop().split("] [")[0] + "]")
    assert sorted(names) == ["W1", "W2", "b1", "b2", "labels", "x"]


def test_a_gradient_without_the_input_that_carries_its_symbolic_dims():
    """d mean(x) / dx reads no Input, only the size of 'rows': it must be given, or read from an output that has x."""
    x = Input("rows_x", ("rows", 2), dtype="float64")
    g = C.grad(x.mean(), x)
    value = np.arange(8.0).reshape(4, 2)
    with pytest.raises(C.GraphError, match="'rows'"):
        evaluate(g, {"rows_x": value})
    np.testing.assert_array_equal(evaluate(g, {"rows_x": value, "rows": 4}), np.full((4, 2), 1 / 8))
    mean, g_again = evaluate([x.mean(), g], {"rows_x": value})
    np.testing.assert_array_equal(g_again, np.full((4, 2), 1 / 8))
    np.testing.assert_array_equal(evaluate(C.simplify(g), {"rows": 3}), np.full((3, 2), 1 / 6))
