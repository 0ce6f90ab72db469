"""Sequential: layers applied in order, as one layer."""
from __future__ import annotations

from ..errors import fail
from ..graph import Node
from .layer import Layer


class Sequential(Layer):
    """``Sequential(Conv2d(16, 3), ReLU(), ...)(x)`` applies each in turn. Any callable node -> node
    (``compiler.relu``) may be a step; `params` and `buffers` gather those of the Layers, once each."""

    kind = "sequential"

    def __init__(self, *layers, name: str | None = None):
        super().__init__(name)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise fail(self.describe(), f"layers[{i}]: expected a layer or a callable node -> node, "
                                            f"got {type(layer).__name__}")
        self.layers = list(layers)

    def forward(self, x: Node) -> Node:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if not isinstance(x, Node):
                raise fail(self.describe(), f"layers[{i}] returned {type(x).__name__}, expected a graph node")
        return x

    def _gather(self, attribute: str) -> list:
        found = []
        for layer in self.layers:
            for item in getattr(layer, attribute, ()):
                if not any(item is seen for seen in found):
                    found.append(item)
        return found

    @property
    def params(self) -> list:
        return self._gather("params")

    @property
    def buffers(self) -> list:
        return self._gather("buffers")

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)
