"""Models written as sympy formulas.

``from_sympy(A*exp(-k*t)*cos(w*t + p), inputs=[t], params=[A, k, w, p])``
makes each input symbol an ``Input(name, ("batch",))``, each parameter symbol
a scalar ``Param(name, ())``, and the formula one map node over them: the
per-sample model, batched. It differentiates, prints, compiles and trains
like any other graph; ``compiler.leaves(node)`` lists the leaves it created.
"""
from __future__ import annotations

import sympy

from ..errors import GraphError
from ..graph import INITIALIZERS, Input, Node, Param, scalar_symbol
from ..primitives import make_map
from ..scalar_functions import Maximum, Minimum

DEFAULT_INIT = "ones"


def _names(symbols, role: str) -> list:
    if isinstance(symbols, (sympy.Symbol, str)):
        symbols = [symbols]
    names = []
    for s in symbols:
        name = s.name if isinstance(s, sympy.Symbol) else s
        if not isinstance(name, str) or not name.isidentifier():
            raise GraphError(f"from_sympy: {role} must be sympy Symbols or identifier strings, got {s!r}")
        names.append(name)
    return names


def _pairwise(function, args):
    """sympy's n-ary Max/Min as the graph's two-argument Maximum/Minimum (same values)."""
    result = args[0]
    for a in args[1:]:
        result = function(result, a)
    return result


def _graph_vocabulary(expr):
    return expr.replace(sympy.Max, lambda *a: _pairwise(Maximum, a)).replace(
        sympy.Min, lambda *a: _pairwise(Minimum, a))


def _check_expression(expr):
    if not isinstance(expr, sympy.Expr) or isinstance(expr, sympy.MatrixExpr) or expr.is_Matrix:
        raise GraphError(f"from_sympy: expected a scalar sympy expression, got {type(expr).__name__}: {expr}")
    for kind in (sympy.Derivative, sympy.Integral, sympy.Sum, sympy.Product, sympy.Indexed):
        if expr.has(kind):
            raise GraphError(f"from_sympy: {kind.__name__} in {expr} cannot be a map body; "
                             "evaluate it first (doit()) or write it with elementary functions")


def _init_for(name: str, init):
    chosen = init.get(name, DEFAULT_INIT) if isinstance(init, dict) else init
    if not (callable(chosen) or chosen in INITIALIZERS):
        raise GraphError(f"from_sympy: init for {name!r} must be one of {', '.join(INITIALIZERS)} "
                         f"or a callable (shape, rng) -> ndarray, got {chosen!r}")
    return chosen


def from_sympy(expr, inputs=(), params=(), dtype="float32", init=DEFAULT_INIT, batch="batch") -> Node:
    """The batched graph node computing the scalar formula `expr` per sample.

    inputs: symbols (or names) fed per sample, each becomes Input(name, (batch,)).
    params: symbols (or names) to fit, each becomes a scalar Param(name, ()).
    init: one initializer for every parameter, or {name: initializer} (default "ones").
    Every free symbol of `expr` must be listed in inputs or params.
    """
    expr = sympy.sympify(expr)
    _check_expression(expr)
    input_names, param_names = _names(inputs, "inputs"), _names(params, "params")
    for name in set(input_names) & set(param_names):
        raise GraphError(f"from_sympy: {name!r} is listed both as an input and as a parameter")
    if isinstance(init, dict):
        for name in set(init) - set(param_names):
            raise GraphError(f"from_sympy: init names {name!r}, which is not a parameter ({', '.join(param_names)})")
    by_name = {s.name: s for s in expr.free_symbols}
    unknown = sorted(set(by_name) - set(input_names) - set(param_names))
    if unknown:
        raise GraphError(f"from_sympy: the expression {expr} uses {', '.join(unknown)}, which "
                         f"{'is' if len(unknown) == 1 else 'are'} neither an input nor a parameter; "
                         f"list {'it' if len(unknown) == 1 else 'them'} in inputs=[...] or params=[...]")
    leaves = [Input(n, (batch,), dtype) for n in input_names]
    leaves += [Param(n, (), _init_for(n, init), dtype) for n in param_names]
    body = expr.xreplace({by_name[leaf.name]: scalar_symbol(k) for k, leaf in enumerate(leaves) if leaf.name in by_name})
    return make_map(_graph_vocabulary(body), leaves, dtype, op_name="from_sympy")
