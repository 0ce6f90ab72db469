"""Behaviour that differs between training and inference, as one node.

``training(train, inference, updates)`` is ``train`` in a training step and
``inference`` after ``compiler.inference`` switched the graph; ``updates`` are
(Buffer, new value) pairs -- running statistics -- that a compiled training step
writes in place after computing its outputs. Batch norm and dropout are built on
it: the node keeps both behaviours in one graph, so switching is a rewrite, and
the gradient flows through ``train`` only. The simplifier's first pass replaces
each node by its ``train`` argument, so the code generator never sees one.
"""
from __future__ import annotations

from ..errors import fail
from ..graph import Node
from . import define


def make_training(train: Node, inference: Node, updates=()) -> Node:
    """A node that is `train` in training and `inference` in inference mode; `updates`:
    (buffer leaf, new value) pairs written in place by a training step."""
    if train.shape != inference.shape or train.dtype != inference.dtype:
        raise fail("training", f"the training value {train.shape} {train.dtype} and the inference value "
                               f"{inference.shape} {inference.dtype} must agree in shape and dtype")
    buffers, values = [], []
    for buffer, value in updates:
        if buffer.op != "param" or not dict(buffer.attrs).get("buffer", False):
            raise fail("training", f"an update target must be a compiler.Buffer, got {buffer!r}")
        if value.shape != buffer.shape:
            raise fail("training", f"the update of buffer {buffer.name!r} {buffer.shape} has shape {value.shape}")
        buffers.append(buffer)
        values.append(value if value.dtype == buffer.dtype else _cast(value, buffer.dtype))
    return Node("training", (train, inference, *buffers, *values), (("updates", len(buffers)),),
                train.shape, train.dtype)


def _cast(value: Node, dtype: str) -> Node:
    from ..graph import scalar_symbol
    from .maps import make_map
    return make_map(scalar_symbol(0), [value], dtype)


def training_updates(node: Node) -> list:
    """[(buffer leaf, new value)] of a training node."""
    n = node.attr("updates")
    return list(zip(node.args[2:2 + n], node.args[2 + n:2 + 2 * n]))


def _vjp_training(node, g):
    return [g] + [None] * (len(node.args) - 1)


define("training", "mode", make_training, lambda node, args, dims, values: args[0], _vjp_training, "index",
       lambda node, index: index)
