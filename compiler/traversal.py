"""Walking graphs: topological order, leaves, and the one-name-one-leaf rule."""
from __future__ import annotations

from .errors import GraphError
from .graph import Node


def as_node_list(nodes) -> list:
    """A node or a sequence of nodes as a list (and whether a single node was given)."""
    if isinstance(nodes, Node):
        return [nodes]
    nodes = list(nodes)
    for n in nodes:
        if not isinstance(n, Node):
            raise TypeError(f"expected graph nodes, got {type(n).__name__}: {n!r}")
    return nodes


def topological_order(nodes) -> list:
    """Every node the outputs depend on, arguments before users, in a stable order."""
    order, state = [], {}
    for root in as_node_list(nodes):
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if state.get(node) != "done":
                    state[node] = "done"
                    order.append(node)
                continue
            if node in state:
                continue
            state[node] = "open"
            stack.append((node, True))
            for arg in reversed(node.args):
                if arg not in state:
                    stack.append((arg, False))
    return order


def with_bodies(nodes) -> list:
    """Every node of the graph of `nodes` and of every scan body in it (nested bodies too), each once:
    what a fingerprint of the program must cover (a body's constants are not arguments of the scan)."""
    seen, result, pending = set(), [], [as_node_list(nodes)]
    while pending:
        for node in topological_order(pending.pop()):
            if node in seen:
                continue
            seen.add(node)
            result.append(node)
            if node.op == "scan":
                body = node.attr("body")
                pending.append(list(body.new_carries) + list(body.ys))
    return result


def leaves(nodes) -> list:
    """The Input and Param nodes the graph depends on, in order of first use."""
    found = [n for n in topological_order(nodes) if n.op in ("input", "param")]
    check_unique_names(found)
    return found


def check_unique_names(leaf_nodes) -> None:
    """Two different leaves with one name in one graph are an error naming both lines."""
    by_name = {}
    for leaf in leaf_nodes:
        other = by_name.setdefault(leaf.name, leaf)
        if other is not leaf:
            raise GraphError(
                f"two different leaves are named {leaf.name!r}: {other.op} {other.shape} {other.dtype} "
                f"declared at {other.location} and {leaf.op} {leaf.shape} {leaf.dtype} declared at {leaf.location}")


def users(order) -> dict:
    """node -> list of nodes that take it as an argument, within `order`."""
    result = {n: [] for n in order}
    for n in order:
        for a in n.args:
            result[a].append(n)
    return result
