"""The pieces every random program is made of: its limits, its random choices (``Chooser``), its
steps (``Op``, ``Value``, ``Step``, ``Program``) and the shape helpers the op families share."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from compiler import Input

MAX_DIM = 5          # Input dims are 1..MAX_DIM
MAX_SIZE = 240       # elements of any value in a program
MAX_RANK = 4
MAX_BOUND = 1e4      # magnitude bound of any value: keeps exp, products and sums representable
EXP_BOUND = 3.0      # exp only of values bounded by this
INPUT_RANGE = 2.0    # inputs are uniform in [-INPUT_RANGE, INPUT_RANGE]
FD_STEP = 1e-6
RTOL, ATOL = 1e-10, 1e-12   # compiled vs evaluate vs NumPy: atol is ATOL times the values' magnitude
FD_TOL = 1e-6               # evaluate's gradient vs central differences, relative and (scaled) absolute
TIE = 1e-9           # a non-smooth op closer than this to a tie: no finite differences for the program
ALLOW_EMPTY = False  # exploration: slices may be empty (values with a zero-size axis)


# ---- random choices -------------------------------------------------------------------------------

class Chooser:
    """Random choices; subclasses supply integer(lo, hi) (inclusive)."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, seq):
        seq = list(seq)
        return seq[self.integer(0, len(seq) - 1)]

    def boolean(self, p: float = 0.5) -> bool:
        """True with probability p; shrinks towards False."""
        return self.integer(0, 99) >= 100 - round(100 * p)

    def subset(self, seq, p: float = 0.5) -> list:
        return [item for item in seq if self.boolean(p)]

    def permutation(self, n: int) -> list:
        rest, out = list(range(n)), []
        while rest:
            out.append(rest.pop(self.integer(0, len(rest) - 1)))
        return out


class RandomChooser(Chooser):
    def __init__(self, seed):
        self.random = random.Random(seed)

    def integer(self, lo, hi):
        return self.random.randint(lo, hi)


class DrawChooser(Chooser):
    """hypothesis's draw: every choice is a drawn integer, so failing programs shrink."""

    def __init__(self, draw):
        from hypothesis import strategies as st
        self.draw, self.integers = draw, st.integers

    def integer(self, lo, hi):
        return lo if lo == hi else self.draw(self.integers(lo, hi))


# ---- programs ---------------------------------------------------------------------------------------

@dataclass
class Op:
    family: str
    sym: Callable          # symprop nodes -> node
    ref: Callable          # NumPy arrays -> array
    code: Callable         # argument names -> Python text of the symprop call
    decide: Callable | None = None   # arrays -> (branch taken per element, distance to the nearest tie)


@dataclass
class Value:
    name: str
    shape: tuple
    bound: float           # |value| <= bound everywhere
    step: int | None       # index of the step computing it, None for an Input


@dataclass
class Step:
    op: Op
    args: tuple            # indices into Program.values
    out: int               # index of its value
    family: str = ""       # the FAMILIES entry that made it


@dataclass
class Program:
    values: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def __repr__(self):
        return f"Program(<{len(self.steps)} steps; its source is printed below>)"

    @property
    def inputs(self):
        return [v for v in self.values if v.step is None]

    def source(self) -> str:
        lines = ["import numpy as np", "from compiler import Input, ops, compile",
                 "from compiler.primitives.layouts import make_window", ""]
        for v in self.inputs:
            lines.append(f'{v.name} = Input("{v.name}", {v.shape}, "float64")')
        for s in self.steps:
            lines.append(f"{self.values[s.out].name} = {s.op.code(*[self.values[a].name for a in s.args])}")
        lines.append(f"outputs = [{', '.join(self.values[i].name for i in self.outputs)}]")
        return "\n".join(lines)

    def build(self, dtype: str = "float64") -> list:
        """The symprop nodes of every value."""
        nodes = [Input(v.name, v.shape, dtype) if v.step is None else None for v in self.values]
        for s in self.steps:
            nodes[s.out] = s.op.sym(*[nodes[a] for a in s.args])
        return nodes

    def run(self, arrays: dict, decisions: list | None = None) -> list:
        """The NumPy value of every value; decisions, if given, collects (branches, tie distance) per non-smooth op."""
        values = [arrays[v.name] if v.step is None else None for v in self.values]
        for s in self.steps:
            args = [values[a] for a in s.args]
            values[s.out] = np.asarray(s.op.ref(*args), dtype=np.float64)
            if decisions is not None and s.op.decide is not None:
                decisions.append(s.op.decide(*args))
        return values


# ---- helpers ----------------------------------------------------------------------------------------

def index_text(item) -> str:
    if item is None:
        return "None"
    if item is Ellipsis:
        return "..."
    if isinstance(item, slice):
        parts = ["" if p is None else str(p) for p in (item.start, item.stop, item.step)]
        return ":".join(parts[:2]) if item.step is None else ":".join(parts)
    return str(item)


def broadcastable(*shapes) -> tuple | None:
    try:
        out = np.broadcast_shapes(*shapes)
    except ValueError:
        return None
    return out if len(out) <= MAX_RANK and math.prod(out) <= MAX_SIZE else None


def fits(shape) -> bool:
    return len(shape) <= MAX_RANK and (0 if ALLOW_EMPTY else 1) <= math.prod(shape) <= MAX_SIZE


def tie_distance(gaps) -> float:
    gaps = np.abs(np.asarray(gaps, dtype=np.float64))
    return float(gaps.min()) if gaps.size else math.inf


def random_factorization(ch: Chooser, n: int, rank: int) -> tuple:
    """A shape of `rank` dims whose product is n."""
    primes, m, p = [], n, 2
    while m > 1:
        while m % p == 0:
            primes.append(p)
            m //= p
        p += 1
    dims = [1] * rank
    for q in primes:
        dims[ch.integer(0, rank - 1)] *= q
    return tuple(dims)
