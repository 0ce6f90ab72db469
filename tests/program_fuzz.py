"""Random tensor programs, each built twice: as a symprop graph and as plain NumPy.

A program is a list of 2-8 steps over 1-3 float64 Inputs of small static shapes. Every
step is an ``Op`` that carries, side by side, its symprop builder (``sym``),
its NumPy transcription (``ref``), the Python text of the symprop call
(``code``, so a failing program prints as a runnable reproduction) and, for
the ops that are not smooth (max, maximum, where), a ``decide`` function that
returns the branch each element takes and the distance to the nearest tie.

``check_program`` is the differential test: compiled forward values against
``compiler.evaluate`` and against the NumPy transcription, compiled gradients
of a weighted sum of the outputs against ``evaluate`` of the same gradient
graph, and ``evaluate``'s gradient against central differences of the NumPy
transcription. Its random choices come through a ``Chooser``: hypothesis's
``draw`` in the tests (so failures shrink), ``random.Random`` in the explorer
(``python tests/program_fuzz.py COUNT`` prints every failing program).

Op families that the compiler does not offer yet (``ops.pad``, ``ops.flip``,
``ops.roll``, slices with steps; beyond those, the layout composites tile,
repeat, diagonal, tril/triu and repeated einsum indices) are detected once at
import; ``EXCLUDED`` names them and the import prints them.
"""
from __future__ import annotations

import math
import sys
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

import compiler as C
from compiler import GraphError, Input, ops

from fuzz_programs import (  # noqa: F401  (re-exported: the tests import the program pieces from here)
    ALLOW_EMPTY, ATOL, EXP_BOUND, FD_STEP, FD_TOL, INPUT_RANGE, MAX_BOUND, MAX_DIM, MAX_RANK, MAX_SIZE, RTOL, TIE,
    Chooser, DrawChooser, Op, Program, RandomChooser, Step, Value, broadcastable, fits, index_text,
    random_factorization, tie_distance)
from fuzz_windows import fam_window

# ---- which op families exist ----------------------------------------------------------------------

def _step_slices_work() -> bool:
    probe = Input("probe", (5,), "float64")
    try:
        shapes = [probe[::2].shape, probe[::-1].shape, probe[3:0:-2].shape]
    except (GraphError, TypeError, ValueError):
        return False
    return shapes == [(3,), (5,), (2,)]


def _repeated_einsum_indices_work() -> bool:
    try:
        return ops.einsum("iij->ij", Input("probe", (2, 2, 3), "float64")).shape == (2, 3)
    except (GraphError, TypeError, ValueError):
        return False


AVAILABLE = {
    "pad": hasattr(ops, "pad"),
    "flip": hasattr(ops, "flip"),
    "roll": hasattr(ops, "roll"),
    "strided_slice": _step_slices_work(),
    # layout composites, beyond the required families: used when the compiler has them
    "tile": hasattr(ops, "tile"),
    "repeat": hasattr(ops, "repeat"),
    "diagonal": hasattr(ops, "diagonal"),
    "triangle": hasattr(ops, "tril") and hasattr(ops, "triu"),
    "einsum_diagonal": _repeated_einsum_indices_work(),
    # composites of reductions, maps and layout ops
    "softmax": all(hasattr(ops, n) for n in ("softmax", "log_softmax", "logsumexp")),
    "scan": hasattr(ops, "cumsum") and hasattr(ops, "cumprod"),
    "product": hasattr(ops, "prod"),
    "variance": hasattr(ops, "var"),
    # windows: the window primitive, convolution, pooling, flatten
    "window": all(hasattr(ops, n) for n in ("conv1d", "conv2d", "max_pool2d", "avg_pool2d", "flatten")),
}
EXCLUDED = sorted(name for name, present in AVAILABLE.items() if not present)
if EXCLUDED:
    _message = ("program_fuzz: op families not available in compiler.ops yet, excluded from the random "
                f"programs: {', '.join(EXCLUDED)}")
    print(_message, file=sys.stderr)
    warnings.warn(_message, stacklevel=1)



# ---- op families: each returns (Op, argument indices, bound) or None when it does not apply --------

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


def _power_bound(bound: float, n: int) -> float:
    """max(bound, 1) ** n, inf where that overflows."""
    return math.inf if n * math.log(max(bound, 1.0)) > 700 else max(bound, 1.0) ** n


def _axis(ch, r, allow_none=True):
    return None if (r == 0 or (allow_none and ch.boolean(0.2))) else ch.integer(-r, r - 1)


def _logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def fam_softmax(ch, prog, x):
    v = prog.values[x]
    r = len(v.shape)
    name = ch.choice(["softmax", "log_softmax", "logsumexp"])
    if name == "logsumexp":
        axis, keepdims = _axis(ch, r), ch.boolean(0.3)
        n = math.prod(v.shape) if axis is None else v.shape[axis]
        return Op("logsumexp", lambda a: ops.logsumexp(a, axis, keepdims), lambda a: _logsumexp(a, axis, keepdims),
                  lambda a: f"ops.logsumexp({a}, {axis}{', keepdims=True' if keepdims else ''})"), \
            (x,), v.bound + math.log(n)
    if r == 0:
        return None
    axis = _axis(ch, r, allow_none=False)
    n = v.shape[axis]
    if name == "softmax":
        ref = lambda a: np.exp(a - _logsumexp(a, axis, keepdims=True))  # noqa: E731
        bound = 1.0
    else:
        ref = lambda a: a - _logsumexp(a, axis, keepdims=True)  # noqa: E731
        bound = 2 * v.bound + math.log(n)
    sym = getattr(ops, name)
    return Op(name, lambda a: sym(a, axis), ref, lambda a: f"ops.{name}({a}, {axis})"), (x,), bound


def fam_scan(ch, prog, x):
    v = prog.values[x]
    axis = _axis(ch, len(v.shape))
    n = math.prod(v.shape) if axis is None else v.shape[axis]
    name = ch.choice(["cumsum", "cumprod"])
    bound = v.bound * n if name == "cumsum" else _power_bound(v.bound, n)
    sym, ref = getattr(ops, name), getattr(np, name)
    return Op(name, lambda a: sym(a, axis), lambda a: ref(a, axis), lambda a: f"ops.{name}({a}, {axis})"), \
        (x,), bound


def fam_product(ch, prog, x):
    v = prog.values[x]
    axis, keepdims = _axis(ch, len(v.shape)), ch.boolean(0.3)
    n = math.prod(v.shape) if axis is None else v.shape[axis]
    return Op("prod", lambda a: ops.prod(a, axis, keepdims), lambda a: np.prod(a, axis, keepdims=keepdims),
              lambda a: f"ops.prod({a}, {axis}{', keepdims=True' if keepdims else ''})"), \
        (x,), _power_bound(v.bound, n)


def fam_variance(ch, prog, x):
    v = prog.values[x]
    axis, keepdims = _axis(ch, len(v.shape)), ch.boolean(0.3)
    n = math.prod(v.shape) if axis is None else v.shape[axis]
    correction = ch.choice([0, 1]) if n > 1 else 0
    return Op("var", lambda a: ops.var(a, axis, correction, keepdims),
              lambda a: np.var(a, axis, ddof=correction, keepdims=keepdims),
              lambda a: f"ops.var({a}, {axis}, {correction}{', keepdims=True' if keepdims else ''})"), \
        (x,), 4 * v.bound * v.bound



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


UNARY = {
    "tanh": (ops.tanh, np.tanh, lambda b: min(b, 1.0)),
    "sin": (ops.sin, np.sin, lambda b: min(b, 1.0)),
    "exp": (ops.exp, np.exp, math.exp),
}


def fam_unary(ch, prog, x):
    v = prog.values[x]
    names = ["tanh", "sin", "neg", "affine"] + (["exp", "exp"] if v.bound <= EXP_BOUND else [])
    name = ch.choice(names)
    if name == "neg":
        return Op("map", lambda a: -a, lambda a: -a, lambda a: f"-{a}"), (x,), v.bound
    if name == "affine":
        c, d = ch.choice([0.5, -1.5, 2.0]), ch.choice([0.25, -1.0, 3.0])
        return Op("map", lambda a: a * c + d, lambda a: a * c + d, lambda a: f"({a} * {c} + {d})"), \
            (x,), abs(c) * v.bound + abs(d)
    sym, ref, bound = UNARY[name]
    return Op("map", sym, ref, lambda a: f"ops.{name}({a})"), (x,), bound(v.bound)


def _partner(ch, prog, x, allow_scalar=True):
    """An operand that broadcasts with x: an existing value (maybe x itself), or None for a Python scalar."""
    v = prog.values[x]
    options = [j for j, w in enumerate(prog.values) if broadcastable(v.shape, w.shape) is not None]
    if allow_scalar and ch.boolean(0.15):
        return None
    return ch.choice(options)


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, "({} + {})", lambda p, q: p + q),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, "({} - {})", lambda p, q: p + q),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, "({} * {})", lambda p, q: p * q),
    "maximum": (ops.maximum, np.maximum, "ops.maximum({}, {})", max),
}


def fam_binary(ch, prog, x):
    v = prog.values[x]
    name = ch.choice(list(BINARY))
    sym, ref, text, bound = BINARY[name]
    y = _partner(ch, prog, x)
    decide = None
    if y is None:
        c = ch.choice([0.5, -0.75, 1.5])
        swap = ch.boolean(0.5)
        if name == "maximum":
            decide = lambda a: (a >= c, tie_distance(a - c))
        if swap:
            return Op("map", lambda a: sym(c, a) if name != "maximum" else sym(a, c),
                      lambda a: ref(c, a), lambda a: text.format(c, a) if name != "maximum" else text.format(a, c),
                      decide), (x,), bound(abs(c), v.bound)
        return Op("map", lambda a: sym(a, c), lambda a: ref(a, c), lambda a: text.format(a, c), decide), \
            (x,), bound(v.bound, abs(c))
    if name == "maximum":
        decide = lambda a, b: (a >= b, tie_distance(a - b))
    args = (x, y) if ch.boolean(0.7) else (y, x)
    b0, b1 = prog.values[args[0]].bound, prog.values[args[1]].bound
    return Op("map", sym, ref, lambda a, b: text.format(a, b), decide), args, bound(b0, b1)


COMPARISONS = {">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal}


def fam_where(ch, prog, x):
    v = prog.values[x]
    cmp = ch.choice(list(COMPARISONS))
    y = _partner(ch, prog, x)
    c = _partner(ch, prog, x)
    d = _partner(ch, prog, x)
    if y == x:
        y = None
    if c is None and d is None:
        c = x  # where(cond, 0.5, -1.0) of Python numbers alone is float32 by symprop's promotion rules
    if c is not None and ch.boolean(0.15):
        d = c  # where(cond, v, v): simplification may drop the condition, not its shape
    args = [x] + [j for j in (y, c, d) if j is not None]
    shape = broadcastable(*[prog.values[j].shape for j in args])
    if shape is None:
        return None
    threshold = ch.choice([0.0, 0.3, -0.4])
    consts = {"y": threshold, "c": 0.5, "d": -1.0}
    slots = [("y", y), ("c", c), ("d", d)]

    def unpack(arrays):
        it = iter(arrays[1:])
        got = {k: (next(it) if j is not None else consts[k]) for k, j in slots}
        return arrays[0], got["y"], got["c"], got["d"]

    ref_cmp = COMPARISONS[cmp]

    def sym(*a):
        p, q, t, f = unpack(a)
        condition = {">": lambda: p > q, "<": lambda: p < q, ">=": lambda: p >= q, "<=": lambda: p <= q}[cmp]()
        return ops.where(condition, t, f)

    def ref(*a):
        p, q, t, f = unpack(a)
        return np.broadcast_to(np.where(ref_cmp(p, q), t, f), shape)

    def decide(*a):
        p, q, _, _ = unpack(a)
        return ref_cmp(p, q), tie_distance(np.subtract(p, q))

    def code(*names):
        p, q, t, f = unpack(names)
        return f"ops.where({p} {cmp} {q}, {t}, {f})"

    bounds = [prog.values[j].bound if j is not None else abs(consts[k]) for k, j in slots[1:]]
    return Op("where", sym, ref, code, decide), tuple(args), max(bounds)


def fam_reduce(ch, prog, x):
    v = prog.values[x]
    r = len(v.shape)
    kind = ch.choice(["sum", "sum", "max", "mean"])
    if r == 0 or ch.boolean(0.2):
        axis = None
    elif r >= 2 and ch.boolean(0.3):
        axes = ch.permutation(r)[:2]
        axis = tuple(a - r if ch.boolean(0.3) else a for a in axes)
    else:
        axis = ch.integer(-r, r - 1)
    keepdims = ch.boolean(0.3)
    axes = tuple(range(r)) if axis is None else tuple(sorted(a % r for a in ((axis,) if isinstance(axis, int) else axis)))
    n = math.prod(v.shape[a] for a in axes)
    sym_fn, ref_fn = {"sum": (ops.sum, np.sum), "max": (ops.max, np.max), "mean": (ops.mean, np.mean)}[kind]
    method = ch.boolean(0.25) and not keepdims
    if method:
        code = lambda a: f"{a}.{kind}({'' if axis is None else axis})"
        sym = lambda a: getattr(a, kind)(axis)
    else:
        code = lambda a: f"ops.{kind}({a}, axis={axis}{', keepdims=True' if keepdims else ''})"
        sym = lambda a: sym_fn(a, axis=axis, keepdims=keepdims)
    decide = None
    if kind == "max":
        def decide(a):
            moved = np.moveaxis(a, axes, tuple(range(r - len(axes), r))).reshape(-1, n) if r else a.reshape(1, 1)
            if moved.shape[1] < 2:
                return np.zeros(moved.shape[0], dtype=np.int64), math.inf
            top = np.sort(moved, axis=1)
            return np.argmax(moved, axis=1), tie_distance(top[:, -1] - top[:, -2])
    bound = v.bound * n if kind == "sum" else v.bound
    return Op(kind, sym, lambda a: ref_fn(a, axis=axis, keepdims=keepdims), code, decide), (x,), bound


def fam_matmul(ch, prog, x):
    v = prog.values[x]
    if not v.shape or len(v.shape) > 3:
        return None
    k = v.shape[-1]
    options = []
    for j, w in enumerate(prog.values):
        if not w.shape or len(w.shape) > 3:
            continue
        if len(w.shape) == 1 and w.shape[0] == k:
            options.append(j)
        elif len(w.shape) >= 2 and w.shape[-2] == k and (len(v.shape) == 1 or broadcastable(v.shape[:-2], w.shape[:-2]) is not None):
            options.append(j)
    if not options:
        return None
    y = ch.choice(options)
    w = prog.values[y]
    try:
        shape = np.matmul(np.zeros(v.shape), np.zeros(w.shape)).shape
    except ValueError:
        return None
    if not fits(shape) and shape != ():
        return None
    use_operator = ch.boolean(0.5)
    return Op("matmul", (lambda a, b: a @ b) if use_operator else ops.matmul, np.matmul,
              (lambda a, b: f"({a} @ {b})") if use_operator else (lambda a, b: f"ops.matmul({a}, {b})")), \
        (x, y), v.bound * w.bound * k


def fam_einsum(ch, prog, x):
    v = prog.values[x]
    if not v.shape or len(v.shape) > 3:
        return None
    letters = iter("ijklmnopq")
    size = {}
    xs = []
    for d in v.shape:
        same = [c for c in xs if size[c] == d]
        if AVAILABLE["einsum_diagonal"] and same and ch.boolean(0.3):
            xs.append(ch.choice(same))  # "iij->ij": a diagonal
            continue
        c = next(letters)
        xs.append(c)
        size[c] = d
    terms, args = ["".join(xs)], [x]
    if ch.boolean(0.75):
        y = ch.choice([j for j, w in enumerate(prog.values) if w.shape and len(w.shape) <= 3])
        ys = []
        for d in prog.values[y].shape:
            shared = [c for c in dict.fromkeys(xs) if size[c] == d and c not in ys]
            if shared and ch.boolean(0.6):
                ys.append(ch.choice(shared))
            else:
                c = next(letters)
                ys.append(c)
                size[c] = d
        terms.append("".join(ys))
        args.append(y)
    used = sorted(set("".join(terms)))
    out = ch.subset(used, 0.5)
    out = [out[i] for i in ch.permutation(len(out))]
    spec = ",".join(terms) + "->" + "".join(out)
    shape = tuple(size[c] for c in out)
    if not fits(shape) and shape != ():
        return None
    summed = math.prod(size[c] for c in used if c not in out)
    bound = math.prod(prog.values[j].bound for j in args) * summed
    return Op("einsum", lambda *a: ops.einsum(spec, *a), lambda *a: np.einsum(spec, *a),
              lambda *a: f'ops.einsum("{spec}", {", ".join(a)})'), tuple(args), bound


FAMILIES = {  # name -> (builder, weight)
    "index": (fam_index, 3), "strided_slice": (fam_strided, 3), "pad": (fam_pad, 2), "flip": (fam_flip, 1),
    "roll": (fam_roll, 1), "broadcast": (fam_broadcast, 2), "reshape": (fam_reshape, 2),
    "transpose": (fam_transpose, 2), "concat": (fam_concat, 3), "stack": (fam_stack, 2),
    "unary": (fam_unary, 3), "binary": (fam_binary, 3), "where": (fam_where, 1), "reduce": (fam_reduce, 3),
    "matmul": (fam_matmul, 2), "einsum": (fam_einsum, 2),
    "tile": (fam_tile, 1), "repeat": (fam_repeat, 1), "diagonal": (fam_diagonal, 1), "triangle": (fam_triangle, 1),
    "softmax": (fam_softmax, 1), "scan": (fam_scan, 1), "product": (fam_product, 1), "variance": (fam_variance, 1),
    "window": (fam_window, 3),
}
ACTIVE = [name for name in FAMILIES if AVAILABLE.get(name, True)]
WEIGHTED = [name for name in ACTIVE for _ in range(FAMILIES[name][1])]


def random_program(ch: Chooser, families=None, steps=(2, 8)) -> Program:
    """2-8 steps (or `steps`) over 1-3 Inputs; a chain (each step reads the last value) or a DAG; 1-3 outputs."""
    pool = WEIGHTED if families is None else [f for f in WEIGHTED if f in families]
    prog = Program()
    for i in range(ch.integer(1, 3)):
        shape = tuple(ch.integer(1, MAX_DIM) for _ in range(ch.integer(1, 3)))
        prog.values.append(Value(f"x{i}", shape, INPUT_RANGE, None))
    chain = ch.boolean(0.4)
    n_steps = ch.integer(*steps)
    while len(prog.steps) < n_steps:
        last = len(prog.values) - 1
        x = last if chain or ch.boolean(0.5) else ch.integer(0, last)
        made = None
        for _ in range(10):
            family = ch.choice(pool)
            made = FAMILIES[family][0](ch, prog, x)
            if made is not None and made[2] <= MAX_BOUND:
                break
            made = None
        if made is None:  # nothing applied: a map always does
            family, made = "unary", fam_unary(ch, prog, x)
        op, args, bound = made
        shape = np.shape(op.ref(*[np.zeros(prog.values[a].shape) for a in args]))
        prog.values.append(Value(f"v{len(prog.steps)}", shape, float(bound), len(prog.steps)))
        prog.steps.append(Step(op, tuple(args), len(prog.values) - 1, family))
    computed = [i for i, v in enumerate(prog.values) if v.step is not None]
    used = {a for s in prog.steps for a in s.args}
    sinks = [i for i in computed[:-1] if i not in used]        # dead unless they are outputs
    shared = [i for i in computed[:-1] if i in used]          # an output that later steps also read
    extra = ch.subset(sinks, 0.8) + ch.subset(shared, 0.15)
    prog.outputs = [computed[-1]] + [extra[i] for i in ch.permutation(len(extra))][:2]
    return prog


# ---- the differential check -------------------------------------------------------------------------

def assert_close(actual, expected, what: str, rtol: float, atol: float, source: str):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape}, expected {expected.shape}\n{source}")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol,
                               err_msg=f"{what}\n--- program ---\n{source}\n")


def magnitude(*arrays) -> float:
    return max([1.0] + [float(np.max(np.abs(a))) for a in arrays if np.size(a)])


def central_differences(prog: Program, arrays: dict, weights: list, decisions: list) -> tuple[dict, dict]:
    """d loss / d input for every input by central differences of the NumPy transcription, and a
    mask per input of the elements whose perturbations take the same branches as the point itself."""
    def loss(values, record=None):
        outs = prog.run(values, record)
        return sum(float(np.sum(outs[i] * w)) for i, w in zip(prog.outputs, weights))

    grads, valid = {}, {}
    for v in prog.inputs:
        base = arrays[v.name]
        g, ok = np.zeros(base.shape), np.ones(base.shape, bool)
        for idx in np.ndindex(base.shape):
            sides = []
            for sign in (1, -1):
                moved = dict(arrays)
                moved[v.name] = base.copy()
                moved[v.name][idx] += sign * FD_STEP
                record = []
                sides.append(loss(moved, record))
                ok[idx] &= all(np.array_equal(r[0], d[0]) for r, d in zip(record, decisions))
            g[idx] = (sides[0] - sides[1]) / (2 * FD_STEP)
        grads[v.name], valid[v.name] = g, ok
    return grads, valid


@dataclass
class Report:
    finite_differences: bool = False


def check_program(prog: Program, seed: int, differences: bool = True) -> Report:
    """Compiled forward values and gradients against evaluate and NumPy; evaluate's gradients against
    central differences. Raises AssertionError naming the program on any mismatch."""
    source = prog.source()
    rng = np.random.default_rng(seed)
    arrays = {v.name: rng.uniform(-INPUT_RANGE, INPUT_RANGE, v.shape) for v in prog.inputs}
    out_values = [prog.values[i] for i in prog.outputs]
    weights = [rng.uniform(-1.0, 1.0, v.shape) for v in out_values]

    nodes = prog.build()
    inputs = [nodes[i] for i, v in enumerate(prog.values) if v.step is None]
    outputs = [nodes[i] for i in prog.outputs]
    weight_inputs = [Input(f"w{k}", v.shape, "float64") for k, v in enumerate(out_values)]
    loss = None
    for out, w in zip(outputs, weight_inputs):
        term = ops.sum(out * w)
        loss = term if loss is None else loss + term
    grads = C.grad(loss, inputs)

    values = dict(arrays, **{f"w{k}": w for k, w in enumerate(weights)})
    decisions = []
    reference = prog.run(arrays, decisions)
    expected = [reference[i] for i in prog.outputs]
    atol = ATOL * max(magnitude(*expected), *[v.bound for v in out_values])

    evaluated = C.evaluate(outputs + grads, values)
    for k, (got, want) in enumerate(zip(evaluated, expected)):
        assert_close(got, want, f"evaluate, output {k} ({prog.values[prog.outputs[k]].name}) vs NumPy",
                     RTOL, atol, source)

    fn = C.compile(outputs + grads)
    names = {b["name"] for _, b in fn.arguments}
    # A first call on NaNs leaves NaN in every buffer it writes: a kernel of the second call that
    # reads a buffer before writing it (or outside what was written) sees NaN, not plausible numbers.
    fn(**{k: np.full_like(a, np.nan) for k, a in values.items() if k in names})
    compiled = [np.array(a, copy=True) for a in fn(**{k: a for k, a in values.items() if k in names})]
    for k, want in enumerate(expected):
        name = prog.values[prog.outputs[k]].name
        assert_close(compiled[k], want, f"compiled output {k} ({name}) vs NumPy", RTOL, atol, source)
        assert_close(compiled[k], evaluated[k], f"compiled output {k} ({name}) vs evaluate", RTOL, atol, source)

    n = len(outputs)
    grad_atol = ATOL * magnitude(*evaluated[n:])
    for v, got, want in zip(prog.inputs, compiled[n:], evaluated[n:]):
        assert_close(got, want, f"compiled gradient for {v.name} vs evaluate", RTOL, grad_atol, source)

    report = Report()
    finite = all(np.all(np.isfinite(e)) for e in expected)  # a mean over an empty axis is NaN
    if differences and finite and all(d[1] > TIE for d in decisions):
        report.finite_differences = True
        fd, valid = central_differences(prog, arrays, weights, decisions)
        loss_scale = sum(float(np.sum(np.abs(e * w))) for e, w in zip(expected, weights))  # rounding of the sum
        for v, want in zip(prog.inputs, evaluated[n:]):
            ok = valid[v.name]
            fd_atol = FD_TOL * max(magnitude(want), loss_scale * 1e-3)
            assert_close(np.where(ok, want, 0.0), np.where(ok, fd[v.name], 0.0),
                         f"evaluate's gradient for {v.name} vs central differences of NumPy", FD_TOL, fd_atol, source)
    return report


def explore(count: int, seed: int = 0, families=None, steps=(2, 8)):
    """Run `count` random programs; print each failing one with its error. Returns the failures."""
    failures, with_differences, counts = [], 0, {}
    for i in range(count):
        ch = RandomChooser(seed * 1_000_003 + i)
        try:
            prog = random_program(ch, families, steps)
        except Exception as error:  # a generator bug: report it like a failure
            failures.append((i, None, f"generator: {type(error).__name__}: {error}"))
            print(f"==== program {i}: generator error ====\n{traceback.format_exc()}", flush=True)
            continue
        try:
            report = check_program(prog, i)
            with_differences += report.finite_differences
            for s in prog.steps:
                counts[s.op.family] = counts.get(s.op.family, 0) + 1
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            failures.append((i, prog, text))
            print(f"==== program {i} ====\n{text[:3000]}\n", flush=True)
    print(f"{len(failures)} of {count} programs failed; {with_differences} passing ones checked against "
          f"finite differences; steps per op family: {dict(sorted(counts.items()))}")
    return failures


if __name__ == "__main__":  # python tests/program_fuzz.py [COUNT [SEED [MAX_STEPS [FAMILY,...]]]]
    arguments = [int(a) for a in sys.argv[1:4]]
    count, seed, max_steps = arguments + [100, 0, 8][len(arguments):]
    explore(count, seed, sys.argv[4].split(",") if len(sys.argv) > 4 else None, steps=(2, max_steps))
