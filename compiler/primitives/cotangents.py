"""Shapes of cotangents: what the rules of every family need to send a gradient back through
a broadcast (sum it) or a reduction (broadcast it)."""
from __future__ import annotations

from ..dtypes import is_float
from ..graph import Node, const
from . import layouts, reductions


def zeros_like(x: Node) -> Node:
    return layouts.make_broadcast(const(0.0, x.dtype if is_float(x.dtype) else "float32"), x.shape)


def unbroadcast(g: Node, shape: tuple) -> Node:
    """Sum g over the axes along which an operand of `shape` was broadcast."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return layouts.make_reshape(reductions.make_reduce("sum", g, axes), shape)


def keepdims_shape(x: Node, axes) -> tuple:
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape))


def expand_reduced(g: Node, x: Node, axes) -> Node:
    """Broadcast the cotangent of a reduction over `axes` back to x's shape."""
    return layouts.make_broadcast(layouts.make_reshape(g, keepdims_shape(x, axes)), x.shape)


