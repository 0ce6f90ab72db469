"""The fuzzer's reduction families: sum, max and mean over axes, and the composites built on
reductions (softmax, log_softmax, logsumexp, cumsum, cumprod, prod, var), each step with its NumPy
transcription and a bound on its values that keeps later exp and products representable."""
from __future__ import annotations

import math

import numpy as np

from compiler import ops
from fuzz_programs import Op, tie_distance


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
