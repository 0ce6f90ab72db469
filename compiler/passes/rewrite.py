"""The one graph-rewriting driver every pass uses.

A rule maps a node (whose arguments are already rewritten) to a replacement
node or None. ``rewrite`` applies it bottom-up over the graph, rebuilding
users of replaced nodes through the primitive constructors so that their
canonicalisations (argument merging, identity removal) apply again.

A rule is a pure function of a node, and nodes are hash-consed, so inside
``remembered_rules()`` (the pipeline's rounds) each rule sees each node once:
a second round over a graph the first round left unchanged costs one lookup
per node, not one rule application.
"""
from __future__ import annotations

import contextlib
import contextvars

from ..graph import Node
from ..primitives import make_broadcast, make_map
from ..traversal import as_node_list, topological_order

MAX_LOCAL_REWRITES = 16

_memos: contextvars.ContextVar = contextvars.ContextVar("rewrite_memos", default=None)


@contextlib.contextmanager
def remembered_rules():
    """Within the block, remember what each rule made of each node (per thread; forgotten on exit)."""
    token = _memos.set({} if _memos.get() is None else _memos.get())
    try:
        yield
    finally:
        _memos.reset(token)


def rebuild(node: Node, args) -> Node:
    """`node` with new arguments (same op, attrs and shape)."""
    args = tuple(args)
    if all(a is b for a, b in zip(args, node.args)):
        return node
    if node.op == "map":  # its arguments may no longer broadcast to its shape (an unused one dropped)
        rebuilt = make_map(node.attr("body"), args, node.dtype)
        return rebuilt if rebuilt.shape == node.shape else make_broadcast(rebuilt, node.shape)
    return Node(node.op, args, node.attrs, node.shape, node.dtype, node.location)


def rewrite(outputs, rule) -> list:
    """Apply `rule` to every node, arguments first; returns the rewritten outputs."""
    outputs = as_node_list(outputs)
    memos = _memos.get()
    memo = {} if memos is None else memos.setdefault(rule, {})
    replaced = {}
    from ..label_ranges import transfer_requirement
    for node in topological_order(outputs):
        new = rebuild(node, [replaced[a] for a in node.args])
        transfer_requirement(node, new, replaced)  # a gather rebuilt over new arguments still checks its ids
        result = memo.get(new)
        if result is None:
            result = memo[new] = _settle(new, node, rule, memo)
        replaced[node] = result
    return [replaced[n] for n in outputs]


def _settle(new: Node, node: Node, rule, memo: dict) -> Node:
    """`new` rewritten by `rule` until it no longer applies (at most MAX_LOCAL_REWRITES times)."""
    for _ in range(MAX_LOCAL_REWRITES):
        known = memo.get(new)
        if known is not None:
            return known
        candidate = rule(new)
        if candidate is None or candidate is new:
            memo[new] = new
            return new
        if candidate.shape != node.shape:
            raise AssertionError(f"rule {rule.__name__} changed shape {node.shape} -> {candidate.shape}")
        new = candidate
    return new


def count_nodes(outputs) -> int:
    return len(topological_order(outputs))
