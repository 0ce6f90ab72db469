"""Elementwise graphs as exact scalar formulas with indexed leaves.

A graph qualifies when every tensor in it has one common shape S (the batch)
or holds a single value: maps, broadcasts of scalars, and sums over all of S.
A leaf of shape S is ``t[i]`` (a sympy ``Indexed``), a scalar leaf is ``a``,
and a sum over the batch is a sympy ``Sum`` over its index:

    2*Sum((a*sin(b*t[i]) + c - y[i])*sin(b*t[i]), (i, 0, N_batch - 1))

Common numeric factors are pulled out (``sympy.factor_terms``: exact and cheap,
unlike ``simplify``).

A node of shape S itself prints as its i-th element (the free index ``i``).
An intermediate nested deeper than ``nesting.MAX_NESTING`` levels is written as
a symbol (``H1`` or ``H1[i]``) with its definition listed.
"""
from __future__ import annotations

import sympy

from ..graph import scalar_symbol
from .nesting import MAX_NESTING, Namer, fresh_names, written_with_names
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


def sample_expression(output, order, define: dict, max_depth: int | None = MAX_NESTING):
    """``(formula, parts)`` of `output` (raises NotElementwise when the graph does not qualify).

    When an intermediate would nest deeper than `max_depth` levels, intermediates are
    written as symbols (``H1`` for a single value, ``H1[i]`` for an element of the
    batch; see ``nesting.Namer``): `parts` lists them, arguments first, each with
    its ``definition`` (max_depth=None: never).
    """
    return written_with_names(lambda namer: _sample_expression(output, order, define, namer),
                              output, order, define, max_depth)


def _sample_expression(output, order, define: dict, namer: Namer):
    from .matrix_form import Part
    translator = _SampleTranslator(order, define)
    values, hidden = {}, []
    names = fresh_names("H", translator.reserved)
    for node in order:
        values[node] = translator.translate(node, values)
        if namer.named(node, values[node], translator.define):
            name = next(names)
            hidden.append((name, node, values[node]))
            translator.define = {**translator.define, node: name}
            values[node] = translator.leaf(node, name)
    parts = []
    for name, node, definition in hidden:
        indices = dict(zip(translator.free, translator.unused_indices(definition)))
        symbol = translator.leaf(node, name).xreplace(indices)
        arguments = tuple(values[a] for a in node.args)  # as built (descriptions use the definition)
        parts.append(Part(name, node, symbol, arguments, "an intermediate of a deep graph",
                          sympy.factor_terms(definition.xreplace(indices))))
    return sympy.factor_terms(translator.name_free_indices(values[output])), parts
