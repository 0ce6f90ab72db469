"""Small model builders: dense layers and multilayer perceptrons as graphs.

Weights of a layer followed by a rectifier (relu, leaky_relu) start from
he_normal, every other weight from glorot_uniform; biases start at zero.
"""
from __future__ import annotations

from .graph import Input, Node, Param
from .nn.activations import ACTIVATIONS
from .ops import cross_entropy

RECTIFIERS = ("relu", "leaky_relu")


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def dense(x: Node, units: int, activation: str = "linear", name: str = "dense") -> tuple[Node, list]:
    """activation(x @ w + b) for x of shape (..., features): (output, [w, b]) with Params `<name>_w`, `<name>_b`."""
    fn = _activation(activation)
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ValueError(f"dense {name!r}: units must be a positive integer, got {units!r}")
    features = x.shape[-1]
    if not isinstance(features, int):
        raise ValueError(f"dense {name!r}: the last dimension of the input must be concrete, got shape {x.shape}")
    init = "he_normal" if activation in RECTIFIERS else "glorot_uniform"
    w = Param(f"{name}_w", (features, units), init=init, dtype=x.dtype)
    b = Param(f"{name}_b", (units,), init="zeros", dtype=x.dtype)
    y = x @ w + b
    return (y if fn is None else fn(y)), [w, b]


def mlp(input_dim: int, hidden: list, output_dim: int, activation: str = "relu", dtype: str = "float32",
        name: str = "mlp") -> tuple[Input, Node, list]:
    """A perceptron input_dim -> hidden... -> output_dim with `activation` after every hidden layer
    and linear outputs: (x, logits, params). x is Input("x", ("batch", input_dim)); layer i's
    Params are `<name>_<i>_w` and `<name>_<i>_b`."""
    x = Input("x", ("batch", input_dim), dtype)
    return (x, *stack_dense(x, [(units, activation) for units in hidden] + [(output_dim, "linear")], name))


def stack_dense(x: Node, layers, name: str = "mlp") -> tuple[Node, list]:
    """Dense layers [(units, activation), ...] applied in order: (output, params)."""
    params, y = [], x
    for i, (units, activation) in enumerate(layers):
        y, own = dense(y, units, activation, f"{name}_{i}")
        params += own
    return y, params


def classifier_loss(logits: Node, labels: Node) -> Node:
    """Mean softmax cross-entropy of logits (batch, classes) against integer labels (batch,)."""
    return cross_entropy(logits, labels)
