"""Whole models: symbolic gradients agree with hand-written NumPy backprop.

A 2-layer MLP with softmax cross-entropy, in float64: every parameter's
gradient must match textbook backprop to 1e-10. Gradients are graphs, so they
can be differentiated again: a Hessian-vector product must match central
differences of the hand-written gradient.
"""
import numpy as np
import pytest

import compiler as C
from compiler import Input, Param, evaluate, grad, simplify

BATCH, FEATURES, HIDDEN, CLASSES = 6, 5, 7, 4
ACTIVATIONS = {
    "tanh": (C.tanh, np.tanh, lambda pre, h: 1 - h ** 2),
    "relu": (C.relu, lambda a: np.maximum(a, 0), lambda pre, h: (pre > 0).astype(float)),
}


def declare_mlp(activation, batch=BATCH, prefix=""):
    x = Input(f"{prefix}x", (batch, FEATURES), dtype="float64")
    labels = Input(f"{prefix}labels", (batch,), dtype="int64")
    params = [Param(f"{prefix}W1", (FEATURES, HIDDEN), dtype="float64"), Param(f"{prefix}b1", (HIDDEN,), dtype="float64"),
              Param(f"{prefix}W2", (HIDDEN, CLASSES), dtype="float64"), Param(f"{prefix}b2", (CLASSES,), dtype="float64")]
    W1, b1, W2, b2 = params
    hidden = ACTIVATIONS[activation][0](x @ W1 + b1)
    loss = C.cross_entropy(hidden @ W2 + b2, labels)
    return loss, params, x


def random_problem(seed, prefix=""):
    rng = np.random.default_rng(seed)
    values = {
        f"{prefix}x": rng.normal(size=(BATCH, FEATURES)),
        f"{prefix}labels": rng.integers(0, CLASSES, BATCH),
        f"{prefix}W1": rng.normal(size=(FEATURES, HIDDEN)) * 0.7,
        f"{prefix}b1": rng.normal(size=HIDDEN) * 0.1,
        f"{prefix}W2": rng.normal(size=(HIDDEN, CLASSES)) * 0.7,
        f"{prefix}b2": rng.normal(size=CLASSES) * 0.1,
    }
    return values


def numpy_loss_and_backprop(activation, x, labels, W1, b1, W2, b2):
    """Textbook backprop: loss and (dW1, db1, dW2, db2, dx)."""
    _, act, act_derivative = ACTIVATIONS[activation]
    pre = x @ W1 + b1
    h = act(pre)
    logits = h @ W2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.mean(np.log(p[np.arange(n), labels]))
    dlogits = p.copy()
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n
    dW2, db2 = h.T @ dlogits, dlogits.sum(axis=0)
    dpre = (dlogits @ W2.T) * act_derivative(pre, h)
    dW1, db1 = x.T @ dpre, dpre.sum(axis=0)
    return loss, (dW1, db1, dW2, db2, dpre @ W1.T)


def _numpy_gradients(activation, values, prefix=""):
    return numpy_loss_and_backprop(activation, *(values[prefix + k] for k in ("x", "labels", "W1", "b1", "W2", "b2")))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_gradients_match_numpy_backprop(activation, seed):
    loss, params, x = declare_mlp(activation)
    values = random_problem(seed)
    expected_loss, expected = _numpy_gradients(activation, values)
    got = evaluate([loss] + grad(loss, params + [x]), values)
    np.testing.assert_allclose(got[0], expected_loss, rtol=1e-12)
    for name, g, e in zip(["W1", "b1", "W2", "b2", "x"], got[1:], expected):
        assert g.shape == e.shape, name
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_simplified_mlp_gradients_match_numpy_backprop(activation):
    loss, params, _ = declare_mlp(activation)
    values = random_problem(3)
    _, expected = _numpy_gradients(activation, values)
    got = evaluate(simplify(grad(loss, params)), values)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-13)


def test_mlp_with_a_symbolic_batch_dimension():
    loss, params, _ = declare_mlp("tanh", batch="batch", prefix="sym_")
    values = random_problem(4, prefix="sym_")
    _, expected = _numpy_gradients("tanh", values, prefix="sym_")
    for g, e in zip(evaluate(grad(loss, params), values), expected):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-13)


def test_float32_mlp_gradients_are_float32_and_close():
    x = Input("x32", (BATCH, FEATURES))
    labels = Input("labels32", (BATCH,), dtype="int32")
    W1, b1, W2, b2 = Param("W1_32", (FEATURES, HIDDEN)), Param("b1_32", (HIDDEN,)), Param("W2_32", (HIDDEN, CLASSES)), Param("b2_32", (CLASSES,))
    loss = C.cross_entropy(C.tanh(x @ W1 + b1) @ W2 + b2, labels)
    assert loss.dtype == "float32"
    values = random_problem(5)
    feed = {"x32": values["x"].astype(np.float32), "labels32": values["labels"].astype(np.int32),
            **{f"{k}_32": values[k].astype(np.float32) for k in ("W1", "b1", "W2", "b2")}}
    gradients = evaluate(grad(loss, [W1, b1, W2, b2]), feed)
    _, expected = numpy_loss_and_backprop("tanh", *(feed[k] for k in ("x32", "labels32")),
                                          *(feed[f"{k}_32"].astype(np.float64) for k in ("W1", "b1", "W2", "b2")))
    for g, e in zip(gradients, expected):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


# ---- Hessian-vector products --------------------------------------------------------------------


def _finite_difference_of_gradient(activation, values, directions, step=1e-4):
    """Five-point central difference of the hand-written gradient along `directions`."""
    names = ["W1", "b1", "W2", "b2"]

    def gradient_at(t):
        moved = dict(values)
        for name, v in zip(names, directions):
            moved[name] = values[name] + t * v
        return _numpy_gradients(activation, moved)[1][:4]

    samples = [gradient_at(k * step) for k in (-2, -1, 1, 2)]
    return [(a - 8 * b + 8 * c - d) / (12 * step) for a, b, c, d in zip(*samples)]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_hessian_vector_product_matches_finite_differences_of_the_gradient(activation):
    loss, params, _ = declare_mlp(activation, prefix="")
    values = random_problem(6)
    pre_activation = values["x"] @ values["W1"] + values["b1"]
    assert np.min(np.abs(pre_activation)) > 1e-3, "the difference stencil must not cross relu's kink"
    rng = np.random.default_rng(7)
    directions = [rng.normal(size=p.shape) for p in params]
    inner = sum((g * C.const(v)).sum() for g, v in zip(grad(loss, params), directions))
    hvp = evaluate(grad(inner, params), values)
    expected = _finite_difference_of_gradient(activation, values, directions)
    for h, e in zip(hvp, expected):
        assert h.shape == e.shape
        np.testing.assert_allclose(h, e, rtol=1e-6, atol=1e-9)


def test_hessian_vector_product_of_one_parameter_in_the_documented_form():
    """grad(sum(grad(L, w) * v), w), with v an Input so the same graph serves any direction."""
    loss, params, _ = declare_mlp("tanh")
    W1 = params[0]
    v = Input("direction", W1.shape, dtype="float64")
    hvp = grad((grad(loss, W1) * v).sum(), W1)
    values = random_problem(8)
    rng = np.random.default_rng(9)
    for _ in range(2):
        direction = rng.normal(size=W1.shape)
        zeros = [np.zeros(p.shape) for p in params[1:]]
        expected = _finite_difference_of_gradient("tanh", values, [direction] + zeros)[0]
        np.testing.assert_allclose(evaluate(hvp, {**values, "direction": direction}), expected, rtol=1e-6, atol=1e-9)


def test_simplified_hessian_vector_product_is_unchanged():
    loss, params, _ = declare_mlp("tanh")
    values = random_problem(10)
    rng = np.random.default_rng(11)
    directions = [rng.normal(size=p.shape) for p in params]
    inner = sum((g * C.const(v)).sum() for g, v in zip(grad(loss, params), directions))
    hvp = grad(inner, params)
    for a, b in zip(evaluate(hvp, values), evaluate(simplify(hvp), values)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
