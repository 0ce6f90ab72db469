"""DOT text: one node statement per graph node, one edge per argument, shapes on edges."""
from __future__ import annotations

import re
import shutil

import pytest

import compiler as C
from compiler.inspect import GraphvizNotFound, render
from compiler.traversal import topological_order

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", ([^\]]*)\];$')
EDGE = re.compile(r'^\s*(n\d+) -> (n\d+) \[label="((?:[^"\\]|\\.)*)"\];$')


def parse(dot: str):
    """(node id -> (label, attributes), [(source, target, label)]) of our DOT text."""
    nodes, edges = {}, []
    for line in dot.splitlines():
        if m := NODE.match(line):
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := EDGE.match(line):
            edges.append(m.groups())
    return nodes, edges


def regression():
    X, Y = C.Input("X", ("batch", 3)), C.Input("Y", ("batch", 2))
    W, b = C.Param("W", (3, 2)), C.Param("b", (2,))
    loss = C.sum((C.tanh(X @ W + b) - Y) ** 2)
    return loss, C.grad(loss, [W, b])


def test_node_and_edge_counts_equal_the_graph():
    loss, grads = regression()
    outputs = [loss, *grads]
    dot = C.to_dot(outputs, forward=[loss])
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    nodes, edges = parse(dot)
    order = topological_order(outputs)
    assert len(nodes) == len(order)
    assert len(edges) == sum(len(n.args) for n in order)
    assert len(re.findall(r"^\s*n\d+ -> ", dot, re.M)) == len(edges)


def test_edges_carry_shapes_and_map_argument_names():
    loss, grads = regression()
    nodes, edges = parse(C.to_dot([loss, *grads]))
    labels = [label for _, _, label in edges]
    assert "(batch, 3)" in labels and "(3, 2)" in labels
    assert any(label.startswith("x1: ") for label in labels)
    by_label = {label.split("\\n")[0]: attrs for label, attrs in nodes.values()}
    assert "box" in by_label["X"] and "box" in by_label["W"] and by_label["X"] != by_label["W"]
    assert any(label == "map\\ntanh(x0)" for label, _ in nodes.values())


def test_backward_nodes_have_their_own_colour():
    loss, grads = regression()
    outputs = [loss, *grads]
    nodes, _ = parse(C.to_dot(outputs, forward=[loss]))
    forward = set(topological_order(loss))
    computed = [n for n in topological_order(outputs) if not n.is_leaf]
    colours = [attrs for _, attrs in nodes.values() if "ellipse" in attrs]
    backward_colour = re.search(r'fillcolor="([^"]+)"', C.inspect.dot.BACKWARD_STYLE).group(1)
    assert sum(backward_colour in attrs for attrs in colours) == sum(n not in forward for n in computed) > 0
    plain, _ = parse(C.to_dot(outputs))
    assert not any(backward_colour in attrs for _, attrs in plain.values())
    assert sum("peripheries=2" in attrs for _, attrs in nodes.values()) == 3


def test_clusters_group_their_nodes():
    loss, grads = regression()
    order = topological_order([loss, *grads])
    maps = [n for n in order if n.op == "map"]
    dot = C.to_dot([loss, *grads], clusters=[maps[:2], maps[2:4]])
    ids = {n: f"n{k}" for k, n in enumerate(order)}
    blocks = re.findall(r"subgraph (cluster_\d+) \{\n\s*label=\"([^\"]*)\";[^\n]*\n\s*([^\n]*)\n\s*\}", dot)
    assert [(name, title) for name, title, _ in blocks] == [("cluster_0", "kernel 0"), ("cluster_1", "kernel 1")]
    assert blocks[0][2].split() == [f"{ids[m]};" for m in maps[:2]]
    named = C.to_dot(loss, clusters={"fused tanh": [maps[0]]})
    assert 'label="fused tanh"' in named
    with pytest.raises(ValueError, match="not in the graph"):
        C.to_dot(loss, clusters=[[grads[0]]])


def test_labels_are_escaped():
    x = C.Input("x", (2,))
    dot = C.to_dot(C.where(x > 0, x, 0.5 * x), title='say "hi"')
    assert 'digraph "say \\"hi\\""' in dot
    nodes, edges = parse(dot)
    assert len(nodes) == len(topological_order(C.where(x > 0, x, 0.5 * x)))


def test_render_explains_how_to_install_graphviz(tmp_path, monkeypatch):
    loss, _ = regression()
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizNotFound, match=r"apt install graphviz.*brew install graphviz"):
        render(C.to_dot(loss), tmp_path / "graph.svg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_writes_svg(tmp_path):
    loss, grads = regression()
    path = render(C.to_dot([loss, *grads], forward=[loss]), tmp_path / "graph.svg")
    assert "<svg" in open(path).read()
