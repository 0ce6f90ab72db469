"""The simplifier's first pass: every ``training`` node becomes its training value, and every
``surrogate`` node the value it computes (its surrogate only ever served the gradient).

A compiled program runs in training mode; ``compiler.inference`` rewrites the
graph to the other value before compiling (``compiler/modes.py``).
"""
from __future__ import annotations

from .rewrite import rewrite


def training_mode(outputs) -> list:
    """`outputs` with every training node replaced by its training value."""
    return rewrite(outputs, lambda node: node.args[0] if node.op in ("training", "surrogate") else None)
