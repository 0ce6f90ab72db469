"""The fusion the code generator chooses, as something to look at.

``fused_kernels(outputs)`` gives the graph the scheduler sees (simplified,
einsums lowered) and, per kernel, its description and the graph nodes it
computes: ``to_dot(graph, clusters=...)`` draws kernels as boxes, and
``show(..., passes=True)`` ends with a ``fused`` stage listing the kernels (with the tiny loops and
update loops each one's function runs before or after its own: ``first``, ``then``).
"""
from __future__ import annotations

from ..traversal import as_node_list
from .contraction import lower_einsums
from .program import describe_kernel
from .schedule import schedule


def fused_kernels(simplified_outputs) -> tuple:
    """(lowered outputs, [(kernel description dict, [nodes it computes])]) of simplified outputs."""
    lowered = lower_einsums(as_node_list(simplified_outputs))
    sched = schedule(lowered)
    names = {b: b.name for b in sched.buffers}
    kernels = [(describe_kernel(k, names), list(dict.fromkeys(k.nodes))) for k in sched.kernels]
    return lowered, kernels


def fused_stage(simplified_outputs) -> tuple:
    """(kernel count, one line per kernel) for the ``fused`` stage of ``show(passes=True)``."""
    _, kernels = fused_kernels(simplified_outputs)
    lines = []
    for k, (kernel, _) in enumerate(kernels):
        shape = "(" + ", ".join(str(d) for d in kernel["shape"]) + ")"
        lines.append(f"k{k} {kernel['kind']}{shape}: {kernel['body']}")
    return len(kernels), "\n".join(lines)
