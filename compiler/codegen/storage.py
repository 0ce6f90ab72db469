"""Which nodes get a buffer of their own: where a long chain of maps is cut (``chain_breaks``),
which loop computes a map used several times (``shared_map_homes``), which cheap maps each user
recomputes (``recomputable``), and which maps read repeatedly are stored (``read_repeatedly``).
"""
from __future__ import annotations

import functools

import numpy as np
import sympy

from .. import scalar_functions as sf
from ..graph import Node
from ..primitives import ops_lowered_as
from .access import Index

LAYOUT_OPS = ops_lowered_as("index")  # read through index arithmetic, never run alone

SHARED_TREE_LIMIT = 4096
STORED_OPS = ("sum", "max", "bmm", "scan", "attention")  # always computed into a buffer of their own
CHAIN_LIMIT = 64


def chain_breaks(order, outputs: set) -> set:
    """Nodes stored in a buffer of their own, computed in graph order before anything else, so
    that no kernel's expression (nor the recursion building it) spans more than CHAIN_LIMIT
    nodes: a chain of 20,000 maps becomes loops of at most 64 maps each, built bottom-up."""
    depth, breaks = {}, set()
    for node in order:
        if node.is_leaf or node.op in STORED_OPS:  # a kernel's expression starts again after them
            depth[node] = 0
            continue
        depth[node] = 1 + max((depth[arg] for arg in node.args), default=0)
        if depth[node] > CHAIN_LIMIT and node not in outputs:
            breaks.add(node)
            depth[node] = 0
    return breaks



def shared_map_homes(order, outputs) -> dict:
    """Map used several times -> the root node of the one loop that computes all its uses.

    Such a map is read by maps (or a reduction) of one loop at the same index, so
    that loop computes it once. Written as a tree, a body grows with every shared
    use (``h + f(h)`` doubles it); past SHARED_TREE_LIMIT leaves a map is stored
    instead, so compile time stays linear in the graph.
    """
    users = {node: [] for node in order}
    for node in order:
        for arg in dict.fromkeys(node.args):
            users[arg].append(node)
    stored = set(outputs)
    while True:
        root = {}
        for node in reversed(order):
            root[node] = node
            if node.op != "map" or node in stored:
                continue
            homes = set()
            for user in users[node]:
                if user.op == "map" and user.shape == node.shape:
                    homes.add(root[user])
                elif user.op in ("sum", "max"):
                    homes.add(user)
                else:
                    homes = None
                    break
            if homes and len(homes) == 1:
                root[node] = homes.pop()
        tree, too_big = {}, None
        for node in order:
            tree[node] = 1 + sum(tree[arg] for arg in node.args if root[arg] is root[node]) \
                if node.op == "map" else 1
            if too_big is None and tree[node] > SHARED_TREE_LIMIT and root[node] is not node:
                too_big = node
        if too_big is None:
            return {node: home for node, home in root.items() if home is not node and len(users[node]) > 1}
        stored.add(too_big)


CHEAP_OPS = 2
CHEAP_FUNCTIONS = (sf.Relu,)  # one vector max: a ReLU after a bias add is recomputed, not stored (its pooling
                              # and its derivative read the product and the bias instead)


def recomputable(node: Node) -> bool:
    """A map so cheap that each user recomputes it rather than reading a stored copy:
    a few arithmetic operations on tensors that are stored anyway (a bias add read by
    both an activation and its derivative; a ReLU of one, read by a pooling and by its
    derivative, when no read under it is transposed: ``_recompute_cost``)."""
    return _recompute_cost(node, nested=False) <= CHEAP_OPS


@functools.lru_cache(maxsize=1 << 16)
def _recompute_cost(node: Node, nested: bool) -> float:
    """Operations of a map and of the maps under it down to stored values; inf when not cheap. A
    nest of maps (`nested`, or a map argument here) must read its stored values in order: a
    transposed read, repeated by every recomputation, costs more than storing the result once.
    Remembered (nodes are immutable): the scheduler asks again for every read of a map."""
    cost = _body_cost(node.attr("body"))
    if cost > CHEAP_OPS:
        return float("inf")
    sources = []
    for arg in node.args:
        transposed = False
        while arg.op in LAYOUT_OPS:
            transposed |= arg.op == "transpose" and arg.attr("perm")[-1] != arg.ndim - 1
            arg = arg.args[0]
        if not (arg.is_leaf or arg.op in STORED_OPS or arg.op == "map"):
            return float("inf")
        sources.append((arg, transposed))
    nested = nested or any(arg.op == "map" for arg, _ in sources)
    for arg, transposed in sources:
        if nested and transposed:
            return float("inf")
        if arg.op == "map":
            cost += _recompute_cost(arg, nested=True)
        if cost > CHEAP_OPS:
            return float("inf")
    return cost


@functools.lru_cache(maxsize=1 << 14)
def _body_cost(body) -> float:
    """sympy's operation count of a body, inf if it calls a function that is not cheap (bodies are
    written in canonical symbols, so the maps of a deep graph share a few)."""
    if any(type(f) not in CHEAP_FUNCTIONS for f in body.atoms(sympy.Function)):
        return float("inf")
    return sympy.count_ops(body)


def _computed(node: Node) -> bool:
    """Whether reading `node` computes something: a map, possibly behind layout ops."""
    while node.op in LAYOUT_OPS:
        node = node.args[0]
    return node.op == "map"


REPEAT_STORE_MIN = 1024  # elements per sample (symbolic sizes aside) from which a map read repeatedly is stored


def read_repeatedly(node: Node, mapping: Index, space: tuple) -> bool:
    """Whether a loop over `space` would compute each element of a large, costly map (three or more
    arguments, or a computed one) more than once: the read ignores a loop axis of size > 1 (a
    pooling window's cotangent spread over its taps), so inlining repeats the whole expression."""
    heavy = len(node.args) >= 3 or any(_computed(arg) for arg in node.args)
    if not heavy:  # a few operations on loaded values: recomputing is cheaper than storing
        return False
    used = {axis for d in mapping.dims for axis, _ in d.terms}
    if all(size == 1 for axis, size in enumerate(space) if axis not in used):
        return False
    return int(np.prod([d for d in node.shape if isinstance(d, int)])) >= REPEAT_STORE_MIN
