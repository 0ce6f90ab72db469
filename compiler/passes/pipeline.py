"""The simplification pipeline: named passes in a visible order.

``simplify(outputs)`` runs them to a fixed point; ``simplify_stages`` also
returns the program after each pass, for ``show(..., passes=True)``.
"""
from __future__ import annotations

from .constant_folding import fold_constants, inline_scalar_constants
from .identities import algebraic_identities
from .rewrite import count_nodes, remembered_rules
from .stability import stabilize
from .training_mode import training_mode
from ..primitives.random import canonical_streams

PIPELINE = (
    ("random streams", canonical_streams),
    ("training mode", training_mode),
    ("fold constants", fold_constants),
    ("inline scalar constants", inline_scalar_constants),
    ("algebraic identities", algebraic_identities),
    ("stabilize", stabilize),
)

MAX_ROUNDS = 4


def simplify_stages(outputs) -> list:
    """[(pass name, outputs after it)], repeating the pipeline until nothing changes."""
    stages = []
    with remembered_rules():  # a later round re-applies a rule only to nodes an earlier one changed
        for _ in range(MAX_ROUNDS):
            before = list(outputs)
            for name, run in PIPELINE:
                outputs = run(outputs)
                stages.append((name, outputs))
            if all(a is b for a, b in zip(before, outputs)):
                break
    return stages


def simplify(outputs):
    """Simplified outputs (a node for a node, a list for a list)."""
    from ..graph import Node
    single = isinstance(outputs, Node)
    result = simplify_stages([outputs] if single else list(outputs))[-1][1]
    return result[0] if single else result


__all__ = ["PIPELINE", "simplify", "simplify_stages", "count_nodes"]
