"""In-place updates of targets with different shapes, compared with NumPy on random programs.

The scheduler writes every update target of one element count and dtype in one loop over the
targets' common layout (``common_layout``: size-1 axes dropped, reshapes that keep axes whole), and
runs every update loop in one kernel. Each update reads the old values: a read of a target at the
element its loop writes is that element, read before it is written; any other read (another element,
another loop's target) is a snapshot taken before the first write. Random programs mix both kinds of
read across shapes (the differential fuzzer compiles programs without updates), and each one's step
must leave exactly what NumPy computes from the old values.
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
from compiler import optim
from compiler.primitives.modes import make_training

SHAPES = {  # contiguous shapes of one element count: same layout, or not ((2, 6) and (6, 2))
    4: [(4,), (1, 4), (4, 1), (2, 2), (1, 2, 2)],
    12: [(12,), (1, 12), (12, 1), (2, 6), (6, 2), (3, 4), (2, 2, 3), (3, 1, 4)],
}


def random_updates(rng, tag: str):
    """[(name, shape, [(source index, reversed, coefficient)])], x's coefficient per target."""
    targets = []
    for count in rng.choice(list(SHAPES), size=rng.integers(2, 5)):
        shapes = SHAPES[int(count)]
        targets.append((f"{tag}_b{len(targets)}", shapes[rng.integers(len(shapes))]))
    plan = []
    for name, shape in targets:
        size = int(np.prod(shape))
        same = [k for k, (_, other) in enumerate(targets) if int(np.prod(other)) == size]
        terms = [(int(k), bool(rng.integers(2)), float(rng.integers(-3, 4)) / 2)
                 for k in rng.choice(same, size=rng.integers(1, 3))]
        plan.append((name, shape, terms))
    return plan


def element_view(node, size: int, reverse: bool, shape):
    """`node` read in flat order (or reversed) as `shape`."""
    flat = C.reshape(node, (size,))
    return C.reshape(flat[::-1] if reverse else flat, shape)


@pytest.mark.parametrize("seed", range(8))
def test_random_update_programs_leave_what_numpy_computes_from_the_old_values(seed):
    rng = np.random.default_rng(seed)
    tag = f"ul{seed}"
    plan = random_updates(rng, tag)
    x, w = C.Input(f"{tag}_x", (4,), dtype="float64"), C.Param(f"{tag}_w", (4,), init="ones", dtype="float64")
    buffers = [C.Buffer(name, shape, dtype="float64") for name, shape, _ in plan]
    updates = []
    for target, (_, shape, terms) in zip(buffers, plan):
        size = int(np.prod(shape))
        value = target * 1.0
        for k, reverse, coefficient in terms:
            value = value + element_view(buffers[k], size, reverse, shape) * coefficient
        if size == 4:
            value = value + C.reshape(x, shape)
        updates.append((target, value))
    out = make_training(x * w, x * w, updates=updates)
    step = C.compile_step(C.sum(out), optim.SGD(lr=0.0), seed=0)
    assert [k["phase"] for k in step.kernels()].count("update") == 1
    old = {name: rng.normal(size=shape) for name, shape, _ in plan}
    for name, value in old.items():
        np.copyto(step.buffers[name], value)
    xs = rng.normal(size=4)
    step(**{f"{tag}_x": xs})
    values = list(old.values())
    for name, shape, terms in plan:
        size = int(np.prod(shape))
        expected = old[name].copy()
        for k, reverse, coefficient in terms:
            flat = values[k].reshape(size)
            expected = expected + (flat[::-1] if reverse else flat).reshape(shape) * coefficient
        if size == 4:
            expected = expected + xs.reshape(shape)
        np.testing.assert_allclose(step.buffers[name], expected, rtol=1e-14, atol=1e-14, err_msg=f"{name} {plan}")
