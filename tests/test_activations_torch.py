"""torch's further activations (silu, mish, relu6, hardsigmoid, hardswish, elu, celu, selu) and the float
predicates (isnan, isinf, isfinite): values and gradients against torch, evaluated and compiled, on a grid
that holds every kink (0, +-3, 6) and the tails."""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C

torch = pytest.importorskip("torch")
F = torch.nn.functional

POINTS = np.concatenate([np.linspace(-8, 8, 33), [-3.0, 3.0, 0.0, 6.0, -1e-9, 1e-9, 25.0, -25.0]])
CASES = {
    "silu": (C.ops.silu, F.silu), "mish": (C.ops.mish, F.mish), "relu6": (C.ops.relu6, F.relu6),
    "hardsigmoid": (C.ops.hardsigmoid, F.hardsigmoid), "hardswish": (C.ops.hardswish, F.hardswish),
    "elu": (lambda t: C.ops.elu(t, 0.7), lambda t: F.elu(t, 0.7)), "selu": (C.ops.selu, F.selu),
    "celu": (lambda t: C.ops.celu(t, 0.7), lambda t: F.celu(t, 0.7)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_equals_torch(name, dtype):
    ours, theirs = CASES[name]
    x = POINTS.astype(dtype)
    node = C.Input("x", x.shape, dtype)
    y = ours(node)
    nodes = [y, C.grad(y.sum(), node)]
    tensor = torch.tensor(x, requires_grad=True)
    expected = theirs(tensor)
    expected.sum().backward()
    # torch's celu and hardsigmoid gradients use 1/alpha and 1/6 rounded to float32 even for float64 input:
    # 3e-8 relative to the exact values, which symprop gives (test_exact_where_torch_rounds_its_constants)
    tolerance = 1e-5 if dtype == "float32" else 1e-6 if name in ("celu", "hardsigmoid") else 1e-12
    for got in (C.evaluate(nodes, {"x": x}), C.compile(nodes)(x=x)):
        np.testing.assert_allclose(got[0], expected.detach().numpy(), rtol=tolerance, atol=tolerance)
        np.testing.assert_allclose(got[1], tensor.grad.numpy(), rtol=tolerance, atol=tolerance)


def test_exact_where_torch_rounds_its_constants():
    x = np.array([-8.0, -1.0, 2.0])
    node = C.Input("x", x.shape, "float64")
    gradient = C.grad(C.ops.celu(node, 0.7).sum(), node)
    np.testing.assert_allclose(C.compile(gradient)(x=x), np.where(x > 0, 1.0, np.exp(x / 0.7)), rtol=1e-15)
    gradient = C.grad(C.ops.hardsigmoid(node).sum(), node)
    np.testing.assert_allclose(C.compile(gradient)(x=x), np.where(np.abs(x) < 3, 1 / 6, 0.0), rtol=1e-15)


@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite"])
def test_float_predicates_equal_torch(name):
    x = np.array([np.nan, np.inf, -np.inf, 1.0, 0.0, -2.5])
    node = C.Input("x", x.shape, "float64")
    out = getattr(C.ops, name)(node)
    expected = getattr(torch, name)(torch.tensor(x)).numpy()
    for got in (C.evaluate(out, {"x": x}), C.compile(out)(x=x)):
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, expected)
