"""Dropout: zero each element with probability p in training, scale the rest by 1/(1-p)."""
from __future__ import annotations

import numbers

from .. import ops
from ..errors import fail
from ..graph import Node
from .layer import Layer


class Dropout(Layer):
    """torch.nn.Dropout. The mask is drawn inside the compiled step (a new one every step);
    ``compiler.inference`` makes the layer the identity."""

    kind = "dropout"

    def __init__(self, p: float = 0.5, name: str | None = None):
        super().__init__(name)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise fail(self.describe(), f"p: expected a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def forward(self, x: Node) -> Node:
        return ops.dropout(x, self.p, training=True)
