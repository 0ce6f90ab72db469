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
and evaluating it gives the graph's value for finite inputs (``lambdify`` for
the elementwise form; for the matrix form ``expr.subs({W: Matrix(...), ...,
N_batch: n}).doit()``, which sympy evaluates by itself). (The one liberty taken: the
``|m| < oo`` guards that stable code puts around a max-shift are dropped,
being true for every real number.) ``stop_gradient`` prints as the value it
passes on.

``latex`` and ``pretty`` print it with sympy's printers; their keyword
settings pass through (``latex(node, mul_symbol="dot")`` gives text that
sympy's LaTeX parser reads back unambiguously).

Deep graphs: no walk here recurses per node, and no expression nests deeper
than a bound (``nesting.MAX_NESTING`` = 40 levels, plus one node's own formula),
because sympy recurses per level when it builds, prints or evaluates one. When
an intermediate would nest deeper, the graph is written with intermediates as
symbols ``H1``, ``H2``, ... (each layer of a chain, each shared intermediate,
each partial sum of many terms; see ``nesting.Namer``), and their definitions
are available in order: ``to_sympy(node, definitions=d)`` fills the dict ``d``
with ``{H1: expression, ...}``, ``formula(node).definitions`` is the same
mapping, and ``latex``, ``pretty`` and ``formula(node).text()`` list them under
"where". Substituting values into the definitions in order, then into the
expression, gives the graph's value. A graph within the bound is written
exactly as before, without such symbols.

``formula(node)`` goes on where the matrix notation ends: each node it cannot
write (a tensor of rank 3, a slice, ...) becomes a named symbol (T1, T2, ...),
listed with the operation that makes it; ``symprop inspect --format math``
prints that.
"""
from __future__ import annotations

from typing import NamedTuple

import sympy
from sympy.printing.pretty.stringpict import prettyForm

from ..graph import Node, scalar_symbol
from ..show import format_shape, node_label
from .matrix_form import NoMatrixForm, matrix_expression
from .matrix_notation import shown_as
from .nesting import MAX_NESTING, check_max_depth
from .sample_form import NotElementwise, sample_expression
from .symbols import for_reading

FORMS = (None, "elementwise", "matrix")


def _as_written(output: Node, define: dict) -> tuple:
    """(output, define) with every surrogate replaced by the expression whose gradient it carries (equal
    in value: cross_entropy's one-hot selection for its gathered logits, max pooling's selection)."""
    from ..passes.rewrite import rebuild
    from ..traversal import topological_order
    order = topological_order(output)
    if not any(n.op == "surrogate" for n in order):
        return output, define
    written = {}
    for n in order:
        written[n] = written[n.args[1]] if n.op == "surrogate" else rebuild(n, [written[a] for a in n.args])
    return written[output], {written.get(n, n): name for n, name in define.items()}


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


_RECENT: dict = {}  # (node, form, define, name_parts, max_depth) -> (expression, parts), newest last
RECENT_LIMIT = 16  # the views of a node (to_sympy, latex, pretty, formula) share its conversion


def _expression(node, form, define, name_parts: bool, max_depth=MAX_NESTING):
    """``(expression, parts)``: with name_parts=False, parts are only deep intermediates. Nodes are
    immutable, so a conversion is remembered: a deep graph's takes seconds, and each view asks for it."""
    if form not in FORMS:
        raise ValueError(f"to_sympy: form must be one of {FORMS}, got {form!r}")
    if not isinstance(node, Node):
        raise TypeError(f"to_sympy expects a graph node, got {type(node).__name__}")
    define = _check_define(define)
    check_max_depth(max_depth)
    key = (node, form, frozenset(define.items()), name_parts, max_depth)
    if key in _RECENT:
        expr, parts = _RECENT[key]
        return expr, list(parts)
    expr, parts = _converted(node, form, define, name_parts, max_depth)
    _RECENT[key] = (expr, tuple(parts))
    while len(_RECENT) > RECENT_LIMIT:
        del _RECENT[next(iter(_RECENT))]
    return expr, list(parts)


def _converted(node, form, define, name_parts: bool, max_depth):
    node, define = _as_written(node, define)
    order = _order(node, define)
    if form != "matrix":
        try:
            return sample_expression(node, order, define, max_depth)
        except NotElementwise as reason:
            if form == "elementwise":
                raise ValueError(f"to_sympy: the graph of {node!r} is not elementwise ({reason}); "
                                 "use form='matrix'") from None
    try:
        return matrix_expression(node, order, define, name_parts, max_depth)
    except NoMatrixForm as reason:
        raise NoMatrixForm(f"to_sympy: cannot write {node!r} in matrix notation: {reason}. "
                           "Pass define={node: 'name'} to print such a part as a symbol.") from None


def _definitions(parts) -> dict:
    return {part.symbol: part.definition for part in parts if part.definition is not None}


def to_sympy(node, form: str | None = None, define: dict | None = None, definitions: dict | None = None,
             max_depth: int | None = MAX_NESTING):
    """The exact sympy expression of `node` (a list of nodes gives a list).

    form: None (elementwise when the graph allows it, else matrix), "elementwise" or "matrix".
    define: {node: name} prints those nodes as symbols called name.

    Deep graphs: when an intermediate's expression would nest deeper than `max_depth`
    levels (default ``MAX_NESTING`` = 40), intermediates are written as symbols
    ``H1``, ``H2``, ... (a ``MatrixSymbol`` in the matrix form; ``H1[i]`` or a scalar
    ``H1`` in the elementwise form): every one past the bound, every one used twice
    (a layer of a chain and its use in the backward pass) and every long partial
    sum (``nesting.Namer``). No expression is then deeper than about that bound, and
    sympy prints and evaluates it under Python's default recursion limit. Pass a dict
    as `definitions` to receive ``{symbol: expression}`` for those symbols, in
    dependency order (each definition uses only leaves and earlier symbols), so
    substituting values into the definitions in order and then into the result
    gives the node's value; ``formula(node).definitions`` is the same mapping.
    Shallow graphs (every expression within the bound) have no such symbols and
    their expression does not depend on the bound. ``max_depth=None`` never
    names an intermediate (a very deep graph then exceeds the recursion limit).
    """
    if isinstance(node, (list, tuple)):
        if definitions is not None:
            raise TypeError("to_sympy: definitions=... takes one node (the symbols H1, ... of two nodes would clash)")
        return [to_sympy(n, form, define, max_depth=max_depth) for n in node]
    if definitions is not None and not isinstance(definitions, dict):
        raise TypeError(f"to_sympy: definitions must be a dict to fill, got {type(definitions).__name__}")
    expr, parts = _expression(node, form, define, name_parts=False, max_depth=max_depth)
    if definitions is not None:
        definitions.update(_definitions(parts))
    return expr


class Formula(NamedTuple):
    """A node as mathematics: its expression and the parts written as symbols in it."""
    expr: sympy.Basic
    parts: tuple

    @property
    def definitions(self) -> dict:
        """{symbol: expression} of the deep intermediates written as symbols (H1, H2, ...), in order."""
        return _definitions(self.parts)

    def text(self, style: str = "pretty") -> str:
        """The expression printed ("pretty", "latex" or "str"), then one line per named part."""
        show = _PRINTERS[style]
        lines = [show(self.expr)]
        if self.parts:
            lines.append(r"\text{where}" if style == "latex" else "where")
            lines.extend(_describe(part, style) for part in self.parts)
        return "\n".join(lines)


def formula(node, form: str | None = None, define: dict | None = None, max_depth: int | None = MAX_NESTING) -> Formula:
    """``to_sympy(node)`` that does not stop where the notation does.

    Each node the matrix notation cannot express (a tensor of rank 3, a slice, ...)
    is written as a symbol: a leaf by its name, another node as T1, T2, ...; a
    part of rank <= 2 is a ``MatrixSymbol`` the formula uses like any leaf.
    An intermediate nested deeper than `max_depth` levels is a symbol H1, H2, ...
    with its expression as the part's ``definition`` (see ``to_sympy``).
    ``parts`` lists them all, arguments first, each with the operation that makes it
    (or its definition).
    """
    expr, parts = _expression(node, form, define, name_parts=True, max_depth=max_depth)
    return Formula(expr, tuple(parts))


def _one_line_pretty(expr) -> str:
    text = sympy.pretty(expr)
    return text if "\n" not in text else sympy.sstr(expr)


_PRINTERS = {"pretty": sympy.pretty, "latex": sympy.latex, "str": sympy.sstr}
_LINE_PRINTERS = {"pretty": _one_line_pretty, "latex": sympy.latex, "str": sympy.sstr}


def _kind(shape) -> str:
    return {0: "scalar", 1: "vector", 2: "matrix"}.get(len(shape), "tensor")


def _stand_in(argument):
    """A map argument as the body's variable: scalars and symbols as they are, matrices shown."""
    if isinstance(argument, (sympy.MatrixExpr, sympy.MatrixBase)):
        return shown_as(argument, bare=isinstance(argument, sympy.MatrixSymbol))
    return argument


def _describe(part, style: str) -> str:
    """name = how it is made : its shape and kind (one line)."""
    show, node = _LINE_PRINTERS[style], part.node
    label = (lambda text: r"\text{%s}" % text.replace("_", r"\_")) if style == "latex" else str
    if part.definition is not None:
        made = show(part.definition)
    elif node.op in ("input", "param"):
        made = label(f"{node.op} {node.dtype}")
    elif node.op == "map":
        body = for_reading(node.attr("body"))
        made = show(body.xreplace({scalar_symbol(k): _stand_in(a) for k, a in enumerate(part.arguments)}))
    else:
        arguments = ", ".join(show(a) for a in part.arguments)
        made = label(node_label(node)) + (r"\left(%s\right)" % arguments if style == "latex" else f"({arguments})")
    what = f"a {format_shape(node.shape)} {_kind(node.shape)}"
    if style == "latex":
        return r"%s = %s \quad \text{(%s)}" % (show(part.symbol), made, what.replace("_", r"\_"))
    return f"  {show(part.symbol)} = {made}   ({what})"


class _Definition(sympy.Basic):
    """``symbol = expression``, printed by sympy's pretty printer with the two sides aligned."""

    def _pretty(self, printer):
        symbol, expr = self.args
        return prettyForm(*printer._print(symbol).right(" = ", printer._print(expr)))


def latex(node, form: str | None = None, define: dict | None = None, **settings) -> str:
    """LaTeX of ``to_sympy(node)``; `settings` go to ``sympy.latex``.

    For a deep graph (see ``to_sympy``) the expression is followed by a line
    ``\\text{where}`` and one line ``H_{1} = ...`` per intermediate.
    """
    show = lambda expr: sympy.latex(expr, **settings)  # noqa: E731
    definitions = None if isinstance(node, (list, tuple)) else {}
    text = show(to_sympy(node, form, define, definitions=definitions))
    if not definitions:
        return text
    return "\n".join([text, r"\text{where}", *(f"{show(symbol)} = {show(expr)}" for symbol, expr in definitions.items())])


def pretty(node, form: str | None = None, define: dict | None = None, **settings) -> str:
    """sympy's two-dimensional text picture of ``to_sympy(node)``; `settings` go to ``sympy.pretty``.

    For a deep graph (see ``to_sympy``) the picture is followed by "where" and
    each intermediate's definition (``H1 = ...``).
    """
    show = lambda expr: sympy.pretty(expr, **settings)  # noqa: E731
    definitions = None if isinstance(node, (list, tuple)) else {}
    text = show(to_sympy(node, form, define, definitions=definitions))
    if not definitions:
        return text
    lines = [text, "where"]
    for symbol, expr in definitions.items():
        lines.append(show(_Definition(symbol, expr)))
    return "\n".join(lines)
