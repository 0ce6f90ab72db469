"""The layer protocol: a callable that makes its Params on first call and reuses them after.

``layer(x)`` applies the layer to the graph node ``x``. The first call infers
the input sizes from ``x.shape`` and creates the Params (``<layer>.weight``,
...); every later call reads the same Params, so calling one layer object on
two inputs shares its weights. A later input must fit the Params the first
one fixed (a different channel count is an error naming both).
"""
from __future__ import annotations

from ..errors import fail
from ..graph import Buffer, Node, Param
from .naming import claim_name


class Layer:
    """Base of every layer: a name, Params and Buffers made once by `build`, and `forward`."""

    kind = "layer"  # the default name

    def __init__(self, name: str | None = None):
        self.name = claim_name(name, self.kind, type(self).__name__)
        self._params: list = []
        self._buffers: list = []
        self._built_for = None  # the input shape the Params were made for

    @property
    def params(self) -> list:
        """The trainable Params, in order of creation (empty before the first call)."""
        return list(self._params)

    @property
    def buffers(self) -> list:
        """Non-trainable state (batch norm's running statistics), empty before the first call."""
        return list(self._buffers)

    def __call__(self, x: Node) -> Node:
        if not isinstance(x, Node):
            raise fail(self.describe(), f"expected a graph node (such as compiler.Input), got {type(x).__name__}")
        if self._built_for is None:
            self.build(x)
            self._built_for = x.shape
        else:
            self.check_reuse(x)
        return self.forward(x)

    def build(self, x: Node) -> None:
        """Create the Params for input `x` (layers without Params do nothing)."""

    def check_reuse(self, x: Node) -> None:
        """Raise unless `x` fits the Params made for the first input (called on every later call)."""

    def forward(self, x: Node) -> Node:
        raise NotImplementedError

    def describe(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    def param(self, suffix: str, shape, init, dtype) -> Param:
        p = Param(f"{self.name}.{suffix}", shape, init=init, dtype=dtype)
        self._params.append(p)
        return p

    def buffer(self, suffix: str, shape, init, dtype) -> Buffer:
        b = Buffer(f"{self.name}.{suffix}", shape, init=init, dtype=dtype)
        self._buffers.append(b)
        return b

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def check_rank(layer: Layer, x: Node, ranks, layout: str) -> None:
    """Raise unless x has one of `ranks` axes (`layout` spells the expected shape, e.g. "(N, C, H, W)")."""
    if x.ndim not in ranks:
        raise fail(layer.describe(), f"expected an input of shape {layout}, got shape {x.shape}")


def concrete_dim(layer: Layer, x: Node, axis: int, what: str) -> int:
    """x.shape[axis] as an int; a symbolic size there is an error (the Params' shapes depend on it)."""
    size = x.shape[axis]
    if not isinstance(size, int):
        raise fail(layer.describe(), f"the {what} (axis {axis % x.ndim}) of the input must be a number to size the "
                                     f"Params, got {size!r} in shape {x.shape}")
    return size


def float_dtype(layer: Layer, x: Node) -> str:
    """x's dtype, which must be a float type (it is the Params' dtype)."""
    if not x.dtype.startswith("float"):
        raise fail(layer.describe(), f"expected a float input (float32 or float64), got {x.dtype}")
    return x.dtype


def check_same_dim(layer: Layer, x: Node, axis: int, what: str) -> None:
    """On reuse: x's `what` at `axis` must equal the first input's."""
    if x.ndim == 0:
        raise fail(layer.describe(), f"expected an input with a {what} axis, got a scalar")
    first, now = layer._built_for[axis], x.shape[axis]
    if now != first:
        raise fail(layer.describe(), f"called on an input with {now!r} {what} (shape {x.shape}); its Params were made "
                                     f"for {first!r} (the first input's shape {layer._built_for})")
