"""Philox-4x32-10 in NumPy: the counter-based generator behind symprop's random nodes.

Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11;
the generator of Random123, cuRAND and PyTorch's CUDA dropout) turns a
128-bit counter and a 64-bit key into four 32-bit words by ten rounds of
32x32->64-bit multiplies. It has no state: the bits of any element of any
step are a function of (seed, step counter, stream, element index), so a
kernel draws each element where it needs it, the backward pass draws the same
bits again, and another process gets the same bits from the same seed.

The compiled kernels emit the same rounds as integer IR
(``compiler/codegen/random_bits.py``); this module is the reference the
evaluator uses. Layout of one draw:

- key: the seed's low and high 32 bits (``rng_seed``, an int64);
- counter: the element's linear index (low, high 32 bits), the step counter's
  low 32 bits, and ``stream + (counter >> 32) * 2**16`` (``rng_counter``, an
  int64; streams number a program's random nodes, fewer than 2**16);
- uniform in [0, 1): float32 from the top 24 bits of word ``lane`` (0 or 1),
  float64 from 27 + 26 bits of words (0, 1) or (2, 3);
- normal (Box-Muller): ``sqrt(-2 log(1 - u0)) * cos(2 pi u1)`` of the two lanes.
"""
from __future__ import annotations

import numpy as np

M0, M1 = 0xD2511F53, 0xCD9E8D57  # Philox multipliers
W0, W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments (golden ratio, sqrt(3) - 1)
ROUNDS = 10
STREAMS = 2 ** 16  # streams per program; the counter's bits above 32 share the last word with them

_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32(c0, c1, c2, c3, k0, k1) -> tuple:
    """The four output words (uint32 arrays) of Philox-4x32-10 on counter words c0..c3 and key k0, k1."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in (c0, c1, c2, c3))
    k0, k1 = np.uint32(k0), np.uint32(k1)
    with np.errstate(over="ignore"):
        for round_ in range(ROUNDS):
            if round_:
                k0, k1 = np.uint32((int(k0) + W0) & 0xFFFFFFFF), np.uint32((int(k1) + W1) & 0xFFFFFFFF)
            p0 = c0.astype(np.uint64) * np.uint64(M0)
            p1 = c2.astype(np.uint64) * np.uint64(M1)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _MASK32).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _MASK32).astype(np.uint32)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def key_words(seed: int) -> tuple:
    """(k0, k1): the seed's two's-complement 64 bits, low word first."""
    bits = int(seed) & 0xFFFFFFFFFFFFFFFF
    return bits & 0xFFFFFFFF, bits >> 32


def counter_words(elements: np.ndarray, counter: int, stream: int) -> tuple:
    """(c0, c1, c2, c3) for each element index (a uint64 array) of one stream at one counter value."""
    if not 0 <= stream < STREAMS:
        raise ValueError(f"stream must be in [0, {STREAMS}), got {stream}")
    bits = int(counter) & 0xFFFFFFFFFFFFFFFF
    elements = np.asarray(elements, dtype=np.uint64)
    last = (stream + ((bits >> 32) << 16)) & 0xFFFFFFFF
    return ((elements & _MASK32).astype(np.uint32), (elements >> np.uint64(32)).astype(np.uint32),
            np.full(elements.shape, bits & 0xFFFFFFFF, np.uint32), np.full(elements.shape, last, np.uint32))


def uniform_lanes(words: tuple, dtype: str) -> tuple:
    """The two uniforms in [0, 1) of one block: (u0, u1) in `dtype` (float32 or float64), exact."""
    w0, w1, w2, w3 = words
    if dtype == "float32":
        scale = np.float32(2.0 ** -24)
        return tuple((w >> np.uint32(8)).astype(np.float32) * scale for w in (w0, w1))
    if dtype == "float64":
        def res53(a, b):  # (a >> 5) * 2**26 + (b >> 6): 53 bits, exact in float64
            return ((a >> np.uint32(5)).astype(np.float64) * 67108864.0 + (b >> np.uint32(6)).astype(np.float64)) \
                * 2.0 ** -53
        return res53(w0, w1), res53(w2, w3)
    raise ValueError(f"random numbers are float32 or float64, got dtype {dtype!r}")


def normal_from_uniforms(u0: np.ndarray, u1: np.ndarray) -> np.ndarray:
    """Box-Muller in the uniforms' dtype: 1 - u0 is in (0, 1], so the logarithm is finite."""
    dtype = u0.dtype.type
    return np.sqrt(dtype(-2) * np.log(dtype(1) - u0)) * np.cos(dtype(2 * np.pi) * u1)


def random_values(distribution: str, shape: tuple, dtype: str, stream: int, seed: int, counter: int) -> np.ndarray:
    """The values a random node of `shape` draws: element i from block (seed; i, counter, stream)."""
    elements = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
    words = philox4x32(*counter_words(elements, counter, stream), *key_words(seed))
    u0, u1 = uniform_lanes(words, dtype)
    if distribution == "uniform":
        values = u0
    elif distribution == "normal":
        with np.errstate(all="ignore"):
            values = normal_from_uniforms(u0, u1)
    else:
        raise ValueError(f"distribution must be 'uniform' or 'normal', got {distribution!r}")
    return values.reshape(shape)
