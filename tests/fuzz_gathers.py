"""The fuzzer's gather family: take, take_along_axis, index_add and scatter_add of a value at
constant ids drawn with repeats, so random programs read gathered values through layout ops and
maps, and their gradients add scatter-add kernels to them."""
from __future__ import annotations

import numpy as np

from compiler import const, ops
from fuzz_programs import Op, fits


def _ids_text(ids: np.ndarray) -> str:
    return f"ops.const(np.array({ids.tolist()}, np.int64))"


def _np_scatter_add(a, axis, ids, source):
    out = np.array(a, dtype=np.float64)
    index = list(np.indices(ids.shape, sparse=True))
    index[axis] = ids
    np.add.at(out, tuple(index), source)
    return out


def fam_gather(ch, prog, x):
    v = prog.values[x]
    if not v.shape:
        return None
    r = len(v.shape)
    axis = ch.integer(0, r - 1)
    n = v.shape[axis]
    kind = ch.choice(["take", "take", "take_along_axis", "index_add", "scatter_add"])
    if kind == "take":
        ids_shape = tuple(ch.integer(1, 3) for _ in range(ch.integer(0, 2)))
    elif kind == "index_add":
        ids_shape = (ch.integer(1, 4),)
    elif kind == "take_along_axis":
        ids_shape = tuple(ch.integer(1, 3) if d == axis else ch.choice([size, 1]) for d, size in enumerate(v.shape))
    else:  # scatter_add: source (x) no shorter than the ids
        ids_shape = tuple(ch.integer(1, size) for size in v.shape)
    ids = np.array([ch.integer(0, n - 1) for _ in range(int(np.prod(ids_shape)))], np.int64).reshape(ids_shape)
    text = _ids_text(ids)
    if kind == "take":
        shape = v.shape[:axis] + ids.shape + v.shape[axis + 1:]
        if not fits(shape):
            return None
        return Op("gather", lambda a: ops.take(a, const(ids), axis), lambda a: np.take(a, ids, axis),
                  lambda a: f"ops.take({a}, {text}, {axis})"), (x,), v.bound
    if kind == "take_along_axis":
        shape = tuple(c if d == axis else s for d, (s, c) in enumerate(zip(v.shape, ids.shape)))
        if not fits(shape):
            return None
        return Op("gather", lambda a: ops.take_along_axis(a, const(ids), axis),
                  lambda a: np.take_along_axis(a, np.broadcast_to(ids, shape), axis),
                  lambda a: f"ops.take_along_axis({a}, {text}, {axis})"), (x,), v.bound
    if kind == "index_add":  # x's rows at `rows` added into x at `ids`
        rows = np.array([ch.integer(0, n - 1) for _ in range(ids.size)], np.int64)
        rows_text = _ids_text(rows)

        def reference(a):
            out = np.array(a, dtype=np.float64)
            np.add.at(out, (slice(None),) * axis + (ids,), np.take(a, rows, axis))
            return out
        return Op("gather", lambda a: ops.index_add(a, axis, const(ids), ops.take(a, const(rows), axis)), reference,
                  lambda a: f"ops.index_add({a}, {axis}, {text}, ops.take({a}, {rows_text}, {axis}))"), \
            (x,), v.bound * (1 + ids.size)
    # scatter_add: x's leading part added into x at ids along the axis
    return Op("gather", lambda a: ops.scatter_add(a, axis, const(ids), a),
              lambda a: _np_scatter_add(a, axis, ids, a[tuple(slice(0, c) for c in ids.shape)]),
              lambda a: f"ops.scatter_add({a}, {axis}, {text}, {a})"), (x,), v.bound * (1 + ids.shape[axis])
