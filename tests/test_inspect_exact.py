"""The matrix form of ``to_sympy`` is a sympy expression that sympy itself evaluates.

Every gradient here is printed, its symbols replaced by explicit matrices with
plain ``expr.subs({W: Matrix(...), ..., N_batch: n}).doit()`` (no helper that
knows our notation), and the numbers compared with the compiled gradient.
A model with tensors of rank 3 is shown by ``symprop inspect --format math``
with those tensors named as symbols.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import sympy
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

import compiler as C
from compiler import scalar_functions as sf
from compiler.cli import main
from compiler.inspect.mathematics import formula
from compiler.inspect.symbols import evaluable, in_standard_functions

F64 = "float64"
N_BATCH = sympy.Symbol("N_batch", integer=True, positive=True)
RTOL = 1e-10
ROOT = os.path.join(os.path.dirname(__file__), "..")


def by_sympy(expr, values: dict, batch: int) -> np.ndarray:
    """The value sympy computes: every MatrixSymbol, scalar leaf and size bound, then doit()."""
    bindings = {N_BATCH: batch}
    for s in expr.free_symbols:
        if s.name not in values:
            continue
        array = np.asarray(values[s.name])
        exact = sympy.Integer if array.dtype.kind in "iu" else sympy.Float
        if isinstance(s, sympy.MatrixSymbol):
            rows = array.reshape(-1, 1) if array.ndim == 1 else array
            bindings[s] = sympy.Matrix([[exact(v) for v in row] for row in rows.tolist()])
        else:
            bindings[s] = exact(array.item())
    result = expr.subs(bindings).doit()
    assert not result.free_symbols, f"left unevaluated: {result.free_symbols}"
    assert not result.atoms(sympy.MatrixExpr) or isinstance(result, sympy.MatrixBase), result
    return np.array(result.evalf(), dtype=float)


def compiled(nodes, values: dict) -> list:
    names = {leaf.name for node in nodes for leaf in C.leaves(node)}
    outputs = C.compile(list(nodes))(**{k: v for k, v in values.items() if k in names})
    return [np.asarray(o, float) for o in outputs]


def assert_same(printed, reference):
    reference = np.asarray(reference, float)
    scale = max(1.0, float(np.abs(reference).max()))
    np.testing.assert_allclose(printed.reshape(reference.shape), reference, rtol=RTOL, atol=RTOL * scale)


def check_gradients(loss, params, values, batch):
    gradients = C.grad(loss, list(params))
    for param, gradient, reference in zip(params, gradients, compiled(gradients, values)):
        expr = C.to_sympy(gradient, form="matrix")
        assert_same(by_sympy(expr, values, batch), reference)
    return gradients


# ---- a two-layer MLP --------------------------------------------------------------------------

def mlp(activation, loss_name):
    X = C.Input("X", ("batch", 3), F64)
    W1, b1 = C.Param("W1", (3, 4), dtype=F64), C.Param("b1", (4,), dtype=F64)
    W2, b2 = C.Param("W2", (4, 3), dtype=F64), C.Param("b2", (3,), dtype=F64)
    logits = getattr(C, activation)(X @ W1 + b1) @ W2 + b2
    if loss_name == "mse":
        loss = C.mse(logits, C.Input("Y", ("batch", 3), F64))
    else:
        loss = C.cross_entropy(logits, C.Input("labels", ("batch",), "int64"))
    return loss, (W1, b1, W2, b2)


def mlp_values(batch=4, seed=0):
    rng = np.random.default_rng(seed)
    return dict(X=rng.normal(size=(batch, 3)), Y=rng.normal(size=(batch, 3)),
                labels=rng.integers(0, 3, size=batch).astype(np.int64),
                W1=rng.normal(size=(3, 4)), b1=rng.normal(size=4), W2=rng.normal(size=(4, 3)), b2=rng.normal(size=3))


@pytest.mark.parametrize("activation, loss_name, batch", [
    ("tanh", "mse", 4), ("sigmoid", "mse", 4), ("tanh", "cross_entropy", 4), ("sigmoid", "cross_entropy", 4),
    ("tanh", "cross_entropy", 1)])
def test_mlp_gradients_evaluated_by_sympy_match_the_compiled_ones(activation, loss_name, batch):
    loss, params = mlp(activation, loss_name)
    check_gradients(loss, params, mlp_values(batch), batch=batch)


def test_the_matrix_form_is_made_of_sympy_matrix_expressions():
    loss, (W1, b1, W2, b2) = mlp("sigmoid", "mse")
    expr = C.to_sympy(C.grad(loss, W1))
    maps = expr.atoms(ElementwiseApplyFunction)
    assert maps and all(isinstance(m.function, sympy.Lambda) for m in maps)
    for kind in (sympy.MatMul, sympy.Transpose, sympy.HadamardProduct, sympy.OneMatrix, sympy.MatrixSymbol):
        assert expr.atoms(kind), kind
    bias = C.to_sympy(C.grad(loss, b1))          # a sum over rows: (...)^T 1
    assert bias.shape == (4, 1) and bias.atoms(sympy.OneMatrix)
    # the printed form is unchanged: an activation reads as the function of a matrix
    assert "Sigmoid(X*W1 + 1*b1.T)" in str(expr)


def test_a_partial_substitution_stays_symbolic():
    loss, (W1, *_) = mlp("tanh", "mse")
    expr = C.to_sympy(C.grad(loss, W1))
    W = sympy.Matrix(np.ones((3, 4)))
    partly = expr.subs({s: W for s in expr.free_symbols if getattr(s, "name", "") == "W1"}).doit()
    assert any(isinstance(s, sympy.MatrixSymbol) for s in partly.free_symbols)


# ---- maps, transposes, broadcasts, sums, softmax ----------------------------------------------

def small_graphs():
    """(name, loss, params): each exercises one part of the notation."""
    X, Y = C.Input("X", ("batch", 3), F64), C.Input("Y", ("batch", 2), F64)
    W, u = C.Param("W", (3, 2), dtype=F64), C.Param("u", (2,), dtype=F64)
    v, s = C.Param("v", (3,), dtype=F64), C.Param("s", (), dtype=F64)
    Z = X @ W
    return [
        ("relu and softplus", C.sum(C.relu(Z) * Y + C.softplus(Z - u)), (W, u)),
        ("leaky relu and clip (Where, Maximum, Minimum)", C.sum(C.leaky_relu(Z, 0.1) * C.clip(Y, -0.5, 0.5)), (W,)),
        ("maximum of two matrices", C.sum(C.maximum(Z, Y) ** 2), (W,)),
        ("transposes", C.sum(C.tanh(C.transpose(Z) @ Y)), (W,)),
        ("bias broadcast over rows", C.sum(C.exp(-(Z + u) ** 2)), (W, u)),
        ("sums over each axis", C.sum(C.sum(C.tanh(Z), axis=0) * u) + C.sum(C.sum(Z, axis=1) ** 2), (W, u)),
        ("column broadcast (keepdims mean)", C.sum((Z - C.mean(Z, axis=1, keepdims=True)) ** 2 * Y), (W,)),
        ("matrix-vector and scalar", C.sum(C.sigmoid(X @ v) * s), (v, s)),
        ("softmax", C.sum(C.softmax(Z + u, axis=1) * Y), (W, u)),
        ("log-softmax", -C.mean(C.sum(Y * C.log_softmax(Z, axis=1), axis=1)), (W,)),
        ("max over rows", C.sum(C.max(Z, axis=1)), (W,)),
        ("opaque function of a scalar parameter", C.sum(C.sigmoid(s) * C.tanh(Z) + C.relu(s - 1) * Z), (W, s)),
    ]


@pytest.mark.parametrize("name, loss, params", small_graphs(), ids=[g[0] for g in small_graphs()])
def test_each_part_of_the_notation_evaluates(name, loss, params):
    rng = np.random.default_rng(7)
    values = dict(X=rng.normal(size=(5, 3)), Y=rng.normal(size=(5, 2)), W=rng.normal(size=(3, 2)),
                  u=rng.normal(size=2), v=rng.normal(size=3), s=np.array(0.7))
    check_gradients(loss, params, values, batch=5)


def test_the_loss_itself_evaluates():
    loss, _ = mlp("tanh", "cross_entropy")
    values = mlp_values(seed=3)
    (reference,) = compiled([loss], values)
    assert_same(by_sympy(C.to_sympy(loss, form="matrix"), values, 4), reference)


OPAQUE = [f for f in vars(sf).values() if isinstance(f, type) and issubclass(f, sympy.Function)
          and f.__module__ == sf.__name__ and f.__name__ in sf.NUMPY_IMPLEMENTATIONS]


@pytest.mark.parametrize("function", OPAQUE, ids=lambda f: f.__name__)
def test_opaque_functions_evaluate_on_numbers_as_numpy_does(function):
    arity = function.nargs if isinstance(function.nargs, int) else max(function.nargs)
    rng = np.random.default_rng(1)
    samples = [rng.normal(size=6) * 3 for _ in range(arity)]
    if arity > 1:
        samples[1][:2] = samples[0][:2]          # ties for the comparisons
    if function is sf.Where:
        samples[0] = np.array([0.0, 1.0, 0.0, -2.0, 1.0, 0.0])
    expected = np.asarray(sf.NUMPY_IMPLEMENTATIONS[function.__name__](*samples), float)
    variables = sympy.symbols(f"d:{arity}", real=True)
    entrywise = evaluable(sympy.Lambda(variables, function(*variables)))   # as a matrix map applies it
    for k in range(6):
        value = in_standard_functions(entrywise(*[sympy.Float(s[k]) for s in samples]))
        assert value.is_number and abs(float(value) - expected[k]) <= 1e-12 * max(1, abs(expected[k])), (k, value)


# ---- rank-3 tensors: named, not a traceback ---------------------------------------------------

RANK3_MODEL = '''
import compiler as C
x = C.Input("x", ("batch", 2, 3), "float64")
y = C.Input("y", ("batch", 2), "float64")
W = C.Param("W", (3, 4), dtype="float64")
V = C.Param("V", (8, 2), dtype="float64")
c = C.Param("c", (2,), dtype="float64")
B = C.Input("B", (2, 4, 4), "float64")
h = C.tanh(C.einsum("bij,jk->bik", x, W))          # (batch, 2, 4)
g = C.einsum("bij,ijk->bik", h, B)                 # a batched product with a rank-3 input
loss = C.mse(C.sigmoid(C.reshape(g, ("batch", 8)) @ V + c), y)
'''


@pytest.fixture
def rank3_model(tmp_path):
    path = tmp_path / "rank3.py"
    path.write_text(RANK3_MODEL)
    return str(path)


def test_rank3_parts_become_named_symbols(rank3_model):
    import runpy
    model = runpy.run_path(rank3_model)
    loss, V = model["loss"], model["V"]
    with pytest.raises(NotImplementedError, match="rank 0, 1 and 2"):
        C.to_sympy(C.grad(loss, V))
    shown = formula(C.grad(loss, V))
    names = [part.name for part in shown.parts]
    assert {"x", "B"} <= set(names) and all(n.startswith("T") for n in set(names) - {"x", "B"}), names
    written = [p for p in shown.parts if isinstance(p.symbol, sympy.MatrixSymbol)]
    assert len(written) == 1 and written[0].node.shape == ("batch", 8)   # the reshape back to a matrix
    text = shown.text()
    assert "where" in text and "einsum[bij,jk->bik](x, W)" in text and "(a (batch, 2, 4) tensor)" in text
    assert "(a (2, 4, 4) tensor)" in text and "(a (batch, 8) matrix)" in text
    # what it writes is exact: with the named matrix bound to its value, sympy gives the gradient
    rng = np.random.default_rng(0)
    values = dict(x=rng.normal(size=(3, 2, 3)), y=rng.normal(size=(3, 2)), W=rng.normal(size=(3, 4)),
                  V=rng.normal(size=(8, 2)), c=rng.normal(size=2), B=rng.normal(size=(2, 4, 4)))
    hidden = np.einsum("bij,ijk->bik", np.tanh(np.einsum("bij,jk->bik", values["x"], values["W"])), values["B"])
    (reference,) = compiled([C.grad(loss, V)], values)
    bound = dict(values, **{written[0].name: hidden.reshape(3, 8)})
    assert_same(by_sympy(shown.expr, bound, 3), reference)


def test_inspect_math_names_rank3_parts(rank3_model, capsys):
    assert main(["inspect", rank3_model, "--format", "math"]) == 0
    out = capsys.readouterr().out
    assert "loss:" in out and "d loss / d W:" in out and "d loss / d V:" in out
    assert "where" in out and "einsum[bij,jk->bik](x, W)" in out and "tensor)" in out
    assert main(["inspect", rank3_model, "--format", "latex", "--grad", "V"]) == 0
    latex = capsys.readouterr().out
    assert r"\text{where}" in latex and r"\text{einsum[bij,jk->bik]}\left(x, W\right)" in latex
    assert r"T_{" in latex and "V" in latex


def test_inspect_math_of_rank3_model_from_the_command_line(rank3_model):
    done = subprocess.run([sys.executable, "-m", "compiler.cli", "inspect", rank3_model, "--grad", "W",
                           "--format", "math"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "where" in done.stdout and "x = input float64" in done.stdout and "(a (3, 4) matrix)" in done.stdout
