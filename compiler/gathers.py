"""Indexing by integer tensors: take, take_along_axis, embedding, index_add, scatter_add.

Each is the ``gather`` or ``scatter_add`` primitive (``primitives/gathers.py``) with layout
ops around it, so a take's ids and table are read through index arithmetic, and its gradient
is a scatter-add straight into the table's shape.

Ids are int32 or int64 tensors, in [0, size of the indexed axis). A negative id is an error,
as in ``torch.index_select``, ``torch.gather`` and ``torch.nn.functional.embedding`` (NumPy
would count it from the end): constant ids raise IndexError at declaration, ids passed as an
Input before the program runs, ids computed inside the program after the call.
"""
from __future__ import annotations

from .errors import fail
from .graph import as_node, scalar_symbol
from .primitives import make_broadcast, make_map, make_reshape, make_slice
from .primitives.gathers import make_gather, make_scatter_add
from .shapes import normalize_axes


def _ids(ids, op: str):
    ids = as_node(ids)
    if ids.dtype not in ("int32", "int64"):
        raise fail(op, f"ids must be an int32 or int64 tensor, got {ids.dtype} {ids.shape} "
                       f"(convert with .astype('int64'))")
    return ids


def _axis(axis, ndim: int, op: str) -> int:
    if ndim == 0:
        raise fail(op, "cannot index a 0-d tensor")
    return normalize_axes(axis, ndim, op)[0]


def take(a, ids, axis=0):
    """Elements of `a` at `ids` along `axis`: shape a.shape[:axis] + ids.shape + a.shape[axis+1:]
    (``numpy.take`` with a given axis, ``torch.index_select`` for 1-d ids). Ids must be in
    [0, a.shape[axis]); a negative id raises IndexError, as in torch."""
    a, ids = as_node(a), _ids(ids, "take")
    axis = _axis(axis, a.ndim, "take")
    return _take(a, ids, axis, "take")


def _take(a, ids, axis: int, op: str):
    pre, post = a.shape[:axis], a.shape[axis + 1:]
    scalar = ids.ndim == 0
    if scalar:
        ids = make_reshape(ids, (1,))
    m = ids.ndim
    shape = pre + ids.shape + post
    source = make_reshape(a, pre + (1,) * (m - 1) + (a.shape[axis],) + post)
    at = make_broadcast(make_reshape(ids, (1,) * len(pre) + ids.shape + (1,) * len(post)), shape)
    out = make_gather(source, at, len(pre) + m - 1, op)
    return make_reshape(out, pre + post) if scalar else out


def embedding(table, ids):
    """Rows of `table` (num_embeddings, ...) at `ids`: shape ids.shape + table.shape[1:]
    (``torch.nn.functional.embedding(ids, table)``, ``take(table, ids, 0)``)."""
    table, ids = as_node(table), _ids(ids, "embedding")
    if table.ndim < 1:
        raise fail("embedding", f"expected a table (num_embeddings, ...), got shape {table.shape}")
    return _take(table, ids, 0, "embedding")


def take_along_axis(a, ids, axis):
    """out[i] = a[i with axis replaced by ids[i]] (``numpy.take_along_axis``, ``torch.gather``).

    Off the axis the shapes broadcast as NumPy's do (a size-1 dimension of either stretches);
    an ids dimension shorter than a's (not 1) reads a's leading part, as ``torch.gather`` does.
    Where both rules apply (an ids dimension of 1 against a longer one), NumPy's wins: the
    output has a's length there."""
    a, ids = as_node(a), _ids(ids, "take_along_axis")
    axis = _axis(axis, a.ndim, "take_along_axis")
    if ids.ndim != a.ndim:
        raise fail("take_along_axis", f"ids must have the rank of the tensor: tensor {a.shape}, ids {ids.shape}")
    shape = tuple(count if d == axis or size == 1 else size if count == 1 else count
                  for d, (size, count) in enumerate(zip(a.shape, ids.shape)))
    return make_gather(a, make_broadcast(ids, shape) if shape != ids.shape else ids, axis, "take_along_axis")


def scatter_add(a, axis, ids, source):
    """`a` with each source[i] added at (i with axis replaced by ids[i]) (``torch.Tensor.scatter_add``):
    ids of the rank of `a`, no longer than `a` off the axis; the part of `source` of the ids' shape
    is added. Repeated ids accumulate, in row-major order of the ids (the same bits every run)."""
    a, ids = as_node(a), _ids(ids, "scatter_add")
    source = _source(source, a, "scatter_add")
    axis = _axis(axis, a.ndim, "scatter_add")
    if ids.ndim != a.ndim or source.ndim != a.ndim:
        raise fail("scatter_add", f"ids and source must have the rank of the tensor: tensor {a.shape}, ids "
                                  f"{ids.shape}, source {source.shape}")
    if source.shape != ids.shape:
        if any(isinstance(s, str) or isinstance(c, str) or c > s for s, c in zip(source.shape, ids.shape)
               if s != c):
            raise fail("scatter_add", f"source {source.shape} is smaller than ids {ids.shape}")
        source = make_slice(source, (0,) * source.ndim, ids.shape)
    return make_scatter_add(a, ids, source, axis, "scatter_add")


def index_add(a, axis, ids, source):
    """`a` with source's slices added at `ids` along `axis` (``torch.Tensor.index_add``): ids 1-d of
    length n, source of a's shape with n along the axis. Repeated ids accumulate, in order."""
    a, ids = as_node(a), _ids(ids, "index_add")
    source = _source(source, a, "index_add")
    axis = _axis(axis, a.ndim, "index_add")
    if ids.ndim > 1:
        raise fail("index_add", f"ids must be 0-d or 1-d, got {ids.shape}")
    ids = make_reshape(ids, (1,)) if ids.ndim == 0 else ids
    expected = a.shape[:axis] + ids.shape + a.shape[axis + 1:]
    if source.shape != expected and source.ndim == a.ndim - 1 and ids.shape == (1,):
        source = make_reshape(source, expected)
    if source.shape != expected:
        raise fail("index_add", f"source must have shape {expected} (the tensor's with the {ids.shape[0]} ids "
                                f"along axis {axis}), got {source.shape}")
    at = make_broadcast(make_reshape(ids, tuple(ids.shape[0] if d == axis else 1 for d in range(a.ndim))), expected)
    return make_scatter_add(a, at, source, axis, "index_add")


def _source(source, a, op: str):
    """`source` as a node of a's dtype (a float source into a float tensor is converted, as torch requires
    one dtype)."""
    source = as_node(source, a)
    if source.dtype != a.dtype:
        source = make_map(scalar_symbol(0), [source], a.dtype)
    return source
