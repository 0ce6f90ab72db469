"""The fuzzer's map families: unary maps, binary arithmetic and maximum (with a scalar or a
broadcast partner) and where, each step with its NumPy transcription; maximum and where carry a
``decide`` that names the branch each element takes and its distance to a tie."""
from __future__ import annotations

import math

import numpy as np

from compiler import ops
from fuzz_programs import EXP_BOUND, Op, broadcastable, tie_distance


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
