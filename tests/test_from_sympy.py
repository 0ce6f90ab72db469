"""from_sympy: a scalar formula becomes a batched model whose gradients are sympy's own derivatives."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import compiler as C
from compiler.errors import GraphError

A, k, w, p, t = sympy.symbols("A k w p t", real=True)
OSCILLATOR = A * sympy.exp(-k * t) * sympy.cos(w * t + p)
PARAMS = dict(A=1.7, k=0.35, w=2.1, p=-0.4)


def samples(n=7, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 4, n), rng.normal(size=n)


def test_leaves_are_a_batched_input_and_scalar_parameters():
    model = C.from_sympy(OSCILLATOR, inputs=[t], params=[A, k, w, p])
    leaves = {leaf.name: leaf for leaf in C.leaves(model)}
    assert set(leaves) == {"t", "A", "k", "w", "p"}
    assert leaves["t"].op == "input" and leaves["t"].shape == ("batch",)
    for name in "Akwp":
        assert leaves[name].op == "param" and leaves[name].shape == () and leaves[name].attr("init") == "ones"
    assert model.shape == ("batch",) and model.dtype == "float32"


def test_forward_matches_the_formula():
    model = C.from_sympy(OSCILLATOR, inputs=[t], params=[A, k, w, p], dtype="float64")
    times, _ = samples()
    expected = PARAMS["A"] * np.exp(-PARAMS["k"] * times) * np.cos(PARAMS["w"] * times + PARAMS["p"])
    np.testing.assert_allclose(C.evaluate(model, dict(PARAMS, t=times)), expected, rtol=1e-12)


def test_gradients_match_sympy_diff_of_the_expression():
    model = C.from_sympy(OSCILLATOR, inputs=[t], params=[A, k, w, p], dtype="float64")
    y = C.Input("y", ("batch",), "float64")
    loss = C.sum((model - y) ** 2)
    params = [leaf for leaf in C.leaves(model) if leaf.op == "param"]
    times, targets = samples()
    values = dict(PARAMS, t=times, y=targets)
    ys = sympy.Symbol("y", real=True)
    per_sample = (OSCILLATOR - ys) ** 2
    for param, gradient in zip(params, C.grad(loss, params)):
        derivative = sympy.lambdify([t, ys, A, k, w, p], sympy.diff(per_sample, sympy.Symbol(param.name, real=True)))
        expected = np.sum(derivative(times, targets, *(PARAMS[n] for n in "Akwp")))
        np.testing.assert_allclose(C.evaluate(gradient, values), expected, rtol=1e-10)


def test_printing_the_model_gives_the_formula_back():
    model = C.from_sympy(OSCILLATOR, inputs=[t], params=[A, k, w, p])
    i = sympy.Symbol("i", integer=True)
    expected = OSCILLATOR.xreplace({t: sympy.IndexedBase("t", real=True)[i]})
    assert sympy.expand(C.to_sympy(model) - expected) == 0


def test_names_init_and_dtype():
    x, a, b = sympy.symbols("x a b")
    model = C.from_sympy(a * x + b, inputs=["x"], params=["a", b], init={"a": "normal"}, dtype="float64")
    leaves = {leaf.name: leaf for leaf in C.leaves(model)}
    assert leaves["a"].attr("init") == "normal" and leaves["b"].attr("init") == "ones"
    assert {leaf.dtype for leaf in leaves.values()} == {"float64"}
    assert C.from_sympy(a * x, inputs=[x], params=[a], batch="n").shape == ("n",)


def test_max_and_min_become_the_graph_functions():
    x, a = sympy.symbols("x a", real=True)
    model = C.from_sympy(sympy.Max(x, 0) * a + sympy.Min(x, a, 1), inputs=[x], params=[a], dtype="float64")
    xs = np.array([-2.0, -0.5, 0.3, 1.5, 4.0])
    expected = np.maximum(xs, 0) * 0.7 + np.minimum(np.minimum(xs, 0.7), 1)
    np.testing.assert_allclose(C.evaluate(model, {"x": xs, "a": 0.7}), expected)
    gradient = C.grad(C.sum(model), [leaf for leaf in C.leaves(model) if leaf.name == "a"][0])
    np.testing.assert_allclose(C.evaluate(gradient, {"x": xs, "a": 0.7}), np.sum(np.maximum(xs, 0) + ((xs > 0.7) & (0.7 <= 1))))


def test_unlisted_symbols_are_named_in_the_error():
    with pytest.raises(GraphError, match=r"uses k, w, which are neither an input nor a parameter"):
        C.from_sympy(OSCILLATOR, inputs=[t], params=[A, p])
    with pytest.raises(GraphError, match="both as an input and as a parameter"):
        C.from_sympy(OSCILLATOR, inputs=[t, A], params=[A, k, w, p])
    with pytest.raises(GraphError, match="not a parameter"):
        C.from_sympy(OSCILLATOR, inputs=[t], params=[A, k, w, p], init={"t": "zeros"})
    with pytest.raises(GraphError, match="init for 'A'"):
        C.from_sympy(OSCILLATOR, inputs=[t], params=[A, k, w, p], init="uniformly")
    with pytest.raises(GraphError, match="Derivative"):
        C.from_sympy(sympy.Derivative(sympy.Function("f")(t), t), inputs=[t])
    with pytest.raises(GraphError, match="scalar sympy expression"):
        C.from_sympy(sympy.Matrix([t]), inputs=[t])


def test_damped_oscillator_example_recovers_its_parameters():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / "fit_damped_oscillator.py"
    spec = importlib.util.spec_from_file_location("fit_damped_oscillator", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model, loss, params = example.build()
    times, targets = example.synthetic_data()
    fitted, final_loss = example.fit(loss, times, targets)
    assert final_loss < 0.003
    for name, true in example.TRUE.items():
        assert abs(fitted[name] - true) < 0.05, (name, fitted[name], true)
