"""Live state is a real mapping; checkpoints are validated before anything is overwritten.

Every kind of assignment to step.params and step.state copies into the live
array the program reads; new names, deletion and bad values are refused and a
refused update changes nothing; threads sharing a step get distinct step
numbers; a checkpoint with a bad step count or state is refused before any
array is copied. Part of the reliability probes (issue 9): one test per probe, each able to fail.
"""
from __future__ import annotations

import re
import threading

import numpy as np
import pytest

import compiler as sp
from compiler import optim
from small_classifier import batch, mlp


# ---- live state is a real mapping -----------------------------------------------------------------

def trained_step():
    loss, logits = mlp()
    step = sp.compile_step(loss, optim.Adam(lr=0.1))
    return step, logits


@pytest.mark.parametrize("how", ["setitem", "update", "update_pairs", "ior", "setdefault"])
def test_every_kind_of_assignment_copies_into_the_live_array(how):
    step, logits = trained_step()
    live = step.params["rel_W"]
    new = np.full((4, 3), 0.5, np.float32)
    if how == "setitem":
        step.params["rel_W"] = new
    elif how == "update":
        step.params.update(rel_W=new)
    elif how == "update_pairs":
        step.params.update([("rel_W", new)])
    elif how == "ior":
        step.params |= {"rel_W": new}
    else:
        assert step.params.setdefault("rel_W", new) is live  # present: setdefault changes nothing
        step.params["rel_W"] = new
    assert step.params["rel_W"] is live and np.array_equal(live, new)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(step.function(logits)(x=x), x @ new)  # the program reads the new values
    step(x=x, y=np.array([0, 1]))
    assert not np.array_equal(step.params["rel_W"], new)  # and trains them


def test_live_mappings_refuse_new_names_deletion_and_bad_values():
    step, _ = trained_step()
    kept = {name: array.copy() for name, array in step.params.items()}
    with pytest.raises(KeyError, match="no parameter named 'V'"):
        step.params.setdefault("V", np.zeros(3))
    with pytest.raises(KeyError):
        step.params.update(V=np.zeros(3))
    with pytest.raises(TypeError, match="cannot be removed"):
        del step.params["rel_W"]
    with pytest.raises(TypeError):
        step.params.pop("rel_W")
    with pytest.raises(TypeError):
        step.params.clear()
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        step.params["rel_W"] = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="dtype float32"):
        step.params["rel_W"] = np.zeros((4, 3), np.complex64)
    with pytest.raises(TypeError):
        step.state[next(iter(step.state))] = np.array("text")
    assert list(step.params) == list(kept)
    for name, array in step.params.items():
        np.testing.assert_array_equal(array, kept[name])


def test_an_update_with_one_bad_value_changes_nothing():
    x = sp.Input("x", ("batch", 2))
    a, b = sp.Param("rel_a", (2,)), sp.Param("rel_b", (2,))
    step = sp.compile_step(sp.sum(x * a + b), optim.SGD(lr=0.1))
    kept = step.params["rel_a"].copy()
    with pytest.raises(ValueError):
        step.params.update(rel_a=np.zeros(2, np.float32), rel_b=np.zeros(3, np.float32))
    np.testing.assert_array_equal(step.params["rel_a"], kept)


def test_optimizer_state_assignment_copies_into_the_live_array():
    step, _ = trained_step()
    name = next(iter(step.state))
    live = step.state[name]
    step.state.update({name: np.ones(live.shape, live.dtype)})
    assert step.state[name] is live and np.all(live == 1)


def test_threads_sharing_one_step_get_distinct_step_numbers():
    x = sp.Input("x", ("batch", 64))
    y = sp.Input("y", ("batch",), "int64")
    W = sp.Param("rel_W", (64, 256))
    loss = sp.cross_entropy(sp.tanh(x @ W), y)  # long enough that threads queue at the step
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((256, 64)).astype(np.float32), "y": rng.integers(0, 256, 256)}
    threaded = sp.compile_step(loss, optim.Adam(lr=0.01), seed=0)
    sequential = sp.compile_step(loss, optim.Adam(lr=0.01), seed=0)

    def worker():
        for _ in range(50):
            threaded(**inputs)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(200):
        sequential(**inputs)
    assert threaded.step_count == 200
    # the same batch every step: any order gives the same result, if every step number is used once
    np.testing.assert_array_equal(threaded.params["rel_W"], sequential.params["rel_W"])


# ---- checkpoints ----------------------------------------------------------------------------------

def checkpoint(tmp_path, step, **changes):
    path = tmp_path / "changed.npz"
    step.save(path)
    with np.load(path) as data:
        arrays = dict(data)
    arrays.update(changes)
    for name in [n for n, v in changes.items() if v is None]:
        del arrays[name]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("count", [np.int64(-1), np.float64(2.7), np.array([3]), np.bool_(True)])
def test_a_checkpoint_with_a_bad_step_count_is_refused(tmp_path, count):
    step, _ = trained_step()
    step(**batch())
    path = checkpoint(tmp_path, step, step_count=count)
    kept = step.params["rel_W"].copy()
    step.params["rel_W"] = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="step_count must be a non-negative integer"):
        step.load(path)
    assert step.step_count == 1 and not step.params["rel_W"].any()
    step.params["rel_W"] = kept
    step(**batch())
    assert np.all(np.isfinite(step.params["rel_W"]))


def test_a_failed_load_changes_nothing(tmp_path):
    step, _ = trained_step()
    step(**batch())
    state_name = next(iter(step.state))
    bad_state = np.zeros((1, 1), np.float32)
    path = checkpoint(tmp_path, step, **{f"state/{state_name}": bad_state, "step_count": np.int64(7)})
    before = {name: array.copy() for name, array in {**step.params, **step.state}.items()}
    step.params["rel_W"] = before["rel_W"] + 1  # so the checkpoint's rel_W differs from the live one
    changed = step.params["rel_W"].copy()
    with pytest.raises(ValueError, match=re.escape(f"state '{state_name}'")):
        step.load(path)
    np.testing.assert_array_equal(step.params["rel_W"], changed)  # params come first: none were copied
    assert step.step_count == 1
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not a zip file at all")
    with pytest.raises(ValueError, match="garbage.npz"):
        step.load(tmp_path / "garbage.npz")
