"""Sizes a graph needs at least, checked by the runtime once the symbolic dimensions are bound.

``batch_norm`` in training estimates each channel's variance from its values: from one value (a
batch of one sample of (N, C); the last mini-batch of an epoch holding one row) its unbiased
running variance is 0 * inf = nan, and every later inference reads it. torch raises "Expected more
than 1 value per channel when training"; symprop too, before any kernel runs. A size fixed when
the graph is built is checked then (by the op); a size that depends on symbolic dimensions is
recorded here (``require_size``), the compiled plan carries ``size_checks(outputs)``, and the
runtime checks them against the dimensions of each call, and of each batch of an epoch
(``runtime.executable.check_size_minimums``), with a ValueError naming the op and the binding;
``evaluate`` checks them too.
"""
from __future__ import annotations

import weakref

from .graph import Node

_REQUIREMENTS: dict = {}  # id(node) -> (weakref to it, shape entries whose product is the size, minimum, op, what)


def require_size(node: Node, shape: tuple, minimum: int, op: str, what: str) -> Node:
    """Record that `node` is only right when the product of `shape`'s entries (ints and symbolic
    dimensions) is at least `minimum`; `what` names that size in the message."""
    key = id(node)
    _REQUIREMENTS[key] = (weakref.ref(node, lambda _: _REQUIREMENTS.pop(key, None)), list(shape), minimum, op, what)
    return node


def size_checks(outputs) -> list:
    """[{"shape", "minimum", "op", "what"}] for every recorded node the outputs depend on (once each)."""
    from .traversal import with_bodies
    checks = []
    for node in with_bodies(list(outputs)):
        entry = _REQUIREMENTS.get(id(node))
        if entry is not None and entry[0]() is node:
            check = {"shape": entry[1], "minimum": entry[2], "op": entry[3], "what": entry[4]}
            if check not in checks:
                checks.append(check)
    return checks
