"""Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_ computes it.

total_norm = sqrt(sum over every gradient of its sum of squares);
every gradient is scaled by min(max_norm / (total_norm + 1e-6), 1).
The scale is applied unconditionally (a factor of 1 when under the limit),
so one compiled program serves every step.
"""
from __future__ import annotations

from ..dtypes import promote
from ..graph import Node
from ..ops import minimum, sqrt, sum as reduce_sum

CLIP_EPSILON = 1e-6


def global_norm(grads) -> Node:
    """sqrt of the sum of squares of every element of every gradient (a scalar node)."""
    grads = list(grads)
    dtype = promote([g.dtype for g in grads])
    squares = [reduce_sum(g * g).astype(dtype) if g.dtype != dtype else reduce_sum(g * g) for g in grads]
    total = squares[0]
    for s in squares[1:]:
        total = total + s
    return sqrt(total)


def clip_by_global_norm(grads, max_norm: float) -> list:
    """The gradients scaled so that their global norm is at most `max_norm`."""
    grads = list(grads)
    if not grads:
        return grads
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError(f"clip_by_global_norm: max_norm must be > 0, got {max_norm!r}")
    coefficient = minimum(max_norm / (global_norm(grads) + CLIP_EPSILON), 1.0)
    return [g * (coefficient if coefficient.dtype == g.dtype else coefficient.astype(g.dtype)) for g in grads]
