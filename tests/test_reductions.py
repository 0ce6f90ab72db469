"""Reductions written as composites: min, prod, var, std, any, all, argmax, argmin.

One row per op and variant (axes, keepdims, ties, zeros, integer and bool operands), checked by
``op_table``: the value against NumPy, the gradient against central differences (float64), and the
compiled program against NumPy in float32 and float64 at two batch sizes. Then the conventions that
a table of random inputs does not reach, checked exactly: ties, zeros in a product (torch's
gradient), NaN, reductions over nothing and over a 0-d tensor (NumPy's rules).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import compiler as C
from compiler import GraphError, Input, evaluate, grad
from op_table import (B, Row, distinct, integers, positive, real, small_integers, table_tests, with_zeros)

ROWS = [
    Row("min_all", C.min, np.min, ((3, 4),), (distinct,)),
    Row("min_axis", lambda x: C.min(x, 1), lambda x: np.min(x, 1), ((B, 4),), (distinct,)),
    Row("min_batch_axis_keepdims", lambda x: x.min(axis=0, keepdims=True), lambda x: x.min(0, keepdims=True),
        ((B, 3),), (distinct,)),
    Row("min_two_axes", lambda x: x.min(axis=(0, 2)), lambda x: x.min(axis=(0, 2)), ((2, B, 3),), (distinct,)),
    Row("min_int", lambda n: C.min(n, -1), lambda n: np.min(n, -1), ((B, 4),), (integers(-5, 5),), ("int64",)),
    Row("min_bool", lambda b: C.min(b, 1), lambda b: np.min(b, 1), ((B, 3),), (integers(0, 2),), ("bool",)),
    Row("prod_all", C.prod, np.prod, ((3, 4),), (positive(0.6, 1.4),)),
    Row("prod_axis_zeros", lambda x: C.prod(x, 1), lambda x: np.prod(x, 1), ((B, 5),), (with_zeros,)),
    Row("prod_axes_keepdims", lambda x: C.prod(x, (0, 2), keepdims=True),
        lambda x: np.prod(x, (0, 2), keepdims=True), ((3, 2, 3),), (with_zeros,)),
    Row("prod_odd_levels", lambda x: x.prod(axis=-1), lambda x: np.prod(x, -1), ((B, 7),), (real(-1.5, 1.5),)),
    Row("prod_int32", lambda n: C.prod(n, 1), lambda n: np.prod(n, 1), ((B, 3),), (integers(-3, 4),), ("int32",)),
    Row("prod_bool", lambda b: C.prod(b, 0), lambda b: np.prod(b, 0), ((4, B),), (integers(0, 2),), ("bool",)),
    Row("var_axis", lambda x: C.var(x, 1), lambda x: np.var(x, 1, ddof=1), ((B, 4),)),
    Row("var_all_correction0", lambda x: C.var(x, correction=0), np.var, ((3, 4),)),
    Row("var_batch_axis_keepdims", lambda x: x.var(axis=0, keepdims=True), lambda x: np.var(x, 0, ddof=1, keepdims=True),
        ((B, 3),)),
    Row("var_int", lambda n: C.var(n, 1), lambda n: np.var(n, 1, ddof=1), ((B, 4),), (integers(-5, 5),), ("int64",)),
    Row("std_axis", lambda x: C.std(x, -1), lambda x: np.std(x, -1, ddof=1), ((B, 5),)),
    Row("std_all_correction0", lambda x: x.std(correction=0), np.std, ((2, 3, 2),)),
    Row("std_two_axes_correction2", lambda x: C.std(x, (0, 1), correction=2), lambda x: np.std(x, (0, 1), ddof=2),
        ((2, 3, 2),)),
    Row("any_axis", lambda x: C.any(x, 1), lambda x: np.any(x, 1), ((B, 4),), (small_integers,)),
    Row("any_comparison_keepdims", lambda x: C.any(x > 1.5, axis=0, keepdims=True),
        lambda x: np.any(x > 1.5, axis=0, keepdims=True), ((B, 3),)),
    Row("all_axis", lambda x: x.all(axis=-1), lambda x: np.all(x, -1), ((B, 3),), (small_integers,)),
    Row("all_everything_int", C.all, np.all, ((3, 4),), (integers(0, 4),), ("int64",)),
    Row("all_bool_batch_axis", lambda b: C.all(b, 0), lambda b: np.all(b, 0), ((B, 3),), (integers(0, 2),), ("bool",)),
    Row("argmax_axis_ties", lambda x: C.argmax(x, 1), lambda x: np.argmax(x, 1), ((B, 5),), (small_integers,)),
    Row("argmax_flat", C.argmax, np.argmax, ((3, 4),), (small_integers,)),
    Row("argmax_flat_keepdims", lambda x: x.argmax(keepdims=True), lambda x: np.argmax(x, keepdims=True), ((3, 4),),
        (small_integers,)),
    Row("argmax_axis0_keepdims", lambda x: C.argmax(x, 0, keepdims=True), lambda x: np.argmax(x, 0, keepdims=True),
        ((4, B),), (small_integers,)),
    Row("argmin_axis_ties", lambda x: C.argmin(x, -1), lambda x: np.argmin(x, -1), ((B, 5),), (small_integers,)),
    Row("argmin_flat", lambda x: x.argmin(), np.argmin, ((2, 3, 2),), (small_integers,)),
    Row("argmax_int", lambda n: C.argmax(n, 1), lambda n: np.argmax(n, 1), ((B, 6),), (integers(-3, 3),), ("int64",)),
    Row("argmin_bool", lambda b: C.argmin(b, 1), lambda b: np.argmin(b, 1), ((B, 4),), (integers(0, 2),), ("bool",)),
]

test_value_matches_numpy, test_gradient_matches_finite_differences, test_compiled_matches_numpy = table_tests(ROWS)


# ---- conventions, exactly ------------------------------------------------------------------------


def _gradient(build, x: np.ndarray) -> np.ndarray:
    node = Input("conv_x", x.shape, dtype="float64")
    g = grad(build(node).sum(), node)
    declared = evaluate(g, {"conv_x": x})
    np.testing.assert_array_equal(evaluate(C.simplify(g), {"conv_x": x}), declared)
    np.testing.assert_allclose(C.compile(g)(conv_x=x), declared, rtol=1e-15, atol=0)
    return declared


def test_prod_gradient_with_zeros_is_torchs():
    """One zero in a row: its gradient is the product of the others, the rest 0. Two zeros: all 0."""
    x = np.array([[2.0, 0.0, 3.0, 0.5], [0.0, 0.0, 3.0, 1.0], [1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, -2.0, 0.0]])
    expected = [[0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [24.0, 12.0, 8.0, 6.0], [0.0, 0.0, 0.0, 0.0]]
    np.testing.assert_array_equal(_gradient(lambda t: C.prod(t, 1), x), expected)
    np.testing.assert_array_equal(_gradient(lambda t: C.prod(t), np.array([5.0, 0.0, 2.0])), [0.0, 10.0, 0.0])


def test_prod_second_derivative_is_exact_at_zero():
    """d2/dx0 dx1 of x0*x1*x2 is x2, also at x = 0 (a product tree, not exp(sum(log|x|)))."""
    x = Input("hess_x", (3,), dtype="float64")
    g = grad(C.prod(x), x)
    hessian_row = grad((g * C.const(np.array([1.0, 0.0, 0.0]))).sum(), x)
    np.testing.assert_array_equal(evaluate(hessian_row, {"hess_x": np.array([0.0, 0.0, 4.0])}), [0.0, 4.0, 0.0])


def test_min_splits_the_gradient_of_a_tie_evenly():
    np.testing.assert_array_equal(_gradient(lambda t: C.min(t), np.array([1.0, -1.0, -1.0, 2.0])), [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(_gradient(lambda t: t.min(axis=1), np.array([[2.0, 2.0, 2.0], [0.0, -1.0, 1.0]])),
                               [[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]], rtol=1e-15)


NAN = np.nan
WITH_NAN = np.array([[1.0, NAN, 3.0, NAN], [2.0, 5.0, 5.0, -1.0], [NAN, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])


@pytest.mark.parametrize("name,build,reference", [
    ("argmax", lambda x: C.argmax(x, 1), lambda x: np.argmax(x, 1)),
    ("argmin", lambda x: C.argmin(x, 1), lambda x: np.argmin(x, 1)),
    ("argmax_flat", C.argmax, np.argmax),
    ("argmin_columns", lambda x: C.argmin(x, 0), lambda x: np.argmin(x, 0)),
    ("min", lambda x: C.min(x, 1), lambda x: np.min(x, 1)),
    ("max", lambda x: C.max(x, 0), lambda x: np.max(x, 0)),
    ("prod", lambda x: C.prod(x, 1), lambda x: np.prod(x, 1)),
    ("var", lambda x: C.var(x, 1), lambda x: np.var(x, 1, ddof=1)),
    ("any", lambda x: C.any(x, 1), lambda x: np.any(x, 1)),
    ("all", lambda x: C.all(x, 1), lambda x: np.all(x, 1)),
], ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_as_numpy(name, build, reference, dtype):
    """NaN is the extreme for argmax and argmin (the first NaN), propagates through min, max, prod and
    var, and is nonzero for any and all."""
    x = WITH_NAN.astype(dtype)
    node = Input("nan_x", x.shape, dtype=dtype)
    out = build(node)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference(x)
    np.testing.assert_array_equal(evaluate(out, {"nan_x": x}), expected)
    np.testing.assert_array_equal(C.compile(out)(nan_x=x), expected)


def _value(node, values):
    """evaluate and compile agree; a program of constants takes no arguments."""
    value = evaluate(node, values)
    names = {leaf.name for leaf in C.leaves(node) if leaf.op == "input"}
    compiled = C.compile(node)(**{k: v for k, v in values.items() if k in names})
    np.testing.assert_array_equal(compiled, value)
    return value


@pytest.mark.parametrize("name,build,reference", [
    ("sum", lambda y: C.sum(y, 1), lambda y: np.sum(y, 1)),
    ("mean", lambda y: C.mean(y, 1), lambda y: np.mean(y, 1)),
    ("prod", lambda y: C.prod(y, 1), lambda y: np.prod(y, 1)),
    ("prod_all", C.prod, np.prod),
    ("any", lambda y: C.any(y, 1), lambda y: np.any(y, 1)),
    ("all", lambda y: C.all(y, 1, keepdims=True), lambda y: np.all(y, 1, keepdims=True)),
    ("var", lambda y: C.var(y, 1), lambda y: np.var(y, 1, ddof=1)),
    ("std", lambda y: C.std(y, 1, correction=0), lambda y: np.std(y, 1)),
    ("min_nonempty_axis", lambda y: C.min(y, 0), lambda y: np.min(y, 0)),
    ("argmax_nonempty_axis", lambda y: C.argmax(y, 0), lambda y: np.argmax(y, 0)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_reductions_over_nothing_as_numpy(name, build, reference):
    """0 for sum, nan for mean, var and std, 1 for prod, False for any, True for all."""
    y = np.zeros((3, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = reference(y)
    value = _value(build(Input("empty_y", (3, 0), dtype="float64")), {"empty_y": y})
    assert value.dtype == expected.dtype
    np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("op", [C.max, C.min, C.argmax, C.argmin])
@pytest.mark.parametrize("axis", [1, None])
def test_extremes_of_nothing_raise_at_declaration(op, axis):
    with pytest.raises(GraphError, match=r"zero-size reduction over axis 1 of shape \(3, 0\)"):
        op(Input("empty_z", (3, 0), dtype="float64"), axis)


@pytest.mark.parametrize("op", [C.sum, C.max, C.min, C.prod, C.any, C.all, C.argmax, C.argmin])
@pytest.mark.parametrize("axis", [0, -1, None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_0d_axis_0_or_minus_1_reduces_nothing_as_numpy(op, axis, keepdims):
    """NumPy's rule for a 0-d array: reductions with an identity or a ufunc accept axis 0 and -1."""
    x = np.array(-2.5)
    reference = getattr(np, op.__name__.lstrip("_"))
    expected = reference(x, axis=axis, keepdims=keepdims)
    out = op(Input("scalar_x", (), dtype="float64"), axis, keepdims)
    value = _value(out, {"scalar_x": x})
    assert value.shape == np.shape(expected) and value.dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("op", [C.sum, C.max, C.min, C.prod, C.any, C.all, C.mean, C.var, C.std])
def test_0d_tuple_axis_and_mean_axis_0_raise_as_numpy(op):
    x = Input("scalar_y", (), dtype="float64")
    with pytest.raises(GraphError, match="out of range"):
        op(x, (0,))
    with pytest.raises(GraphError, match="out of range"):
        op(x, 1)
    if op in (C.mean, C.var, C.std):
        with pytest.raises(GraphError, match="out of range"):
            op(x, 0)


def test_variance_with_correction_at_least_the_count_is_inf_or_nan():
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    node = Input("var_x", x.shape, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for correction in (2, 3):
            expected = np.var(x, 1, ddof=correction)
            np.testing.assert_array_equal(_value(C.var(node, 1, correction=correction), {"var_x": x}), expected)
        batch = Input("var_b", (B, 2), dtype="float64")  # symbolic count: the divisor is computed at run time
        np.testing.assert_array_equal(_value(C.var(batch, 0, correction=2), {"var_b": x}), np.var(x, 0, ddof=2))


def test_argmax_rejects_several_axes_and_symbolic_sizes():
    x = Input("arg_x", (B, 3), dtype="float64")
    with pytest.raises(GraphError, match="axis must be an int"):
        C.argmax(x, (0, 1))
    with pytest.raises(GraphError, match="symbolic dimension 'batch'"):
        C.argmax(x, 0)
    with pytest.raises(GraphError, match="symbolic"):
        C.argmin(x)
    with pytest.raises(GraphError, match="symbolic dimension 'batch'"):
        C.prod(x, 0)


def test_min_any_all_are_ops_and_node_methods_without_shadowing_builtins():
    x = Input("methods_x", (2, 3), dtype="float64")
    assert C.ops.min is C.min and C.ops.any is C.any and C.ops.all is C.all
    for name in ("min", "prod", "var", "std", "any", "all", "argmax", "argmin", "cumsum", "cumprod"):
        assert getattr(x, name)().shape in ((), (6,)), name
    assert "min" not in vars(C.ops) and "any" not in vars(C.ops)  # ops.py's own code sees Python's builtins
    with pytest.raises(AttributeError):
        C.ops.no_such_op


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("correction", [0, 1])
def test_std_of_a_constant_row_has_gradient_zero_as_torch(dtype, correction):
    """std's gradient is (x - mean) / ((N - correction) std), and 0 where std is 0 (torch masks it): sqrt's
    infinite slope times the variance's zero one was nan, in evaluate and compiled alike."""
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]], dtype)
    node = Input("x", x.shape, dtype)
    gradient = grad(C.std(node, 1, correction=correction).sum(), node)
    deviation = x - x.mean(1, keepdims=True)
    std = np.sqrt((deviation ** 2).sum(1, keepdims=True) / (3 - correction))
    expected = np.where(std > 0, deviation / ((3 - correction) * np.where(std > 0, std, 1)), 0.0)
    for got in (evaluate(gradient, {"x": x}), C.compile(gradient)(x=x)):
        np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == "float32" else 1e-12)
    single, column = Input("s", (2, 1), dtype), np.ascontiguousarray(x[:, :1])
    for got in (evaluate(grad(C.std(single, 1, correction=0).sum(), single), {"s": column}),
                C.compile(grad(C.std(single, 1, correction=0).sum(), single))(s=column)):
        np.testing.assert_array_equal(got, 0.0)


@pytest.mark.parametrize("n, correction", [(1, 1), (2, 2), (3, 3), (2, 3), (3, 5)])
def test_variance_with_no_degrees_of_freedom_has_torchs_gradient(n, correction):
    """N - correction <= 0: the value is inf (nan where every deviation is 0), and the gradient is torch's
    2 (x - mean) / (N - correction): +-inf and nan at 0, finite below; it used to be 0."""
    x = np.array([[1.0, 2.5, 4.0][:n]])
    node = Input("x", x.shape, "float64")
    gradient = grad((C.var(node, 1, correction=correction) * 3.0).sum(), node)
    with np.errstate(all="ignore"):
        expected = 2 * (x - x.mean()) * 3.0 / (n - correction)
    for got in (evaluate(gradient, {"x": x}), C.compile(gradient)(x=x)):
        np.testing.assert_array_equal(got, expected)
