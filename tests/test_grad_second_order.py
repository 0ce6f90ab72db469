"""Gradients are graphs, differentiable again: Hessian-vector products of every table row.

For each row of grad_op_table.py with a gradient, grad(sum(grad(L, x) * v), x)
must match a five-point central difference of grad(L, x) along v; the first
gradient itself is checked against the NumPy reference in test_grad_ops.py.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import Input, const, evaluate, grad
from grad_op_table import OPS
from op_table import GRADIENT_TOLERANCE, STEP, relative_error


# ---- second order: gradients are graphs, differentiable again ---------------------------------------

SECOND_ORDER_EXAMPLES = 5
# stop_gradient also stops second derivatives, where differences of the gradient do not
SECOND_ORDER_OPS = [row for row in OPS if not row.no_gradient]


@pytest.mark.parametrize("row", SECOND_ORDER_OPS, ids=[row.name for row in SECOND_ORDER_OPS])
@settings(max_examples=SECOND_ORDER_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hessian_vector_product_matches_differences_of_the_gradient(row, data):
    """grad(sum(grad(L, x) * v), x) against a central difference of grad(L, x) along v (checked above)."""
    shapes, kwargs = data.draw(row.case, label="shapes and arguments")
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    domains = row.domains * len(shapes) if len(row.domains) == 1 else row.domains
    dtypes = row.dtypes or ("float64",) * len(shapes)
    names = [f"{row.name}_{i}" for i in range(len(shapes))]
    arrays = [np.asarray(domain(rng, shape, shapes)).astype(dtype) for domain, shape, dtype in zip(domains, shapes, dtypes)]
    nodes = [Input(n, shape, dtype=dtype) for n, shape, dtype in zip(names, shapes, dtypes)]
    out = row.build(*nodes, **kwargs)
    loss = (out * const(rng.normal(size=out.shape))).sum()
    floats = [i for i, d in enumerate(dtypes) if d.startswith("float")]
    wrt = [nodes[i] for i in floats]
    first = grad(loss, wrt)
    directions = [rng.normal(size=shapes[i]) for i in floats]
    inner = sum((g * const(v)).sum() for g, v in zip(first, directions))
    hvp = evaluate(grad(inner, wrt), dict(zip(names, arrays)))

    def gradient_at(t):
        moved = list(arrays)
        for i, v in zip(floats, directions):
            moved[i] = arrays[i] + t * v
        return evaluate(first, dict(zip(names, moved)))

    samples = [gradient_at(k * STEP) for k in (-2, -1, 1, 2)]
    for h, a, b, c, d in zip(hvp, *samples):
        expected = (a - 8 * b + 8 * c - d) / (12 * STEP)
        error = relative_error(h, expected)
        assert error < GRADIENT_TOLERANCE, f"{row.name} {shapes} {kwargs}: relative error {error:.2e}"
