"""``inference(outputs)``: the same graph with every training-only behaviour switched off.

Batch norm and dropout are ``training`` nodes (``primitives.modes``) that hold
both behaviours; ``inference`` picks the inference one everywhere (batch norm
reads its running statistics, dropout is the identity), ``training_mode`` the
training one (the simplifier's first pass), and ``buffer_updates`` lists the
in-place updates a training step must make.
"""
from __future__ import annotations

from .passes.rewrite import rewrite
from .passes.training_mode import training_mode  # noqa: F401  (re-exported)
from .primitives.modes import training_updates
from .traversal import as_node_list, topological_order


def inference(outputs):
    """`outputs` (a node or a list) with batch norm and dropout in inference mode (inside loops too)."""
    from .scan import map_bodies

    def switched(nodes):
        return rewrite(nodes, lambda node: node.args[1] if node.op == "training" else None)
    result = switched(map_bodies(as_node_list(outputs), switched))
    return result if isinstance(outputs, (list, tuple)) else result[0]


def buffer_updates(outputs) -> list:
    """[(buffer leaf, new value)] of every training node `outputs` depend on, in graph order, as
    training-mode graphs. A buffer updated by several nodes (a batch norm layer called twice) gets
    the updates one after the other, in graph order, as PyTorch's module would: each reads the
    value the one before wrote."""
    composed = {}
    for node in topological_order(as_node_list(outputs)):
        if node.op != "training":
            continue
        for buffer, value in training_updates(node):
            (value,) = training_mode([value])
            if buffer in composed:
                previous = composed[buffer]
                (value,) = rewrite([value], lambda n, b=buffer, p=previous: p if n is b else None)
            composed[buffer] = value
    return list(composed.items())
