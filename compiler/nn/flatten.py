"""Flatten: merge every axis from start_dim on into one, (N, C, H, W) -> (N, C*H*W)."""
from __future__ import annotations

from .. import ops
from ..errors import fail
from ..graph import Node
from .layer import Layer


class Flatten(Layer):
    """torch.nn.Flatten (start_dim=1, end_dim=-1)."""

    kind = "flatten"

    def __init__(self, start_dim: int = 1, end_dim: int = -1, name: str | None = None):
        super().__init__(name)
        for argument, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(self.describe(), f"{argument}: expected an int, got {value!r}")
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Node) -> Node:
        return ops.flatten(x, self.start_dim, self.end_dim)
