"""Constant folding: nodes computed only from small constants become constants,
and scalar constants are written into the bodies of the maps that use them.

Folding evaluates with NumPy, so ``1.0 / const(0)`` becomes inf and ``0 / const(0)``
nan, as IEEE says. A constant is not written into a body where sympy would
turn it into something else than IEEE arithmetic: a zero divisor (sympy's
``zoo``), and NaN and infinities (sympy folds ``x * nan`` to ``nan`` and
``x + oo`` to ``oo``, for any x); those stay tensor arguments."""
from __future__ import annotations

import numpy as np
import sympy

from ..graph import Node, const, scalar_symbol
from ..primitives import make_broadcast, make_map, rename_symbols
from ..evaluate import _evaluate_node
from .rewrite import rewrite

MAX_FOLDED_SIZE = 4096


def _folds(node: Node) -> bool:
    if node.is_leaf or not node.args or any(a.op != "const" for a in node.args):
        return False
    return all(isinstance(d, int) for d in node.shape) and int(np.prod(node.shape)) <= MAX_FOLDED_SIZE


def _fold(node: Node):
    if not _folds(node):
        return None
    with np.errstate(all="ignore"):
        value = _evaluate_node(node, [a.attr("value").array for a in node.args], {}, {})
    return const(np.asarray(value, dtype=node.dtype), node.dtype)


def _scalar_value(node: Node):
    """The one value of a constant whose elements are all equal (seen through broadcast and reshape)."""
    while node.op in ("broadcast", "reshape"):
        node = node.args[0]
    if node.op != "const":
        return None
    array = node.attr("value").array
    if array.size == 0 or array.dtype.kind not in "fiub":
        return None
    first = array.reshape(-1)[0]
    if array.size > 1 and not np.all(array == first):
        return None
    value = first.item()
    if isinstance(value, float):
        if not np.isfinite(value):
            return None  # sympy's nan and oo are not IEEE's (x + oo is oo even for x = nan): not inlined
        return sympy.Rational(repr(value)) if float(repr(value)) == value else sympy.Float(value, 17)
    return sympy.Integer(int(value))


def _inline(node: Node):
    if node.op != "map":
        return None
    body, args, changed = node.attr("body"), list(node.args), False
    computed_in, remaining = np.result_type(*[a.dtype for a in args]), set(range(len(args)))
    for i, arg in enumerate(node.args):
        value = _scalar_value(arg)
        others = [args[j].dtype for j in remaining if j != i]
        # a constant is exact in the map only if the arguments left still decide the dtype it computes in
        if value is not None and others and np.result_type(*others) == computed_in:
            inlined = body.xreplace({scalar_symbol(i): value})
            if inlined.has(sympy.zoo):  # a division by a zero constant: NumPy computes it at run time
                continue
            if (body.free_symbols - {scalar_symbol(i)}) - inlined.free_symbols:
                continue  # x * 0 would drop x, whose inf or nan must still give nan
            if value == 0 and any(inlined.count(s) < body.count(s) for s in body.free_symbols - {scalar_symbol(i)}):
                continue  # x * 0 + x would be x: the term with x * 0 (nan for an inf x) cancelled
            body = inlined
            remaining.discard(i)
            changed = True
    if not changed:
        return None
    kept = [a for i, a in enumerate(args) if scalar_symbol(i) in body.free_symbols]
    renumber = {scalar_symbol(i): scalar_symbol(kept.index(a)) for i, a in enumerate(args)
                if scalar_symbol(i) in body.free_symbols}
    result = make_map(rename_symbols(body, renumber), kept, node.dtype)
    return result if result.shape == node.shape else make_broadcast(result, node.shape)


def fold_constants(outputs) -> list:
    """Evaluate operations whose inputs are all (small) constants."""
    return rewrite(outputs, _fold)


def inline_scalar_constants(outputs) -> list:
    """Write scalar constants into map bodies (``x * const(1)`` becomes ``x``)."""
    return rewrite(outputs, _inline)
