"""Gradients printed as mathematics are checked, not trusted.

Each printed expression is evaluated by sympy alone (lambdify for the
elementwise form, explicit matrices for the matrix form) on concrete values
and compared, in float64, with the reference evaluator's value of the same
gradient graph and with a hand-written NumPy derivative.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import compiler as C
from compiler import scalar_functions as sf
from compiler.scalar_functions import NUMPY_IMPLEMENTATIONS

F64 = "float64"
TOLERANCE = 1e-10
MODULES = [NUMPY_IMPLEMENTATIONS, "numpy"]


def size_symbol(name):
    return sympy.Symbol(f"N_{name}", integer=True, positive=True)


def lambdify_elementwise(expr, values: dict, sizes: dict, index: dict | None = None):
    """Evaluate an elementwise-form expression with sympy.lambdify (arrays for indexed leaves)."""
    bases = sorted({i.base for i in expr.atoms(sympy.Indexed)}, key=str)
    indexed_names = {str(b) for b in bases}
    scalars = sorted((s for s in expr.free_symbols if isinstance(s, sympy.Symbol)
                      and str(s) in values and str(s) not in indexed_names), key=str)
    dims = [size_symbol(name) for name in sizes]
    free_indices = sorted(index or {}, key=str)
    args = bases + scalars + dims + free_indices
    function = sympy.lambdify(args, expr, modules=MODULES)
    inputs = ([np.asarray(values[str(b)]) for b in bases] + [values[str(s)] for s in scalars]
              + list(sizes.values()) + [index[i] for i in free_indices])
    return np.asarray(function(*inputs), float)


def _indicator(condition):
    return sympy.Piecewise((1, condition), (0, True))


# The opaque scalar functions by their definitions, so entries become numbers as soon as they are formed.
DEFINITIONS = {
    sf.Sigmoid: lambda u: 1 / (1 + sympy.exp(-u)),
    sf.Softplus: lambda u: sympy.log(1 + sympy.exp(u)),
    sf.Step: lambda u: _indicator(u > 0),
    sf.Relu: lambda u: sympy.Piecewise((u, u > 0), (0, True)),
    sf.Equal: lambda a, b: _indicator(sympy.Eq(a, b)),
    sf.NotEqual: lambda a, b: _indicator(sympy.Ne(a, b)),
    sf.Less: lambda a, b: _indicator(a < b),
    sf.LessEqual: lambda a, b: _indicator(a <= b),
    sf.Greater: lambda a, b: _indicator(a > b),
    sf.GreaterEqual: lambda a, b: _indicator(a >= b),
    sf.Where: lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)),
    sf.Maximum: lambda a, b: sympy.Piecewise((a, a >= b), (b, True)),
    sf.Minimum: lambda a, b: sympy.Piecewise((a, a <= b), (b, True)),
}


def explicit_matrices(expr, values: dict, sizes: dict):
    """Evaluate a matrix-form expression: bind sizes, replace symbols by explicit matrices, expand."""
    expr = expr.subs({size_symbol(name): n for name, n in sizes.items()})
    bindings = {}
    for s in expr.free_symbols:
        if isinstance(s, sympy.MatrixSymbol):
            array = np.asarray(values[s.name], float)
            bindings[s] = sympy.ImmutableMatrix(array.reshape(-1, 1) if array.ndim == 1 else array)
        elif isinstance(s, sympy.Symbol) and s.name in values:
            bindings[s] = sympy.Float(float(values[s.name]), 30)
    for ones in expr.atoms(sympy.OneMatrix):
        bindings[ones] = sympy.ImmutableMatrix(np.ones(tuple(int(d) for d in ones.shape)))
    expr = expr.xreplace(bindings)
    for function, definition in DEFINITIONS.items():
        expr = expr.replace(function, definition)
    result = evaluate_bottom_up(expr)
    if isinstance(result, (sympy.MatrixExpr, sympy.MatrixBase)):
        result = result.as_explicit()
    return np.asarray(sympy.lambdify([], result, modules=MODULES)(), float)


def evaluate_bottom_up(expr):
    """Each operation applied to explicit matrices as soon as its operands are explicit."""
    if isinstance(expr, sympy.MatrixBase) or not expr.args or isinstance(expr, sympy.Lambda):
        return expr
    rebuilt = expr.func(*[evaluate_bottom_up(a) for a in expr.args])
    if isinstance(rebuilt, sympy.HadamardPower) and isinstance(rebuilt.base, sympy.MatrixBase):
        return rebuilt.base.applyfunc(lambda entry: entry ** rebuilt.exp)
    return rebuilt.doit(deep=False)


def assert_close(printed, *references):
    for reference in references:
        reference = np.asarray(reference, float)
        np.testing.assert_allclose(printed.reshape(reference.shape), reference, rtol=TOLERANCE, atol=TOLERANCE)


# ---- scalar curve fits: the elementwise form ---------------------------------------------------

def curve_fit():
    t, y = C.Input("t", ("batch",), F64), C.Input("y", ("batch",), F64)
    a, b, c = (C.Param(n, (), dtype=F64) for n in "abc")
    loss = C.sum((a * C.sin(b * t) + c - y) ** 2)
    return loss, (a, b, c)


def curve_values(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return dict(t=rng.uniform(-2, 2, n), y=rng.normal(size=n), a=1.3, b=0.7, c=-0.4)


def test_curve_fit_gradients_are_sums_over_the_batch():
    loss, params = curve_fit()
    values = curve_values()
    t, y, a, b, c = (values[k] for k in "tyabc")
    residual = a * np.sin(b * t) + c - y
    by_hand = [np.sum(2 * residual * np.sin(b * t)), np.sum(2 * residual * a * np.cos(b * t) * t),
               np.sum(2 * residual)]
    for param, gradient, expected in zip(params, C.grad(loss, list(params)), by_hand):
        expr = C.to_sympy(gradient)
        assert expr.has(sympy.Sum), expr
        assert {str(i.base) for i in expr.atoms(sympy.Indexed)} == {"t", "y"}
        printed = lambdify_elementwise(expr, values, {"batch": 5})
        assert_close(printed, C.evaluate(gradient, values), expected)


def test_curve_fit_gradient_matches_sympy_diff_of_the_formula():
    loss, (a, b, c) = curve_fit()
    values = curve_values(seed=1)
    ta, tb, tc = sympy.symbols("a b c", real=True)
    tt, ty = sympy.symbols("t y", real=True)
    per_sample = (ta * sympy.sin(tb * tt) + tc - ty) ** 2
    derivative = sympy.lambdify([tt, ty, ta, tb, tc], sympy.diff(per_sample, tb))
    expected = np.sum(derivative(values["t"], values["y"], values["a"], values["b"], values["c"]))
    printed = lambdify_elementwise(C.to_sympy(C.grad(loss, b)), values, {"batch": 5})
    assert_close(printed, expected)


def test_the_batch_shaped_gradient_prints_as_its_ith_element():
    loss, (a, b, c) = curve_fit()
    t = [leaf for leaf in C.leaves(loss) if leaf.name == "t"][0]
    values = curve_values()
    expr = C.to_sympy(C.grad(loss, t))
    i = sympy.Symbol("i", integer=True)
    assert i in expr.free_symbols
    reference = C.evaluate(C.grad(loss, t), values)
    residual = values["a"] * np.sin(values["b"] * values["t"]) + values["c"] - values["y"]
    by_hand = 2 * residual * values["a"] * np.cos(values["b"] * values["t"]) * values["b"]
    for k in range(5):
        printed = lambdify_elementwise(expr, values, {"batch": 5}, {i: k})
        assert_close(printed, reference[k], by_hand[k])


def test_all_scalar_graph_is_a_plain_formula():
    x, y = C.Input("x", (), F64), C.Param("w", (), dtype=F64)
    f = C.exp(-y * x) * C.cos(x) + C.sigmoid(y)
    expr = C.to_sympy(C.grad(f, y))
    xs, ws = sympy.Symbol("x", real=True), sympy.Symbol("w", real=True)
    assert expr.free_symbols == {xs, ws}
    expected = sympy.diff(sympy.exp(-ws * xs) * sympy.cos(xs) + 1 / (1 + sympy.exp(-ws)), ws)
    at = {xs: 0.3, ws: -1.1}
    value = sympy.lambdify([xs, ws], expr, modules=MODULES)(0.3, -1.1)
    assert abs(value - float(expected.subs(at))) < TOLERANCE
    assert abs(value - C.evaluate(C.grad(f, y), {"x": 0.3, "w": -1.1})) < TOLERANCE


# ---- tensor graphs: the matrix form -----------------------------------------------------------------

def regression():
    X, Y = C.Input("X", ("batch", 3), F64), C.Input("Y", ("batch", 2), F64)
    W, b = C.Param("W", (3, 2), dtype=F64), C.Param("b", (2,), dtype=F64)
    return C.sum((C.tanh(X @ W + b) - Y) ** 2), (W, b)


def regression_values(seed=0):
    rng = np.random.default_rng(seed)
    return dict(X=rng.normal(size=(4, 3)), Y=rng.normal(size=(4, 2)), W=rng.normal(size=(3, 2)), b=rng.normal(size=2))


def test_tanh_regression_gradient_reads_as_matrix_calculus():
    loss, (W, b) = regression()
    text = str(C.to_sympy(C.grad(loss, W)))
    assert text == "2*X.T*(HadamardProduct(tanh(X*W + 1*b.T) - Y, -HadamardPower(tanh(X*W + 1*b.T), 2) + 1))"
    latex = C.latex(C.grad(loss, W))
    for macro in (r"X^{T}", r"\tanh", r"\circ", r"\mathbf{1} b^{T}", r"^{\circ {2}}"):
        assert macro in latex, (macro, latex)


def test_tanh_regression_gradients_evaluate_to_backprop():
    loss, (W, b) = regression()
    values = regression_values()
    X, Y = values["X"], values["Y"]
    T = np.tanh(X @ values["W"] + values["b"])
    delta = 2 * (T - Y) * (1 - T ** 2)
    for param, gradient, expected in zip((W, b), C.grad(loss, [W, b]), (X.T @ delta, delta.sum(0))):
        expr = C.to_sympy(gradient)
        assert isinstance(expr, sympy.MatrixExpr)
        assert_close(explicit_matrices(expr, values, {"batch": 4}), C.evaluate(gradient, values), expected)
    assert_close(explicit_matrices(C.to_sympy(loss), values, {"batch": 4}), np.sum((T - Y) ** 2))


def test_mlp_layer_with_sigmoid_and_mean_squared_error():
    X, Y = C.Input("X", ("batch", 3), F64), C.Input("Y", ("batch", 2), F64)
    W1, b1 = C.Param("W1", (3, 4), dtype=F64), C.Param("b1", (4,), dtype=F64)
    W2, b2 = C.Param("W2", (4, 2), dtype=F64), C.Param("b2", (2,), dtype=F64)
    loss = C.mse(C.sigmoid(X @ W1 + b1) @ W2 + b2, Y)
    rng = np.random.default_rng(2)
    values = dict(X=rng.normal(size=(3, 3)), Y=rng.normal(size=(3, 2)), W1=rng.normal(size=(3, 4)),
                  b1=rng.normal(size=4), W2=rng.normal(size=(4, 2)), b2=rng.normal(size=2))
    H = 1 / (1 + np.exp(-(values["X"] @ values["W1"] + values["b1"])))
    d_out = 2 * (H @ values["W2"] + values["b2"] - values["Y"]) / values["Y"].size
    d_pre = d_out @ values["W2"].T * H * (1 - H)
    by_hand = [values["X"].T @ d_pre, d_pre.sum(0), H.T @ d_out, d_out.sum(0)]
    params = [W1, b1, W2, b2]
    for gradient, expected in zip(C.grad(loss, params), by_hand):
        printed = explicit_matrices(C.to_sympy(gradient), values, {"batch": 3})
        assert_close(printed, C.evaluate(gradient, values), expected)


def softmax_values(seed=3):
    rng = np.random.default_rng(seed)
    labels = np.array([0, 2, 1, 2])
    return dict(X=rng.normal(size=(4, 3)), V=rng.normal(size=(3, 3)), c=rng.normal(size=3),
                T=np.eye(3)[labels], labels=labels)


def softmax_by_hand(values):
    Z = values["X"] @ values["V"] + values["c"]
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    delta = (P - values["T"]) / len(Z)
    return values["X"].T @ delta, delta.sum(0)


@pytest.mark.parametrize("labels_kind", ["one_hot", "integer"])
def test_softmax_cross_entropy(labels_kind):
    X = C.Input("X", ("batch", 3), F64)
    V, c = C.Param("V", (3, 3), dtype=F64), C.Param("c", (3,), dtype=F64)
    logits = X @ V + c
    if labels_kind == "one_hot":
        loss = -C.mean(C.sum(C.Input("T", ("batch", 3), F64) * C.log_softmax(logits), axis=1))
    else:
        loss = C.cross_entropy(logits, C.Input("labels", ("batch",), "int64"))
    values = softmax_values()
    for gradient, expected in zip(C.grad(loss, [V, c]), softmax_by_hand(values)):
        printed = explicit_matrices(C.to_sympy(gradient), values, {"batch": 4})
        assert_close(printed, C.evaluate(gradient, values), expected)


def more_graphs():
    """(name, gradient node) for ops beyond the worked examples; checked against the reference evaluator."""
    X, Y = C.Input("X", ("batch", 3), F64), C.Input("Y", ("batch", 2), F64)
    W, V = C.Param("W", (3, 2), dtype=F64), C.Input("V", (3, 2), F64)
    v, u, s = C.Param("v", (3,), dtype=F64), C.Param("u", (2,), dtype=F64), C.Param("s", (), dtype=F64)
    Z = X @ W
    centred = Z - C.mean(Z, axis=1, keepdims=True)
    layer_norm = centred / C.sqrt(C.mean(centred ** 2, axis=1, keepdims=True) + 1e-5)
    tanh_gradient = C.grad(C.sum(C.tanh(Z) ** 2), W)
    return [
        ("relu", C.grad(C.sum(C.relu(Z) * Y), W)),
        ("clip", C.grad(C.sum(C.clip(Z, -0.5, 0.5) * Y), W)),
        ("softplus bias", C.grad(C.sum(C.softplus(Z + u)), u)),
        ("dot product", C.grad((v @ v) * s, v)),
        ("dot product scale", C.grad((v @ v) * s, s)),
        ("outer product", C.grad(C.sum(C.einsum("i,j->ij", v, u) * W), v)),
        ("matrix-vector", C.grad(C.sum(C.tanh(X @ v)), v)),
        ("layer norm", C.grad(C.sum(layer_norm * Y), W)),
        ("max over rows", C.grad(C.sum(C.max(Z, axis=1)), W)),
        ("max over columns", C.grad(C.sum(C.max(Z, axis=0) * u), u)),
        ("max of all entries", C.grad(C.max(Z) * s, s)),
        ("scalar parameter", C.grad(C.sum(s * C.exp(-s * Z)), s)),
        ("hessian-vector product", C.grad(C.sum(tanh_gradient * V), W)),
    ]


@pytest.mark.parametrize("name, gradient", more_graphs(), ids=[name for name, _ in more_graphs()])
def test_more_ops_print_exactly(name, gradient):
    rng = np.random.default_rng(4)
    values = dict(X=rng.normal(size=(2, 3)), Y=rng.normal(size=(2, 2)), W=rng.normal(size=(3, 2)),
                  V=rng.normal(size=(3, 2)), v=rng.normal(size=3), u=rng.normal(size=2), s=0.7)
    printed = explicit_matrices(C.to_sympy(gradient), values, {"batch": 2})
    assert_close(printed, C.evaluate(gradient, values))
    assert C.latex(gradient) and C.pretty(gradient)


def test_many_classes_compare_against_the_index_vector():
    X, labels = C.Input("X", ("batch", 3), F64), C.Input("labels", ("batch",), "int64")
    V = C.Param("V", (3, 40), dtype=F64)
    gradient = C.grad(C.cross_entropy(X @ V, labels), V)
    assert "range(40)" in str(C.to_sympy(gradient)) and r"0, 1, \ldots, 39" in C.latex(gradient)
    rng = np.random.default_rng(5)
    values = dict(X=rng.normal(size=(2, 3)), V=rng.normal(size=(3, 40)), labels=np.array([3, 39]))
    assert_close(explicit_matrices(C.to_sympy(gradient), values, {"batch": 2}), C.evaluate(gradient, values))


def test_define_names_an_intermediate():
    X = C.Input("X", ("batch", 3), F64)
    W1, W2 = C.Param("W1", (3, 4), dtype=F64), C.Param("W2", (4, 1), dtype=F64)
    hidden = C.tanh(X @ W1)
    loss = C.sum(hidden @ W2)
    expr = C.to_sympy(C.grad(loss, W1), define={hidden: "H"})
    assert str(expr) == "X.T*(HadamardProduct(1*W2.T, -HadamardPower(H, 2) + 1))"
    values = dict(X=np.arange(6.0).reshape(2, 3) / 7, W1=np.linspace(-1, 1, 12).reshape(3, 4), W2=np.ones((4, 1)))
    values["H"] = np.tanh(values["X"] @ values["W1"])
    assert_close(explicit_matrices(expr, values, {"batch": 2}), C.evaluate(C.grad(loss, W1), values))


def test_forms_can_be_forced_and_fail_clearly():
    loss, params = curve_fit()
    matrix = C.to_sympy(C.grad(loss, params[0]), form="matrix")
    assert isinstance(matrix, sympy.Expr) and not matrix.has(sympy.Sum)
    assert_close(explicit_matrices(matrix, curve_values(), {"batch": 5}),
                 C.evaluate(C.grad(loss, params[0]), curve_values()))
    tensor_loss, (W, _) = regression()
    with pytest.raises(ValueError, match="not elementwise"):
        C.to_sympy(C.grad(tensor_loss, W), form="elementwise")
    cube = C.sum(C.Input("A", (2, 3, 4), F64) @ C.Input("B", (2, 4, 5), F64))
    with pytest.raises(NotImplementedError, match=r"rank 0, 1 and 2.*define="):
        C.to_sympy(cube)
    with pytest.raises(ValueError, match="form must be"):
        C.to_sympy(cube, form="tensor")


# ---- printers ---------------------------------------------------------------------------------

def every_example():
    curve, curve_params = curve_fit()
    tensor, tensor_params = regression()
    X = C.Input("X", ("batch", 3), F64)
    ce = C.cross_entropy(X @ C.Param("V", (3, 3), dtype=F64), C.Input("labels", ("batch",), "int64"))
    return [curve, *C.grad(curve, list(curve_params)), tensor, *C.grad(tensor, list(tensor_params)),
            ce, C.grad(ce, C.Param("V", (3, 3), dtype=F64))]


def test_latex_and_pretty_render_every_example():
    for node in every_example():
        latex = C.latex(node)
        assert latex and "_shown" not in latex and "Dummy" not in latex
        assert latex == sympy.latex(C.to_sympy(node))
        picture = C.pretty(node)
        assert picture and "_shown" not in picture
    curve, params = curve_fit()
    latex = C.latex(C.grad(curve, params[1]))
    for macro in (r"\sum_{i=0}^{N_{batch} - 1}", r"\cos{", r"{t}_{i}"):
        assert macro in latex, (macro, latex)


def test_latex_parses_back_when_the_parser_is_installed():
    pytest.importorskip("antlr4")
    from sympy.parsing.latex import parse_latex

    x, a, b, c = C.Input("x", (), F64), C.Param("a", (), dtype=F64), C.Param("b", (), dtype=F64), C.Param("c", (), dtype=F64)
    loss = (a * C.sin(b * x) + c - 2) ** 2
    at = {"x": 0.4, "a": 1.5, "b": -0.8, "c": 0.25}
    for gradient in C.grad(loss, [a, b, c]):
        try:
            parsed = parse_latex(C.latex(gradient, mul_symbol="dot"))
        except ImportError as reason:  # an antlr4 runtime of another version than sympy's parser wants
            pytest.skip(f"sympy's LaTeX parser is not usable here: {reason}")
        value = float(parsed.subs({s: at[s.name] for s in parsed.free_symbols}))
        assert abs(value - C.evaluate(gradient, at)) < TOLERANCE
