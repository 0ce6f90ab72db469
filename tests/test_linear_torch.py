"""nn.Linear: torch.nn.Linear's layout (weight (out, in)), so torch's state dict loads by name, and its
values and gradients equal torch's."""
from __future__ import annotations

import math

import numpy as np
import pytest

import compiler as C
from compiler import GraphError, nn

try:
    import torch
except ImportError:  # the layout and error tests run without it
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def test_linear_has_torchs_names_shapes_and_initialisation():
    x = C.Input("x", ("batch", 7, 40))
    with nn.names():
        layer = nn.Linear(3)
        y = layer(x)
    assert y.shape == ("batch", 7, 3) and layer.out_features == 3
    assert [(p.name, p.shape) for p in layer.params] == [("linear.weight", (3, 40)), ("linear.bias", (3,))]
    weight = C.compile_step(C.sum(y), C.optim.SGD(lr=0.1), seed=0).params["linear.weight"]
    bound = 1 / math.sqrt(40)  # torch's kaiming_uniform(a=sqrt(5)) on fan_in 40
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.8 * bound
    with pytest.raises(GraphError, match="features"):
        layer(C.Input("z", ("batch", 41)))


@needs_torch
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6), (6,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_torch_with_its_state_dict(shape, bias):
    torch.manual_seed(0)
    module = torch.nn.Linear(6, 5, bias=bias).double()
    x = np.random.default_rng(1).normal(size=shape)
    with nn.names():
        layer = nn.Linear(5, bias=bias, activation="tanh")
        node = C.Input("x", shape, "float64")
        y = layer(node)
    values = {f"linear.{name}": t.detach().numpy() for name, t in module.state_dict().items()}
    loss = C.sum(y * y)
    nodes = [y, *C.grad(loss, [node, *layer.params])]
    tensor = torch.tensor(x, requires_grad=True)
    expected = torch.tanh(module(tensor))
    (expected * expected).sum().backward()
    wanted = [expected.detach().numpy(), tensor.grad.numpy(), module.weight.grad.numpy()]
    if bias:
        wanted.append(module.bias.grad.numpy())
    for got in (C.evaluate(nodes, {"x": x, **values}), C.compile(nodes)(x=x, **values)):
        for g, w in zip(got, wanted, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
