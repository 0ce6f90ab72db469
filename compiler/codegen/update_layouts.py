"""In-place updates grouped into loops: targets of one dtype and element count that hold their
elements in the same order (size-1 axes aside, or reshaped with axes kept whole) share one loop
over their common layout; a read of a target is in place when it reads the element the loop writes.
"""
from __future__ import annotations

import numpy as np
import sympy

from .access import Access, Affine, Index, contiguous_strides, identity_index, linear_form


def writes_element_read(access: Access, space: tuple) -> bool:
    """Whether `access` reads, at each point of a loop over `space`, the element the loop stores
    there (contiguous, in order): an in-place update reads it before writing it."""
    coefs, offset = linear_form(access, len(space))
    return not access.index.valid and offset == 0 and all(
        sympy.expand(c - s) == 0 for c, s in zip(coefs, contiguous_strides(space)))


def update_loops(updates) -> list:
    """[(space, dtype, [(target, value)])]: the in-place updates grouped into loops. Targets of a
    dtype and element count share a loop over their common layout when there is one, else those
    of one shape without its size-1 axes do."""
    groups: dict = {}
    for target, value in updates:
        groups.setdefault((_element_key(target.shape), target.dtype), []).append((target, value))
    loops = []
    for (_, dtype), items in groups.items():
        space = common_layout([t.shape for t, _ in items])
        if space is not None:
            loops.append((space, dtype, items))
            continue
        squeezed: dict = {}
        for target, value in items:
            squeezed.setdefault(_squeezed(target.shape), []).append((target, value))
        loops += [(shape, dtype, group) for shape, group in squeezed.items()]
    return loops


def _squeezed(shape: tuple) -> tuple:
    return tuple(d for d in shape if d != 1)


def _element_key(shape: tuple):
    """Element count of a static shape; a symbolic one's own shape without its size-1 axes."""
    if all(isinstance(d, int) for d in shape):
        return int(np.prod(shape)) or shape  # an empty one: its own loop
    return _squeezed(shape)


def common_layout(shapes) -> tuple | None:
    """The coarsest shape that every contiguous shape of `shapes` (one element count) reshapes
    from without mixing its axes: every axis of each shape is a run of its axes, so one index into
    it is affine in the loop's ((1, 64), (64, 1) -> (64,); (64, 10), (640,) -> (64, 10);
    (64, 10), (10, 64) -> None). Symbolic shapes share one only when equal without size-1 axes."""
    if not all(isinstance(d, int) for shape in shapes for d in shape):
        return _squeezed(shapes[0]) if len({_squeezed(s) for s in shapes}) == 1 else None
    total = int(np.prod(shapes[0]))
    if total == 0:
        return shapes[0] if len(set(shapes)) == 1 else None
    cuts = sorted({int(np.prod(shape[a + 1:])) for shape in shapes for a, d in enumerate(shape) if d != 1})
    if any(outer % inner for inner, outer in zip(cuts, cuts[1:] + [total])):
        return None
    return tuple(outer // inner for inner, outer in reversed(list(zip(cuts, cuts[1:] + [total]))))


def layout_index(shape: tuple, space: tuple) -> Index:
    """The index into a contiguous `shape` of the element a contiguous loop over `space` (its
    common_layout with others) is at: each axis of `shape` is a run of the loop's axes."""
    if tuple(shape) == tuple(space):
        return identity_index(len(shape))
    if not all(isinstance(d, int) for d in shape):  # equal to `space` without its size-1 axes
        axes = iter(range(len(space)))
        return Index(tuple(Affine() if d == 1 else Affine.axis(next(axes)) for d in shape))
    strides, loop_strides = contiguous_strides(shape), contiguous_strides(space)
    dims = []
    for d, stride in zip(shape, strides):
        terms = tuple((j, int(s // stride)) for j, s in enumerate(loop_strides)
                      if d != 1 and stride <= s < stride * d)
        dims.append(Affine(terms))
    return Index(tuple(dims))
