"""Dropout: zero each element with probability p in training, scale the rest by 1/(1-p)."""
from __future__ import annotations

from .. import ops
from ..graph import Node
from .dense import check_probability
from .layer import Layer


class Dropout(Layer):
    """torch.nn.Dropout. The mask is drawn inside the compiled step (a new one every step);
    ``compiler.inference`` makes the layer the identity."""

    kind = "dropout"

    def __init__(self, p: float = 0.5, name: str | None = None):
        super().__init__(name)
        self.p = check_probability(p, "p", self.describe())

    def forward(self, x: Node) -> Node:
        return ops.dropout(x, self.p, training=True)
