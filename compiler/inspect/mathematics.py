"""A node of the graph -- a model, a loss, a gradient -- as mathematics.

``to_sympy(node)`` returns an exact sympy expression of the node's value in one
of two forms, chosen automatically:

- **elementwise** (every tensor has one common shape, the batch, or is a
  scalar): a scalar formula with indexed leaves, sums over the batch as sympy
  ``Sum``. The gradient of ``sum((a*sin(b*t) + c - y)**2)`` by ``a`` is
  ``Sum(2*(a*sin(b*t[i]) + c - y[i])*sin(b*t[i]), (i, 0, N_batch - 1))``;
  a node of the batch's shape prints as its element ``[i]``.
- **matrix** (anything else of rank <= 2): a matrix-calculus expression
  (``MatrixSymbol``, ``MatMul``, ``Transpose``, ``HadamardProduct``,
  ``HadamardPower``, activations applied entrywise, ``1 b^T`` for a broadcast
  bias, ``M^T 1`` for a sum over rows); see ``matrix_form``.

Names: leaves keep their names; a symbolic dimension ``batch`` has size
``N_batch``. ``define={node: "H"}`` prints chosen intermediate nodes as named
symbols, which keeps the gradients of deep models short.

The expression is exact, not a picture: substituting values for its symbols
and evaluating it (``lambdify``, or ``doit``/``as_explicit`` for matrices)
gives the graph's value for finite inputs. (The one liberty taken: the
``|m| < oo`` guards that stable code puts around a max-shift are dropped,
being true for every real number.) ``stop_gradient`` prints as the value it
passes on.

``latex`` and ``pretty`` print it with sympy's printers; their keyword
settings pass through (``latex(node, mul_symbol="dot")`` gives text that
sympy's LaTeX parser reads back unambiguously).
"""
from __future__ import annotations

import sympy

from ..graph import Node
from .matrix_form import NoMatrixForm, matrix_expression
from .sample_form import NotElementwise, sample_expression

FORMS = (None, "elementwise", "matrix")


def _order(output: Node, define: dict) -> list:
    """Nodes `output` depends on, arguments first, not looking behind defined nodes."""
    order, seen, stack = [], set(), [(output, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        if node not in define:
            stack.extend((a, False) for a in reversed(node.args) if a not in seen)
    return order


def _check_define(define) -> dict:
    define = dict(define or {})
    for node, name in define.items():
        if not isinstance(node, Node) or not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"define maps graph nodes to names (identifiers), got {node!r}: {name!r}")
    if len(set(define.values())) != len(define):
        raise ValueError(f"define gives one name to two nodes: {sorted(define.values())}")
    return define


def to_sympy(node, form: str | None = None, define: dict | None = None):
    """The exact sympy expression of `node` (a list of nodes gives a list).

    form: None (elementwise when the graph allows it, else matrix), "elementwise" or "matrix".
    define: {node: name} prints those nodes as symbols called name.
    """
    if form not in FORMS:
        raise ValueError(f"to_sympy: form must be one of {FORMS}, got {form!r}")
    if isinstance(node, (list, tuple)):
        return [to_sympy(n, form, define) for n in node]
    if not isinstance(node, Node):
        raise TypeError(f"to_sympy expects a graph node, got {type(node).__name__}")
    define = _check_define(define)
    order = _order(node, define)
    if form != "matrix":
        try:
            return sample_expression(node, order, define)
        except NotElementwise as reason:
            if form == "elementwise":
                raise ValueError(f"to_sympy: the graph of {node!r} is not elementwise ({reason}); "
                                 "use form='matrix'") from None
    try:
        return matrix_expression(node, order, define)
    except NoMatrixForm as reason:
        raise NoMatrixForm(f"to_sympy: cannot write {node!r} in matrix notation: {reason}. "
                           "Pass define={node: 'name'} to print such a part as a symbol.") from None


def latex(node, form: str | None = None, define: dict | None = None, **settings) -> str:
    """LaTeX of ``to_sympy(node)``; `settings` go to ``sympy.latex``."""
    return sympy.latex(to_sympy(node, form, define), **settings)


def pretty(node, form: str | None = None, define: dict | None = None, **settings) -> str:
    """sympy's two-dimensional text picture of ``to_sympy(node)``; `settings` go to ``sympy.pretty``."""
    return sympy.pretty(to_sympy(node, form, define), **settings)
