"""Randomness inside a compiled step: noise leaves and dropout.

``random_uniform(shape)`` and ``random_normal(shape)`` are tensors drawn by the
counter-based generator of the ``random`` primitive (``primitives/random.py``):
no random array is passed in, each call of a compiled function (each step of
a training step) draws new numbers, and a seed reproduces them in any
process. ``dropout`` is built on a uniform draw and holds its inference
behaviour (the identity) in a ``training`` node, so ``compiler.inference``
switches it off.
"""
from __future__ import annotations

import math
import numbers

from . import scalar_functions as sf
from .dtypes import is_float
from .errors import fail
from .graph import Node
from .primitives.modes import make_training
from .primitives.random import make_random


def random_uniform(shape, dtype="float32") -> Node:
    """Numbers uniform in [0, 1) of `shape` (which may name symbolic dimensions, like "batch")."""
    return make_random("uniform", shape, dtype)


def random_normal(shape, dtype="float32") -> Node:
    """Standard normal numbers of `shape` (Box-Muller on two uniforms), for noise in GANs and VAEs:
    ``mu + sigma * random_normal(mu.shape)`` is the reparameterisation trick."""
    return make_random("normal", shape, dtype)


def dropout(x: Node, p, training: bool = True) -> Node:
    """Zero each element of `x` with probability `p` and scale the others by 1/(1-p), as PyTorch's
    dropout; the identity with training=False and after ``compiler.inference``. The gradient is the
    same mask times the upstream gradient (the backward pass draws the same bits)."""
    if not isinstance(x, Node):
        raise TypeError(f"dropout: x must be a graph node, got {type(x).__name__}")
    if not is_float(x.dtype):
        raise fail("dropout", f"x must be floating point, got {x.dtype}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not isinstance(training, bool):
        raise TypeError(f"dropout: training must be True or False, got {training!r}")
    p = float(p)
    if not training or p == 0.0:
        return x
    from .ops import Elementwise, _sympy_number
    # p = 1 draws too (no uniform reaches the threshold 1): x stays an argument, the result is 0
    threshold, scale = _sympy_number(keep_threshold(p, x.dtype)), _sympy_number(1.0 / (1.0 - p) if p < 1 else 1.0)
    # one map of x and the draw: its derivative (the mask times the scale) reads the draw again, so the
    # backward kernel draws the mask where it needs it instead of reading a stored one
    mask = Elementwise(lambda value, u: sf.Where(sf.GreaterEqual(u, threshold), value * scale, 0), "dropout")
    return make_training(mask(x, random_uniform(x.shape, x.dtype)), x)


def keep_threshold(p: float, dtype: str) -> float:
    """The least uniform a kept unit draws: uniforms are multiples of 2**-24 (float32) or 2**-53
    (float64), so ``u >= p`` is ``u >= ceil(p * 2**bits) * 2**-bits``, a number exact in either
    precision: compiled code compares the same in float32 or float64 loops, as NumPy does."""
    bits = 24 if dtype == "float32" else 53
    return math.ceil(p * 2.0 ** bits) * 2.0 ** -bits
