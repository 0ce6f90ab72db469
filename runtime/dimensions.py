"""Sizes of symbolic dimensions: a name (``"batch"``) or a product of names and one
integer (``"batch*16"``, what a reshape of ``("batch", 16, 8)`` to ``(-1, 8)`` gives).
Shared by the compiler and the runtime, so it imports neither."""
from __future__ import annotations

import math


def dim_parts(dim: str) -> tuple:
    """(integer factor, names) of a symbolic dimension: "batch*16" -> (16, ("batch",))."""
    factor, names = 1, []
    for part in dim.split("*"):
        if part.isdigit():
            factor *= int(part)
        else:
            names.append(part)
    return factor, tuple(names)


def dim_value(dim, dims: dict) -> int:
    """The size of a dimension given the value of every named one."""
    if isinstance(dim, int):
        return dim
    if "*" not in dim:
        return dims[dim]
    factor, names = dim_parts(dim)
    return factor * math.prod(dims[name] for name in names)


def concrete(shape, dims: dict) -> tuple:
    return tuple(dim_value(d, dims) for d in shape)


def dim_names(shape) -> list:
    """The named dimensions a shape's sizes depend on, in order, each once."""
    names = []
    for d in shape:
        if isinstance(d, str):
            names.extend(n for n in dim_parts(d)[1] if n not in names)
    return names
