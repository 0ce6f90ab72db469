"""The declaration API is a contract: names, signatures, operators, methods, attributes, dtypes.

Dtype promotion is checked against NumPy 2 itself, doing the same operation on
arrays: Python numbers are weak (``0.1 * x`` keeps float32), NumPy scalars and
tensors are not.
"""
import inspect
import itertools

import numpy as np
import pytest

import compiler
import compiler.ops
from compiler import GraphError, Input, Param, const, evaluate

OPS = ["exp", "log", "sqrt", "tanh", "sigmoid", "relu", "leaky_relu", "softplus", "gelu", "sin", "cos", "abs",
       "maximum", "minimum", "where", "clip", "matmul", "einsum", "concat", "stack", "broadcast_to", "softmax",
       "log_softmax", "logsumexp", "mse", "cross_entropy", "binary_cross_entropy_with_logits", "stop_gradient",
       "sum", "mean", "max", "reshape", "transpose"]
TOP_LEVEL = ["Input", "Param", "const", "grad", "evaluate", "leaves", "show", "simplify", "elementwise", "GraphError"]


@pytest.mark.parametrize("name", OPS)
def test_every_op_is_importable_from_compiler_and_compiler_ops(name):
    assert callable(getattr(compiler.ops, name))
    assert getattr(compiler, name) is getattr(compiler.ops, name)


@pytest.mark.parametrize("name", TOP_LEVEL)
def test_top_level_names(name):
    assert hasattr(compiler, name)


def test_star_import_gives_the_ops():
    namespace = {}
    exec("from compiler.ops import *", namespace)
    assert set(OPS) <= set(compiler.ops.__all__) <= namespace.keys()


def test_signatures():
    def params(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    empty = inspect.Parameter.empty
    assert params(Input) == [("name", empty), ("shape", empty), ("dtype", "float32")]
    assert params(Param) == [("name", empty), ("shape", empty), ("init", "glorot_uniform"), ("dtype", "float32")]
    assert params(const)[0] == ("value", empty)
    x = Input("sig", (2, 3))
    for method in ("sum", "mean", "max"):
        assert params(getattr(x, method)) == [("axis", None), ("keepdims", False)]
        assert params(getattr(compiler, method))[1:] == [("axis", None), ("keepdims", False)]
    for op in ("softmax", "log_softmax", "logsumexp"):
        assert "axis" in inspect.signature(getattr(compiler, op)).parameters
    assert params(compiler.grad)[:2] == [("y", empty), ("wrt", empty)]
    assert params(compiler.evaluate)[:2] == [("nodes", empty), ("values", empty)]


def test_leaf_attributes_and_defaults():
    x = Input("images", ("batch", 28, 28))
    assert x.shape == ("batch", 28, 28) and x.dtype == "float32" and x.name == "images"
    assert Input("flat", 5).shape == (5,)
    w = Param("W", (3, 4))
    assert w.shape == (3, 4) and w.dtype == "float32" and w.name == "W"
    assert Param("W64", (3,), dtype="float64").dtype == "float64"
    assert Input("xd", (2,), dtype=np.float64).dtype == "float64"
    assert (x * 2).name is None


@pytest.mark.parametrize("init", ["glorot_uniform", "zeros", "ones", "normal", "he_normal",
                                  lambda shape, rng: np.zeros(shape)])
def test_param_initializers_are_accepted(init):
    assert Param("initialized", (2, 2), init=init).shape == (2, 2)


def test_param_rejects_unknown_init_and_symbolic_shape():
    with pytest.raises(GraphError, match="init"):
        Param("bad_init", (2,), init="uniformly")
    with pytest.raises(GraphError, match="concrete"):
        Param("bad_shape", ("batch", 2))


@pytest.mark.parametrize("name", ["", "1x", "a b", None])
def test_leaf_names_must_be_identifiers(name):
    with pytest.raises(GraphError):
        Input(name, (2,))


def test_nodes_are_immutable_and_have_no_truth_value():
    x = Input("frozen", (2,))
    with pytest.raises(AttributeError):
        x.shape = (3,)
    with pytest.raises(TypeError):
        bool(x > 0)
    assert Input("frozen", (2,)).shape == (2,)


# ---- operators and methods, with values checked against NumPy ------------------------------------

A = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
B = np.array([0.2, -0.4, 1.1])


def _a_b():
    return Input("opa", (2, 3), dtype="float64"), Input("opb", (3,), dtype="float64")


OPERATIONS = [
    ("add", lambda a, b: a + b),
    ("radd", lambda a, b: 2 + a),
    ("sub", lambda a, b: a - b),
    ("rsub", lambda a, b: 1.5 - b),
    ("mul", lambda a, b: a * b),
    ("rmul", lambda a, b: 3 * b),
    ("div", lambda a, b: a / b),
    ("rdiv", lambda a, b: 1 / b),
    ("pow", lambda a, b: abs(a) ** b),
    ("rpow", lambda a, b: 2.0 ** a),
    ("neg", lambda a, b: -a),
    ("abs", lambda a, b: abs(a)),
    ("matmul", lambda a, b: a @ b),
    ("rmatmul", lambda a, b: b @ a.T),
    ("sum", lambda a, b: a.sum()),
    ("sum_axis", lambda a, b: a.sum(axis=0)),
    ("sum_keepdims", lambda a, b: a.sum(axis=1, keepdims=True)),
    ("sum_tuple", lambda a, b: a.sum(axis=(0, 1))),
    ("mean", lambda a, b: a.mean(axis=-1)),
    ("max", lambda a, b: a.max(axis=0, keepdims=True)),
    ("T", lambda a, b: a.T),
    ("transpose", lambda a, b: a.transpose(1, 0)),
    ("transpose_tuple", lambda a, b: a.transpose((1, 0))),
    ("reshape", lambda a, b: a.reshape(3, 2)),
    ("reshape_tuple", lambda a, b: a.reshape((6,))),
    ("reshape_infer", lambda a, b: a.reshape(-1, 2)),
    ("index_int", lambda a, b: a[1]),
    ("index_negative", lambda a, b: a[-1, -2]),
    ("index_slice", lambda a, b: a[:, 1:]),
    ("index_ellipsis", lambda a, b: a[..., 0]),
    ("index_newaxis", lambda a, b: b[None, :, None]),
    ("index_empty_slice", lambda a, b: a[:, 2:1]),
    ("astype", lambda a, b: a.astype("float32")),
    ("where_mask", lambda a, b: compiler.where(a > b, a, b)),
    ("where_le", lambda a, b: compiler.where(a <= 0.5, 1.0, a)),
    ("where_ge_lt", lambda a, b: compiler.where(a >= b, 1.0, 0.0) + compiler.where(a < b, a, 0.0)),
    ("numpy_left", lambda a, b: np.array([1.0, 2.0, 3.0]) + a),
    ("numpy_left_matmul", lambda a, b: np.ones((4, 2)) @ a),
]


def _numpy_twin(fn):
    """The same operation on NumPy arrays (compiler.where -> np.where)."""
    original = compiler.where
    try:
        compiler.where = np.where
        return np.asarray(fn(A, B))
    finally:
        compiler.where = original


@pytest.mark.parametrize("name,fn", OPERATIONS, ids=[n for n, _ in OPERATIONS])
def test_operators_and_methods_match_numpy(name, fn):
    a, b = _a_b()
    node = fn(a, b)
    expected = _numpy_twin(fn)
    assert node.shape == expected.shape
    assert node.dtype == expected.dtype.name
    np.testing.assert_allclose(evaluate(node, {"opa": A, "opb": B}), expected, rtol=1e-6 if node.dtype == "float32" else 1e-14)


def test_comparisons_are_bool_masks():
    a, b = _a_b()
    for mask in (a > b, a >= 0, a < 1.0, b <= a):
        assert mask.dtype == "bool"
    np.testing.assert_array_equal(evaluate(a > b, {"opa": A, "opb": B}), A > B)


# ---- dtype promotion as in NumPy 2 ------------------------------------------------------------------

DTYPES = ["bool", "int32", "int64", "float32", "float64"]


@pytest.mark.parametrize("left,right", list(itertools.product(DTYPES, DTYPES)))
def test_tensor_tensor_promotion_matches_numpy(left, right):
    x, y = Input(f"p_{left}", (2,), dtype=left), Input(f"q_{right}", (2,), dtype=right)
    if "bool" not in (left, right):
        assert (x + y).dtype == (np.zeros(2, left) + np.zeros(2, right)).dtype.name
        assert (x * y).dtype == (np.zeros(2, left) * np.zeros(2, right)).dtype.name
    assert (x / y).dtype == (np.ones(2, left) / np.ones(2, right)).dtype.name
    assert compiler.maximum(x, y).dtype == np.maximum(np.zeros(2, left), np.zeros(2, right)).dtype.name


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32", "float64"])
@pytest.mark.parametrize("scalar", [2, 0.1, True])
def test_python_scalars_are_weak(dtype, scalar):
    x = Input(f"w_{dtype}", (2,), dtype=dtype)
    array = np.ones(2, dtype)
    assert (scalar * x).dtype == (scalar * array).dtype.name
    assert (x + scalar).dtype == (array + scalar).dtype.name
    assert (x - scalar).dtype == (array - scalar).dtype.name


def test_float32_stays_float32_with_python_floats():
    x = Input("f32", (3,))
    for node in (0.1 * x, x * 0.1, x / 3, 1 - x, x ** 2, compiler.tanh(x) * 0.5, compiler.mean(x), x.sum() / 7):
        assert node.dtype == "float32", node


@pytest.mark.parametrize("scalar", [np.float64(0.5), np.float32(0.5), np.int64(2), np.int32(2)])
def test_numpy_scalars_are_not_weak(scalar):
    x = Input("f32_strong", (2,))
    expected = (np.ones(2, np.float32) * scalar).dtype.name
    assert (x * scalar).dtype == expected
    assert (scalar * x).dtype == expected
    assert const(scalar).dtype == np.asarray(scalar).dtype.name


def test_const_dtypes():
    assert const(0.5).dtype == "float32"
    assert const(3).dtype == "int64"
    assert const(True).dtype == "bool"
    assert const(np.zeros((2, 2))).dtype == "float64"
    assert const(np.zeros(3, np.float32)).shape == (3,)
    assert const(1.5, dtype="float64").dtype == "float64"


def test_transcendental_of_integers_is_float64_as_in_numpy():
    i = Input("ints", (3,), dtype="int32")
    assert compiler.exp(i).dtype == np.exp(np.ones(3, np.int32)).dtype.name
    assert compiler.sqrt(i).dtype == np.sqrt(np.ones(3, np.int32)).dtype.name
    assert i.mean().dtype == np.ones(3, np.int32).mean().dtype.name


def test_astype_between_floats():
    x = Input("cast", (2,), dtype="float64")
    y = x.astype("float32")
    assert y.dtype == "float32" and y.astype("float64").dtype == "float64"
    value = np.array([1 / 3, 1e-50])
    np.testing.assert_array_equal(evaluate(y, {"cast": value}), value.astype(np.float32))


def test_node_attributes_cannot_be_deleted():
    x = Input("undeletable", (2,))
    with pytest.raises(AttributeError):
        del x.dtype
    assert x.dtype == "float32"


def test_show_prints_one_line_per_node_with_op_arguments_shape_dtype_and_body():
    x, W = Input("show_x", ("batch", 3)), Param("show_W", (3, 2))
    y = compiler.sigmoid(x @ W).sum()
    lines = compiler.show(y).splitlines()
    assert len(lines) == len(compiler.leaves(y)) + 3 + 1
    assert lines[0].startswith("%0 = input show_x") and lines[0].endswith(": (batch, 3) float32")
    assert any("einsum" in line and "(%0, %1)" in line and "(batch, 2)" in line for line in lines)
    assert any("map[Sigmoid(x0)]" in line for line in lines)
    assert lines[-1].startswith("return %")
    gradient = compiler.show(compiler.grad(y, W))
    assert "map[x0*x1*(1 - x1)]" in gradient and gradient.splitlines()[-1].startswith("return")
    assert compiler.show([y, x]).splitlines()[-1].count("%") == 2
