"""Numerical stability rewrites of map bodies (a phase of its own, run on
backward graphs too): overflow-prone forms a user may write become the
stable opaque functions.

    log(1 + exp(x))    -> Softplus(x)
    1 / (1 + exp(-x))  -> Sigmoid(x)
    exp(x) / (1 + exp(x)) -> Sigmoid(x)
    log(Sigmoid(x))    -> -Softplus(-x)
    log(1 - Sigmoid(x)) -> -Softplus(x)
    exp(x) * Sigmoid(-x) -> Sigmoid(x)     (what the second rule leaves of the third,
                                            and how the gradient of log(1 + exp(x)) reads)
    exp(x) / (1 + exp(x))**2 -> Sigmoid(x) * Sigmoid(-x)   (the gradient of either sigmoid
                                            written out; exp(x) * (...) is distributed when
                                            that removes every exp; such a gradient spans
                                            more maps, so a body dividing by (.. exp ..)**2
                                            is also composed GRADIENT_DEPTH deep)

Targeted sympy ``replace`` rules only: ``sympy.simplify`` is slow and can
make numerics worse.
"""
from __future__ import annotations

import functools

import sympy

from ..graph import Node
from ..primitives import make_map
from ..scalar_functions import Sigmoid, Softplus
from .identities import compose_maps
from .rewrite import rewrite

STABILIZE_DEPTH = 3
GRADIENT_DEPTH = 6

_a = sympy.Wild("a")


@functools.lru_cache(maxsize=4096)
def _stabilize_expr(expr: sympy.Expr) -> sympy.Expr:
    """The stable form of a body. Remembered: bodies are written in canonical symbols (x0, x1, ...), so
    the steps of an unrolled loop repeat the same few, and sympy's matching is the slow part."""
    rules = [
        (sympy.log(1 + sympy.exp(_a)), lambda a: Softplus(a)),
        (1 / (1 + sympy.exp(-_a)), lambda a: Sigmoid(a)),
        (sympy.exp(_a) / (1 + sympy.exp(_a)), lambda a: Sigmoid(a)),
        (sympy.log(Sigmoid(_a)), lambda a: -Softplus(-a)),
        (sympy.log(1 - Sigmoid(_a)), lambda a: -Softplus(a)),
    ]
    for pattern, build in rules:
        if expr.has(sympy.exp) or expr.has(Sigmoid):
            expr = _replace(expr, pattern, build)
    if expr.has(sympy.exp):
        expr = expr.replace(lambda e: _sigmoid_derivative(e) is not None, _sigmoid_derivative)
    if expr.has(sympy.exp) and expr.has(Sigmoid):
        expr = expr.replace(lambda e: _exp_times_sigmoid(e) is not None, _exp_times_sigmoid)
    if expr.has(sympy.exp) and expr.has(Sigmoid):  # exp(a) * (Sigmoid(-a) - ...): distribute, if that removes exp
        expanded = sympy.expand(expr, deep=False)
        expanded = expanded.replace(lambda e: _exp_times_sigmoid(e) is not None, _exp_times_sigmoid)
        if not expanded.has(sympy.exp):
            expr = expanded
    return expr


def _sigmoid_derivative(e):
    """c * exp(a) / (1 + exp(a))**2 -> c * Sigmoid(a) * Sigmoid(-a), or None (the derivative of
    either written-out sigmoid: inf/inf = NaN once exp(a) overflows)."""
    if not e.is_Mul:
        return None
    factors = list(e.args)
    for i, f in enumerate(factors):
        if f.func != sympy.exp:
            continue
        for j, p in enumerate(factors):
            if p.is_Pow and p.exp == -2 and p.base == 1 + f:
                rest = [factors[k] for k in range(len(factors)) if k not in (i, j)]
                return sympy.Mul(*rest) * Sigmoid(f.args[0]) * Sigmoid(-f.args[0])
    return None


def _exp_times_sigmoid(e):
    """exp(a) * Sigmoid(-a) * rest -> Sigmoid(a) * rest, or None when e has no such pair."""
    if not e.is_Mul:
        return None
    factors = list(e.args)
    for i, s in enumerate(factors):
        if not isinstance(s, Sigmoid):
            continue
        for j, f in enumerate(factors):
            if f.func == sympy.exp and f.args[0] == -s.args[0]:
                rest = [factors[k] for k in range(len(factors)) if k not in (i, j)]
                return sympy.Mul(*rest) * Sigmoid(f.args[0])
    return None


def _replace(expr, pattern, build):
    head, needs_exp = pattern.func, pattern.has(sympy.exp)

    def visit(e):
        if e.func != head or (needs_exp and not e.has(sympy.exp)):
            return None  # cannot match: sympy's match is slow, most subexpressions are ruled out here
        match = e.match(pattern)
        if match is not None and _a in match:
            return build(match[_a])
        return None
    return expr.replace(lambda e: visit(e) is not None, lambda e: visit(e))


def _stabilize(node: Node):
    """Stabilize the body, composed with the maps it reads (patterns span several maps)."""
    if node.op != "map" or not _reads_an_exp(node, GRADIENT_DEPTH):
        return None
    body, args = compose_maps(node, depth=STABILIZE_DEPTH)
    if not (body.has(sympy.exp) or body.has(Sigmoid)):
        return None
    stable = _stabilize_expr(body)
    if stable == body and _divides_by_squared_exp(body):
        # a sigmoid's gradient spans more maps than the forward pattern (the cotangent, a negation,
        # the square): look deeper, and keep the result only if it removed an exp
        deep_body, deep_args = compose_maps(node, depth=GRADIENT_DEPTH)
        deep_stable = _stabilize_expr(deep_body)
        if _count_exp(deep_stable) < _count_exp(deep_body):
            stable, args = deep_stable, deep_args
    if stable == body:
        return None
    return make_map(stable, args, node.dtype)


def _reads_an_exp(node: Node, depth: int) -> bool:
    """Whether an exp or a sigmoid occurs in the body of `node` or of the maps composition would
    substitute into it, `depth` levels down (composing only substitutes: it never makes one)."""
    if node.op != "map":
        return False
    body = node.attr("body")
    if body.has(sympy.exp) or body.has(Sigmoid):
        return True
    return depth > 0 and any(_reads_an_exp(arg, depth - 1) for arg in node.args)


def _divides_by_squared_exp(body) -> bool:
    """Whether body has a (... exp ...)**-2: the shape of a written-out sigmoid's derivative."""
    return any(p.exp == -2 and p.base.has(sympy.exp) for p in body.atoms(sympy.Pow))


def _count_exp(expr) -> int:
    return sum(1 for e in sympy.preorder_traversal(expr) if isinstance(e, sympy.exp))


def stabilize(outputs) -> list:
    """Rewrite overflow-prone elementwise forms into stable ones."""
    return rewrite(outputs, _stabilize)
