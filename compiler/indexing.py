"""Indexing a node with Python's subscripts (``x[1:, ::-2, None]``, ``x[..., 0]``, ``x[:, ids]``): basic
indexing is a strided slice and a reshape, one integer array a ``take``; every bad index is named."""
from __future__ import annotations

import numpy as np

from .errors import fail
from .gathers import take
from .graph import Node
from .primitives import make_reshape, make_slice


def getitem(x: Node, index):
    """Basic indexing: integers, slices with any step (``x[::-1]``, ``x[5:0:-2]``), None and one Ellipsis;
    and one integer array (a list, a NumPy array or an integer node) on one axis with ':' on the others
    (``x[[0, 2, 2]]``, ``x[:, ids]``): ``take`` along that axis (a constant's negative ids count from the
    end, as in torch; a node's must lie in range)."""
    if not isinstance(index, tuple):
        index = (index,)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise fail("getitem", "only one Ellipsis allowed")
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if n_real > x.ndim:
        raise fail("getitem", f"too many indices ({n_real}) for shape {x.shape}")
    if any(_is_index_array(i) for i in index):
        return _take_by_index(x, index, n_real)
    if any(i is Ellipsis for i in index):
        at = next(k for k, i in enumerate(index) if i is Ellipsis)
        index = index[:at] + (slice(None),) * (x.ndim - n_real) + index[at + 1:]
    else:
        index = index + (slice(None),) * (x.ndim - n_real)
    starts, stops, steps, out_shape, axis = [], [], [], [], 0
    for item in index:
        if item is None:
            out_shape.append(1)
            continue
        d = x.shape[axis]
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if isinstance(d, str):
                raise fail("getitem", f"cannot index the symbolic dimension {d!r} of {x.shape} with an integer")
            i = int(item) + (d if item < 0 else 0)
            if not 0 <= i < d:
                raise fail("getitem", f"index {item} out of range for axis {axis} of size {d}")
            starts.append(i), stops.append(i + 1), steps.append(1)
        elif isinstance(item, slice):
            if item.step == 0:
                raise fail("getitem", f"slice step cannot be zero (got {item})")
            if isinstance(d, str):
                if item != slice(None):
                    raise fail("getitem", f"only ':' can slice the symbolic dimension {d!r}")
                starts.append(0), stops.append(d), steps.append(1), out_shape.append(d)
            else:
                start, stop, step = item.indices(d)
                starts.append(start), stops.append(stop), steps.append(step)
                out_shape.append(len(range(start, stop, step)))
        else:
            raise fail("getitem", f"unsupported index {item!r}: use ints, slices, None or ...")
        axis += 1
    sliced = make_slice(x, tuple(starts), tuple(stops), tuple(steps))
    return make_reshape(sliced, tuple(out_shape))


def _is_index_array(item) -> bool:
    return isinstance(item, (list, np.ndarray)) or isinstance(item, Node) and item.dtype in ("int32", "int64")


def _take_by_index(x: Node, index: tuple, n_real: int) -> Node:
    """x[..., ids, ...] with ':' everywhere else: take along the axis of the one integer array."""
    at = next((k for k, i in enumerate(index) if i is Ellipsis), None)
    if at is not None:
        index = index[:at] + (slice(None),) * (x.ndim - n_real) + index[at + 1:]
    index = index + (slice(None),) * (x.ndim - len(index))
    arrays = [k for k, i in enumerate(index) if _is_index_array(i)]
    if len(arrays) > 1 or any(not (isinstance(i, slice) and i == slice(None))
                                       for k, i in enumerate(index) if k != arrays[0]):
        raise fail("getitem", "an integer-array index goes on one axis with ':' on every other "
                              f"(x[ids], x[:, ids]); got {index!r}")
    axis, ids = arrays[0], index[arrays[0]]
    if not isinstance(ids, Node):
        ids = np.asarray(ids)
        if ids.dtype == bool or not (ids.dtype.kind in "iu" or ids.size == 0):
            raise fail("getitem", f"an index array must hold integers (boolean masks are not supported), got {ids!r}")
        size = x.shape[axis]
        if isinstance(size, str):
            raise fail("getitem", f"cannot index the symbolic dimension {size!r} of {x.shape} with an array")
        ids = np.where(ids < 0, ids + size, ids).astype(np.int64)
    return take(x, ids, axis)
