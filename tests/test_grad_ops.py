"""Every op's gradient agrees with central finite differences of a NumPy reference.

One row per op, as JAX's tests do (the table is grad_op_table.py): how to build it, an independent NumPy
reference, a hypothesis strategy for shapes and arguments (broadcasting
between ranks and size-1 dims included), and an input domain per operand
(positive for ``log``, away from kinks for ``relu``). For each example,
``compiler.grad`` of a random-weighted sum of the op's output, evaluated in
float64, must match a five-point central difference of the reference with a
relative error below 1e-6; the forward value must match the reference too.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler as C
from compiler import Input, const, evaluate, grad
from grad_op_table import OPS, Op
from op_table import GRADIENT_TOLERANCE, central_difference, relative_error

MAX_EXAMPLES = 15


def test_every_op_has_a_row():
    """The table covers every op in compiler.ops (comparisons and one_hot have no gradient to check;
    ``elementwise`` is covered by the user-op rows)."""
    without_gradient = {"equal", "not_equal", "one_hot", "elementwise", "isnan", "isinf", "isfinite"}
    covered = {row.name.split("_")[0] for row in OPS} | {row.name for row in OPS}
    missing = [name for name in C.ops.__all__ if name not in covered and name not in without_gradient]
    assert not missing, f"ops without a gradient row: {missing}"


# ---- the check -------------------------------------------------------------------------------


def check_op(row: Op, shapes, kwargs, seed):
    rng = np.random.default_rng(seed)
    domains = row.domains * len(shapes) if len(row.domains) == 1 else row.domains
    dtypes = row.dtypes or ("float64",) * len(shapes)
    names = [f"{row.name}_{i}" for i in range(len(shapes))]
    arrays = [np.asarray(domain(rng, shape, shapes)).astype(dtype)
              for domain, shape, dtype in zip(domains, shapes, dtypes)]
    nodes = [Input(n, shape, dtype=dtype) for n, shape, dtype in zip(names, shapes, dtypes)]

    out = row.build(*nodes, **kwargs)
    expected = np.asarray(row.reference(*arrays, **kwargs), dtype=np.float64)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    values = dict(zip(names, arrays))
    np.testing.assert_allclose(evaluate(out, values), expected, rtol=row.forward_rtol, atol=row.forward_rtol)

    weights = rng.normal(size=expected.shape)
    loss = (out * const(weights)).sum()
    float_operands = [i for i, d in enumerate(dtypes) if d.startswith("float")]
    gradients = evaluate(grad(loss, [nodes[i] for i in float_operands]), values)

    def weighted(*xs):
        return float(np.sum(np.asarray(row.reference(*xs, **kwargs)) * weights))

    for i, g in zip(float_operands, gradients):
        assert g.shape == shapes[i] and g.dtype == np.float64
        if i in row.no_gradient:
            assert np.all(g == 0), f"{row.name}: gradient of operand {i} should be exactly 0"
            continue
        expected_grad = central_difference(weighted, arrays, i)
        error = relative_error(g, expected_grad)
        assert error < GRADIENT_TOLERANCE, f"{row.name} operand {i} {shapes} {kwargs}: relative error {error:.2e}"


@pytest.mark.parametrize("row", OPS, ids=[row.name for row in OPS])
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_gradient_matches_finite_differences(row, data):
    shapes, kwargs = data.draw(row.case, label="shapes and arguments")
    seed = data.draw(st.integers(0, 2 ** 32 - 1), label="seed")
    check_op(row, shapes, kwargs, seed)
