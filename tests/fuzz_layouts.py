"""The fuzzer's layout families: indexing and slicing, pad, flip, roll, tile, repeat, diagonal,
tril/triu, broadcast, reshape, transpose, concat and stack, each step with its NumPy transcription.

Each family returns (Op, argument indices, bound) or None when it does not apply; program_fuzz
weighs them against the map, reduction, contraction and window families. Bugs live between
layout ops (composed slices, pads and concats), so these are the fuzzer's most frequent steps."""
from __future__ import annotations

import math

import numpy as np

from compiler import ops
from fuzz_programs import (ALLOW_EMPTY, MAX_RANK, Op, broadcastable, fits, index_text,
                           random_factorization)


def fam_index(ch, prog, x, strided=False):
    v = prog.values[x]
    items = []
    for d in v.shape:
        kind = ch.choice(["full", "range", "range", "int"] + (["step", "step", "step"] if strided else []))
        if kind == "full":
            items.append(slice(None))
        elif kind == "int":
            i = ch.integer(0, d - 1)
            items.append(i - d if ch.boolean(0.3) else i)
        elif kind == "range":
            a = ch.integer(0, d - 1)
            b = ch.integer(a if ALLOW_EMPTY else a + 1, d)
            start = a - d if ch.boolean(0.25) else a
            stop = b - d if ch.boolean(0.25) and b < d else (None if b == d and ch.boolean(0.5) else b)
            items.append(slice(None if a == 0 and ch.boolean(0.5) else start, stop))
        else:
            step = ch.choice([2, 3, -1, -2, -3])
            start = ch.choice([None, ch.integer(-d, d - 1)])
            stop = ch.choice([None, ch.integer(-d - 1, d)])
            s = slice(start, stop, step)
            if len(range(*s.indices(d))) == 0:
                s = slice(None, None, step)
            items.append(s)
    for _ in range(ch.integer(0, 2) if ch.boolean(0.3) else 0):
        items.insert(ch.integer(0, len(items)), None)
    if items and items[0] == slice(None) and ch.boolean(0.15):
        items[0] = Ellipsis  # x[..., 1:3, 0] (every axis is indexed: the Ellipsis stands for one)
    else:
        while items and items[-1] == slice(None) and ch.boolean(0.7):
            items.pop()  # x[1:3] rather than x[1:3, :]
    if not items:
        items = [None]
    index = tuple(items)
    if all(i == slice(None) for i in index if i is not Ellipsis):
        return None
    text = ", ".join(index_text(i) for i in index)
    shape = np.zeros(v.shape)[index].shape
    if not fits(shape) and shape != ():
        return None
    return Op("strided_slice" if strided else "index", lambda a: a[index], lambda a: a[index],
              lambda a: f"{a}[{text}]"), (x,), v.bound


def fam_strided(ch, prog, x):
    if not prog.values[x].shape:
        return None
    return fam_index(ch, prog, x, strided=True)


def fam_pad(ch, prog, x):
    v = prog.values[x]
    if not v.shape:
        return None
    mode = ch.choice(["constant", "constant", "reflect", "replicate", "circular"])
    limit = {"constant": lambda d: 2, "replicate": lambda d: 2, "reflect": lambda d: min(2, d - 1),
             "circular": lambda d: min(2, d)}[mode]
    widths = tuple((ch.integer(0, limit(d)), ch.integer(0, limit(d))) if ch.boolean(0.6) else (0, 0)
                   for d in v.shape)
    if not any(lo or hi for lo, hi in widths):
        return None
    shape = tuple(d + lo + hi for d, (lo, hi) in zip(v.shape, widths))
    if not fits(shape):
        return None
    value = ch.choice([0.0, 0.5, -1.25]) if mode == "constant" else 0.0
    np_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]

    def ref(a):
        if mode == "constant":
            return np.pad(a, widths, mode="constant", constant_values=value)
        return np.pad(a, widths, mode=np_mode)

    extra = f", value={value}" if value else ""
    return Op("pad", lambda a: ops.pad(a, widths, mode=mode, value=value) if value else ops.pad(a, widths, mode=mode),
              ref, lambda a: f'ops.pad({a}, {widths}, mode="{mode}"{extra})'), (x,), max(v.bound, abs(value))


def _axes_text(ch, r):
    """An axis argument: an int (maybe negative), a tuple of distinct axes, or None."""
    kind = ch.choice(["int", "int", "tuple", "none"]) if r > 1 else ch.choice(["int", "int", "none"])
    if kind == "none":
        return None
    if kind == "int":
        return ch.integer(-r, r - 1)
    return tuple(a - r if ch.boolean(0.3) else a for a in ch.permutation(r)[:ch.integer(2, r)])


def fam_flip(ch, prog, x):
    v = prog.values[x]
    if not v.shape:
        return None
    axis = _axes_text(ch, len(v.shape))
    return Op("flip", lambda a: ops.flip(a, axis), lambda a: np.flip(a, axis),
              lambda a: f"ops.flip({a}, {axis})"), (x,), v.bound


def fam_roll(ch, prog, x):
    v = prog.values[x]
    if not v.shape:
        return None
    axis = _axes_text(ch, len(v.shape))
    shifts = [ch.choice([s for s in range(-6, 7) if s]) for _ in (axis if isinstance(axis, tuple) else (0,))]
    shift = tuple(shifts) if isinstance(axis, tuple) else shifts[0]
    return Op("roll", lambda a: ops.roll(a, shift, axis), lambda a: np.roll(a, shift, axis),
              lambda a: f"ops.roll({a}, {shift}, {axis})"), (x,), v.bound


def fam_tile(ch, prog, x):
    v = prog.values[x]
    reps = tuple(ch.integer(1, 3) for _ in range(ch.integer(1, MAX_RANK)))
    shape = np.tile(np.zeros(v.shape), reps).shape
    if all(r == 1 for r in reps) or not fits(shape):
        return None
    return Op("tile", lambda a: ops.tile(a, reps), lambda a: np.tile(a, reps),
              lambda a: f"ops.tile({a}, {reps})"), (x,), v.bound


def fam_repeat(ch, prog, x):
    v = prog.values[x]
    repeats = ch.integer(2, 3)
    axis = ch.integer(-len(v.shape), len(v.shape) - 1) if v.shape and ch.boolean(0.8) else None
    if not fits(np.repeat(np.zeros(v.shape), repeats, axis).shape):
        return None
    return Op("repeat", lambda a: ops.repeat(a, repeats, axis), lambda a: np.repeat(a, repeats, axis),
              lambda a: f"ops.repeat({a}, {repeats}, {axis})"), (x,), v.bound


def fam_diagonal(ch, prog, x):
    v = prog.values[x]
    r = len(v.shape)
    if r < 2:
        return None
    axis1, axis2 = ch.permutation(r)[:2]
    axis1, axis2 = (axis1 - r if ch.boolean(0.3) else axis1), (axis2 - r if ch.boolean(0.3) else axis2)
    offset = ch.integer(-v.shape[axis1] + 1, v.shape[axis2] - 1)
    if np.diagonal(np.zeros(v.shape), offset, axis1, axis2).size == 0:
        return None
    return Op("diagonal", lambda a: ops.diagonal(a, offset, axis1, axis2),
              lambda a: np.diagonal(a, offset, axis1, axis2),
              lambda a: f"ops.diagonal({a}, {offset}, {axis1}, {axis2})"), (x,), v.bound


def fam_triangle(ch, prog, x):
    v = prog.values[x]
    if len(v.shape) < 2:
        return None
    name = ch.choice(["tril", "triu"])
    k = ch.integer(-2, 2)
    sym, ref = getattr(ops, name), getattr(np, name)
    return Op("triangle", lambda a: sym(a, k), lambda a: ref(a, k), lambda a: f"ops.{name}({a}, {k})"), \
        (x,), v.bound


def fam_broadcast(ch, prog, x):
    v = prog.values[x]
    shape = [ch.integer(2, 4) if d == 1 and ch.boolean(0.7) else d for d in v.shape]
    lead = ch.integer(0, MAX_RANK - len(shape)) if len(shape) < MAX_RANK and ch.boolean(0.5) else 0
    shape = tuple([ch.integer(1, 3) for _ in range(lead)] + shape)
    if shape == v.shape or not fits(shape):
        return None
    return Op("broadcast", lambda a: ops.broadcast_to(a, shape), lambda a: np.broadcast_to(a, shape),
              lambda a: f"ops.broadcast_to({a}, {shape})"), (x,), v.bound


def fam_reshape(ch, prog, x):
    v = prog.values[x]
    n = math.prod(v.shape)
    rank = ch.integer(1, MAX_RANK)
    shape = random_factorization(ch, n, rank)
    if shape == v.shape:
        return None
    target = shape
    if ch.boolean(0.3):
        i = ch.integer(0, rank - 1)
        target = shape[:i] + (-1,) + shape[i + 1:]
    if ch.boolean(0.3):
        return Op("reshape", lambda a: a.reshape(target), lambda a: a.reshape(target),
                  lambda a: f"{a}.reshape({target})"), (x,), v.bound
    return Op("reshape", lambda a: ops.reshape(a, target), lambda a: np.reshape(a, target),
              lambda a: f"ops.reshape({a}, {target})"), (x,), v.bound


def fam_transpose(ch, prog, x):
    v = prog.values[x]
    if len(v.shape) < 2:
        return None
    if len(v.shape) == 2 and ch.boolean(0.3):
        return Op("transpose", lambda a: a.T, lambda a: a.T, lambda a: f"{a}.T"), (x,), v.bound
    perm = tuple(ch.permutation(len(v.shape)))
    if perm == tuple(range(len(perm))):
        perm = perm[1:] + perm[:1]
    return Op("transpose", lambda a: ops.transpose(a, perm), lambda a: np.transpose(a, perm),
              lambda a: f"ops.transpose({a}, {perm})"), (x,), v.bound


def _piece(ch, prog, x, axis, allow_split=True):
    """A concat operand along `axis` matching x off the axis: (arg, sym, ref, code) transforms."""
    v = prog.values[x]
    r = len(v.shape)
    options = []
    for j, w in enumerate(prog.values):
        if len(w.shape) != r:
            continue
        off = [i for i in range(r) if i != axis]
        if all(w.shape[i] == v.shape[i] for i in off):
            options.append((j, None))
        elif all(w.shape[i] in (1, v.shape[i]) for i in off):
            options.append((j, "broadcast"))
    j, how = ch.choice(options)
    w = prog.values[j]
    if how == "broadcast":
        shape = tuple(w.shape[i] if i == axis else v.shape[i] for i in range(r))
        return (j, lambda a: ops.broadcast_to(a, shape), lambda a: np.broadcast_to(a, shape),
                lambda a: f"ops.broadcast_to({a}, {shape})", w.shape[axis], w.bound)
    d = w.shape[axis]
    if allow_split and d > 1 and ch.boolean(0.4):
        a0 = ch.integer(0, d - 1)
        b0 = ch.integer(a0 + 1, d)
        index = (slice(None),) * axis + (slice(a0, b0),)
        text = ", ".join(index_text(i) for i in index)
        return (j, lambda a: a[index], lambda a: a[index], lambda a: f"{a}[{text}]", b0 - a0, w.bound)
    return (j, lambda a: a, lambda a: a, lambda a: a, d, w.bound)


def fam_concat(ch, prog, x):
    v = prog.values[x]
    if not v.shape:
        return None
    r = len(v.shape)
    axis = ch.integer(0, r - 1)
    if ch.boolean(0.3) and v.shape[axis] > 1:
        # the split-and-join pattern: x's pieces along the axis, in order or rotated
        d = v.shape[axis]
        cuts = sorted({ch.integer(1, d - 1) for _ in range(ch.integer(1, 2))})
        bounds = [0] + cuts + [d]
        index = [(slice(None),) * axis + (slice(a, b),) for a, b in zip(bounds, bounds[1:])]
        if ch.boolean(0.5):
            k = ch.integer(1, len(index) - 1)
            index = index[k:] + index[:k]
        texts = [", ".join(index_text(i) for i in ix) for ix in index]
        shown_axis = axis - r if ch.boolean(0.3) else axis
        return Op("concat", lambda a: ops.concat([a[ix] for ix in index], shown_axis),
                  lambda a: np.concatenate([a[ix] for ix in index], shown_axis),
                  lambda a: f"ops.concat([{', '.join(f'{a}[{t}]' for t in texts)}], {shown_axis})"), (x,), v.bound
    pieces = [_piece(ch, prog, x, axis, allow_split=True) for _ in range(ch.integer(2, 3))]
    if ch.boolean(0.5):
        pieces[0] = (x, lambda a: a, lambda a: a, lambda a: a, v.shape[axis], v.bound)
    size = sum(p[4] for p in pieces)
    shape = v.shape[:axis] + (size,) + v.shape[axis + 1:]
    if not fits(shape):
        return None
    args = tuple(p[0] for p in pieces)
    return Op("concat", lambda *a: ops.concat([p[1](t) for p, t in zip(pieces, a)], axis),
              lambda *a: np.concatenate([p[2](t) for p, t in zip(pieces, a)], axis),
              lambda *a: f"ops.concat([{', '.join(p[3](t) for p, t in zip(pieces, a))}], {axis})"), \
        args, max(p[5] for p in pieces)


def fam_stack(ch, prog, x):
    v = prog.values[x]
    if len(v.shape) >= MAX_RANK:
        return None
    n = ch.integer(2, 3)
    if not fits((n,) + v.shape):
        return None
    pieces = [(x, lambda a: a, lambda a: a, lambda a: a, v.bound)]
    for _ in range(n - 1):
        options = [(j, w) for j, w in enumerate(prog.values)
                   if w.shape != v.shape and broadcastable(w.shape, v.shape) == v.shape]
        same = [j for j, w in enumerate(prog.values) if w.shape == v.shape]
        if options and ch.boolean(0.3):
            j, w = ch.choice(options)
            shape = v.shape
            pieces.append((j, lambda a: ops.broadcast_to(a, shape), lambda a: np.broadcast_to(a, shape),
                           lambda a: f"ops.broadcast_to({a}, {shape})", w.bound))
        else:
            j = ch.choice(same)
            pieces.append((j, lambda a: a, lambda a: a, lambda a: a, prog.values[j].bound))
    order = ch.permutation(len(pieces))
    pieces = [pieces[i] for i in order]
    axis = ch.integer(-len(v.shape) - 1, len(v.shape))
    args = tuple(p[0] for p in pieces)
    return Op("stack", lambda *a: ops.stack([p[1](t) for p, t in zip(pieces, a)], axis),
              lambda *a: np.stack([p[2](t) for p, t in zip(pieces, a)], axis),
              lambda *a: f"ops.stack([{', '.join(p[3](t) for p, t in zip(pieces, a))}], {axis})"), \
        args, max(p[4] for p in pieces)
