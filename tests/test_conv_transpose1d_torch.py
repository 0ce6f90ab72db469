"""conv_transpose1d and nn.ConvTranspose1d against torch: values and the gradients with respect to x, w and
b, evaluated and compiled, in float64 and float32, over strides, paddings, output paddings (below the stride
or the dilation), dilations and groups; the layer's Params laid out as torch's. Bad arguments are
GraphErrors naming the argument (those checks run without torch)."""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
from compiler import nn
from compiler.errors import GraphError

from optional_torch import F, needs_torch, torch

TOLERANCE = {"float64": 1e-12, "float32": 2e-5}

# (x shape, w shape, bias, kwargs): w is (in_channels, out_channels/groups, k)
CASES = [
    ((2, 3, 5), (3, 4, 3), True, {}),
    ((1, 2, 4), (2, 3, 3), True, {"stride": 2, "padding": 1, "output_padding": 1}),
    ((2, 4, 3), (4, 1, 2), False, {"stride": 3, "groups": 2, "dilation": 2, "output_padding": 1}),
    ((1, 2, 6), (2, 2, 4), True, {"stride": 1, "padding": 2, "dilation": 2}),
    ((3, 1, 1), (1, 2, 1), True, {}),
    ((1, 6, 4), (6, 1, 3), False, {"groups": 6, "stride": 2, "output_padding": 1}),  # depthwise
    ((2, 2, 3), (2, 3, 2), True, {"stride": 1, "dilation": 3, "output_padding": 2}),  # output_padding >= stride
]


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape,w_shape,bias,kwargs", CASES)
def test_conv_transpose1d_equals_torch(x_shape, w_shape, bias, kwargs, dtype):
    rng = np.random.default_rng(len(x_shape) + x_shape[-1])
    arrays = {"x": rng.normal(size=x_shape), "w": rng.normal(size=w_shape)}
    if bias:
        arrays["b"] = rng.normal(size=(w_shape[1] * kwargs.get("groups", 1),))
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    nodes = {k: C.Input(k, v.shape, dtype) for k, v in arrays.items()}
    out = C.ops.conv_transpose1d(nodes["x"], nodes["w"], nodes.get("b"), **kwargs)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    theirs = F.conv_transpose1d(tensors["x"], tensors["w"], tensors.get("b"), **kwargs)
    assert out.shape == tuple(theirs.shape)
    weights = rng.normal(size=out.shape).astype(dtype)
    outputs = [out] + C.grad((out * C.const(weights)).sum(), list(nodes.values()))
    expected = [theirs.detach().numpy()] + [g.numpy() for g in torch.autograd.grad(
        (theirs * torch.tensor(weights)).sum(), list(tensors.values()))]
    tolerance = TOLERANCE[dtype]
    for how, got in (("evaluate", C.evaluate(outputs, arrays)), ("compile", C.compile(outputs)(**arrays))):
        for k, (a, e) in enumerate(zip(got, expected, strict=True)):
            assert np.asarray(a).dtype == e.dtype
            np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance * max(np.abs(e).max(), 1.0),
                                       err_msg=f"{how} output {k}")


@needs_torch
def test_conv_transpose1d_layer_loads_torch_weights():
    """nn.ConvTranspose1d: Params named and laid out as torch's (weight (in, out/groups, k)); with torch's
    weights loaded, the output equals torch.nn.ConvTranspose1d's, over a symbolic batch."""
    x = C.Input("x", ("batch", 4, 5), "float64")
    with nn.names():
        layer = nn.ConvTranspose1d(6, 3, stride=2, padding=1, output_padding=1, groups=2)
        y = layer(x)
    reference = torch.nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).double()
    assert [(p.name, p.shape) for p in layer.params] == [
        ("conv_transpose1d.weight", tuple(reference.weight.shape)), ("conv_transpose1d.bias", (6,))]
    array = np.random.default_rng(0).normal(size=(3, 4, 5))
    got = C.compile(y)(**{"x": array, "conv_transpose1d.weight": reference.weight.detach().numpy(),
                          "conv_transpose1d.bias": reference.bias.detach().numpy()})
    np.testing.assert_allclose(got, reference(torch.tensor(array)).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_conv_transpose1d_layer_shape_and_reuse():
    x = C.Input("x", ("batch", 3, 7))
    with nn.names():
        layer = nn.ConvTranspose1d(4, 3, stride=2, dilation=2, activation="relu")
        assert layer(x).shape == ("batch", 4, (7 - 1) * 2 + 2 * 2 + 1)
        layer(x)
    assert [p.shape for p in layer.params] == [(3, 4, 3), (4,)]


@pytest.mark.parametrize("build,words", [
    (lambda x, w: C.ops.conv_transpose1d(C.Input("y", (2, 3, 4, 4)), w), ["conv_transpose1d", "(N, C, L)", "rank 4"]),
    (lambda x, w: C.ops.conv_transpose1d(x, C.Input("v", (3, 2, 2, 2))), ["w must have shape", "kh"]),
    (lambda x, w: C.ops.conv_transpose1d(x, C.Input("v", (2, 2, 3))), ["x has 3 channels", "w expects 2"]),
    (lambda x, w: C.ops.conv_transpose1d(x, w, stride=(1, 2)), ["stride must be an int or 1 ints", "(1, 2)"]),
    (lambda x, w: C.ops.conv_transpose1d(x, w, stride=2, output_padding=2), ["output_padding (2,)", "stride (2,)"]),
    (lambda x, w: C.ops.conv_transpose1d(x, w, padding=-1), ["padding and output_padding >= 0", "(-1,)"]),
    (lambda x, w: C.ops.conv_transpose1d(x, w, groups=2), ["x has 3 channels", "groups 2"]),
    (lambda x, w: C.ops.conv_transpose1d(x, w, C.Input("b", (3,))), ["b must have shape (2,)", "(3,)"]),
    (lambda x, w: nn.ConvTranspose1d(2, 3, padding="same"), ["padding: expected an int >= 0", "'same'"]),
    (lambda x, w: nn.ConvTranspose1d(2, 3, output_padding=(1, 1)), ["output_padding: expected an int >= 0"]),
])
def test_bad_arguments(build, words):
    with pytest.raises(GraphError) as error:
        build(C.Input("x", (2, 3, 5)), C.Input("w", (3, 2, 3)))
    for word in words:
        assert word in str(error.value), (word, str(error.value))
