"""Elementwise graphs as exact scalar formulas with indexed leaves.

A graph qualifies when every tensor in it has one common shape S (the batch)
or holds a single value: maps, broadcasts of scalars, and sums over all of S.
A leaf of shape S is ``t[i]`` (a sympy ``Indexed``), a scalar leaf is ``a``,
and a sum over the batch is a sympy ``Sum`` over its index:

    2*Sum((a*sin(b*t[i]) + c - y[i])*sin(b*t[i]), (i, 0, N_batch - 1))

Common numeric factors are pulled out (``sympy.factor_terms``: exact and cheap,
unlike ``simplify``).

A node of shape S itself prints as its i-th element (the free index ``i``).
"""
from __future__ import annotations

import sympy

from ..graph import scalar_symbol
from .symbols import dim_symbol, exact_number, for_reading, is_scalar_like, scalar_leaf, size

INDEX_NAMES = ("i", "j", "k", "l", "m", "n", "p", "q", "r", "s")


class NotElementwise(Exception):
    """The graph mixes tensors of different shapes: it needs the matrix form."""


def common_shape(order) -> tuple:
    shapes = {n.shape for n in order if not is_scalar_like(n.shape)}
    if len(shapes) > 1:
        raise NotElementwise(f"tensors of shapes {sorted(map(str, shapes))}")
    return shapes.pop() if shapes else ()


class _SampleTranslator:
    def __init__(self, order, define: dict):
        self.shape = common_shape(order)
        self.define = define
        self.free = [sympy.Dummy(f"i{k}", integer=True) for k in range(len(self.shape))]
        self.reserved = {n.name for n in order if n.name} | set(define.values())

    def leaf(self, node, name):
        if is_scalar_like(node.shape):
            return scalar_leaf(name)
        return sympy.IndexedBase(name, real=True)[tuple(self.free)]

    def translate(self, node, values):
        if node in self.define:
            return self.leaf(node, self.define[node])
        op, args = node.op, [values[a] for a in node.args]
        if op in ("input", "param"):
            return self.leaf(node, node.name)
        if op == "dim":
            return dim_symbol(node.name)
        single = is_scalar_like(node.shape)
        if op == "const":
            if not single:
                raise NotElementwise(f"a constant of shape {node.shape}")
            array = node.attr("value").array
            return exact_number(array.reshape(()), array.dtype)
        if op == "map":
            return for_reading(node.attr("body")).xreplace({scalar_symbol(k): v for k, v in enumerate(args)})
        if op == "einsum" and all(is_scalar_like(a.shape) for a in node.args):
            return sympy.Mul(*args)
        source_single = bool(node.args) and is_scalar_like(node.args[0].shape)
        if op in ("stop_gradient",) or (op in ("broadcast", "reshape", "transpose", "max") and source_single):
            return args[0]
        if op == "sum":
            if source_single:
                return args[0]
            if sorted(node.attr("axes")) == list(range(len(self.shape))):
                return self.sum_over_batch(args[0])
        raise NotElementwise(f"{op} from {[a.shape for a in node.args]} to {node.shape}")

    def unused_indices(self, expr) -> list:
        bound = {str(v) for s in expr.atoms(sympy.Sum) for v in s.variables}
        names = [n for n in INDEX_NAMES if n not in bound and n not in self.reserved]
        return [sympy.Symbol(n, integer=True) for n in names[:len(self.shape)]]

    def sum_over_batch(self, summand):
        indices = self.unused_indices(summand)
        summand = summand.xreplace(dict(zip(self.free, indices)))
        return sympy.Sum(summand, *[(i, 0, size(d) - 1) for i, d in zip(indices, self.shape)])

    def name_free_indices(self, expr):
        return expr.xreplace(dict(zip(self.free, self.unused_indices(expr))))


def sample_expression(output, order, define: dict) -> sympy.Expr:
    """The exact formula of `output` (raises NotElementwise when the graph does not qualify)."""
    translator = _SampleTranslator(order, define)
    values = {}
    for node in order:
        values[node] = translator.translate(node, values)
    return sympy.factor_terms(translator.name_free_indices(values[output]))
