"""The fuzzer's loop family: a scan over axis 0 of a value, whose body mixes its carry, the slice,
a value captured from outside the loop (computed by earlier steps) and constants, forwards or
reversed, with saved or recomputed intermediates. Random programs then read the stacked outputs or
the final carry through every other family, and differentiate through the loop."""
from __future__ import annotations

import numpy as np

import compiler as C
from compiler import ops
from fuzz_programs import Op, fits

TEMPLATES = ("rnn", "leaky", "product", "pair")


def fam_loop(ch, prog, x):
    v = prog.values[x]
    if len(v.shape) < 1 or v.shape[0] < 1:
        return None
    steps, slice_shape = v.shape[0], v.shape[1:]
    template = ch.choice(TEMPLATES if slice_shape else ("rnn", "leaky", "pair"))
    reverse, remat, final = ch.boolean(0.4), ch.boolean(0.3), ch.boolean(0.4)
    w = round(ch.integer(-9, 9) / 10, 1) or 0.5
    r = ch.integer(1, 9) / 10
    n = slice_shape[-1] if slice_shape else 1
    M = np.array([[ch.integer(-5, 5) / 10 for _ in range(n)] for _ in range(n)])
    bound = {"rnn": 1.0, "leaky": v.bound * v.bound, "product": 1.0, "pair": 1.0 + v.bound}[template]
    if not final and not fits(v.shape):
        return None

    def body(c, s, k, tanh, matrix):  # one step, in symprop (ops.tanh, a const) or in NumPy (np.tanh, M)
        if template == "rnn":
            c = tanh(c * w + s)
            return c, c
        if template == "leaky":
            c = c * r + s * (1 - r)
            return c, c * k
        if template == "product":
            c = tanh(c @ matrix + s * k)
            return c, c
        c1, c2 = c
        c1, c2 = tanh(c1 + c2 * w + s), c1 * r
        return (c1, c2), c1 - c2 * k

    def symbolic(a):
        k = ops.tanh(a[0]) if template in ("product",) else a[0]
        init = (a[0] * 0.5, a[-1] * 0.25) if template == "pair" else (ops.tanh(a[-1]) if template != "leaky" else a[-1])
        carry, ys = C.scan(lambda c, s: body(c, s, k, ops.tanh, C.const(M)), init, a, reverse=reverse,
                           remat=remat)
        return (carry[0] if template == "pair" else carry) if final else ys

    def reference(a):
        k = np.tanh(a[0]) if template in ("product",) else a[0]
        carry = (a[0] * 0.5, a[-1] * 0.25) if template == "pair" else (np.tanh(a[-1]) if template != "leaky" else a[-1])
        ys = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            carry, ys[t] = body(carry, a[t], k, np.tanh, M)
        return (carry[0] if template == "pair" else carry) if final else np.stack(ys)

    def code(a):
        return (f"__import__('compiler').scan(<{template} body, w={w}, r={r}, M={M.tolist()}>, <init from {a}>, "
                f"{a}, reverse={reverse}, remat={remat})[{0 if final else 1}]")
    return Op("loop", symbolic, reference, code), (x,), bound
