"""nn.Linear (torch.nn.Linear's weight layout (out, in), so torch's state dict loads by name) and
nn.Embedding's padding_idx: values and gradients equal torch's."""
from __future__ import annotations

import math

import numpy as np
import pytest

import compiler as C
from compiler import GraphError, nn

from optional_torch import needs_torch, torch


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


def test_embedding_padding_row_starts_at_zero_and_never_learns():
    ids = C.Input("ids", ("batch", 3), "int64")
    with nn.names():
        layer = nn.Embedding(5, 2, padding_idx=-1)
        loss = C.sum(layer(ids) ** 2)
    step = C.compile_step(loss, C.optim.SGD(lr=0.5), seed=0)
    weight = step.params["embedding.weight"]
    assert layer.padding_idx == 4 and np.all(weight[4] == 0) and np.all(weight[:4] != 0)
    weight[4] = 1.0  # a loaded padding row is read as it is, and still never learns
    before = weight.copy()
    step(ids=np.array([[4, 0, 4], [1, 4, 4]]))
    assert np.all(weight[4] == 1.0) and np.all(weight[2:4] == before[2:4]) and np.all(weight[:2] != before[:2])
    with pytest.raises(GraphError, match=r"padding_idx: expected None or an int in \[-5, 5\), got 5"):
        nn.Embedding(5, 2, padding_idx=5)


@needs_torch
def test_embedding_with_padding_idx_equals_torch():
    torch.manual_seed(0)
    module = torch.nn.Embedding(6, 3, padding_idx=2).double()
    ids = np.array([[2, 0, 5], [2, 2, 1]])
    with nn.names():
        layer = nn.Embedding(6, 3, padding_idx=2, dtype="float64")
        y = layer(C.Input("ids", ids.shape, "int64"))
    loss = C.sum(C.tanh(y) * C.const(np.arange(18.0).reshape(2, 3, 3)))
    nodes = [y, C.grad(loss, layer.weight)]
    out = module(torch.tensor(ids))
    (torch.tanh(out) * torch.arange(18.0, dtype=torch.float64).reshape(2, 3, 3)).sum().backward()
    values = {"ids": ids, "embedding.weight": module.weight.detach().numpy()}
    for got in (C.evaluate(nodes, values), C.compile(nodes)(**values)):
        np.testing.assert_allclose(got[0], out.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(got[1], module.weight.grad.numpy(), rtol=1e-12, atol=1e-14)
