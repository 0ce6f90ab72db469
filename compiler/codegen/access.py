"""How a kernel reads a buffer: layout ops folded into index arithmetic.

A kernel iterates over an index space (its output shape, or its input shape for
a reduction). Broadcast, transpose, slice, pad and size-1 reshapes never copy:
they change which element of a source buffer an iteration point reads. For
every dimension of the buffer's view, the source index is

    source[d] = iteration[axis] + offset      (axis None: a constant index)

and a padded dimension is bounds-checked (out of range reads 0; the index is
clamped first, so generated code never reads out of bounds).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from ..graph import Node


@dataclass(frozen=True)
class Buffer:
    """A NumPy array the program reads or writes: one pointer in the program's buffer table."""

    index: int
    shape: tuple
    dtype: str
    role: str  # "input", "param", "const", "output", "temp"
    name: str


@dataclass(frozen=True)
class DimIndex:
    axis: int | None
    offset: int = 0
    checked: bool = False


@dataclass(frozen=True)
class Access:
    """Element (source index per view dim) of `buffer` viewed with shape `view_shape` (contiguous)."""

    buffer: Buffer
    view_shape: tuple
    dims: tuple  # DimIndex per view dim

    @property
    def checked(self) -> bool:
        return any(d.checked for d in self.dims)


def identity_mapping(ndim: int) -> tuple:
    return tuple(DimIndex(a) for a in range(ndim))


def through_broadcast(out_mapping: tuple, source_shape: tuple, out_shape: tuple) -> tuple:
    """Mapping of a source that NumPy-broadcasts to out_shape."""
    lead = len(out_shape) - len(source_shape)
    result = []
    for j, d in enumerate(source_shape):
        if d == 1 and out_shape[j + lead] != 1:
            result.append(DimIndex(None))
        else:
            result.append(out_mapping[j + lead])
    return tuple(result)


def through_layout(node: Node, out_mapping: tuple):
    """Mapping of node.args[0] given node's mapping, or None when it needs a copy."""
    op, source = node.op, node.args[0]
    if op == "stop_gradient":
        return out_mapping
    if op == "broadcast":
        return through_broadcast(out_mapping, source.shape, node.shape)
    if op == "transpose":
        perm = node.attr("perm")
        result = [None] * len(perm)
        for i, p in enumerate(perm):
            result[p] = out_mapping[i]
        return tuple(result)
    if op == "slice":
        return tuple(DimIndex(m.axis, m.offset + s, m.checked) for m, s in zip(out_mapping, node.attr("starts")))
    if op == "pad":
        return tuple(DimIndex(m.axis, m.offset - lo, m.checked or bool(lo or hi))
                     for m, lo, hi in zip(out_mapping, node.attr("low"), node.attr("high")))
    if op == "reshape":
        return _through_unit_reshape(source.shape, node.shape, out_mapping)
    raise AssertionError(op)


def _through_unit_reshape(source_shape, out_shape, out_mapping):
    """A reshape that only inserts or removes size-1 dims keeps the mapping; others: None."""
    kept_out = [m for d, m in zip(out_shape, out_mapping) if d != 1]
    if [d for d in source_shape if d != 1] != [d for d in out_shape if d != 1]:
        return None
    if any(m.checked for d, m in zip(out_shape, out_mapping) if d == 1):
        return None  # a padded unit dim (concat, stack, slice gradients) would lose its bounds check
    kept = iter(kept_out)
    return tuple(DimIndex(None) if d == 1 else next(kept) for d in source_shape)


def size_expr(dim) -> sympy.Expr:
    """A dimension as a sympy integer (named dims become positive integer symbols)."""
    return sympy.Integer(dim) if isinstance(dim, int) else sympy.Symbol(dim, integer=True, positive=True)


def contiguous_strides(shape) -> list:
    strides, running = [], sympy.Integer(1)
    for d in reversed(shape):
        strides.append(running)
        running = running * size_expr(d)
    return list(reversed(strides))


def linear_form(access: Access, ndim: int):
    """(coefficient per iteration axis, constant offset) in elements, ignoring bounds checks."""
    coefs = [sympy.Integer(0)] * ndim
    offset = sympy.Integer(0)
    for stride, m in zip(contiguous_strides(access.view_shape), access.dims):
        if m.axis is not None:
            coefs[m.axis] += stride
        offset += m.offset * stride
    return coefs, offset
