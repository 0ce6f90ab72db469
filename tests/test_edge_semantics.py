"""Edge semantics that follow PyTorch (docs/architecture.md, "Edge semantics"): each checked on the
NumPy evaluator and on compiled code."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import compiler as C
from compiler import Input, grad
from compiler.passes import simplify
from compiler.traversal import topological_order
from compiler import scalar_functions as sf
from compiler.scalar_functions import Sigmoid


def both(outputs, values):
    """[evaluated, compiled] values of `outputs` (the compiled call gets the inputs it reads)."""
    executable = C.compile(outputs)
    compiled = executable(**{k: v for k, v in values.items() if k in executable._argument_names})
    return [C.evaluate(outputs, values), list(compiled)]


def test_maximum_and_minimum_split_a_tie_evenly():
    a, b = C.Input("a", (4,), "float64"), C.Input("b", (4,), "float64")
    A, B = np.array([1.0, 2.0, 3.0, -1.0]), np.array([1.0, 5.0, 3.0, -2.0])
    for values in both(grad(C.sum(C.maximum(a, b)), [a, b]), {"a": A, "b": B}):
        np.testing.assert_array_equal(values[0], [0.5, 0.0, 0.5, 1.0])
        np.testing.assert_array_equal(values[1], [0.5, 1.0, 0.5, 0.0])
    for values in both(grad(C.sum(C.minimum(a, b)), [a, b]), {"a": A, "b": B}):
        np.testing.assert_array_equal(values[0], [0.5, 1.0, 0.5, 0.0])
        np.testing.assert_array_equal(values[1], [0.5, 0.0, 0.5, 1.0])


def test_maximum_with_a_scalar_tie_and_max_reduction_tie():
    a = C.Input("a", (4,), "float64")
    A = np.array([0.0, 1.0, -1.0, 3.0])
    for (g,) in both([grad(C.sum(C.maximum(a, 0.0)), a)], {"a": A}):
        np.testing.assert_array_equal(g, [0.5, 1.0, 0.0, 1.0])
    for (g,) in both([grad(C.max(a), a)], {"a": np.array([3.0, 3.0, 3.0, 3.0])}):
        np.testing.assert_array_equal(g, [0.25] * 4)


def test_relu_gradient_at_zero_is_zero():
    a = C.Input("a", (3,), "float64")
    for (g,) in both([grad(C.sum(C.relu(a)), a)], {"a": np.array([0.0, -0.0, 1.0])}):
        np.testing.assert_array_equal(g, [0.0, 0.0, 1.0])


def test_clip_passes_the_gradient_at_its_bounds():
    a = C.Input("a", (5,), "float64")
    for (g,) in both([grad(C.sum(C.clip(a, -1.0, 1.0)), a)], {"a": np.array([-1.0, 1.0, 0.0, 2.0, -2.0])}):
        np.testing.assert_array_equal(g, [1.0, 1.0, 1.0, 0.0, 0.0])


def test_power_at_zero_zero_has_zero_gradient_for_the_exponent():
    x, y = C.Input("x", (4,), "float64"), C.Input("y", (4,), "float64")
    X, Y = np.array([0.0, 0.0, 2.0, 0.0]), np.array([0.0, 2.0, 3.0, 0.5])
    for gx, gy in both(grad(C.sum(x ** y), [x, y]), {"x": X, "y": Y}):
        np.testing.assert_allclose(gy, [0.0, 0.0, 8 * np.log(2.0), 0.0], rtol=1e-15, atol=0)  # torch: 0 at x = 0
        np.testing.assert_array_equal(gx[:3], [0.0, 0.0, 12.0])  # d/dx at y = 0 is 0, not 0 * 0**-1
        assert gx[3] == np.inf


def test_times_nan_keeps_a_nan_gradient():
    x = C.Input("x", (3,), "float64")
    X = np.array([1.0, 0.0, -2.0])
    for (g,) in both([grad(C.sum(x * float("nan")), x)], {"x": X}):
        assert np.isnan(g).all()
    for (g,) in both([grad(C.sum(x + float("nan")), x)], {"x": X}):
        np.testing.assert_array_equal(g, 1.0)
    for (g,) in both([grad(C.sum(x * float("inf")), x)], {"x": X}):
        np.testing.assert_array_equal(g, np.inf)
    for (value,) in both([x * float("nan")], {"x": X}):
        assert np.isnan(value).all()


def test_division_by_a_literal_zero_is_ieee():
    x = C.Input("x", (4,), "float64")
    X = np.array([1.0, -1.0, 0.0, np.nan])
    zero = C.const(0.0, "float64")
    outputs = [x / 0, x / -0.0, x / zero, x + 1.0 / zero, x + zero / 0,
               C.elementwise(lambda t: t / 0)(x), C.elementwise(lambda t: t + 1 / sympy.Integer(0))(x)]
    expected = [[np.inf, -np.inf, np.nan, np.nan], [-np.inf, np.inf, np.nan, np.nan],
                [np.inf, -np.inf, np.nan, np.nan], [np.inf, np.inf, np.inf, np.nan], [np.nan] * 4,
                [np.inf, -np.inf, np.nan, np.nan], [np.inf] * 4]  # sympy's own algebra: t + zoo is zoo
    for values in both(outputs, {"x": X}) + [list(C.compile(simplify(outputs))(x=X))]:
        for k, (got, want) in enumerate(zip(values, expected)):
            if k == 3:  # nan + (1 / zero): the scheduler writes the folded inf into the kernel body as sympy's
                got, want = got[:3], want[:3]  # oo, and sympy's nan + oo is oo (compiled: inf, NumPy: nan)
            np.testing.assert_array_equal(got, want)
    gradient = grad(C.sum(x / 0), x)
    for (g,) in both([gradient], {"x": X}):
        np.testing.assert_array_equal(g, np.inf)


def test_python_constant_division_by_zero_folds():
    zero = C.const(0.0, "float32")
    for (value,) in both([1.0 / zero], {}):
        assert value == np.inf and value.dtype == np.float32
    for (value,) in both([zero / 0], {}):
        assert np.isnan(value)


def test_where_with_integer_scalars_is_int64():
    x = C.Input("x", (3,), "float32")
    X = np.array([-1.0, 0.5, 2.0], np.float32)
    cases = [(C.where(x > 0, 4, 2), "int64", [2, 4, 4]), (C.where(x > 0, True, False), "bool", [False, True, True]),
             (C.where(x > 0, 4, 2.5), "float32", [2.5, 4, 4])]
    for node, dtype, expected in cases:
        assert node.dtype == dtype
        for (value,) in both([node], {"x": X}):
            assert value.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(value, expected)


@pytest.mark.parametrize("form", ["exp over one plus exp", "one over one plus exp of minus"])
def test_sigmoid_written_out_becomes_the_stable_sigmoid(form):
    x = C.Input("x", (6,), "float32")
    node = C.exp(x) / (1 + C.exp(x)) if form == "exp over one plus exp" else 1 / (1 + C.exp(-x))
    (stable,) = simplify([node])
    assert stable.op == "map" and stable.attr("body").has(Sigmoid) and not stable.attr("body").has(sympy.exp)
    X = np.array([-1000.0, 1000.0, 0.0, -20.0, 20.0, 88.0], np.float32)
    (got,) = C.compile([node])(x=X)
    expected = 1 / (1 + np.exp(-X.astype(np.float64)))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=3e-7, atol=0)
    (gradient,) = C.compile([grad(C.sum(node), x)])(x=X)  # the gradient is stabilized too
    assert np.isfinite(gradient).all()
    np.testing.assert_allclose(gradient, expected * (1 - expected), rtol=1e-6, atol=1e-8)


def test_where_with_a_float_zero_condition_takes_the_second_branch():
    """sympy's Float(0.0) compares unequal to Integer(0): the condition is tested by value."""
    import sympy
    from compiler import scalar_functions as sf
    a, b = sympy.symbols("a b")
    assert sf.Where(sympy.Float(0.0), a, b) == b
    assert sf.Where(sympy.Float(-0.0), a, b) == b
    assert sf.Where(sympy.Float(2.5), a, b) == a


def test_integer_powers_are_exact_compiled():
    """int64 ** int64 (and float powers of integers) are the exact integers: pow is within an ulp, and a
    result of 48.99999999999999 stored into int64 truncated to 48."""
    a = Input("a", ("n",), "int64")
    b = Input("b", ("n",), "int64")
    base, exponent = np.meshgrid(np.arange(-9, 10), np.arange(0, 12))
    base, exponent = base.ravel(), exponent.ravel()
    got = C.compile([a ** b])(a=base, b=exponent)[0]
    np.testing.assert_array_equal(got, base ** exponent)
    x = Input("x", ("n",), "float64")
    np.testing.assert_array_equal(C.compile([7.0 ** x])(x=exponent.astype(float))[0], 7.0 ** exponent)


def test_a_negative_base_to_a_tensor_power_has_a_nan_gradient():
    """d/dx (-2)**x = (-2)**x log(-2): not real, so nan (torch's answer) in evaluate and compiled; sympy's
    log(-2) = log(2) + I*pi once made the compile fail and evaluate drop the imaginary part."""
    x = Input("x", (3,), "float64")
    values = np.array([2.0, 3.0, 0.5])
    y = (-2.0) ** x
    gradient = grad(y.sum(), x)
    for got_y, got_g in (C.evaluate([y, gradient], {"x": values}), C.compile([y, gradient])(x=values)):
        np.testing.assert_array_equal(got_y, [4.0, -8.0, np.nan])
        assert np.isnan(got_g).all()


def test_integer_valued_powers_with_negative_exponents_keep_their_fractions():
    """2.0 ** -1 is 0.5 compiled too: only a power with an exponent >= 0 of integers is an integer (and
    rounded to it); rounding every integer-valued pair once gave 0."""
    x, y = Input("x", (4,), "float64"), Input("y", (4,), "float64")
    values = {"x": np.array([2.0, 4.0, -2.0, 3.0]), "y": np.array([-1.0, -2.0, -3.0, 2.0])}
    gradient = grad((x ** y).sum(), x)
    got, got_gradient = C.compile([x ** y, gradient])(**values)
    np.testing.assert_allclose(got, values["x"] ** values["y"], rtol=1e-15)
    np.testing.assert_allclose(got_gradient, values["y"] * values["x"] ** (values["y"] - 1), rtol=1e-15)


def test_simplification_never_cancels_an_operand():
    """Inlining a constant 0 or merging maps must not let sympy's algebra drop an operand: 0/0 stays nan
    (it compiled to 4.0) and inf * 0 stays nan, as in evaluate and NumPy."""
    v = C.Input("v", (4, 3), "float64")
    zeros = C.const(np.zeros(4))
    ratio = C.sum(v[:, 0] * zeros) / C.sum(zeros)
    times_zero = v[:, 0] * zeros
    x = np.arange(12.0).reshape(4, 3)
    x[1, 0] = np.inf
    for got in (C.evaluate([ratio, times_zero], {"v": x}), C.compile([ratio, times_zero])(v=x)):
        assert np.isnan(got[0])
        np.testing.assert_array_equal(np.isnan(got[1]), [False, True, False, False])


def test_cross_entropy_with_every_constant_label_ignored_is_nan():
    """torch's mean over no counted label is nan; the compiled loss gave 4.0 when the labels were a constant."""
    logits = C.Input("logits", (4, 3), "float64")
    loss = C.ops.cross_entropy(logits, C.const(np.full(4, -1, dtype=np.int64)), ignore_index=-1)
    values = {"logits": np.random.default_rng(0).normal(size=(4, 3))}
    assert np.isnan(C.evaluate(loss, values)) and np.isnan(C.compile(loss)(**values))


def test_a_written_in_zero_constant_or_a_repeated_operand_never_cancels_in_compiled_code():
    """The scheduler writes a size-1 constant into the kernel body and inlines maps into their consumers:
    sympy's algebra then made x * 0 zero (0 for an inf x, where evaluate and NumPy give nan), x * 0 + x
    x, and (a k) / k a (2.0 where k = 0; the simplifier also merged the two maps into a)."""
    x = C.Input("x", (3,), "float64")
    zero, zeros1 = C.const(np.array(0.0)), C.const(np.array([0.0]))
    a, k = C.Input("a", (), "float64"), C.Input("k", (), "float64")
    X = np.array([1.0, np.inf, np.nan])
    outputs = [x * zero, x * zeros1 + x, x * zero + 2.0]
    for got in both(outputs, {"x": X}):
        np.testing.assert_array_equal(got[0], [0.0, np.nan, np.nan])
        np.testing.assert_array_equal(got[1], [1.0, np.nan, np.nan])
        np.testing.assert_array_equal(got[2], [2.0, np.nan, np.nan])
    ratio = (a * k) / k
    assert len([n for n in topological_order(simplify(ratio)) if n.op == "map"]) == 2
    for (value,) in both([ratio], {"a": np.array(2.0), "k": np.array(0.0)}):
        assert np.isnan(value)


def test_where_gradient_selects_its_branches_gradients():
    """d/dx Where(c, a, b) is Where(c, a', b'): the chain rule's a' Where(c, 1, 0) + b' Where(c, 0, 1) made an
    infinite a' in the branch not taken nan (huber and smooth l1 losses at an infinite difference)."""
    x = C.Input("x", (4,), "float64")
    huber = C.elementwise(lambda t: sf.Where(sf.Less(sympy.Abs(t), 1), t ** 2 / 2, sympy.Abs(t) - sympy.Rational(1, 2)))
    for (gradient,) in both(grad(C.sum(huber(x)), [x]), {"x": np.array([np.inf, -np.inf, 0.5, 3.0])}):
        np.testing.assert_array_equal(gradient, [1.0, -1.0, 0.5, 1.0])


def test_a_written_in_zero_inside_a_maximum_compiles():
    """A size-1 zero constant the scheduler writes into a body is Kept(0); sympy's Max refused it as not
    comparable, so max pooling of a constant zero failed to compile (``program_fuzz.py 1200 7``, program 4)."""
    x = C.Input("x", (1, 5), "float64")
    zero = C.ops.triu(x - x, 0)  # x - x is 0: a constant by the time the scheduler writes the pool's body
    pooled = C.ops.max_pool2d(C.ops.reshape(zero, (1, 1, 1, 5)), (3, 5), None, (1, 2))
    for (got,) in both([pooled], {"x": np.arange(5.0).reshape(1, 5)}):
        np.testing.assert_array_equal(got, np.zeros((1, 1, 1, 1)))
