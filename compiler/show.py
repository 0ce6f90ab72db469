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
        return f"{op} {node.name.partition('$')[2] or node.name}"  # a scan body's placeholder: its role
    if op == "const":
        return f"const {node.attr('value')!r}"
    if op == "map":
        return f"map[{body_text(node.attr('body'))}]"
    if op in ("sum", "max"):
        return f"{op}[axes={node.attr('axes')}]"
    if op == "einsum":
        return f"einsum[{node.attr('spec')}]"
    if op == "scan":  # without the listing's body numbers (scan_label has them)
        kind, which = node.attr("result")
        return f"scan[carry {which}]" if kind == "carry" else f"scan[stack of {node_label(which)} {format_shape(which.shape)}]"
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
    return "\n".join(_listing(outputs, {}, ""))


def _listing(outputs, bodies: dict, indent: str, returns=None) -> list:
    """Lines of the graph of `outputs`, then of every scan body it holds (each once, numbered in
    order of appearance in `bodies`, so the same model built twice prints the same text)."""
    order = topological_order(outputs)
    ids = {node: f"%{i}" for i, node in enumerate(order)}
    lines, new_bodies = [], []
    for node in order:
        args = f"({', '.join(ids[a] for a in node.args)})" if node.args else ""
        label = node_label(node)
        if node.op == "scan":
            body = node.attr("body")
            if body not in bodies:
                bodies[body] = (len(bodies) + 1, stacked_in(order, body))
                new_bodies.append(body)
            label = scan_label(node, bodies)
        lines.append(f"{indent}{ids[node]} = {label}{args} : {format_shape(node.shape)} {node.dtype}")
    lines.append(indent + "return " + ", ".join(ids[n] for n in (outputs if returns is None else returns)))
    for body in new_bodies:
        number, stacked = bodies[body]
        lines.append(f"{indent}body{number} (carries {len(body.carries)}, xs {len(body.xs)}, captured "
                     f"{len(body.captured)}; length {body.length}{', reverse' if body.reverse else ''}"
                     f"{', remat' if body.remat else ''}):")
        lines.extend(_listing(body_outputs(body, stacked), bodies, indent + "    ",
                              list(body.new_carries) + list(body.ys)))
    return lines


def stacked_in(order, body) -> list:
    """The body nodes whose values the scans of `body` in `order` stack."""
    return [n.attr("result")[1] for n in order
            if n.op == "scan" and n.attr("body") is body and n.attr("result")[0] == "stack"]


def body_outputs(body, stacked) -> list:
    return list(dict.fromkeys(list(body.placeholders) + list(body.new_carries) + list(body.ys) + list(stacked)))


def scan_label(node, bodies: dict) -> str:
    """scan[body1, carry 0] or scan[body1, stack %5] (%5 a node of body1's listing)."""
    body = node.attr("body")
    number, stacked = bodies[body]
    kind, which = node.attr("result")
    if kind == "carry":
        return f"scan[body{number}, carry {which}]"
    position = topological_order(body_outputs(body, stacked)).index(which)
    return f"scan[body{number}, stack %{position}]"
