"""How graph leaves, sizes and constants are named in printed mathematics.

Both forms of ``to_sympy`` share these names, so a reader (and a test) can bind
values to the symbols of any printed expression the same way:

- a scalar leaf ``a`` is ``Symbol("a", real=True)``;
- a symbolic dimension ``"batch"`` is the size ``N_batch`` (a positive integer);
- a scalar constant is the exact number it was written as (float32 ``0.1`` is ``1/10``).

``in_standard_functions`` writes the opaque scalar functions (Sigmoid, Relu,
Where, ...) in sympy's own functions, which evaluate on numbers; the matrix
form uses it when it evaluates an entrywise map on explicit matrices.
"""
from __future__ import annotations

import functools

import numpy as np
import sympy

from .. import scalar_functions as sf
from ..scalar_functions import Less


def dim_symbol(name: str) -> sympy.Symbol:
    """The size of the symbolic dimension `name`."""
    return sympy.Symbol(f"N_{name}", integer=True, positive=True)


def size(dim) -> sympy.Expr:
    """A shape entry (int or dimension name) as a sympy size."""
    return dim_symbol(dim) if isinstance(dim, str) else sympy.Integer(dim)


def scalar_leaf(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


def is_scalar_like(shape) -> bool:
    """() or all ones: one value, printed as a scalar."""
    return all(d == 1 for d in shape)


def exact_number(value, dtype) -> sympy.Expr:
    """A NumPy scalar as the shortest exact number that rounds to it in `dtype`."""
    value = np.asarray(value, dtype=dtype).reshape(())
    kind = value.dtype.kind
    if kind == "b":
        return sympy.Integer(int(value))
    if kind in "iu":
        return sympy.Integer(int(value))
    if np.isnan(value):
        return sympy.nan
    if np.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    text = np.format_float_positional(value[()], unique=True, trim="-")
    return sympy.Rational(text)


def _always_true_for_reals(expr) -> bool:
    """|u| < oo: how stable code guards against infinities; every real number passes."""
    return isinstance(expr, Less) and isinstance(expr.args[0], sympy.Abs) and expr.args[1] == sympy.oo


def for_reading(body: sympy.Expr) -> sympy.Expr:
    """A map body with the finiteness guards of stable code removed (exact for real values)."""
    if not body.has(Less):
        return body
    return body.replace(_always_true_for_reals, lambda e: sympy.S.One)


def _indicator(condition):
    return sympy.Piecewise((1, condition), (0, True))


# The opaque functions of scalar_functions by their definitions in sympy's functions (by class name).
STANDARD_DEFINITIONS = {
    "Sigmoid": lambda u: 1 / (1 + sympy.exp(-u)),
    "Softplus": lambda u: sympy.log(1 + sympy.exp(u)),
    "Step": lambda u: _indicator(u > 0),
    "Relu": lambda u: sympy.Piecewise((u, u > 0), (0, True)),
    "Greater": lambda a, b: _indicator(a > b),
    "GreaterEqual": lambda a, b: _indicator(a >= b),
    "Less": lambda a, b: _indicator(a < b),
    "LessEqual": lambda a, b: _indicator(a <= b),
    "Equal": lambda a, b: _indicator(sympy.Eq(a, b)),
    "NotEqual": lambda a, b: _indicator(sympy.Ne(a, b)),
    "Where": lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)),
    "Maximum": lambda a, b: sympy.Piecewise((a, a >= b), (b, True)),
    "Minimum": lambda a, b: sympy.Piecewise((a, a <= b), (b, True)),
}


def is_opaque(expr) -> bool:
    """A call of one of scalar_functions' opaque functions."""
    return isinstance(expr, sympy.Function) and getattr(sf, type(expr).__name__, None) is type(expr)


def _in_standard_form(expr):
    """One opaque call by its definition; without one, on numbers, the value of its NumPy reference."""
    name = type(expr).__name__
    if name in STANDARD_DEFINITIONS:
        return STANDARD_DEFINITIONS[name](*expr.args)
    if name in sf.NUMPY_IMPLEMENTATIONS and all(a.is_number for a in expr.args):
        value = sf.NUMPY_IMPLEMENTATIONS[name](*[float(a) for a in expr.args])
        return sympy.Float(float(np.asarray(value)))
    return expr


def in_standard_functions(expr):
    """`expr` with the opaque functions of scalar_functions written so that sympy evaluates them."""
    return expr.replace(is_opaque, _in_standard_form)


@functools.lru_cache(maxsize=1024)
def evaluable(function: sympy.Lambda) -> sympy.Lambda:
    """The Lambda `function` in standard functions: applied to numbers, it gives a number."""
    return sympy.Lambda(function.variables, in_standard_functions(function.expr))
