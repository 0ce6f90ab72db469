"""Simplification: hash-consing CSE, constant folding, identities, reuse of forward values, stability.

Structural checks inspect the graphs; value checks compare with NumPy formulas
written here (stable ones: ``np.logaddexp``), never with the code under test.
"""
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler as C
from compiler import Input, Param, const, evaluate, grad, simplify
from compiler.graph import scalar_symbol
from compiler.passes import PIPELINE, count_nodes, simplify_stages
from compiler.passes.constant_folding import fold_constants
from compiler.scalar_functions import Sigmoid, Softplus
from compiler.traversal import topological_order


def maps(outputs):
    return [n for n in topological_order(outputs) if n.op == "map"]


def ops_in(outputs):
    return [n.op for n in topological_order(outputs)]


# ---- hash-consing CSE ------------------------------------------------------------------------------


def test_building_the_same_expression_twice_yields_the_same_node():
    def build():
        x = Input("cse_x", ("batch", 3))
        W, b = Param("cse_W", (3, 2)), Param("cse_b", (2,))
        return C.softmax(C.tanh(x @ W + b) * 0.5, axis=-1).sum()

    assert build() is build()
    assert const(np.array([1.0, 2.0])) is const(np.array([1.0, 2.0]))
    assert const(np.array([1.0, 2.0])) is not const(np.array([1.0, 2.0], dtype=np.float32))
    assert Input("cse_x", ("batch", 3)) is Input("cse_x", ("batch", 3))


def test_a_repeated_subexpression_is_one_node_in_the_graph():
    x = Input("rep_x", (4,), dtype="float64")
    y = C.exp(x) * C.exp(x) + C.exp(x)
    assert sum(1 for n in maps(y) if n.attr("body").has(sympy.exp)) == 1


def test_gradient_graphs_share_the_forward_nodes():
    x, W = Input("share_x", (5, 3), dtype="float64"), Param("share_W", (3, 4), dtype="float64")
    hidden = C.tanh(x @ W)
    g = grad(hidden.sum(), W)
    assert hidden in topological_order(g)
    assert grad(hidden.sum(), W) is g


# ---- constant folding ---------------------------------------------------------------------------------


def test_constant_only_subgraph_folds_to_one_const():
    expression = const(2.0, "float64") * const(3.0, "float64") + C.exp(const(np.ones(3)))
    assert count_nodes([expression]) > 1
    (folded,) = fold_constants([expression])
    assert folded.op == "const" and folded.shape == (3,) and folded.dtype == "float64"
    np.testing.assert_allclose(folded.attr("value").array, 6 + np.e, rtol=1e-15)
    assert simplify(expression).op == "const"


def test_folding_through_layout_and_reductions():
    matrix = const(np.arange(6.0).reshape(2, 3))
    folded = simplify(matrix.T.sum(axis=0) + matrix[1].max())
    assert folded.op == "const"
    np.testing.assert_array_equal(folded.attr("value").array, np.arange(6.0).reshape(2, 3).T.sum(axis=0) + 5.0)


def test_folding_keeps_the_declared_dtype():
    folded = simplify(const(np.float32(0.1)) * const(np.float32(3.0)))
    assert folded.op == "const" and folded.dtype == "float32"
    assert folded.attr("value").array == np.float32(0.1) * np.float32(3.0)


def test_constants_in_an_expression_fold_into_the_map_body():
    x = Input("fold_x", (4,), dtype="float64")
    simplified = simplify(x * (const(2.0, "float64") * const(3.0, "float64")) + const(1.0, "float64") * 0)
    assert count_nodes([simplified]) == 2 and simplified.op == "map"
    assert simplified.attr("body") == 6 * scalar_symbol(0)


# ---- algebraic identities --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multiplying_by_one_and_adding_zero_vanish(dtype):
    x = Input(f"ident_{dtype}", (3, 4), dtype=dtype)
    for expression in (x * const(1.0), const(1.0) * x, x + const(0.0), const(0.0) + x, x - const(0.0),
                       x / const(1.0), x * const(1.0, dtype) + const(0.0, dtype),
                       x * const(np.ones((3, 4), dtype)), x + const(np.zeros(4, dtype))):
        assert simplify(expression) is x, expression


def test_multiplying_by_a_broadcast_one_keeps_the_broadcast_shape():
    v = Input("ident_v", (4,), dtype="float64")
    simplified = simplify(v * const(np.ones((3, 4))))
    assert simplified.shape == (3, 4)
    assert "map" not in ops_in(simplified)


def test_double_transpose_vanishes_and_two_transposes_compose():
    x = Input("tt_x", (2, 3, 4))
    assert simplify(x.T.T) is x
    assert simplify(x.transpose(1, 2, 0).transpose(2, 0, 1)) is x
    composed = simplify(x.transpose(1, 0, 2).transpose(0, 2, 1))
    assert ops_in(composed).count("transpose") == 1
    value = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(evaluate(composed, {"tt_x": value}), value.transpose(1, 0, 2).transpose(0, 2, 1))


def test_double_negation_vanishes():
    x = Input("neg_x", (3,))
    assert simplify(-(-x)) is x
    assert simplify(-(-(-x))) is simplify(-x)


def test_sum_of_a_broadcast_is_a_multiplication():
    v = Input("sb_v", (4,), dtype="float64")
    for expression, factor in ((C.broadcast_to(v, (3, 4)).sum(axis=0), 3),
                               (C.broadcast_to(v, (2, 3, 4)).sum(axis=(0, 1)), 6)):
        simplified = simplify(expression)
        assert "sum" not in ops_in(simplified) and "broadcast" not in ops_in(simplified)
        value = np.array([1.0, -2.0, 0.5, 3.0])
        np.testing.assert_allclose(evaluate(simplified, {"sb_v": value}), factor * value, rtol=1e-15)
    partial = simplify(C.broadcast_to(Input("sb_w", (3, 1), dtype="float64"), (3, 5)).sum(axis=1))
    assert "sum" not in ops_in(partial)
    np.testing.assert_allclose(evaluate(partial, {"sb_w": np.array([[1.0], [2.0], [3.0]])}), [5.0, 10.0, 15.0])


def test_passes_shrink_a_gradient_graph():
    x = Input("shrink_x", (8, 3))
    W = Param("shrink_W", (3, 2))
    g = grad(C.sigmoid(x @ W).sum() * 1.0 + 0.0, W)
    assert count_nodes([simplify(g)]) < count_nodes([g])


# ---- backward of sigmoid, tanh and exp reuses the forward output ---------------------------------


def _derivative_maps(gradient, forward):
    return [n for n in maps(gradient) if forward in n.args and n is not forward]


@pytest.mark.parametrize("op,expected", [
    (C.sigmoid, lambda s: s * (1 - s)),
    (C.tanh, lambda t: 1 - t ** 2),
    (C.exp, lambda e: e),
])
@pytest.mark.parametrize("simplified", [False, True], ids=["declared", "simplified"])
def test_backward_reuses_the_forward_output(op, expected, simplified):
    x = Input("reuse_x", (3, 4), dtype="float64")
    forward = op(x)
    weights = const(np.random.default_rng(0).normal(size=(3, 4)))
    g = grad((forward * weights).sum(), x)
    if simplified:
        g = simplify(g)
    (derivative,) = _derivative_maps(g, forward)
    body = derivative.attr("body")
    assert not body.has(sympy.exp, sympy.tanh, Sigmoid), body
    position = derivative.args.index(forward)
    y = scalar_symbol(position)
    others = {s: 1 for s in body.free_symbols if s != y}
    assert sympy.expand(body.xreplace(others) - expected(y)) == 0, body
    recomputations = [n for n in maps(g) if n is not forward and n.attr("body").has(sympy.exp, sympy.tanh, Sigmoid)]
    assert not recomputations


# ---- stability rewrites -----------------------------------------------------------------------------


def test_log_one_plus_exp_becomes_softplus():
    x = Input("sp_x", (5,), dtype="float64")
    simplified = simplify(C.log(1 + C.exp(x)))
    assert [n.attr("body") for n in maps(simplified)] == [Softplus(scalar_symbol(0))]
    values = np.array([-1e3, -30.0, 0.0, 30.0, 1e3])
    np.testing.assert_allclose(evaluate(simplified, {"sp_x": values}), np.logaddexp(0, values), rtol=1e-15)


@pytest.mark.parametrize("build,reference", [
    (lambda x: 1 / (1 + C.exp(-x)), lambda v: np.exp(-np.logaddexp(0, -v))),
    (lambda x: C.exp(x) / (1 + C.exp(x)), lambda v: np.exp(-np.logaddexp(0, -v))),
    (lambda x: C.log(C.sigmoid(x)), lambda v: -np.logaddexp(0, -v)),
    (lambda x: C.log(1 - C.sigmoid(x)), lambda v: -np.logaddexp(0, v)),
])
def test_overflow_prone_forms_become_stable(build, reference):
    x = Input("stab_x", (5,), dtype="float64")
    values = np.array([-1e3, -30.0, 0.5, 30.0, 1e3])
    got = evaluate(simplify(build(x)), {"stab_x": values})
    np.testing.assert_allclose(got, reference(values), rtol=1e-12)


def _stable_sigmoid(v):
    return np.exp(-np.logaddexp(0, -v))


def _np_logsumexp(v, axis):
    return np.logaddexp.reduce(v, axis=axis, keepdims=True)


def _softmax(v, axis):
    return np.exp(v - _np_logsumexp(v, axis))


LOGITS = np.array([[1e3, -1e3, 0.5, -30.0], [-1e3, -999.0, 1e3, 40.0], [2.0, -3.0, 1e3, 1e3 - 1e-3]])
LABELS = np.array([1, 0, 3])
TARGETS = np.array([[0.0, 1.0, 0.3, 0.0], [1.0, 0.0, 0.5, 1.0], [0.2, 0.9, 1.0, 0.0]])
W = np.random.default_rng(1).normal(size=LOGITS.shape)


def _weighted(node):
    return (node * const(W.astype(node.dtype))).sum()


# name -> (loss of (x, labels, targets), NumPy loss of (v, labels, t), NumPy gradient of (v, labels, t))
STABLE_CASES = {
    "softplus": (lambda x, lab, y: _weighted(C.softplus(x)),
                 lambda v, lab, t: np.sum(np.logaddexp(0, v) * W),
                 lambda v, lab, t: _stable_sigmoid(v) * W),
    "logsumexp": (lambda x, lab, y: _weighted(C.logsumexp(x, axis=1, keepdims=True)),
                  lambda v, lab, t: np.sum(_np_logsumexp(v, 1) * W),
                  lambda v, lab, t: _softmax(v, 1) * W.sum(axis=1, keepdims=True)),
    "logsumexp_all": (lambda x, lab, y: C.logsumexp(x),
                      lambda v, lab, t: np.logaddexp.reduce(v.ravel()),
                      lambda v, lab, t: np.exp(v - np.logaddexp.reduce(v.ravel()))),
    "log_softmax": (lambda x, lab, y: _weighted(C.log_softmax(x, axis=1)),
                    lambda v, lab, t: np.sum((v - _np_logsumexp(v, 1)) * W),
                    lambda v, lab, t: W - _softmax(v, 1) * W.sum(axis=1, keepdims=True)),
    "log_softmax_axis0": (lambda x, lab, y: _weighted(C.log_softmax(x, axis=0)),
                          lambda v, lab, t: np.sum((v - _np_logsumexp(v, 0)) * W),
                          lambda v, lab, t: W - _softmax(v, 0) * W.sum(axis=0, keepdims=True)),
    "softmax": (lambda x, lab, y: _weighted(C.softmax(x, axis=1)),
                lambda v, lab, t: np.sum(_softmax(v, 1) * W),
                lambda v, lab, t: _softmax(v, 1) * (W - np.sum(_softmax(v, 1) * W, axis=1, keepdims=True))),
    "cross_entropy": (lambda x, lab, y: C.cross_entropy(x, lab),
                      lambda v, lab, t: -np.mean((v - _np_logsumexp(v, 1))[np.arange(len(lab)), lab]),
                      lambda v, lab, t: (_softmax(v, 1) - np.eye(v.shape[1])[lab]) / len(lab)),
    "binary_cross_entropy_with_logits": (lambda x, lab, y: C.binary_cross_entropy_with_logits(x, y),
                                         lambda v, lab, t: np.mean(np.logaddexp(0, v) - v * t),
                                         lambda v, lab, t: (_stable_sigmoid(v) - t) / v.size),
}


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-6)])
@pytest.mark.parametrize("simplified", [False, True], ids=["declared", "simplified"])
@pytest.mark.parametrize("name", sorted(STABLE_CASES))
def test_stable_ops_at_magnitude_1e3(name, simplified, dtype, rtol):
    """Finite and accurate, against float64 NumPy on the same (dtype-rounded) inputs."""
    build, loss_reference, grad_reference = STABLE_CASES[name]
    x = Input("big", LOGITS.shape, dtype=dtype)
    labels = Input("big_labels", (3,), dtype="int64")
    targets = Input("big_targets", LOGITS.shape, dtype=dtype)
    loss = build(x, labels, targets)
    outputs = [loss, grad(loss, x)]
    if simplified:
        outputs = simplify(outputs)
    got_loss, got_grad = evaluate(outputs, {"big": LOGITS, "big_labels": LABELS, "big_targets": TARGETS})
    assert got_loss.dtype == dtype and got_grad.dtype == dtype
    assert np.isfinite(got_loss) and np.all(np.isfinite(got_grad))
    v, t = (a.astype(dtype).astype(np.float64) for a in (LOGITS, TARGETS))
    np.testing.assert_allclose(got_loss, loss_reference(v, LABELS, t), rtol=rtol)
    expected_grad = grad_reference(v, LABELS, t)
    np.testing.assert_allclose(got_grad, expected_grad, rtol=rtol, atol=rtol * np.max(np.abs(expected_grad)))


def test_simplify_does_not_create_overflow():
    """log(exp(x)) and exp(log(x)) written by hand stay as accurate as declared, or become better."""
    x = Input("ovf_x", (4,), dtype="float64")
    values = np.array([-700.0, -1.0, 2.0, 700.0])
    for expression in (C.log(C.exp(x)), C.exp(x) / C.exp(x), C.tanh(x) * 2 / 2, C.sigmoid(x) * (1 - C.sigmoid(x))):
        declared = evaluate(expression, {"ovf_x": values})
        simplified = evaluate(simplify(expression), {"ovf_x": values})
        finite = np.isfinite(declared)
        assert np.all(np.isfinite(simplified[finite]))
        np.testing.assert_allclose(simplified[finite], declared[finite], rtol=1e-12)


# ---- the pipeline preserves values on random programs --------------------------------------------

SHAPES = {"px": (3, 4), "py": (4,), "pz": (3, 1)}
MATRIX = np.random.default_rng(2).normal(size=(4, 4))

UNARY = [
    ("tanh", C.tanh), ("sigmoid", C.sigmoid), ("softplus", C.softplus), ("neg", lambda a: -a),
    ("sin", C.sin), ("square", lambda a: a * a), ("relu", C.relu), ("abs", abs),
    ("times_one", lambda a: a * const(1.0, "float64")), ("plus_zero", lambda a: const(0.0, "float64") + a),
    ("double_neg", lambda a: -(-a)), ("scale", lambda a: (a * 2) / 4), ("exp_tanh", lambda a: C.exp(C.tanh(a))),
    ("log_one_plus_exp", lambda a: C.log(1 + C.exp(C.tanh(a)))),
    ("sum_keep0", lambda a: a.sum(axis=0, keepdims=True) if a.ndim == 2 else a),
    ("mean_keep1", lambda a: a.mean(axis=-1, keepdims=True) if a.ndim == 2 else a),
    ("max_keep1", lambda a: a.max(axis=-1, keepdims=True) if a.ndim == 2 else a),
    ("logsumexp_keep0", lambda a: C.logsumexp(a, axis=0, keepdims=True) if a.ndim == 2 else a),
    ("broadcast", lambda a: C.broadcast_to(a, (3, 4))),
    ("sum_broadcast", lambda a: C.broadcast_to(a, (2, 3, 4)).sum(axis=0)),
    ("double_transpose", lambda a: a.T.T),
    ("matmul", lambda a: a @ const(MATRIX) if a.ndim >= 1 and a.shape[-1] == 4 else a),
    ("stop_gradient", C.stop_gradient),
    ("folded_constant", lambda a: a + const(np.float64(2.0)) * const(np.float64(0.25))),
]
BINARY = [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("maximum", C.maximum), ("where", lambda a, b: C.where(a > b, a, b * 0.5)),
]


@st.composite
def programs(draw):
    steps = []
    pool = 3
    for _ in range(draw(st.integers(2, 7))):
        if draw(st.booleans()):
            steps.append(("unary", draw(st.integers(0, len(UNARY) - 1)), draw(st.integers(0, pool - 1))))
        else:
            steps.append(("binary", draw(st.integers(0, len(BINARY) - 1)),
                          draw(st.integers(0, pool - 1)), draw(st.integers(0, pool - 1))))
        pool += 1
    return steps


def build_program(steps):
    leaves = [Input(name, shape, dtype="float64") for name, shape in SHAPES.items()]
    pool = list(leaves)
    for kind, which, *operands in steps:
        fn = UNARY[which][1] if kind == "unary" else BINARY[which][1]
        pool.append(fn(*[pool[i] for i in operands]))
    result = pool[-1]
    loss = (result * result).sum()
    return [result] + grad(loss, leaves)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=programs(), seed=st.integers(0, 2 ** 32 - 1))
def test_every_pass_and_the_pipeline_preserve_values(steps, seed):
    outputs = build_program(steps)
    rng = np.random.default_rng(seed)
    values = {name: rng.normal(size=shape) for name, shape in SHAPES.items()}
    expected = evaluate(outputs, values)
    candidates = [("simplify", simplify(outputs))] + [(name, run(outputs)) for name, run in PIPELINE]
    for name, rewritten in candidates:
        assert [n.shape for n in rewritten] == [n.shape for n in outputs], name
        assert [n.dtype for n in rewritten] == [n.dtype for n in outputs], name
        for got, want in zip(evaluate(rewritten, values), expected):
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


def test_simplify_stages_name_every_pass_in_order():
    x = Input("stages_x", (3,))
    stages = simplify_stages([C.log(1 + C.exp(x * const(1.0)))])
    names = [name for name, _ in PIPELINE]
    assert [name for name, _ in stages[:len(names)]] == names
    assert names == ["random streams", "training mode", "fold constants", "inline scalar constants",
                     "algebraic identities", "stabilize"]


def test_simplify_returns_a_node_for_a_node_and_a_list_for_a_list():
    x = Input("ret_x", (3,))
    assert isinstance(simplify(x * 1.0), C.Node)
    assert isinstance(simplify([x * 1.0, x]), list)


def test_gradient_of_a_hand_written_softplus_is_stable_after_simplify():
    """d/dx log(1 + exp(x)) is built as exp(x) / (1 + exp(x)): inf/inf at 1e3 as declared, sigmoid once simplified."""
    x = Input("hand_sp", (5,), dtype="float64")
    values = np.array([-1e3, -30.0, 0.5, 30.0, 1e3])
    g = simplify(grad(C.log(1 + C.exp(x)).sum(), x))
    np.testing.assert_allclose(evaluate(g, {"hand_sp": values}), np.exp(-np.logaddexp(0, -values)), rtol=1e-12)
