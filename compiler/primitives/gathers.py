"""Gathers and scatters: elements read, or added, at positions held by an integer tensor.

- ``gather(a, ids, axis)``: ``out[i] = a[i with axis replaced by ids[i]]`` (``torch.gather``), of the
  shape of ids; off the axis each dimension of `a` is 1 (read at 0: broadcast) or at least the ids'
  (a leading part is read). ``take``, ``take_along_axis`` and ``embedding`` are this with layout ops
  around it (``compiler/gathers.py``).
- ``scatter_add(a, ids, source, axis)``: `a` with each ``source[i]`` added at ``i with axis replaced by
  ids[i]`` (``torch.Tensor.scatter_add``), ids and source of one shape; a dimension of size 1 in `a`
  gathers every source element along it. The additions run in row-major order of ids, one after the
  other: the same bits on every run.

Each is the other's gradient: the cotangent of a gather's `a` is the scatter-add of its cotangent
into zeros, the cotangent of a scatter's `source` the gather of its cotangent. Ids get none.

Ids must lie in [0, size of a's axis): a negative id is refused as ``torch.index_select`` and
``torch.nn.functional.embedding`` refuse it, not counted from the end as NumPy does. The constructor
records the range (``label_ranges.require``): constant ids are checked at once, ids passed as an Input
before the program runs, computed ids by the program (raised after the call). The reference raises
IndexError too; a compiled kernel never reads or writes outside a buffer (``codegen/gather_kernels.py``).
"""
from __future__ import annotations

import numpy as np

from ..errors import fail, user_location
from ..graph import Node
from ..label_ranges import check_values, require, requirement_of
from . import cotangents, define

INDEX_DTYPES = ("int32", "int64")


def _check(op: str, a: Node, ids: Node, axis: int, label: str) -> None:
    """The shape and dtype rule shared by gather and scatter_add."""
    if ids.dtype not in INDEX_DTYPES:
        raise fail(label, f"ids must be int32 or int64, got {ids.dtype} (convert with .astype('int64'))")
    if a.ndim == 0 or ids.ndim != a.ndim or not 0 <= axis < a.ndim:
        raise fail(label, f"expected ids of the rank of the tensor and an axis in range, got tensor {a.shape}, "
                          f"ids {ids.shape}, axis {axis}")
    if isinstance(a.shape[axis], str):
        raise fail(label, f"cannot index along the symbolic dimension {a.shape[axis]!r} of {a.shape}: its size "
                          f"bounds the ids and must be concrete")
    for d, (size, count) in enumerate(zip(a.shape, ids.shape)):
        if d == axis or size == 1 or size == count:
            continue
        if isinstance(size, str) or isinstance(count, str) or count > size:
            raise fail(label, f"ids {ids.shape} do not fit tensor {a.shape} on axis {d} (ids may be shorter "
                              f"than the tensor off axis {axis}, or the tensor 1)")


def _positions(a_shape: tuple, ids: np.ndarray, axis: int) -> tuple:
    """Index arrays into `a` (concrete shape) of every element of the ids space: NumPy's fancy index."""
    grid = list(np.indices(ids.shape, sparse=True))
    index = []
    for d, size in enumerate(a_shape):
        if d == axis:
            index.append(ids.astype(np.int64))
        elif size == 1 and ids.shape[d] != 1:
            index.append(np.zeros_like(grid[d]))
        else:
            index.append(grid[d])
    return tuple(index)


def _label(op: str | None, default: str, ids_name: str, location: str | None) -> tuple:
    """(op, location) a range error names: the user's op and line; class labels name no line."""
    if ids_name != "ids":
        return op or default, None
    return op or default, location or user_location()


def _as_forward(node: Node) -> dict:
    """The op, ids name and line the range check of a gradient node names: its forward node's."""
    recorded = requirement_of(node)
    return {} if recorded is None else dict(zip(("op", "ids_name", "location"), recorded))


def _reference_label(node: Node) -> str:
    """The op (and line) the reference's IndexError names: the user's, as the compiled program's."""
    recorded = requirement_of(node)
    if recorded is None:
        return node.op
    op, _, location = recorded
    return op if location is None else f"{op} at {location}"


# ---- gather ----------------------------------------------------------------------------------

def make_gather(a: Node, ids: Node, axis: int, op: str | None = None, ids_name: str = "ids",
                location: str | None = None) -> Node:
    """out[i] = a[i with axis replaced by ids[i]], of the shape of ids (``torch.gather``). `op` names
    the user's op in errors, with the declaring line (`location`, by default the caller's), unless
    the ids are class labels (`ids_name`)."""
    label, location = _label(op, "gather", ids_name, location)
    _check("gather", a, ids, axis, label)
    node = Node("gather", (a, ids), (("axis", axis),), ids.shape, a.dtype)
    return require(node, ids, a.shape[axis], label, ids_name, location)


def _evaluate_gather(node, args, dims, values):
    a, ids = np.asarray(args[0]), np.asarray(args[1])
    axis = node.attr("axis")
    check_values(ids, "ids", 0, a.shape[axis], _reference_label(node))
    return np.asarray(a[_positions(a.shape, ids, axis)], dtype=node.dtype)


def _vjp_gather(node, g):
    a, ids = node.args
    return [make_scatter_add(cotangents.zeros_like(a), ids, g, node.attr("axis"), **_as_forward(node)), None]


define("gather", "gather", make_gather, _evaluate_gather, _vjp_gather, "gather")


# ---- scatter_add -------------------------------------------------------------------------------

def make_scatter_add(a: Node, ids: Node, source: Node, axis: int, op: str | None = None, ids_name: str = "ids",
                     location: str | None = None) -> Node:
    """`a` with source[i] added at (i with axis replaced by ids[i]), in row-major order of i (errors
    name `op` and `location` as make_gather's)."""
    label, location = _label(op, "scatter_add", ids_name, location)
    _check("scatter_add", a, ids, axis, label)
    if source.shape != ids.shape or source.dtype != a.dtype:
        raise fail(label, f"source must have the shape of ids {ids.shape} and the dtype of the tensor {a.dtype}, "
                          f"got {source.shape} {source.dtype}")
    node = Node("scatter_add", (a, ids, source), (("axis", axis),), a.shape, a.dtype)
    return require(node, ids, a.shape[axis], label, ids_name, location)


def _evaluate_scatter_add(node, args, dims, values):
    a, ids, source = (np.asarray(x) for x in args)
    axis = node.attr("axis")
    check_values(ids, "ids", 0, a.shape[axis], _reference_label(node))
    out = np.array(a, dtype=node.dtype)  # a copy, contiguous
    np.add.at(out, _positions(out.shape, ids, axis), source.astype(node.dtype))  # unbuffered, in order
    return out


def _vjp_scatter_add(node, g):
    _, ids, _ = node.args
    return [g, None, make_gather(g, ids, node.attr("axis"), **_as_forward(node))]


define("scatter_add", "gather", make_scatter_add, _evaluate_scatter_add, _vjp_scatter_add, "scatter")
