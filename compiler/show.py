"""Text form of a graph: one line per node, like a jaxpr.

    %3 = map[tanh(x0)](%2) : (batch, 64) float32
"""
from __future__ import annotations

from functools import lru_cache

from .traversal import as_node_list, topological_order


@lru_cache(maxsize=4096)
def body_text(body) -> str:
    """A map body as text; cached, because printing dominates the text of a long chain of equal layers."""
    return str(body)


def node_label(node) -> str:
    """op[attributes] of one node, short enough for a line."""
    op = node.op
    if op in ("input", "param", "dim"):
        return f"{op} {node.name}"
    if op == "const":
        return f"const {node.attr('value')!r}"
    if op == "map":
        return f"map[{body_text(node.attr('body'))}]"
    if op in ("sum", "max"):
        return f"{op}[axes={node.attr('axes')}]"
    if op == "einsum":
        return f"einsum[{node.attr('spec')}]"
    attrs = ", ".join(f"{k}={v}" for k, v in node.attrs)
    return f"{op}[{attrs}]" if attrs else op


def format_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def show(nodes, passes: bool = False, wrt=None) -> str:
    """One line per node: id, op, arguments, shape, dtype; outputs listed last.

    wrt: `nodes` is a scalar loss; show it with its gradients with respect to `wrt`.
    passes=True: the program after each stage (declared, differentiated when `wrt`
    is given, each simplification pass, ...) with its node count; see inspect.stages.
    """
    if passes:
        from .inspect.stages import format_stages, pass_stages
        return format_stages(pass_stages(nodes, wrt))
    outputs = as_node_list(nodes)
    if wrt is not None:
        from .autodiff import grad
        if len(outputs) != 1:
            raise ValueError(f"show: with wrt=..., give one scalar loss, got {len(outputs)} outputs")
        outputs = outputs + as_node_list(grad(outputs[0], as_node_list(wrt)))
    order = topological_order(outputs)
    ids = {node: f"%{i}" for i, node in enumerate(order)}
    lines = []
    for node in order:
        args = f"({', '.join(ids[a] for a in node.args)})" if node.args else ""
        lines.append(f"{ids[node]} = {node_label(node)}{args} : {format_shape(node.shape)} {node.dtype}")
    lines.append("return " + ", ".join(ids[n] for n in outputs))
    return "\n".join(lines)
