"""Every primitive is defined whole, in one place: constructor (shape and dtype rule), NumPy
reference, vector-Jacobian rule and lowering. A primitive missing any part fails here, and so
does a graph op that is not a defined primitive."""
import inspect

import numpy as np
import pytest

import compiler as C
from compiler import ops
from compiler.primitives import LOWERINGS, PRIMITIVES, lookup
from compiler.traversal import topological_order

FAMILIES = {"leaf", "map", "reduce", "contract", "layout", "mode", "random", "gather", "control"}


@pytest.mark.parametrize("op", sorted(PRIMITIVES))
def test_every_primitive_has_every_part(op):
    p = PRIMITIVES[op]
    assert p.op == op
    assert p.family in FAMILIES
    assert callable(p.build), f"{op}: no constructor (shape and dtype rule)"
    assert callable(p.evaluate), f"{op}: no NumPy reference"
    assert len(inspect.signature(p.evaluate).parameters) == 4, f"{op}: evaluate(node, args, dims, values)"
    assert p.lowering in LOWERINGS, f"{op}: no lowering"
    if p.family == "leaf":
        assert p.vjp is None
    else:
        assert callable(p.vjp), f"{op}: no vector-Jacobian rule"
    if p.lowering == "index":
        assert callable(p.index), f"{op}: lowered by index arithmetic but has no index rule"
    else:
        assert p.index is None


def test_the_primitive_set_is_the_documented_one():
    assert set(PRIMITIVES) == {"input", "param", "const", "dim", "map", "sum", "max", "einsum", "bmm", "reshape",
                               "transpose", "broadcast", "slice", "pad", "concat", "stop_gradient", "training",
                               "window", "surrogate", "random", "gather", "scatter_add", "scan", "attention"}


def test_an_unknown_op_names_the_defined_ones():
    with pytest.raises(KeyError, match="not a primitive.*broadcast"):
        lookup("unfold")


def _graphs():
    """Nodes made by every kind of user op, and their gradients."""
    x = C.Input("x", (4, 5), dtype="float64")
    w = C.Param("w", (5, 8), dtype="float64")  # wide enough to stay a GEMM (TINY_PRODUCT)
    y = C.Input("y", (4,), dtype="int64")
    outputs = [
        C.cross_entropy(ops.tanh(x) @ w, y), ops.pad(x, 1, "reflect").sum(), ops.flip(x[::2], 1).max(),
        ops.concat([x, ops.roll(x, 2, 1)], 0).mean(), ops.einsum("ii->", x[:, :4]), ops.stop_gradient(x).sum(),
        ops.cumsum(x, 1).sum(), ops.sort(x, -1)[0].sum(), ops.var(x), ops.tile(x, 2).sum(),
        ops.dropout(x, 0.5).sum(),
    ]
    loss = sum(outputs)
    return outputs + C.grad(loss, [x, w])


def test_every_op_in_user_graphs_and_their_gradients_is_a_defined_primitive():
    from compiler.codegen.contraction import lower_einsums
    graphs = _graphs()
    order = topological_order(graphs + lower_einsums(graphs))
    assert {n.op for n in order} - set(PRIMITIVES) == set()
    assert {"bmm", "einsum", "pad", "slice", "concat", "map", "sum", "max", "random"} <= {n.op for n in order}


def test_the_bmm_rule_is_the_matrix_product_rule():
    """bmm exists only after einsums are lowered, but its rule is complete: checked on differences."""
    from compiler.primitives import make_bmm
    from compiler.evaluate import evaluate
    a = C.Input("a", (2, 3, 4), dtype="float64")
    b = C.Input("b", (2, 4, 5), dtype="float64")
    weights = np.random.default_rng(0).standard_normal((2, 3, 5))
    loss = (make_bmm(a, b) * C.const(weights)).sum()
    ga, gb = C.grad(loss, [a, b])
    av, bv = np.random.default_rng(1).standard_normal((2, 3, 4)), np.random.default_rng(2).standard_normal((2, 4, 5))
    got_a, got_b = evaluate([ga, gb], {"a": av, "b": bv})
    np.testing.assert_allclose(got_a, weights @ np.swapaxes(bv, 1, 2), rtol=1e-12)
    np.testing.assert_allclose(got_b, np.swapaxes(av, 1, 2) @ weights, rtol=1e-12)
