"""Reverse-mode differentiation as a graph-to-graph transform.

Each primitive has one vector-Jacobian rule written with primitives, so a
gradient is an ordinary graph: it prints, simplifies, compiles, and can be
differentiated again (Hessian-vector products). A map's derivative is
``sympy.diff`` of its body; where the derivative contains the forward body
itself (``exp``, ``tanh``, ``Sigmoid``) it is rewritten to read the forward
output instead of recomputing it (``1 - y**2``, ``y*(1 - y)``).

Conventions: relu'(0) = 0; ``maximum``/``minimum`` send a tie's gradient to
the first argument; the gradient of a ``max`` reduction is split evenly
among tied maxima; integer and bool tensors get no gradient.
"""
from __future__ import annotations

from functools import lru_cache

import sympy

from .dtypes import is_float
from .errors import GraphError
from .graph import (Node, const, make_broadcast, make_einsum, make_map, make_pad, make_reduce,
                    make_reshape, make_slice, make_transpose, rename_symbols, scalar_symbol, slice_steps)
from . import scalar_functions as sf
from .traversal import as_node_list, check_unique_names, topological_order

_OUT = sympy.Symbol("y_out", real=True)
_COTANGENT = sympy.Symbol("g_in", real=True)


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


def zeros_like(x: Node) -> Node:
    return make_broadcast(const(0.0, x.dtype if is_float(x.dtype) else "float32"), x.shape)


def backward(order, y, seed) -> dict:
    """Cotangent of every node in `order` that y depends on differentiably."""
    cotangents = {y: seed}
    for node in reversed(order):
        g = cotangents.get(node)
        if g is None or node.is_leaf or node.op == "stop_gradient":
            continue
        for arg, contribution in zip(node.args, VJP[node.op](node, g)):
            if contribution is None or not is_float(arg.dtype):
                continue
            if contribution.dtype != arg.dtype:
                contribution = make_map(scalar_symbol(0), [contribution], arg.dtype)
            previous = cotangents.get(arg)
            cotangents[arg] = contribution if previous is None else make_map(
                scalar_symbol(0) + scalar_symbol(1), [previous, contribution], arg.dtype)
    return cotangents


def unbroadcast(g: Node, shape: tuple) -> Node:
    """Sum g over the axes along which an operand of `shape` was broadcast."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    return make_reshape(make_reduce("sum", g, axes), shape)


def _keepdims_shape(x: Node, axes) -> tuple:
    return tuple(1 if i in axes else d for i, d in enumerate(x.shape))


def _expand(g: Node, x: Node, axes) -> Node:
    """Broadcast the cotangent of a reduction over `axes` back to x's shape."""
    return make_broadcast(make_reshape(g, _keepdims_shape(x, axes)), x.shape)


# ---- one rule per primitive ------------------------------------------------------------------

def _vjp_map(node, g):
    body = node.attr("body")
    out = []
    for i, arg in enumerate(node.args):
        partial = map_partial(body, i, len(node.args)) if is_float(arg.dtype) else None
        if partial is None:
            out.append(None)
            continue
        expr, uses_output = partial
        args = [g] + list(node.args) + ([node] if uses_output else [])
        contribution = make_map(expr, args, node.dtype)
        out.append(unbroadcast(contribution, arg.shape))
    return out


@lru_cache(maxsize=4096)
def map_partial(body, i: int, nargs: int):
    """Body of the map computing a map's cotangent contribution to its argument i, over
    (cotangent, the map's arguments..., [its output]), and whether it reads the output;
    None where the derivative is 0. Cached: a chain of equal layers differentiates one body."""
    # torch's conventions where the calculus has none: DiracDelta is 0, d(x**y)/dy is 0 at x = 0 (sf.derivative)
    derivative = sf.derivative(body, scalar_symbol(i))
    if derivative == 0:
        return None
    uses_output = not body.is_Symbol and derivative.has(body)
    if uses_output:
        derivative = derivative.xreplace({body: _OUT})
    expr = _COTANGENT * derivative
    symbols = [_COTANGENT] + [scalar_symbol(j) for j in range(nargs)] + ([_OUT] if uses_output else [])
    renamed = {s: scalar_symbol(k) for k, s in enumerate(symbols)}
    return rename_symbols(expr, renamed), uses_output


def _vjp_sum(node, g):
    return [_expand(g, node.args[0], node.attr("axes"))]


def _vjp_max(node, g):
    x, axes = node.args[0], node.attr("axes")
    m = _expand(node, x, axes)
    is_max = make_map(sf.Equal(scalar_symbol(0), scalar_symbol(1)), [x, m], x.dtype)
    count = _expand(make_reduce("sum", is_max, axes), x, axes)
    share = make_map(sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), scalar_symbol(2) / scalar_symbol(3), 0),
                     [x, m, _expand(g, x, axes), count], x.dtype)
    return [share]


def _vjp_einsum(node, g):
    inputs, out = node.attr("spec").split("->")
    terms = inputs.split(",")
    result = []
    for k, (term, operand) in enumerate(zip(terms, node.args)):
        others = [(t, a) for j, (t, a) in enumerate(zip(terms, node.args)) if j != k]
        available = set(out).union(*[set(t) for t, _ in others])
        reachable = "".join(c for c in term if c in available)
        spec = ",".join([out] + [t for t, _ in others]) + "->" + reachable
        partial = make_einsum(spec, g, *[a for _, a in others])
        if reachable != term:
            partial = make_broadcast(make_reshape(partial, tuple(d if c in available else 1 for c, d in zip(term, operand.shape))),
                                     operand.shape)
        result.append(partial)
    return result


def _vjp_reshape(node, g):
    return [make_reshape(g, node.args[0].shape)]


def _vjp_transpose(node, g):
    perm = node.attr("perm")
    inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
    return [make_transpose(g, inverse)]


def _vjp_broadcast(node, g):
    return [unbroadcast(g, node.args[0].shape)]


def _vjp_slice(node, g):
    """The cotangent scattered back to the sliced positions, zeros elsewhere: reversed where the
    step is negative, spread by reshape-and-pad where it is not 1, then padded into place."""
    x = node.args[0]
    for axis, (start, step, size) in enumerate(zip(node.attr("starts"), slice_steps(node), x.shape)):
        count = g.shape[axis]
        if isinstance(size, str):
            continue
        if count == 0:
            return [zeros_like(x)]
        if step < 0:
            g = make_slice(g, _at(g, axis, count - 1, 0), _at(g, axis, -1, g.shape), _at(g, axis, -1, 1))
            start, step = start + (count - 1) * step, -step
        if step > 1:
            g = _spread(g, axis, step)
        used = g.shape[axis]
        g = make_pad(g, _at(g, axis, start, 0), _at(g, axis, size - start - used, 0))
    return [g]


def _at(node, axis, value, rest):
    """A per-axis tuple: `value` at `axis`, `rest` (a number, or a shape to copy) elsewhere."""
    return tuple(value if i == axis else (rest[i] if isinstance(rest, tuple) else rest) for i in range(node.ndim))


def _spread(g, axis, step):
    """g with step-1 zeros after each element along axis (but the last): (.., m, ..) -> (.., (m-1)*step+1, ..)."""
    m = g.shape[axis]
    expanded = make_reshape(g, g.shape[:axis + 1] + (1,) + g.shape[axis + 1:])
    padded = make_pad(expanded, (0,) * (g.ndim + 1), tuple(step - 1 if i == axis + 1 else 0 for i in range(g.ndim + 1)))
    flat = make_reshape(padded, g.shape[:axis] + (m * step,) + g.shape[axis + 1:])
    used = (m - 1) * step + 1
    return make_slice(flat, (0,) * g.ndim, _at(g, axis, used, flat.shape))


def _vjp_pad(node, g):
    x, low = node.args[0], node.attr("low")
    stops = tuple(lo + d if isinstance(d, int) else d for lo, d in zip(low, x.shape))
    return [make_slice(g, low, stops)]


def _vjp_concat(node, g):
    axis, offset, parts = node.attr("axis"), 0, []
    for x in node.args:
        starts = tuple(offset if i == axis else 0 for i in range(x.ndim))
        stops = tuple(offset + x.shape[axis] if i == axis else d for i, d in enumerate(g.shape))
        parts.append(make_slice(g, starts, stops))
        offset += x.shape[axis]
    return parts


VJP = {
    "map": _vjp_map,
    "sum": _vjp_sum,
    "max": _vjp_max,
    "einsum": _vjp_einsum,
    "reshape": _vjp_reshape,
    "transpose": _vjp_transpose,
    "broadcast": _vjp_broadcast,
    "slice": _vjp_slice,
    "pad": _vjp_pad,
    "concat": _vjp_concat,
}
