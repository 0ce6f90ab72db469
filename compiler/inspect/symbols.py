"""How graph leaves, sizes and constants are named in printed mathematics.

Both forms of ``to_sympy`` share these names, so a reader (and a test) can bind
values to the symbols of any printed expression the same way:

- a scalar leaf ``a`` is ``Symbol("a", real=True)``;
- a symbolic dimension ``"batch"`` is the size ``N_batch`` (a positive integer);
- a scalar constant is the exact number it was written as (float32 ``0.1`` is ``1/10``).
"""
from __future__ import annotations

import numpy as np
import sympy

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
