"""Gradients of gradients compile like any graph: a Hessian-vector product against the evaluator
and against finite differences of the compiled gradient."""
from __future__ import annotations

import numpy as np

import compiler as sp


def test_compiled_hessian_vector_product():
    x = sp.Input("x", ("batch", 4), "float64")
    y = sp.Input("y", ("batch",), "int64")
    W = sp.Param("W", (4, 3), dtype="float64")
    v = sp.Input("v", (4, 3), "float64")
    loss = sp.cross_entropy(sp.tanh(x @ W) * 2.0, y)
    gradient = sp.grad(loss, W)
    hvp = sp.grad(sp.sum(gradient * v), W)
    fn = sp.compile([gradient, hvp])
    rng = np.random.default_rng(0)
    values = {"x": rng.standard_normal((5, 4)), "y": rng.integers(0, 3, 5), "W": rng.standard_normal((4, 3)),
              "v": rng.standard_normal((4, 3))}
    g, h = fn(**values)
    reference = sp.evaluate([gradient, hvp], values)
    np.testing.assert_allclose(g, reference[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h, reference[1], rtol=1e-12, atol=1e-14)
    eps = 1e-6
    plus, _ = fn(**{**values, "W": values["W"] + eps * values["v"]})
    minus, _ = fn(**{**values, "W": values["W"] - eps * values["v"]})
    np.testing.assert_allclose(h, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)
