"""Activation layers, and the ``activation=`` argument of Dense and the convolutions."""
from __future__ import annotations

from ..errors import fail
from ..graph import Node
from ..ops import elu, gelu, hardswish, leaky_relu, mish, relu, relu6, selu, sigmoid, silu, softplus, tanh
from .layer import Layer

ACTIVATIONS = {
    "relu": relu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "gelu": gelu,
    "softplus": softplus,
    "leaky_relu": leaky_relu,
    "silu": silu,
    "elu": elu,
    "selu": selu,
    "mish": mish,
    "hardswish": hardswish,
    "relu6": relu6,
    "linear": None,
}


def activation_function(activation, layer: str):
    """None or "linear" (no activation), a name in ACTIVATIONS, or a callable node -> node (e.g. nn.ReLU())."""
    if activation is None:
        return None
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise fail(layer, f"activation: expected one of {', '.join(ACTIVATIONS)} or a callable, got {activation!r}")
        return ACTIVATIONS[activation]
    if callable(activation):
        return activation
    raise fail(layer, f"activation: expected a name such as 'relu' or a callable, got {activation!r}")


class Activation(Layer):
    """An elementwise function as a layer (no Params)."""

    function = None

    def forward(self, x: Node) -> Node:
        return type(self).function(x)


class ReLU(Activation):
    kind, function = "relu", relu


class Tanh(Activation):
    kind, function = "tanh", tanh


class GELU(Activation):
    """The exact GELU, x * Phi(x) (torch.nn.GELU's default)."""

    kind, function = "gelu", gelu


class Sigmoid(Activation):
    kind, function = "sigmoid", sigmoid
