"""The two scalar Inputs every random node reads, and how a compiled function fills them.

A program with random nodes (``compiler.random_uniform``, ``random_normal``,
``ops.dropout``) declares ``rng_seed`` and ``rng_counter``, int64 scalars
(``runtime/philox.py``: the seed is the generator's key, the counter part of
its counter). A training step binds them itself (its seed, its 1-based step
number). A plain compiled function fills what the caller leaves out: the seed
is ``fn.random.seed`` (0 unless set), the counter the function's call number
(1, 2, ...), so every call draws new numbers and a fresh function repeats the
same sequence; ``fn(..., rng_seed=7, rng_counter=3)`` draws exactly the
numbers ``compiler.evaluate`` gives for those values.
"""
from __future__ import annotations

import itertools

import numpy as np

SEED_INPUT = "rng_seed"
COUNTER_INPUT = "rng_counter"
NAMES = (SEED_INPUT, COUNTER_INPUT)
DTYPE = "int64"
FIRST_COUNTER = 1  # what compiler.evaluate assumes when no counter is given: a fresh function's first call


def as_scalar(name: str, value) -> np.ndarray:
    """`value` (a Python or NumPy integer, or a 0-d integer array) as a 0-d int64 array."""
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.int64:
        return value
    integer = isinstance(value, (int, np.integer)) or isinstance(value, np.ndarray) and value.shape == () \
        and value.dtype.kind in "iu"
    if not integer or isinstance(value, bool):
        raise TypeError(f"argument {name!r} must be an integer (an int64 scalar), got {value!r}")
    if not -2 ** 63 <= int(value) < 2 ** 63:
        raise ValueError(f"argument {name!r} must fit in int64, got {int(value)}")
    return np.array(int(value), dtype=np.int64)


class RandomInputs:
    """Fills ``rng_seed`` and ``rng_counter`` of a call that leaves them out."""

    def __init__(self, names):
        self.names = tuple(n for n in NAMES if n in names)
        self.seed = 0
        self._calls = itertools.count(FIRST_COUNTER)  # next() is atomic: threads get distinct counters

    @classmethod
    def of(cls, argument_names) -> "RandomInputs | None":
        """The filler for a function with these argument names (None: it draws no random numbers)."""
        names = set(argument_names)
        return cls(names) if names & set(NAMES) else None

    def fill(self, values: dict) -> dict:
        """`values` with the seed and the next counter added where missing (and integers made arrays)."""
        if SEED_INPUT in self.names:
            values[SEED_INPUT] = as_scalar(SEED_INPUT, values.get(SEED_INPUT, self.seed))
        if COUNTER_INPUT in self.names:
            given = values.get(COUNTER_INPUT)
            values[COUNTER_INPUT] = as_scalar(COUNTER_INPUT, next(self._calls) if given is None else given)
        return values
