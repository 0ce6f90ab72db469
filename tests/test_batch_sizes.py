"""Changing batch sizes: the arena grows to the largest binding seen and is reused.

Every arena block (and persistent output block) comes from
``runtime.workspace.aligned_empty``; the tests count its calls. A call at a
size no larger than one seen before allocates nothing, keeps every temporary's
address, and computes what the reference evaluator computes at that size.
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as sp
import runtime.workspace
from compiler import optim


def mlp(prefix=""):
    x = sp.Input("x", ("batch", 6))
    y = sp.Input("y", ("batch",), "int64")
    W1 = sp.Param(f"{prefix}W1", (6, 16))
    b1 = sp.Param(f"{prefix}b1", (16,), init="zeros")
    W2 = sp.Param(f"{prefix}W2", (16, 3))
    hidden = sp.tanh(x @ W1 + b1)
    return sp.cross_entropy(hidden @ W2, y), hidden, (W1, b1, W2)


def batch(n, seed=0):
    rng = np.random.default_rng(seed + n)
    return {"x": rng.standard_normal((n, 6)).astype(np.float32), "y": rng.integers(0, 3, n)}


@pytest.fixture
def allocations(monkeypatch):
    """A list that grows by one entry (the byte count) per arena or output block allocated."""
    made = []
    real = runtime.workspace.aligned_empty

    def counting(nbytes):
        made.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(runtime.workspace, "aligned_empty", counting)
    return made


def slot_addresses(executable) -> list:
    workspace = executable._workspace
    return [workspace.table[i] for slot in executable._sizes.slot_buffers for i in slot]


def test_a_training_step_at_smaller_or_repeated_sizes_allocates_nothing(allocations):
    loss, _, _ = mlp()
    step = sp.compile_step(loss, optim.Adam(lr=0.01), seed=0)
    step(**batch(64))
    assert allocations, "the first call sizes the arena (the counter must see it)"
    first, addresses = len(allocations), slot_addresses(step._executable)
    for n in [17, 63, 1, 40, 64, 33, 2, 64, 5]:  # new sizes, each smaller than the first
        step(**batch(n))
    assert len(allocations) == first
    assert slot_addresses(step._executable) == addresses
    step(**batch(100))  # larger: the arena grows ...
    grown = len(allocations)
    assert grown > first
    for n in [99, 3, 100, 50]:  # ... and is reused again
        step(**batch(n))
    assert len(allocations) == grown


def test_a_different_size_every_call_keeps_one_arena_of_the_largest(allocations):
    """Variable-length episodes: 300 calls, each at a size never seen before, allocate only when a size
    exceeds every earlier one, and the arena ends as large as one bound once to the largest size."""
    loss, _, (W1, b1, W2) = mlp()
    fn = sp.compile([loss, *sp.grad(loss, [W1, b1, W2])])
    rng = np.random.default_rng(0)
    params = {"W1": rng.standard_normal((6, 16)).astype(np.float32), "b1": np.zeros(16, np.float32),
              "W2": rng.standard_normal((16, 3)).astype(np.float32)}
    sizes = list(range(300, 0, -1))
    fn(**batch(sizes[0]), **params)
    first = len(allocations)
    for n in sizes[1:]:
        fn(**batch(n), **params)
    assert len(allocations) == first
    fresh = sp.compile([loss, *sp.grad(loss, [W1, b1, W2])])
    fresh(**batch(300), **params)
    assert fn.arena_bytes == fresh.arena_bytes


def test_results_at_each_size_after_a_larger_one_equal_the_reference():
    loss, hidden, (W1, b1, W2) = mlp()
    outputs = [loss, sp.sum(hidden, 0), *sp.grad(loss, [W1, b1, W2])]
    fn = sp.compile(outputs)
    rng = np.random.default_rng(1)
    params = {"W1": rng.standard_normal((6, 16)).astype(np.float32), "b1": rng.standard_normal(16).astype(np.float32),
              "W2": rng.standard_normal((16, 3)).astype(np.float32)}
    for n in [50, 7, 49, 1, 50, 23]:
        values = {**batch(n), **params}
        compiled = fn(**values)
        expected = sp.evaluate(outputs, values)
        for actual, reference in zip(compiled, expected):
            np.testing.assert_allclose(actual, reference, rtol=2e-5, atol=2e-6)


def test_steps_at_alternating_sizes_equal_the_same_steps_on_fresh_steps():
    """A step after the arena was sized for a larger batch computes what a step bound only to its size does."""
    loss, _, _ = mlp()
    sizes = [32, 5, 31, 1, 32, 8]
    alternating = sp.compile_step(loss, optim.Adam(lr=0.01), seed=2)
    losses = [alternating(**batch(n)) for n in sizes]
    reference = sp.compile_step(loss, optim.Adam(lr=0.01), seed=2)
    expected = []
    for n in sizes:  # rebinding from scratch each time: a copy of the live state into a fresh executable
        expected.append(reference(**batch(n)))
        reference._executable._workspace = reference._executable._new_workspace()
    np.testing.assert_array_equal(losses, expected)
    for name in alternating.params:
        np.testing.assert_array_equal(alternating.params[name], reference.params[name])


def test_an_epoch_with_a_partial_batch_then_steps_allocate_once(allocations):
    loss, _, _ = mlp()
    step = sp.compile_step(loss, optim.SGD(lr=0.1), seed=0)
    data = batch(37)
    step.run_epoch(data, batch_size=8)  # the last batch has 5 rows
    first = len(allocations)
    step.run_epoch(data, batch_size=8)
    step(**batch(8))
    step(**batch(3))
    assert len(allocations) == first
