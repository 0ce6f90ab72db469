"""Graphs as Graphviz DOT text, and rendering it to SVG/PNG/PDF.

``to_dot(outputs, forward=[loss])`` draws every node once (the graph is
hash-consed, so shared subexpressions are drawn shared), one edge per
argument labelled with the tensor shape it carries (and ``x0``, ``x1`` for a
map's arguments, as its body names them). Inputs, parameters, constants and
sizes each have their own shape and colour; nodes reachable from the
`forward` outputs are blue, the rest (the gradient computation) orange;
outputs have a double border. ``clusters`` (lists of nodes, for instance the
fused kernels) are drawn as boxes around their nodes. A scan's body is drawn
once, as a nested graph in a box of its own (its placeholders, its nodes and
the values it returns), joined to the scan nodes it computes by dotted edges.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from ..show import body_text, format_shape, node_label, scan_label, stacked_in, body_outputs
from ..traversal import as_node_list, topological_order

LEAF_STYLE = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#d9ead3"',
    "param": 'shape=box, style="filled", fillcolor="#fff2cc"',
    "const": 'shape=plaintext, style="filled", fillcolor="#eeeeee"',
    "dim": 'shape=diamond, style="filled", fillcolor="#eeeeee"',
}
FORWARD_STYLE = 'shape=ellipse, style="filled", fillcolor="#cfe2f3"'
BACKWARD_STYLE = 'shape=ellipse, style="filled", fillcolor="#fce5cd"'
PLAIN_STYLE = 'shape=ellipse, style="filled", fillcolor="#ffffff"'

INSTALL_HINT = ("Graphviz's `dot` program is not installed (or not on PATH). Install it with "
                "`apt install graphviz` (Debian/Ubuntu), `dnf install graphviz` (Fedora), "
                "`brew install graphviz` (macOS) or `conda install graphviz`; see https://graphviz.org/download/. "
                "The DOT text itself needs nothing: compiler.to_dot(...) returns it.")


class GraphvizNotFound(RuntimeError):
    """Rendering was asked for but Graphviz's `dot` program is missing."""


def quote(text: str) -> str:
    """A DOT string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(node) -> str:
    if node.op in ("input", "param"):
        kind = "Input" if node.op == "input" else "Param"
        return f"{node.name.partition('$')[2] or node.name}\n{kind} {format_shape(node.shape)} {node.dtype}"
    if node.op == "map":
        return f"map\n{body_text(node.attr('body'))}"
    return node_label(node)


def _cluster_groups(clusters) -> list:
    """[(title, nodes)] from a list of node lists or a {title: nodes} dict."""
    if clusters is None:
        return []
    if isinstance(clusters, dict):
        return [(str(title), as_node_list(nodes)) for title, nodes in clusters.items()]
    return [(f"kernel {k}", as_node_list(nodes)) for k, nodes in enumerate(clusters)]


def to_dot(nodes, forward=None, clusters=None, title: str | None = None) -> str:
    """DOT text of the graph computing `nodes`.

    forward: the forward outputs (e.g. [loss]); nodes they do not depend on are drawn
        as backward nodes. None draws every computed node alike.
    clusters: lists of nodes (or {title: nodes}) drawn as boxes, e.g. fused kernels.
    """
    outputs = as_node_list(nodes)
    order = topological_order(outputs)
    ids = {node: f"n{k}" for k, node in enumerate(order)}
    in_forward = set(topological_order(as_node_list(forward))) if forward is not None else None
    lines = [f"digraph {quote(title or 'symprop')} {{",
             "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];',
             '  edge [fontname="Helvetica", fontsize=9, color="#555555"];']
    if title:
        lines.append(f"  label={quote(title)}; labelloc=t;")
    output_index = {}
    for k, node in enumerate(outputs):
        output_index.setdefault(node, k)
    bodies = {}
    _draw(order, ids, lines, in_forward, output_index, bodies, "  ")
    for k, (cluster_title, members) in enumerate(_cluster_groups(clusters)):
        missing = [m for m in members if m not in ids]
        if missing:
            raise ValueError(f"to_dot: cluster {cluster_title!r} holds nodes not in the graph: {missing}")
        lines.append(f"  subgraph cluster_{k} {{")
        lines.append(f'    label={quote(cluster_title)}; style="dashed"; color="#888888";')
        lines.append("    " + " ".join(f"{ids[m]};" for m in members))
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _draw(order, ids, lines, in_forward, output_index, bodies: dict, indent: str) -> None:
    """Nodes and edges of one graph, then each scan body it holds as a nested box (drawn once)."""
    new_bodies = []
    for node in order:
        if node.is_leaf:
            style = LEAF_STYLE[node.op]
        elif in_forward is None:
            style = PLAIN_STYLE
        else:
            style = FORWARD_STYLE if node in in_forward else BACKWARD_STYLE
        if node.op == "scan" and node.attr("body") not in bodies:
            body = node.attr("body")
            bodies[body] = (len(bodies) + 1, stacked_in(order, body))
            new_bodies.append(body)
        label = scan_label(node, bodies) if node.op == "scan" else _label(node)
        extra = ""
        if node in output_index:
            label += f"\noutput {output_index[node]}"
            extra = ", peripheries=2, penwidth=1.5"
        lines.append(f"{indent}{ids[node]} [label={quote(label)}, {style}{extra}];")
    for node in order:
        for k, arg in enumerate(node.args):
            shape = format_shape(arg.shape)
            label = f"x{k}: {shape}" if node.op == "map" and len(node.args) > 1 else shape
            lines.append(f"{indent}{ids[arg]} -> {ids[node]} [label={quote(label)}];")
    for body in new_bodies:
        number, stacked = bodies[body]
        inner_order = topological_order(body_outputs(body, stacked))
        inner_ids = {node: f"b{number}_n{k}" for k, node in enumerate(inner_order)}
        returned = {node: k for k, node in enumerate(list(body.new_carries) + list(body.ys))}
        lines.append(f"{indent}subgraph cluster_body{number} {{")
        lines.append(f'{indent}  label={quote(f"body{number}: one step of {body.length}")}; style="rounded"; '
                     f'color="#3d85c6";')
        _draw(inner_order, inner_ids, lines, None, returned, bodies, indent + "  ")
        lines.append(f"{indent}}}")
        for node in order:
            if node.op == "scan" and node.attr("body") is body:
                kind, which = node.attr("result")
                source = body.new_carries[which] if kind == "carry" else which
                lines.append(f'{indent}{inner_ids[source]} -> {ids[node]} [style=dotted, label="{kind}"];')


def render(dot_text: str, path, format: str | None = None) -> str:
    """Write `dot_text` drawn by Graphviz to `path` (format from the suffix: svg, png, pdf, ...)."""
    path = os.fspath(path)
    format = format or os.path.splitext(path)[1].lstrip(".").lower()
    if not format:
        raise ValueError(f"render: cannot tell the format of {path!r}; give a suffix like .svg or format='svg'")
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFound(INSTALL_HINT)
    done = subprocess.run([program, f"-T{format}", "-o", path], input=dot_text.encode(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"render: dot -T{format} failed: {done.stderr.decode(errors='replace').strip()}")
    return path
