"""Shapes, ids and NumPy references of the gathers and scatter-adds, for the op tables
(grad_op_table.py, test_compile_ops.py) and the torch comparison.

Ids are drawn with repeats (scatter-adds accumulate) over the whole range of the indexed axis.
A case is (shapes, kwargs); an ids sampler is fn(rng, shape, shapes) -> int64 array.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

TENSOR = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
IDS = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4)


# ---- ids samplers ----------------------------------------------------------------------------------

def ids_for(rng, shape, shapes):
    """Ids valid along any axis of the first operand (a sampler sees the shapes, not the axis)."""
    return rng.integers(0, min(shapes[0]), shape)


def ids_for_axis(size: int):
    """Ids in [0, size), for a table of fixed shapes (test_compile_ops: fn(rng, shape))."""
    return lambda rng, shape: rng.integers(0, size, shape)


# ---- cases -----------------------------------------------------------------------------------------

@st.composite
def take_case(draw):
    shape = draw(TENSOR)
    axis = draw(st.integers(0, len(shape) - 1))
    return (shape, draw(IDS)), {"axis": axis}


@st.composite
def embedding_case(draw):
    table = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    return (table, draw(IDS)), {}


@st.composite
def along_axis_case(draw):
    """A tensor and ids of its rank: along the axis any length, off it the tensor's, 1, or shorter."""
    shape = draw(TENSOR)
    axis = draw(st.integers(0, len(shape) - 1))
    ids = tuple(draw(st.integers(1, 4)) if d == axis else draw(st.sampled_from(sorted({size, 1, max(1, size - 1)})))
                for d, size in enumerate(shape))
    return (shape, ids), {"axis": axis}


@st.composite
def index_add_case(draw):
    shape = draw(TENSOR)
    axis = draw(st.integers(0, len(shape) - 1))
    n = draw(st.integers(1, 5))
    return (shape, (n,), shape[:axis] + (n,) + shape[axis + 1:]), {"axis": axis}


@st.composite
def scatter_add_case(draw):
    """ids no longer than the tensor off the axis, source of the ids' shape."""
    shape = draw(TENSOR)
    axis = draw(st.integers(0, len(shape) - 1))
    ids = tuple(draw(st.integers(1, 5)) if d == axis else draw(st.integers(1, size)) for d, size in enumerate(shape))
    return (shape, ids, ids), {"axis": axis}


# ---- NumPy references --------------------------------------------------------------------------------

def np_take(a, ids, axis=0):
    return np.take(a, ids, axis=axis)


def np_embedding(table, ids):
    return table[ids]


def np_take_along_axis(a, ids, axis):
    """numpy.take_along_axis where the shapes broadcast; torch.gather where ids are shorter."""
    target = tuple(c if d == axis or s == 1 else (s if c == 1 else c) for d, (s, c) in enumerate(zip(a.shape, ids.shape)))
    ids = np.broadcast_to(ids, target)
    a = a[tuple(slice(None) if d == axis or s == 1 else slice(0, target[d]) for d, s in enumerate(a.shape))]
    return np.take_along_axis(np.broadcast_to(a, target[:axis] + (a.shape[axis],) + target[axis + 1:]), ids, axis)


def np_index_add(a, ids, source, axis):
    out = np.array(a, dtype=np.result_type(a, source))
    np.add.at(out, (slice(None),) * axis + (ids,), source)
    return out


def np_scatter_add(a, ids, source, axis):
    out = np.array(a, dtype=np.result_type(a, source))
    index = list(np.indices(ids.shape, sparse=True))
    index[axis] = ids
    np.add.at(out, tuple(index), source)
    return out
