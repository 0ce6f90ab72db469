"""The fuzzer's contraction families: matmul (the operator and ops.matmul) and einsum with one or
two operands, shared and summed indices, and repeated indices (diagonals) when the compiler
accepts them, each step with its NumPy transcription."""
from __future__ import annotations

import math

import numpy as np

from compiler import GraphError, Input, ops
from fuzz_programs import Op, broadcastable, fits


def _repeated_einsum_indices_work() -> bool:
    try:
        return ops.einsum("iij->ij", Input("probe", (2, 2, 3), "float64")).shape == (2, 3)
    except (GraphError, TypeError, ValueError):
        return False


EINSUM_DIAGONAL = _repeated_einsum_indices_work()
"""Whether ops.einsum takes a repeated index ("iij->ij")."""


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
        if EINSUM_DIAGONAL and same and ch.boolean(0.3):
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
