"""Threads: compiling from several threads at once, and calling one compiled function from several.

No timing is asserted. Every join has a timeout: a deadlock fails the test instead of hanging it.
"""
from __future__ import annotations

import importlib
import threading

import numpy as np
import pytest

import compiler as sp
import runtime.programs
from compiler import optim
from compiler.traversal import leaves

compile_module = importlib.import_module("compiler.compile")  # compiler.compile is the function
TIMEOUT = 300  # seconds: far above any compile here, so only a deadlock reaches it


def run_threads(targets: list) -> list:
    """Run each callable in its own thread, started together; their results, or re-raise an error."""
    results, errors = [None] * len(targets), []
    start = threading.Barrier(len(targets))

    def body(k, target):
        try:
            start.wait(TIMEOUT)
            results[k] = target()
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=body, args=(k, t), daemon=True) for k, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    if errors:
        raise errors[0]
    return results


def tanh_model(width: int, tag: str):
    x = sp.Input("x", ("batch", 5))
    W = sp.Param(f"{tag}W", (5, width))
    v = sp.Param(f"{tag}v", (width,))
    out = sp.sum(sp.tanh(x @ W) * v, 1)
    return [out, *sp.grad(sp.sum(out * out), [W, v])], {"W": f"{tag}W", "v": f"{tag}v"}


def conv_model(tag: str):
    x = sp.Input("x", ("batch", 2, 6, 6))
    K = sp.Param(f"{tag}K", (3, 2, 3, 3))
    out = sp.mean(sp.relu(sp.conv2d(x, K, padding=1)), (1, 2, 3))
    return [out, *sp.grad(sp.sum(out), [K])]


def values_for(outputs, batch: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    named = {leaf.name: leaf for leaf in leaves(outputs) if leaf.op in ("input", "param")}
    return {name: rng.standard_normal([batch if isinstance(d, str) else d for d in leaf.shape]).astype(leaf.dtype)
            for name, leaf in named.items()}


def check(fn, outputs, values):
    for actual, expected in zip(fn(**values), sp.evaluate(outputs, values)):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


def test_two_threads_compile_two_models_at_once_and_both_are_correct(monkeypatch):
    monkeypatch.setenv("SYMPROP_CACHE", "0")
    first, _ = tanh_model(7, "threads_a_")
    second = conv_model("threads_b_")
    fns = run_threads([lambda: sp.compile(first), lambda: sp.compile(second)])
    check(fns[0], first, values_for(first, 4, 0))
    check(fns[1], second, values_for(second, 3, 1))


def test_four_threads_compiling_at_once_in_llvm_each_get_a_correct_program(monkeypatch):
    """LLVM parses, optimises and emits outside llvmlite's lock, each module in a context of its own:
    several at once, then loaded one at a time, give programs that compute what the reference does."""
    monkeypatch.setenv("SYMPROP_CACHE", "0")
    models = [tanh_model(12 + k, f"threads_four_{k}_")[0] for k in range(4)] + [conv_model("threads_four_conv_")]
    fns = run_threads([lambda outputs=outputs: sp.compile(outputs) for outputs in models])
    for k, (fn, outputs) in enumerate(zip(fns, models)):
        check(fn, outputs, values_for(outputs, 3, 10 + k))


def test_one_build_runs_while_another_is_in_progress(monkeypatch):
    """No process-wide lock across a build: the first model's build waits, inside the compiler, until
    the second model has been compiled completely (simplified, generated, optimised, loaded)."""
    monkeypatch.setenv("SYMPROP_CACHE", "0")
    waiting, _ = tanh_model(9, "threads_wait_")
    other, _ = tanh_model(10, "threads_other_")
    other_done, waiting_started = threading.Event(), threading.Event()
    real_build = compile_module.build

    def build(outputs, *args, **kwargs):
        if outputs[0] is waiting[0]:
            waiting_started.set()
            assert other_done.wait(TIMEOUT), "the other model could not compile while this build ran"
        return real_build(outputs, *args, **kwargs)

    monkeypatch.setattr(compile_module, "build", build)

    def compile_other():
        assert waiting_started.wait(TIMEOUT)
        fn = sp.compile(other)
        other_done.set()
        return fn

    fns = run_threads([lambda: sp.compile(waiting), compile_other])
    check(fns[0], waiting, values_for(waiting, 2, 2))
    check(fns[1], other, values_for(other, 2, 3))


def test_threads_compiling_the_same_model_build_it_once(monkeypatch):
    monkeypatch.setenv("SYMPROP_CACHE", "0")
    outputs, _ = tanh_model(11, "threads_same_")
    builds = []
    real_build = compile_module.build

    def build(*args, **kwargs):
        builds.append(threading.get_ident())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(compile_module, "build", build)
    fns = run_threads([lambda: sp.compile(outputs) for _ in range(4)])
    assert len(builds) == 1
    assert len({fn.key for fn in fns}) == 1
    for k, fn in enumerate(fns):
        check(fn, outputs, values_for(outputs, 3, k))
    assert fns[0].key not in runtime.programs._building  # no lock is left behind for a program that was built


def test_many_threads_calling_one_function_get_their_own_results():
    outputs, _ = tanh_model(16, "threads_call_")
    fn = sp.compile(outputs)
    cases = [values_for(outputs, batch, seed) for seed, batch in enumerate([1, 7, 64, 3, 64, 20, 5, 33])]
    expected = [sp.evaluate(outputs, values) for values in cases]

    def hammer(k):
        def run():
            for repeat in range(40):
                case = (k + repeat) % len(cases)
                for actual, reference in zip(fn(**cases[case]), expected[case]):
                    np.testing.assert_allclose(actual, reference, rtol=1e-4, atol=1e-5)
            return True
        return run

    assert all(run_threads([hammer(k) for k in range(8)]))
    assert fn.binding is not None


def test_threads_sharing_a_training_step_take_distinct_step_numbers():
    x = sp.Input("x", ("batch", 4))
    W = sp.Param("threads_step_W", (4, 3))
    loss = sp.mean(sp.tanh(x @ W) ** 2)
    step = sp.compile_step(loss, optim.SGD(lr=0.01), seed=0)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((n, 4)).astype(np.float32) for n in (8, 3, 8, 5)]

    def train(k):
        return lambda: [step(x=batches[(k + i) % len(batches)]) for i in range(25)]

    losses = run_threads([train(k) for k in range(4)])
    assert step.step_count == 100
    assert all(np.isfinite(value) for run in losses for value in run)


@pytest.mark.parametrize("threads", [2, 6])
def test_a_function_with_random_numbers_called_from_threads_draws_per_call(threads):
    x = sp.Input("x", ("batch", 8))
    out = sp.dropout(x, p=0.5)
    fn = sp.compile(out)
    ones = np.ones((4, 8), np.float32)
    masks = run_threads([lambda: [fn(x=ones).copy() for _ in range(10)] for _ in range(threads)])
    expected = {np.asarray(sp.evaluate(out, {"x": ones, "rng_seed": np.array(0), "rng_counter": np.array(c)})).tobytes()
                for c in range(1, threads * 10 + 1)}
    drawn = [mask.tobytes() for run in masks for mask in run]
    assert len(expected) == len(drawn) and set(drawn) == expected  # every call number exactly once
