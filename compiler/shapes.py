"""Static shapes with named symbolic dimensions.

A dimension is an int or a string (``"batch"``) bound when values are given.
Rules follow NumPy; a symbolic dimension only matches itself or 1.
"""
from __future__ import annotations

import math
import numbers
from collections import Counter

from runtime.dimensions import dim_names, dim_parts

from .errors import fail

Shape = tuple


def canonical_shape(shape, op: str) -> Shape:
    if isinstance(shape, str) or _is_index(shape):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise fail(op, f"shape must be a tuple of ints and dimension names, got {shape!r}") from None
    for d in dims:
        if not (isinstance(d, str) or _is_index(d)) or (_is_index(d) and d < 0):
            raise fail(op, f"bad dimension {d!r} in shape {shape!r}: expected an int >= 0 or a name")
    return tuple(d if isinstance(d, str) else int(d) for d in dims)


def broadcast_shapes(op: str, *shapes: Shape) -> Shape:
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(ndim):
        dims = {s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise fail(op, "shapes " + " and ".join(str(s) for s in shapes) + " do not broadcast")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def normalize_axes(axis, ndim: int, op: str) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if _is_index(axis) else tuple(axis)
    out = []
    for a in axes:
        if not _is_index(a) or not -ndim <= a < ndim:
            raise fail(op, f"axis {a!r} out of range for a tensor of rank {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise fail(op, f"repeated axis in {axis!r}")
    return tuple(sorted(out))


def _is_index(value) -> bool:
    """An int or a NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def size_factors(shape: Shape):
    """(product of int dims and factors, Counter of dimension names): the size of a shape."""
    n, names = 1, Counter()
    for d in shape:
        if isinstance(d, int):
            n *= d
        else:
            factor, parts = dim_parts(d)
            n *= factor
            names.update(parts)
    return n, names


def product_dim(factor: int, names: Counter):
    """The dimension of size factor * product of names: an int, a name, or "batch*16"."""
    if not names or factor == 0:
        return factor
    text = "*".join(sorted(names.elements()))
    return text if factor == 1 else f"{text}*{factor}"


def canonical_dim(d):
    """A product written by hand ("16*batch") in the one form the compiler compares."""
    if isinstance(d, str) and "*" in d:
        factor, names = dim_parts(d)
        return product_dim(factor, Counter(names))
    return d


def reshape_target(old: Shape, new, op: str = "reshape") -> Shape:
    """Resolve `new` against `old`; sizes must agree. One entry may be -1, inferred as NumPy does; with
    symbolic dims it may be a product: ("batch", 16, 8) to (-1, 8) gives ("batch*16", 8), which can
    also be written out."""
    new = tuple(new)
    inferred_at = [k for k, d in enumerate(new) if _is_index(d) and d == -1]
    if len(inferred_at) > 1:
        raise fail(op, f"only one -1 allowed in {new!r}")
    known = iter(canonical_dim(d) for d in canonical_shape(tuple(d for k, d in enumerate(new) if k not in inferred_at), op))
    new = tuple(-1 if k in inferred_at else next(known) for k in range(len(new)))
    known = tuple(d for d in new if d != -1)
    old_int, old_sym = size_factors(old)
    new_int, new_sym = size_factors(known)
    if -1 in new:
        missing_sym = old_sym - new_sym
        if new_sym - old_sym or (new_int and old_int % new_int) or (new_int == 0):
            raise fail(op, f"cannot reshape {old} (size {describe_size(old)}) to {new}: no -1 makes the sizes agree")
        inferred = product_dim(old_int // new_int, missing_sym)
        new = tuple(inferred if d == -1 else d for d in new)
    elif old_int != new_int or old_sym != new_sym:
        raise fail(op, f"cannot reshape {old} (size {describe_size(old)}) to {new} (size {describe_size(new)})")
    return new


def describe_size(shape: Shape) -> str:
    n, sym = size_factors(shape)
    return "*".join([str(n)] + sorted(sym.elements())) if sym else str(n)


def symbolic_dims(shape: Shape) -> list:
    """The dimension names a shape's sizes depend on ("batch*16" depends on "batch")."""
    return dim_names(shape)
