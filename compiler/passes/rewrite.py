"""The one graph-rewriting driver every pass uses.

A rule maps a node (whose arguments are already rewritten) to a replacement
node or None. ``rewrite`` applies it bottom-up over the graph, rebuilding
users of replaced nodes through the primitive constructors so that their
canonicalisations (argument merging, identity removal) apply again.
"""
from __future__ import annotations

from ..graph import Node, make_map
from ..traversal import as_node_list, topological_order

MAX_LOCAL_REWRITES = 16


def rebuild(node: Node, args) -> Node:
    """`node` with new arguments (same op, attrs and shape)."""
    args = tuple(args)
    if all(a is b for a, b in zip(args, node.args)):
        return node
    if node.op == "map":
        return make_map(node.attr("body"), args, node.dtype)
    return Node(node.op, args, node.attrs, node.shape, node.dtype, node.location)


def rewrite(outputs, rule) -> list:
    """Apply `rule` to every node, arguments first; returns the rewritten outputs."""
    outputs = as_node_list(outputs)
    replaced = {}
    for node in topological_order(outputs):
        new = rebuild(node, [replaced[a] for a in node.args])
        for _ in range(MAX_LOCAL_REWRITES):
            candidate = rule(new)
            if candidate is None or candidate is new:
                break
            if candidate.shape != node.shape:
                raise AssertionError(f"rule {rule.__name__} changed shape {node.shape} -> {candidate.shape}")
            new = candidate
        replaced[node] = new
    return [replaced[n] for n in outputs]


def count_nodes(outputs) -> int:
    return len(topological_order(outputs))
