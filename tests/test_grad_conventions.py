"""Gradients at non-differentiable points follow fixed conventions, checked exactly.

relu and abs have derivative 0 at 0; maximum, minimum and max reductions split
a tie's cotangent evenly; max_pool2d gives each window's cotangent to its first
maximum in row-major order, as PyTorch's kernel (a NaN is a maximum, padding
never is). Finite differences cannot see these points, so test_grad_ops.py
draws its inputs away from them; here they are hit on purpose, and the
simplified gradient graph must agree with the declared one to the bit.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler as C
import conv_reference as CR
from compiler import Input, const, evaluate, grad


# ---- conventions at non-differentiable points, checked exactly ----------------------------------


def _grad_at(build, *arrays):
    """Gradients of sum(build(...)) at `arrays`; the simplified gradient graph must agree exactly."""
    nodes = [Input(f"p{i}", a.shape, dtype="float64") for i, a in enumerate(arrays)]
    gradients = grad(build(*nodes).sum(), nodes)
    values = {f"p{i}": a for i, a in enumerate(arrays)}
    declared = evaluate(gradients, values)
    for got, want in zip(evaluate(C.simplify(gradients), values), declared):
        np.testing.assert_array_equal(got, want)
    return declared


def test_relu_derivative_at_zero_is_zero():
    (g,) = _grad_at(C.relu, np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])


def test_abs_derivative_at_zero_is_zero():
    (g,) = _grad_at(C.abs, np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_maximum_tie_splits_gradient_evenly():
    ga, gb = _grad_at(C.maximum, np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0]))
    np.testing.assert_array_equal(ga, [0.5, 0.0, 0.5])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.5])


def test_minimum_tie_splits_gradient_evenly():
    ga, gb = _grad_at(C.minimum, np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0]))
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 0.5])


def test_max_reduction_splits_ties_evenly():
    (g,) = _grad_at(lambda x: x.max(), np.array([1.0, 3.0, 3.0, 2.0]))
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5, 0.0])
    (g,) = _grad_at(lambda x: x.max(axis=1), np.array([[2.0, 2.0, 2.0], [0.0, 1.0, -1.0]]))
    np.testing.assert_allclose(g, [[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]], rtol=1e-15)


def test_max_reduction_tie_gradient_through_keepdims_and_weights():
    x = np.array([[4.0, 1.0, 4.0], [7.0, 7.0, 7.0]])
    node = Input("tied", x.shape, dtype="float64")
    w = np.array([[2.0], [3.0]])
    g = evaluate(grad((node.max(axis=1, keepdims=True) * const(w)).sum(), node), {"tied": x})
    np.testing.assert_allclose(g, [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], rtol=1e-15)


@settings(max_examples=15, deadline=None, database=None)
@given(case=CR.pool_case(average=False), seed=st.integers(0, 2 ** 32 - 1))
def test_max_pool2d_gradient_goes_to_the_first_maximum_of_each_window(case, seed):
    """At ties (values in {-1, 0, 1}) each window's cotangent goes to its first maximum in row-major order,
    as PyTorch's; a window over padding only reads the input where it lies (padding reads -inf)."""
    (shape,), kwargs = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, shape).astype(np.float64)
    node = Input("pooled", shape, dtype="float64")
    out = C.max_pool2d(node, **kwargs)
    weights = rng.normal(size=out.shape)
    expected = CR.max_pool2d_backward(x, weights, **kwargs)
    gradient = grad((out * const(weights)).sum(), node)
    for graph in (gradient, C.simplify(gradient)):
        np.testing.assert_allclose(evaluate(graph, {"pooled": x}), expected, rtol=1e-14, atol=1e-14,
                                   err_msg=f"{shape} {kwargs}")


def test_max_pool2d_gradient_at_non_finite_maxima():
    """As PyTorch: padding is never a window's maximum, even where the input is -inf (each window's
    cotangent goes to its first element inside the input); a NaN is a window's maximum and gets it."""
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 3, 1, 1), np.full((1, 1, 2, 2), -np.inf))
    np.testing.assert_array_equal(g, [[[[4.0, 0.0], [0.0, 0.0]]]])
    x = np.array([[[[1.0, np.nan, 0.5], [2.0, 0.0, -1.0], [0.0, 3.0, 1.0]]]])
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 2, 1), x)
    np.testing.assert_array_equal(g, [[[[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]]])
    # windows of more than 16 taps (a reduction over the taps)
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 5, 1, 2), np.full((1, 1, 3, 4), -np.inf))
    np.testing.assert_array_equal(g, CR.max_pool2d_backward(np.full((1, 1, 3, 4), -np.inf), np.ones((1, 1, 3, 4)), 5, 1, 2))
    assert g[0, 0, 0, 0] == 9.0  # the windows at rows 0-2, columns 0-2 start there
    x = np.arange(25.0).reshape(1, 1, 5, 5) % 7
    x[0, 0, 2, 3] = np.nan
    (g,) = _grad_at(lambda x: C.max_pool2d(x, 5), x)
    np.testing.assert_array_equal(g[0, 0] != 0, np.arange(25).reshape(5, 5) == 13)
