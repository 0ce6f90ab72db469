"""Algebraic identities on tensor nodes.

- a map of maps whose composed body is no larger collapses (``-(-x)`` is ``x``,
  ``(x*2)/2`` is ``x``); ``x*1`` and ``x+0`` already vanish when built
- ``transpose(transpose(x))`` is one transpose (or none)
- ``broadcast(broadcast(x))`` is one broadcast
- ``sum(broadcast(x))`` over broadcast axes is ``x`` times the count
"""
from __future__ import annotations

import sympy

from ..graph import Node, scalar_symbol
from ..primitives import (canonical_args, make_broadcast, make_map, make_reshape, make_transpose, rename_symbols,
                          size_of)
from .rewrite import rewrite


def _composable(arg: Node, node: Node, depth: int) -> bool:
    """Whether `arg`'s body is substituted into `node`'s (a map of `node`'s dtype on operands of its own)."""
    return depth > 0 and arg.op == "map" and arg.dtype == node.dtype and all(a.dtype == arg.dtype for a in arg.args)


def compose_maps(node: Node, depth: int = 1):
    """Substitute argument maps (up to `depth` levels) into `node`'s body: (body, args), each arg once."""
    args, subs = [], {}
    for i, arg in enumerate(node.args):
        if _composable(arg, node, depth):
            inner_body, inner_args = compose_maps(arg, depth - 1)
            offset = len(args)
            args.extend(inner_args)
            subs[scalar_symbol(i)] = rename_symbols(
                inner_body, {scalar_symbol(j): sympy.Symbol(f"t{offset + j}", real=True) for j in range(len(inner_args))})
        else:
            subs[scalar_symbol(i)] = sympy.Symbol(f"t{len(args)}", real=True)
            args.append(arg)
    composed = node.attr("body").xreplace(subs)
    composed = composed.xreplace({sympy.Symbol(f"t{k}", real=True): scalar_symbol(k) for k in range(len(args))})
    return canonical_args(composed, args)


def _operands(node: Node, depth: int = 1) -> set:
    """The nodes `compose_maps(node, depth)` reads before sympy's algebra runs on the composed body."""
    found = set()
    for arg in node.args:
        found |= _operands(arg, depth - 1) if _composable(arg, node, depth) else {arg}
    return found


def _collapse_maps(node: Node):
    if node.op != "map" or not any(a.op == "map" for a in node.args):
        return None
    composed, args = compose_maps(node)
    # canonical_args merges a repeated operand after the algebra ran ((a k) / k is t0 t1 / t2 with t1 and t2
    # both k: renamed x0 x1 / x1, that is x0), so count the operands the composed body still reads
    read = {a for i, a in enumerate(args) if scalar_symbol(i) in composed.free_symbols}
    if len(read) < len(_operands(node)):
        return None  # the algebra cancelled an operand (4 c / c is 4): an inf, nan or 0 there would change that
    before = sympy.count_ops(node.attr("body"))
    if sympy.count_ops(composed) >= before and not composed.is_Symbol:
        return None
    result = make_map(composed, args, node.dtype)
    return result if result.shape == node.shape else None


def _transposes(node: Node):
    if node.op != "transpose" or node.args[0].op != "transpose":
        return None
    inner = node.args[0]
    outer_perm, inner_perm = node.attr("perm"), inner.attr("perm")
    return make_transpose(inner.args[0], tuple(inner_perm[p] for p in outer_perm))


def _broadcasts(node: Node):
    if node.op == "broadcast" and node.args[0].op == "broadcast":
        return make_broadcast(node.args[0].args[0], node.shape)
    return None


def _sum_of_broadcast(node: Node):
    if node.op != "sum" or node.args[0].op != "broadcast":
        return None
    source, target = node.args[0].args[0], node.args[0].shape
    axes = node.attr("axes")
    lead = len(target) - source.ndim
    if not all(a < lead or source.shape[a - lead] == 1 for a in axes):
        return None
    count = size_of(target, axes, node.dtype)
    padded = (1,) * lead + source.shape
    reduced = make_reshape(source, tuple(d for i, d in enumerate(padded) if i not in axes))
    broadcast = make_broadcast(reduced, node.shape)
    if isinstance(count, Node):
        return make_map(scalar_symbol(0) * scalar_symbol(1), [broadcast, count], node.dtype)
    return make_map(scalar_symbol(0) * count, [broadcast], node.dtype)


RULES = (_collapse_maps, _transposes, _broadcasts, _sum_of_broadcast)


def _any_rule(node: Node):
    for rule in RULES:
        result = rule(node)
        if result is not None and result is not node:
            return result
    return None


def algebraic_identities(outputs) -> list:
    """Apply the identities above until none applies."""
    return rewrite(outputs, _any_rule)
