"""Random compositions of layout ops, maps, reductions, contractions and windows (the window primitive,
convolution, pooling): compiled == evaluate == NumPy.

Every single-op test can pass while the compiler miscompiles a slice of a
concat of a broadcast, so this file compiles random *programs* (chains and
DAGs of 2-8 steps, shared subexpressions, several outputs; the generator is
``program_fuzz.py``). Each program is built as a symprop graph and, step by
step, as plain NumPy. One ``compile`` call per program computes the outputs
and the gradients of a weighted sum of them; the test compares

- the compiled outputs with ``evaluate`` and with the NumPy transcription
  (the compiled function runs once on NaNs first, so a kernel that reads a
  buffer before writing it shows NaN),
- the compiled gradients with ``evaluate`` of the same gradient graph,

at 1e-10 relative in float64, and ``evaluate``'s gradients with central
differences of the NumPy transcription at 1e-6 (only when no max, maximum or
where in the program is at a tie, and only for the elements whose
perturbations take the same branches).

``SYMPROP_FUZZ_EXAMPLES`` sets the number of programs (default 300); the
examples are derandomized, so CI runs the same programs every time. A failure
prints the program as Python source (shrunk by hypothesis) and the seed of its
input values: ``check_program(program, seed)`` reproduces it.
"""
from __future__ import annotations

import os
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from compiler import ops
from program_fuzz import (ACTIVE, EXCLUDED, FAMILIES, DrawChooser, Op, Program, RandomChooser, Step, Value,
                          check_program, random_program)

EXAMPLES = int(os.environ.get("SYMPROP_FUZZ_EXAMPLES", "300"))


@st.composite
def programs(draw):
    return random_program(DrawChooser(draw))


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=list(HealthCheck))
@given(program=programs(), seed=st.integers(0, 2**32 - 1))
def test_random_programs_compile_to_evaluate_and_numpy(program, seed):
    note(f"--- program (input values: check_program(program, seed={seed})) ---\n{program.source()}")
    check_program(program, seed)


SPLIT_EXAMPLES = max(EXAMPLES // 3, 20)


@settings(max_examples=SPLIT_EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=False,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=list(HealthCheck))
@given(program=programs(), seed=st.integers(0, 2**32 - 1))
def test_random_programs_split_across_threads_compile_to_evaluate_and_numpy(program, seed):
    """The same check with every kernel that can split run on two threads, however small it is
    (SYMPROP_SPLIT_ALL): the split ranges, partial reductions and product pieces of the pool."""
    note(f"--- program (input values: check_program(program, seed={seed}), SYMPROP_THREADS=2 SYMPROP_SPLIT_ALL=1) ---"
         f"\n{program.source()}")
    with mock.patch.dict(os.environ, SYMPROP_THREADS="2", SYMPROP_SPLIT_ALL="1"):
        check_program(program, seed)


def test_generator_reaches_every_available_op_family():
    """The generator itself: within a few hundred programs every family the compiler offers appears,
    and the families it lacks are the ones the import printed."""
    seen = set()
    for i in range(400):
        prog = random_program(RandomChooser(i))
        assert 2 <= len(prog.steps) <= 8
        assert 1 <= len(prog.outputs) <= 3
        seen |= {s.family for s in prog.steps}
    assert seen == set(ACTIVE) == set(FAMILIES) - set(EXCLUDED)
    print(f"op families excluded (not in compiler.ops yet): {', '.join(EXCLUDED) or 'none'}")


def _one_step_program(sym, ref):
    """x0 (3, 4) -> one step, `sym` in symprop and `ref` in the NumPy transcription."""
    prog = Program(values=[Value("x0", (3, 4), 2.0, None), Value("v0", (3, 2), 2.0, 0)])
    op = Op("index", sym, ref, lambda a: f"{a}[:, 1:3]")
    prog.steps, prog.outputs = [Step(op, (0,), 1)], [1]
    return prog


def test_check_program_fails_on_wrong_values_and_wrong_gradients():
    """The check can fail: a value off by one column, and a gradient that stop_gradient cut."""
    columns = lambda a: a[:, 1:3]  # noqa: E731
    check_program(_one_step_program(columns, columns), seed=0)
    with pytest.raises(AssertionError, match="vs NumPy"):
        check_program(_one_step_program(columns, lambda a: a[:, 0:2]), seed=0)
    no_gradient = lambda a: a[:, 1:3] + ops.stop_gradient(a[:, 1:3]) - a[:, 1:3]  # noqa: E731
    with pytest.raises(AssertionError, match="central differences"):
        check_program(_one_step_program(no_gradient, columns), seed=0)
