"""Dense: a fully connected layer on the last axis, activation(x @ weight + bias)."""
from __future__ import annotations

import numbers

from ..errors import fail
from ..graph import Node
from .activations import activation_function
from .init import bias_init, weight_init
from .layer import Layer, check_same_dim, concrete_dim, float_dtype


def check_count(value, argument: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(layer, f"{argument}: expected a positive integer, got {value!r}")
    return value


def check_probability(value, argument: str, layer: str) -> float:
    """A dropout probability in [0, 1] (torch's range; 1 drops everything), as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise fail(layer, f"{argument}: expected a probability in [0, 1], got {value!r}")
    return float(value)


def check_flag(value, argument: str, layer: str) -> bool:
    if not isinstance(value, bool):
        raise fail(layer, f"{argument}: expected True or False, got {value!r}")
    return value


class Dense(Layer):
    """y = activation(x @ weight + bias) for x of shape (..., in_features); y is (..., units).

    weight is (in_features, units), as the product x @ W reads it (torch.nn.Linear
    stores the transpose); in_features comes from the first input. Weight and bias
    start as torch.nn.Linear's (uniform(+-1/sqrt(in_features))) unless `init` names
    another scheme for the weight (see nn.init.WEIGHT_INITS) or is a callable.
    """

    kind = "dense"

    def __init__(self, units: int, bias: bool = True, activation=None, name: str | None = None, init=None):
        super().__init__(name)
        self.units = check_count(units, "units", self.describe())
        self.use_bias = check_flag(bias, "bias", self.describe())
        self.activation = activation_function(activation, self.describe())
        self.init = init
        weight_init(init, 1, 1, self.describe())  # reject an unknown init now, not at the first call
        self.weight = self.bias = None

    def weight_shape(self, features: int) -> tuple:
        return features, self.units

    def build(self, x: Node) -> None:
        if x.ndim < 1:
            raise fail(self.describe(), "expected an input of shape (..., features), got a scalar")
        dtype = float_dtype(self, x)
        features = concrete_dim(self, x, -1, "features")
        self.weight = self.param("weight", self.weight_shape(features),
                                 weight_init(self.init, features, self.units, self.describe()), dtype)
        if self.use_bias:
            self.bias = self.param("bias", (self.units,), bias_init(features), dtype)

    def check_reuse(self, x: Node) -> None:
        check_same_dim(self, x, -1, "features")

    def forward(self, x: Node) -> Node:
        y = self.product(x)
        if self.bias is not None:
            y = y + self.bias
        return y if self.activation is None else self.activation(y)

    def product(self, x: Node) -> Node:
        return x @ self.weight


class Linear(Dense):
    """torch.nn.Linear with in_features inferred: y = activation(x @ weight.T + bias), weight of torch's
    shape (out_features, in_features), so a torch state dict's ``weight`` loads as it is. The product
    reads the weight transposed in place (no copy); initialisation is torch's, as Dense's."""

    kind = "linear"

    def __init__(self, out_features: int, bias: bool = True, activation=None, name: str | None = None, init=None):
        super().__init__(out_features, bias, activation, name, init)

    @property
    def out_features(self) -> int:
        return self.units

    def weight_shape(self, features: int) -> tuple:
        return self.units, features

    def product(self, x: Node) -> Node:
        return x @ self.weight.T
