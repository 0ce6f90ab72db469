"""Reverse-mode differentiation as a graph-to-graph transform.

Each primitive has one vector-Jacobian rule written with primitives (its
``vjp`` in ``primitives``), so a gradient is an ordinary graph: it prints,
simplifies, compiles, and can be differentiated again (Hessian-vector
products). A map's derivative is
``sympy.diff`` of its body; where the derivative contains the forward body
itself (``exp``, ``tanh``, ``Sigmoid``) it is rewritten to read the forward
output instead of recomputing it (``1 - y**2``, ``y*(1 - y)``).

Conventions (PyTorch's): relu'(0) = 0; ``maximum``/``minimum`` split a tie's
gradient evenly between both arguments; the gradient of a ``max`` reduction is split evenly
among tied maxima; integer and bool tensors get no gradient.
"""
from __future__ import annotations

import sympy

from .dtypes import is_float
from .errors import GraphError
from .graph import Node, scalar_symbol
from .primitives import lookup, make_map, zeros_like
from .traversal import as_node_list, check_unique_names, topological_order

def grad(y: Node, wrt):
    """Gradient of the scalar `y` with respect to a node or a list of nodes (same shapes)."""
    single = isinstance(wrt, Node)
    targets = as_node_list(wrt)
    if not isinstance(y, Node) or y.shape != ():
        raise GraphError(f"grad: y must be a scalar node (shape ()), got {getattr(y, 'shape', type(y).__name__)}")
    if not is_float(y.dtype):
        raise GraphError(f"grad: y must be floating point, got {y.dtype}")
    order = topological_order(y)
    check_unique_names([n for n in order if n.op in ("input", "param")])
    cotangents = backward(order, y, make_map(sympy.Integer(1), [y], y.dtype))
    results = []
    for t in targets:
        g = cotangents.get(t)
        if g is None:
            g = zeros_like(t)
        results.append(g)
    return results[0] if single else results


def backward(order, y, seed) -> dict:
    """Cotangent of every node in `order` that y depends on differentiably."""
    from .scan import scan_siblings, scan_vjp
    cotangents = {y: seed}
    siblings = scan_siblings(order)
    for node in reversed(order):
        if node in siblings:  # the results of one loop: differentiated together, at the earliest
            if node is not siblings[node][0]:
                continue
            gs = [cotangents.get(s) for s in siblings[node]]
            if all(g is None for g in gs):
                continue
            contributions = scan_vjp(siblings[node], gs)
        else:
            g = cotangents.get(node)
            if g is None or node.is_leaf:
                continue
            contributions = lookup(node.op).vjp(node, g)
        for arg, contribution in zip(node.args, contributions):
            if contribution is None or not is_float(arg.dtype):
                continue
            if contribution.dtype != arg.dtype:
                contribution = make_map(scalar_symbol(0), [contribution], arg.dtype)
            previous = cotangents.get(arg)
            cotangents[arg] = contribution if previous is None else make_map(
                scalar_symbol(0) + scalar_symbol(1), [previous, contribution], arg.dtype)
    return cotangents
