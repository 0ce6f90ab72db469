"""threads=N: kernels split across the runtime's native thread pool give the same bits as one thread.

The pool (runtime/thread_pool.py) is machine code; these tests check what a user relies on: a model
trains to bit-identical parameters with 1 and 2 threads (reductions included), splitting covers
every kernel kind that splits (SYMPROP_SPLIT_ALL forces tiny ones), concurrent calls from Python
threads and calls in a forked child are right, an idle pool costs no CPU, and bad thread counts
are refused with a clear message.
"""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import compiler as sp
from compiler import ops
from runtime import thread_pool

pytestmark = pytest.mark.skipif(not thread_pool.available(), reason="the thread pool needs Linux futexes")


def _mlp_loss(widths, dtype="float32"):
    _, logits, _ = sp.mlp(widths[0], list(widths[1:-1]), widths[-1], dtype=dtype)
    return sp.cross_entropy(logits, sp.Input("y", ("batch",), "int64"))


def _train(loss, optimizer, batches, threads):
    step = sp.compile_step(loss, optimizer, seed=3, threads=threads)
    losses = [step(**batch) for batch in batches]
    return step, losses


def _batches(rows, features, classes, count, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((rows, features)).astype(dtype), "y": rng.integers(0, classes, rows)}
            for _ in range(count)]


def test_an_mlp_trains_to_the_same_bits_with_one_and_two_threads():
    """Large enough that its products and loops split at the default thresholds."""
    loss = _mlp_loss((256, 512, 128, 10))
    batches = _batches(256, 256, 10, 5)
    one, losses_one = _train(loss, sp.optim.Adam(lr=1e-3), batches, threads=1)
    two, losses_two = _train(loss, sp.optim.Adam(lr=1e-3), batches, threads=2)
    assert (one.threads, two.threads) == (1, 2)
    split = [k for k in two.kernels() if k["splits"]]
    assert {k["kind"] for k in split} == {"bmm", "elementwise"}, two.kernels()
    assert not any(k["splits"] for k in one.kernels())
    # The update phase is one chain of loops on one thread; on two, its large loops (the two weight
    # matrices of 131,072 and 65,536 elements) are kernels of their own that split.
    updates = [k for k in two.kernels() if k["phase"] == "update"]
    assert sorted(k["shape"] for k in updates if k["splits"]) == [[256, 512], [512, 128]], updates
    assert len([k for k in one.kernels() if k["phase"] == "update"]) == 1
    assert losses_one == losses_two
    for name, value in one.params.items():
        assert np.array_equal(value, two.params[name]), name
    assert losses_two[-1] < losses_two[0]


@pytest.mark.parametrize("threads", [2, 3, 5])
def test_every_splittable_kernel_split_gives_the_same_bits(threads, monkeypatch):
    """SYMPROP_SPLIT_ALL: every kernel that can split does, at any size, into `threads` pieces (more
    than the machine's cores too); batched products, hosted row reductions (softmax), the update."""
    monkeypatch.setenv("SYMPROP_SPLIT_ALL", "1")
    loss = _mlp_loss((13, 29, 7), dtype="float64")
    batches = _batches(37, 13, 7, 4, dtype=np.float64, seed=1)
    one, losses_one = _train(loss, sp.optim.SGD(lr=0.1, momentum=0.9), batches, threads=1)
    many, losses_many = _train(loss, sp.optim.SGD(lr=0.1, momentum=0.9), batches, threads=threads)
    assert sum(k["splits"] for k in many.kernels()) >= 5
    assert losses_one == losses_many
    for name, value in one.params.items():
        assert np.array_equal(value, many.params[name]), name


def test_a_convolution_step_gives_the_same_bits_with_two_threads():
    x = sp.Input("x", ("batch", 3, 12, 12))
    y = sp.Input("y", ("batch",), "int64")
    w = sp.Param("w", (8, 3, 3, 3))
    v = sp.Param("v", (8 * 6 * 6, 5))
    h = ops.max_pool2d(ops.relu(ops.conv2d(x, w, padding=1)), 2)
    loss = sp.cross_entropy(ops.flatten(h) @ v, y)
    rng = np.random.default_rng(2)
    batches = [{"x": rng.standard_normal((32, 3, 12, 12)).astype(np.float32), "y": rng.integers(0, 5, 32)}
               for _ in range(3)]
    one, losses_one = _train(loss, sp.optim.SGD(lr=0.05, momentum=0.9), batches, threads=1)
    two, losses_two = _train(loss, sp.optim.SGD(lr=0.05, momentum=0.9), batches, threads=2)
    assert any(k["splits"] and k["kind"] == "bmm" for k in two.kernels())
    assert losses_one == losses_two
    for name, value in one.params.items():
        assert np.array_equal(value, two.params[name]), name


def test_a_split_function_equals_numpy_for_every_size_around_the_split(monkeypatch):
    """Row counts from 1 to past the thread count, every kernel split: no row lost or doubled."""
    monkeypatch.setenv("SYMPROP_SPLIT_ALL", "1")
    a = sp.Input("a", ("n", 70))
    b = sp.Param("b", (70, 40))
    f = sp.compile([ops.tanh(a @ b), ops.sum(ops.exp(a), axis=1)], threads=3)
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((70, 40)).astype(np.float32)
    for n in (1, 2, 3, 4, 7, 64, 1000):
        x = rng.standard_normal((n, 70)).astype(np.float32)
        product, sums = f(a=x, b=weights)
        np.testing.assert_allclose(product, np.tanh(x @ weights), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(sums, np.exp(x).sum(axis=1), rtol=1e-5)


def test_concurrent_calls_from_python_threads_are_each_right():
    """A second caller while the pool is busy runs its whole range on its own thread."""
    a = sp.Input("a", ("n", 256))
    f = sp.compile(ops.exp(a) * 2.0, threads=2)
    errors = []

    def hammer(seed):
        rng = np.random.default_rng(seed)
        for _ in range(200):
            x = rng.standard_normal((int(rng.integers(100, 400)), 256)).astype(np.float32)
            if not np.allclose(f(a=x), np.exp(x) * 2.0, rtol=1e-5):
                errors.append(seed)

    workers = [threading.Thread(target=hammer, args=(seed,)) for seed in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_workers():
    """The child inherits the pool's worker count but none of its threads; a parallel call there must
    not wait for them (the parent gives the child 120 s, then kills it and fails)."""
    a = sp.Input("a", ("n", 512))
    f = sp.compile(ops.exp(a) + 1.0, threads=2)
    x = np.linspace(-1, 1, 512 * 300, dtype=np.float32).reshape(300, 512)
    expected = np.exp(x) + 1.0
    np.testing.assert_allclose(f(a=x), expected, rtol=1e-6)
    assert f.kernels()[0]["splits"] and thread_pool.workers() >= 1
    pid = os.fork()
    if pid == 0:  # the child
        try:
            status = 0 if thread_pool.workers() >= 1 and np.allclose(f(a=x), expected, rtol=1e-6) else 1
        except BaseException:
            status = 2
        os._exit(status)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's parallel call did not return (waiting for the parent's workers?)")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_an_idle_pool_parks_its_workers():
    """After the spin window the workers sleep in the kernel: the process uses no CPU while idle."""
    a = sp.Input("a", ("n", 512))
    f = sp.compile(ops.exp(a), threads=2)
    f(a=np.ones((400, 512), np.float32))
    time.sleep(0.05)
    before = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - before < 0.05


def test_bad_thread_counts_are_refused(monkeypatch):
    a = sp.Input("a", (4,))
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            sp.compile(ops.exp(a), threads=bad)
    monkeypatch.setenv("SYMPROP_THREADS", "many")
    with pytest.raises(ValueError, match="SYMPROP_THREADS must be a positive integer, got 'many'"):
        sp.compile(ops.exp(a))


def test_the_default_is_the_cores_this_process_may_use(monkeypatch):
    a = sp.Input("a", (4,))
    monkeypatch.delenv("SYMPROP_THREADS", raising=False)
    assert sp.compile(ops.exp(a)).threads == len(os.sched_getaffinity(0))
    monkeypatch.setenv("SYMPROP_THREADS", "3")
    assert sp.compile(ops.exp(a)).threads == 3
    assert sp.compile(ops.exp(a), threads=1).threads == 1


def test_a_step_keeps_its_thread_count_for_its_inference_functions():
    _, logits, _ = sp.mlp(8, [16], 3)
    loss = sp.cross_entropy(logits, sp.Input("y", ("batch",), "int64"))
    step = sp.compile_step(loss, sp.optim.SGD(lr=0.1), threads=2)
    assert step.threads == 2
    assert step.function(logits).threads == 2
