"""Inspection of deep graphs, and ``symprop inspect`` on bad input.

A chain of 1,500 ``tanh(h @ W + w)`` layers is printed by ``to_sympy``, ``latex``,
``pretty``, ``formula`` and ``symprop inspect --format math`` under Python's
default recursion limit: past a nesting depth, intermediates become named
symbols (H1, H2, ...) with their definitions. For a 60-layer chain, substituting
numbers into the definitions in order and then into the gradient reproduces
the compiled gradient.

Every mistake on the ``symprop inspect`` command line (a missing or unreadable
model file, a directory, a malformed file, an unknown format or parameter) is
exit code 2 and one line naming the file or flag, never a traceback.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sympy

import compiler as C
from compiler.inspect.mathematics import formula
from compiler.inspect.matrix_form import matrix_shape
from compiler.inspect.nesting import MAX_NESTING, NestingDepth

ROOT = os.path.join(os.path.dirname(__file__), "..")
PYTHON_MODEL = os.path.join(ROOT, "examples", "tanh_regression.py")
TOML_MODEL = os.path.join(ROOT, "examples", "digits_mlp.toml")
_fresh = itertools.count()


pytestmark = pytest.mark.usefixtures("default_recursion_limit")


def tanh_chain(length: int):
    """h = x; `length` times h = tanh(h @ W + w); loss = sum(h * h)."""
    tag = next(_fresh)
    x = C.Input(f"x{tag}", (4, 3), "float64")
    W, w = C.Param(f"W{tag}", (3, 3), dtype="float64"), C.Param(f"w{tag}", (3,), dtype="float64")
    h = x
    for _ in range(length):
        h = C.tanh(h @ W + w)
    loss = C.sum(h * h)
    rng = np.random.default_rng(tag)
    values = {f"x{tag}": rng.normal(size=(4, 3)), f"W{tag}": 0.5 * np.eye(3) + 0.3 * rng.normal(size=(3, 3)),
              f"w{tag}": rng.uniform(-0.3, 0.3, 3)}
    return loss, (W, w), values


def max_depth(expr) -> int:
    return NestingDepth()(expr)


@pytest.fixture(scope="module")
def deep_chain():
    loss, params, _ = tanh_chain(1500)
    return loss, C.grad(loss, params[0])


@pytest.mark.parametrize("which", ["loss", "gradient"])
def test_every_math_view_of_a_1500_layer_chain(deep_chain, which):
    node = deep_chain[0] if which == "loss" else deep_chain[1]
    definitions = {}
    expr = C.to_sympy(node, definitions=definitions)
    assert definitions, "a deep graph names its intermediates"
    bound = MAX_NESTING + 20  # the bound plus one node's own formula
    assert max_depth(expr) <= bound and all(max_depth(d) <= bound for d in definitions.values())
    names = [str(s) for s in definitions]
    assert names == [f"H{k}" for k in range(1, len(names) + 1)]
    # each definition uses only leaves and earlier definitions
    seen = set()
    for symbol, definition in definitions.items():
        used = {s for s in definition.free_symbols if str(s).startswith("H")}
        assert used <= seen, (symbol, used - seen)
        seen.add(symbol)
    latex, pretty = C.latex(node), C.pretty(node)
    assert r"\text{where}" in latex and "H_{1} =" in latex
    assert "where" in pretty and "H₁ = " in pretty
    text = formula(node).text("str")
    assert "\nwhere\n" in text and "  H1 = " in text
    again = formula(node).definitions  # the same definitions (their Lambdas have fresh dummies)
    assert [(str(k), str(v)) for k, v in again.items()] == [(str(k), str(v)) for k, v in definitions.items()]


def test_inspect_math_of_a_deep_python_model(tmp_path):
    path = tmp_path / "deep.py"
    path.write_text(textwrap.dedent("""
        import compiler as C
        x = C.Input("x", ("batch", 3), "float64")
        W, w = C.Param("W", (3, 3), dtype="float64"), C.Param("w", (3,), dtype="float64")
        h = x
        for _ in range(1500):
            h = C.tanh(h @ W + w)
        loss = C.sum(h * h)
    """))
    done = subprocess.run([sys.executable, "-m", "compiler.cli", "inspect", str(path), "--format", "math"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert "d loss / d W:" in out and "d loss / d w:" in out and "where" in out and "H₁ = " in out


def test_shallow_graphs_have_no_named_intermediates():
    loss, (W, w), _ = tanh_chain(3)
    definitions = {}
    expr = C.to_sympy(C.grad(loss, W), definitions=definitions)
    assert definitions == {} and not any(str(s).startswith("H") for s in expr.free_symbols)
    assert "where" not in C.pretty(C.grad(loss, W))
    # the bound decides: a tiny one names intermediates even here, None never does
    tiny = {}
    C.to_sympy(C.grad(loss, W), definitions=tiny, max_depth=5)
    assert tiny
    assert str(C.to_sympy(C.grad(loss, W), max_depth=None)) == str(expr)  # (Lambdas have fresh dummies)
    # lists print as before
    assert C.latex([loss, C.grad(loss, w)]).startswith(r"\left[") and C.pretty([loss, loss])
    with pytest.raises(TypeError, match="one node"):
        C.to_sympy([loss, loss], definitions={})


def _bind(array) -> sympy.ImmutableMatrix:
    rows = array.reshape(-1, 1) if array.ndim == 1 else array
    return sympy.ImmutableMatrix([[sympy.Float(float(v)) for v in row] for row in rows])


def _evaluate(expr, bindings):
    used = {s: bindings[s] for s in expr.free_symbols if s in bindings}
    return expr.subs(used).doit()


@pytest.mark.parametrize("param_index", [0, 1])
def test_definitions_in_order_give_the_compiled_gradient(param_index):
    loss, params, values = tanh_chain(60)
    gradient = C.grad(loss, params[param_index])
    definitions = {}
    expr = C.to_sympy(gradient, form="matrix", definitions=definitions)
    assert len(definitions) > 60
    bindings = {sympy.MatrixSymbol(leaf.name, *matrix_shape(leaf.shape)): _bind(values[leaf.name])
                for leaf in C.leaves(gradient)}
    for symbol, definition in definitions.items():
        bindings[symbol] = _evaluate(definition, bindings)
        assert isinstance(bindings[symbol], sympy.MatrixBase), (symbol, bindings[symbol])
    result = np.array(_evaluate(expr, bindings).evalf(), dtype=float)
    (reference,) = C.compile([gradient])(**values)
    reference = np.asarray(reference, float)
    np.testing.assert_allclose(result.reshape(reference.shape), reference, rtol=1e-10,
                               atol=1e-10 * max(1.0, float(np.abs(reference).max())))


def test_a_deep_elementwise_chain_names_indexed_intermediates():
    t = C.Input("t", ("batch",), "float64")
    a, b = C.Param("a", (), dtype="float64"), C.Param("b", (), dtype="float64")
    h = t
    for _ in range(1500):
        h = C.tanh(a * h + b)
    loss = C.sum(h * h)
    gradient = C.grad(loss, a)
    definitions = {}
    expr = C.to_sympy(gradient, definitions=definitions)
    assert definitions and max_depth(expr) <= MAX_NESTING + 20
    assert all(max_depth(d) <= MAX_NESTING + 20 for d in definitions.values())
    assert any(isinstance(s, sympy.Indexed) for s in definitions)
    text = formula(gradient).text("latex")
    assert r"\text{where}" in text and "{H_{1}}_{i} = " in text


def test_a_moderately_deep_elementwise_chain_evaluates_through_its_definitions():
    t = C.Input("t", ("batch",), "float64")
    a, b = C.Param("a", (), dtype="float64"), C.Param("b", (), dtype="float64")
    h = t
    for _ in range(60):
        h = C.tanh(a * h + b)
    gradient = C.grad(C.sum(h * h), a)
    definitions = {}
    expr = C.to_sympy(gradient, definitions=definitions)
    assert definitions
    batch = np.array([0.3, -0.2, 0.7])
    values = {"t": batch, "a": 0.9, "b": 0.1}
    numbers = {sympy.Symbol("a", real=True): values["a"], sympy.Symbol("b", real=True): values["b"],
               sympy.Symbol("N_batch", integer=True, positive=True): len(batch)}
    known = {}  # (name, i) -> number, for indexed intermediates
    for symbol, definition in definitions.items():
        if isinstance(symbol, sympy.Indexed):
            (index,) = symbol.indices
            for i in range(len(batch)):
                known[(str(symbol.base), i)] = _scalar(definition, numbers, known, {index: i}, batch)
        else:
            numbers[symbol] = _scalar(definition, numbers, known, {}, batch)
    result = _scalar(expr, numbers, known, {}, batch)
    (reference,) = C.compile([gradient])(t=batch, a=np.array(values["a"]), b=np.array(values["b"]))
    np.testing.assert_allclose(result, float(reference), rtol=1e-10)


def _scalar(expr, numbers, known, index_values, batch) -> float:
    """A scalar formula evaluated: Sums expanded, t[i] and H[i] looked up."""
    sizes = {s: v for s, v in numbers.items() if str(s) == "N_batch"}
    expr = expr.xreplace({**index_values, **sizes}).doit()

    def lookup(indexed):
        name, (i,) = str(indexed.base), indexed.indices
        return sympy.Float(batch[int(i)]) if name == "t" else sympy.Float(known[(name, int(i))])

    expr = expr.replace(lambda e: isinstance(e, sympy.Indexed), lookup)
    return float(expr.subs(numbers).evalf())


# ---- `symprop inspect` on bad input ---------------------------------------------------------------

def inspect(*argv, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "compiler.cli", "inspect", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd)


def assert_usage_error(done, *expected):
    assert done.returncode == 2, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    message = done.stderr.strip()
    assert message.startswith("symprop inspect: "), message
    first_line = message.splitlines()[0]
    for text in expected:
        assert text in first_line, (text, message)


def test_a_missing_model_file(tmp_path):
    for name in ("missing.py", "missing.toml", "missing"):
        path = tmp_path / name
        assert_usage_error(inspect(path), str(path), "no such file", "expected")
        assert len(inspect(path).stderr.strip().splitlines()) == 1


def test_a_directory_as_the_model_file(tmp_path):
    for name in ("models", "models.py", "models.toml"):
        path = tmp_path / name
        path.mkdir()
        done = inspect(path)
        assert_usage_error(done, str(path), "is a directory", "expected")
        assert len(done.stderr.strip().splitlines()) == 1


def test_an_unknown_format():
    done = inspect(PYTHON_MODEL, "--format", "pdf")
    assert_usage_error(done, "--format", "'pdf'", "math", "latex")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("model, known", [(PYTHON_MODEL, "W"), (TOML_MODEL, "layer_0.weight")])
def test_a_gradient_of_a_parameter_that_does_not_exist(model, known):
    for fmt in ("text", "math", "kernels"):
        done = inspect(model, "--grad", "nonexistent", "--format", fmt)
        assert_usage_error(done, model, "no parameter 'nonexistent'", known)
        assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name, content, expected", [
    ("syntax.py", "loss = (\n", ["not valid Python", "line 1"]),
    ("raises.py", "import compiler as C\n\nloss = C.Input('x', (3, 4)) @ C.Input('y', (5, 2))\n",
     ["running it raised", "line 3", "expected a Python file defining `loss`"]),
    ("exits.py", "import sys\nsys.exit(3)\n", ["exited"]),
    ("no_loss.py", "x = 1\n", ["expected a module-level `loss`"]),
    ("not_scalar.py", "import compiler as C\nloss = C.Input('x', (3,))\n", ["expected a module-level `loss`"]),
    ("table.toml", "[model\n", ["invalid TOML"]),
    ("keys.toml", "[model]\ninput_features = 'many'\n", ["expected"]),
    ("binary.toml", b"\xff\xfe\x00\x01", ["not UTF-8", "expected a TOML model file"]),
    ("notes.txt", "loss = 1\n", ["expected a .toml model file or a .py file"]),
])
def test_a_malformed_model_file(tmp_path, name, content, expected):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_usage_error(inspect(path, "--format", "math"), str(path), *expected)


def test_other_bad_flags(tmp_path):
    assert_usage_error(inspect(PYTHON_MODEL, "--batch", "many"), "--batch", "'many'")
    assert_usage_error(inspect(PYTHON_MODEL, "--batch", "0", "--format", "cost"), "--batch", "positive")
    assert_usage_error(inspect(PYTHON_MODEL, "--scale", "batch"), "--scale")
    assert_usage_error(inspect(), "model")
    missing_dir = tmp_path / "nowhere" / "out.txt"
    assert_usage_error(inspect(PYTHON_MODEL, "--format", "text", "-o", missing_dir), "--output", str(missing_dir))
