"""Reliability and security probes (issue 9): one test per probe, each able to fail.

Every error leaves every object usable; bad input raises (never a silent wrong
answer); live state is a real mapping; checkpoints are validated before
anything is overwritten; the compile cache runs only code this user wrote; the
CLI never shows a traceback; a killed save leaves at most one temporary.
Probes that could crash the interpreter run in a child process.
"""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import compiler as sp
from compiler import cli, optim
from runtime.cache import SECRET_NAME, ObjectCache

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cache_dir=None, timeout=300, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if cache_dir is not None:
        environment["SYMPROP_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=timeout, cwd=ROOT)


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, f"exit status {result.returncode} (negative: killed by a signal)\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---- 1. every error leaves every object usable ------------------------------------------------------

MEMORY_ERROR_COMPILE = """
    import json
    import numpy as np
    import compiler as sp
    x = sp.Input("x", ("batch", 1), "float64"); z = sp.Input("z", ("m",), "float64")
    out = sp.sum(sp.softmax(sp.tanh(x * z), axis=0), axis=1)   # needs (batch, m) temporaries in the arena
    fn = sp.compile(out)
    huge = {"x": np.ones((2**23, 1)), "z": np.ones(2**23)}     # 2**46 elements: 512 TiB per temporary
    x_small, z_small = np.linspace(-1, 1, 5)[:, None], np.linspace(0, 2, 3)
    first = fn(x=x_small, z=z_small)                         # binds batch=5, m=3
    try:
        fn(**huge)
        raised = None
    except MemoryError as error:
        raised = type(error).__name__
    t = np.tanh(x_small * z_small)
    expected = (np.exp(t) / np.exp(t).sum(0)).sum(1)
    result = fn(x=x_small, z=z_small)                        # the same binding again: no rebind
    error = max(float(np.abs(result - expected).max()), float(np.abs(first - expected).max()))
    print(json.dumps({"raised": raised, "error": error}))
"""

MEMORY_ERROR_STEP = """
    import json
    import numpy as np
    import compiler as sp
    from compiler import optim
    x = sp.Input("x", ("batch", 1), "float64"); z = sp.Input("z", ("m",), "float64")
    w = sp.Param("w", (1,), init="ones", dtype="float64")
    t = sp.tanh(x * z * w)
    loss = sp.mean(t * t) + sp.mean(sp.sin(t))
    step = sp.compile_step(loss, optim.SGD(lr=0.1))
    reference = sp.compile_step(loss, optim.SGD(lr=0.1))
    small = {"x": np.linspace(-1, 1, 5)[:, None], "z": np.linspace(0, 2, 3)}
    losses = [step(**small)]                                 # binds batch=5, m=3
    try:
        step(x=np.ones((2**23, 1)), z=np.ones(2**23))
        raised = None
    except MemoryError as error:
        raised = type(error).__name__
    losses += [step(**small) for _ in range(2)]              # the same binding again: no rebind
    expected = [reference(**small) for _ in range(3)]
    print(json.dumps({"raised": raised, "losses": losses, "expected": expected, "count": step.step_count,
                      "w": float(step.params["w"][0]), "w_expected": float(reference.params["w"][0])}))
"""


def test_memory_error_in_compile_leaves_the_function_usable(tmp_path):
    report = last_json(run_python(MEMORY_ERROR_COMPILE, tmp_path))
    assert report["raised"] == "MemoryError"
    assert report["error"] < 1e-12


def test_memory_error_in_compile_step_leaves_the_step_usable(tmp_path):
    report = last_json(run_python(MEMORY_ERROR_STEP, tmp_path))
    assert report["raised"] == "MemoryError"
    assert report["losses"] == report["expected"] and report["w"] == report["w_expected"]
    assert report["count"] == 3  # the failed call did not count as a step


def test_an_index_fault_leaves_the_step_usable():
    loss, _ = mlp()
    step = sp.compile_step(loss, optim.Adam(lr=0.01), seed=0)
    reference = sp.compile_step(loss, optim.Adam(lr=0.01), seed=0)
    inputs = batch()
    with pytest.raises(IndexError):
        step(x=inputs["x"], y=np.array([0, 1, 3, 2]))
    assert step(**inputs) == reference(**inputs) and step.step_count == 1


# ---- 2. no silent wrong answer ---------------------------------------------------------------------

def free_dimension_program():
    x = sp.Input("x", (3,), "float32")
    return sp.compile(sp.broadcast_to(x, ("n", 3)) * 2.0)


@pytest.mark.parametrize("n", [2**64 + 4, 2**63 + 4])
def test_a_symbolic_dimension_beyond_int64_is_refused(n):
    fn = free_dimension_program()
    with pytest.raises(ValueError, match="'n'.*int64"):
        fn(x=np.ones(3, np.float32), n=n)
    np.testing.assert_array_equal(fn(x=np.ones(3, np.float32), n=2), np.full((2, 3), 2.0, np.float32))


def test_a_buffer_whose_bytes_overflow_int64_is_refused():
    fn = free_dimension_program()
    with pytest.raises(ValueError, match=r"'n' = 2305843009213693952 \(set by n=.*int64"):
        fn(x=np.ones(3, np.float32), n=2**61)  # 2**61 * 3 elements * 4 bytes > 2**63
    assert fn(x=np.ones(3, np.float32), n=1).shape == (1, 3)


def mlp():
    x = sp.Input("x", ("batch", 4))
    y = sp.Input("y", ("batch",), "int64")
    W = sp.Param("rel_W", (4, 3))
    logits = x @ W
    return sp.cross_entropy(logits, y), logits


def batch(n=4):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 4)).astype(np.float32), "y": np.arange(n) % 3}


@pytest.mark.parametrize("bad", [3, -1, 2**63 - 1, -2**63])
def test_cross_entropy_labels_out_of_range_raise(bad):
    loss, _ = mlp()
    fn = sp.compile(loss)
    W = np.ones((4, 3), np.float32)
    labels = np.array([0, 1, bad, 2])
    with pytest.raises(IndexError, match=rf"argument 'y': value {bad} at index \(2,\).*0 <= y < 3"):
        fn(x=batch()["x"], y=labels, rel_W=W)
    assert np.isfinite(fn(x=batch()["x"], y=np.array([0, 1, 2, 2]), rel_W=W))


def test_one_hot_labels_out_of_range_raise():
    labels = sp.Input("labels", ("batch",), "int64")
    fn = sp.compile(sp.one_hot(labels, 4))
    with pytest.raises(IndexError, match=r"'labels': value 4 .*one_hot.*0 <= labels < 4"):
        fn(labels=np.array([1, 4]))
    np.testing.assert_array_equal(fn(labels=np.array([1, 3])), np.eye(4, dtype=np.float32)[[1, 3]])


def test_constant_labels_out_of_range_raise_at_declaration():
    logits = sp.Param("rel_logits", (2, 3))
    with pytest.raises(IndexError, match="cross_entropy: labels value 3"):
        sp.cross_entropy(logits, sp.const(np.array([0, 3])))


def test_labels_out_of_range_stop_a_training_step_and_an_epoch_before_any_update():
    loss, _ = mlp()
    step = sp.compile_step(loss, optim.Adam(lr=0.1))
    before = {name: array.copy() for name, array in step.params.items()}
    data = batch(10)
    data["y"][7] = 5
    with pytest.raises(IndexError, match="value 5 at index"):
        step(x=data["x"][:8], y=data["y"][:8])
    with pytest.raises(IndexError, match=r"value 5 at index \(7,\)"):
        step.run_epoch(data, batch_size=4)
    assert step.step_count == 0
    for name, array in step.params.items():
        np.testing.assert_array_equal(array, before[name])


def computed_labels(kind: str, shift: int):
    """(x, labels computed from x): the argmax of x's row (int64), or x's first column (holding a
    whole number as a float) cast with astype; plus `shift`."""
    x = sp.Input("x", ("batch", 3))
    if kind == "argmax":
        return x, sp.argmax(x, axis=1) + shift
    return x, (sp.reshape(x[:, :1], ("batch",)) + float(shift)).astype("int64")


def computed_batch(kind: str, top: int = 2) -> np.ndarray:
    """Rows whose computed labels (shift 0) are 0, 1 and `top`."""
    if kind == "argmax":
        x = np.full((3, 3), -1.0, np.float32)
        x[[0, 1, 2], [0, 1, top]] = 1.0
        return x
    return np.array([[0, 5, 1], [1, 2, 3], [top, 0, 0]], np.float32)


def computed_cross_entropy(kind: str, shift: int):
    x, labels = computed_labels(kind, shift)
    W = sp.Param("rel_W", (3, 3))
    return sp.cross_entropy(x @ W, labels), x, W


@pytest.mark.parametrize("kind", ["argmax", "astype"])
@pytest.mark.parametrize("shift, bad", [(1, 3), (-1, -1)])
def test_computed_labels_out_of_range_raise_after_the_call(kind, shift, bad):
    loss, _, _ = computed_cross_entropy(kind, shift)
    fn = sp.compile(loss)
    W = np.arange(9, dtype=np.float32).reshape(3, 3) / 10
    top = 1 if shift == 1 else 2  # the largest label in range after the shift: 2
    in_range = computed_batch(kind, top) if shift == 1 else computed_batch(kind)[1:]
    out_of_range = computed_batch(kind)
    with pytest.raises(IndexError, match=rf"^cross_entropy: labels value {bad} is out of range \(expected 0 <= labels "
                                         rf"< 3\); the labels were computed inside the graph$"):
        fn(x=out_of_range, rel_W=W)
    # in range: the same loss as with the labels given as an input
    labels = np.argmax(in_range, axis=1) if kind == "argmax" else in_range[:, 0].astype(np.int64)
    reference = sp.compile(sp.cross_entropy(sp.Input("x", ("batch", 3)) @ sp.Param("rel_W", (3, 3)),
                                            sp.Input("y", ("batch",), "int64")))
    expected = reference(x=in_range, y=labels + shift, rel_W=W)
    np.testing.assert_allclose(fn(x=in_range, rel_W=W), expected, rtol=1e-6)
    assert np.isfinite(expected)


def test_computed_labels_of_one_hot_and_of_several_outputs_raise_and_are_not_returned():
    x, labels = computed_labels("argmax", 1)
    fn = sp.compile([sp.one_hot(labels, 3), sp.sum(x)])
    x_value = computed_batch("argmax", top=1)
    hot, total = fn(x=x_value)  # only the user's two outputs
    np.testing.assert_array_equal(hot, np.eye(3, dtype=np.float32)[[1, 2, 2]])
    assert total == pytest.approx(float(x_value.sum()))
    with pytest.raises(IndexError, match=r"^one_hot: labels value 3 is out of range \(expected 0 <= labels < 3\)"):
        fn(x=computed_batch("argmax"))
    single = sp.compile(sp.one_hot(labels, 3))
    assert isinstance(single(x=x_value), np.ndarray)


def test_labels_given_as_inputs_or_constants_add_no_check_to_the_program():
    loss, _ = mlp()
    fn = sp.compile(loss)
    assert not fn.plan.get("index_faults") and len(fn.plan["outputs"]) == 1
    _, labels = computed_labels("argmax", 0)
    assert len(sp.compile(sp.one_hot(labels, 3)).plan["index_faults"]) == 1


@pytest.mark.parametrize("kind", ["argmax", "astype"])
def test_computed_labels_out_of_range_raise_after_a_training_step(kind):
    loss, _, _ = computed_cross_entropy(kind, 1)
    step = sp.compile_step(loss, optim.Adam(lr=0.1))
    x, labels, W = sp.Input("x", ("batch", 3)), sp.Input("y", ("batch",), "int64"), sp.Param("rel_W", (3, 3))
    reference = sp.compile_step(sp.cross_entropy(x @ W, labels), optim.Adam(lr=0.1))
    np.testing.assert_array_equal(step.params["rel_W"], reference.params["rel_W"])
    good = computed_batch(kind, top=1)
    good_labels = (np.argmax(good, axis=1) if kind == "argmax" else good[:, 0].astype(np.int64)) + 1
    assert step(x=good) == pytest.approx(reference(x=good, y=good_labels), rel=1e-6)
    np.testing.assert_allclose(step.params["rel_W"], reference.params["rel_W"], rtol=1e-6)
    before = step.params["rel_W"].copy()
    with pytest.raises(IndexError, match=r"^cross_entropy: labels value 3 is out of range \(expected 0 <= labels < 3\); "
                                         r"the labels were computed inside the graph; step 2 has already updated"):
        step(x=computed_batch(kind))
    assert step.step_count == 2  # the update ran: the count says so
    assert not np.array_equal(step.params["rel_W"], before)
    assert np.isfinite(step(x=good)) and step.step_count == 3
    data = np.concatenate([good, computed_batch(kind)])
    with pytest.raises(IndexError, match="labels value 3 is out of range"):
        step.run_epoch({"x": data}, batch_size=3, shuffle=False)
    assert np.isfinite(step.run_epoch({"x": np.concatenate([good, good])}, batch_size=2))


COMPUTED_LABELS_CHILD = """
    import json
    import numpy as np
    import compiler as sp
    from runtime import programs
    x = sp.Input("x", ("batch", 3))
    fn = sp.compile(sp.cross_entropy(x * 2.0, sp.argmax(x, axis=1) + 1))
    good, bad = np.array([[1, 0, 0]], np.float32), np.array([[0, 0, 1]], np.float32)
    try:
        fn(x=bad)
        error = None
    except IndexError as e:
        error = str(e)
    loaded = programs.load(fn.key)
    try:
        loaded(x=bad)
        loaded_error = None
    except IndexError as e:
        loaded_error = str(e)
    print(json.dumps({"from_cache": fn.from_cache, "error": error, "loaded_error": loaded_error,
                      "good": float(fn(x=good)), "loaded_good": float(loaded(x=good)),
                      "loaded_single": isinstance(loaded(x=good), np.ndarray)}))
"""


def test_computed_label_checks_survive_the_program_cache(tmp_path):
    first = last_json(run_python(COMPUTED_LABELS_CHILD, tmp_path))
    second = last_json(run_python(COMPUTED_LABELS_CHILD, tmp_path))
    assert not first["from_cache"] and second["from_cache"]
    for report in (first, second):
        assert report["error"] == report["loaded_error"] == (
            "cross_entropy: labels value 3 is out of range (expected 0 <= labels < 3); "
            "the labels were computed inside the graph")
        assert report["good"] == report["loaded_good"] == first["good"] and report["loaded_single"]


# ---- 3. live state is a real mapping -----------------------------------------------------------------

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


# ---- 4. the cache: private and authenticated -----------------------------------------------------------

def test_the_cache_directory_and_secret_are_private(tmp_path):
    cache = ObjectCache(tmp_path / "made" / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache.directory / SECRET_NAME).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache.path(key)).st_mode) & 0o077 == 0
    assert cache.load(key) == {"object": b"data"}


def test_an_entry_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    if os.geteuid() == 0:
        os.chown(cache.path(key), 65534, 65534)
    else:  # cannot chown: this process pretends to be someone else for the entry check
        real = os.stat(cache.directory).st_uid
        monkeypatch.setattr(os, "fstat", lambda fd, _f=os.fstat: _owned_by(_f(fd), real + 1))
    with pytest.warns(RuntimeWarning, match="owned by uid"):
        assert cache.load(key) is None


def _owned_by(info, uid):
    values = list(info)
    values[stat.ST_UID] = uid
    return os.stat_result(values)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_directory_owned_by_another_user_is_refused(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    os.chown(cache.directory, 65534, 65534)
    with pytest.warns(RuntimeWarning, match="owned by uid 65534"):
        assert cache.load(key) is None


def test_a_secret_others_can_read_is_replaced(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    secret = cache.directory / SECRET_NAME
    old = secret.read_bytes()
    os.chmod(secret, 0o644)
    with pytest.warns(RuntimeWarning, match="secret.key cannot be trusted"):
        assert cache.load(key) is None  # signed with a secret others could read
    cache.store(key, {"object": b"data"})
    assert secret.read_bytes() != old and stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert cache.load(key) == {"object": b"data"}


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_directory_others_can_write_is_refused(tmp_path, mode):
    cache = ObjectCache(tmp_path / f"cache{mode:o}", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    os.chmod(cache.directory, mode)
    with pytest.warns(RuntimeWarning, match="writable by"):
        assert cache.load(key) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per directory and process, not on every use
        cache.store(cache.key("y"), {"object": b"other"})  # nor written to
    assert not cache.path(cache.key("y")).exists()


def test_an_entry_others_can_write_is_refused(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    os.chmod(cache.path(key), 0o666)
    with pytest.warns(RuntimeWarning, match="writable by others"):
        assert cache.load(key) is None


def test_an_entry_copied_under_another_key_is_a_miss(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    tanh_key, sigmoid_key = cache.key("tanh"), cache.key("sigmoid")
    cache.store(tanh_key, {"object": b"tanh code"})
    cache.path(sigmoid_key).write_bytes(cache.path(tanh_key).read_bytes())
    os.chmod(cache.path(sigmoid_key), 0o600)
    assert cache.load(sigmoid_key) is None
    assert cache.load(tanh_key) == {"object": b"tanh code"}


MODEL_CHILD = """
    import json, sys
    import numpy as np
    import compiler as sp
    import os
    activation = os.environ.get("ACTIVATION", "tanh")
    x = sp.Input("x", ("batch", 3), "float64")
    w = sp.Param("w", (3, 2), dtype="float64")
    fn = sp.compile(getattr(sp, activation)(x @ w))
    xv, wv = np.arange(6.0).reshape(2, 3) / 6, np.linspace(-1, 1, 6).reshape(3, 2)
    out = fn(x=xv, w=wv)
    expected = np.tanh(xv @ wv) if activation == "tanh" else 1 / (1 + np.exp(-(xv @ wv)))
    print(json.dumps({"from_cache": fn.from_cache, "key": fn.key, "error": float(np.abs(out - expected).max())}))
"""


def run_model(cache_dir, activation="tanh") -> dict:
    report = last_json(run_python(MODEL_CHILD, cache_dir, ACTIVATION=activation))
    assert report["error"] < 1e-12
    return report


def entry_of(cache_dir):
    (path,) = [p for p in Path(cache_dir).iterdir() if p.suffix == ".symprop"]
    return path


def foreign_object(plan: dict, marker: Path) -> bytes:
    """An object defining every symbol the plan asks for, each calling system("touch MARKER")."""
    from runtime.engine import Engine
    from runtime.programs import entry_symbols
    command = f"touch {marker}\0".encode()
    escaped = "".join("\\%02X" % b for b in command)
    lines = [f'@cmd = private constant [{len(command)} x i8] c"{escaped}"',
             "declare i32 @system(i8*)"]
    for name in entry_symbols(plan):
        lines += [f"define void @{name}(i8** %t, i64* %d) {{",
                  f"  %p = getelementptr [{len(command)} x i8], [{len(command)} x i8]* @cmd, i64 0, i64 0",
                  "  %r = call i32 @system(i8* %p)", "  ret void", "}"]
    engine = Engine.instance()
    return engine.emit_object(engine.optimize("\n".join(lines)))


def test_a_rewritten_object_with_a_recomputed_checksum_never_runs(tmp_path):
    import hashlib
    import hmac
    import struct
    cache_dir, marker = tmp_path / "cache", tmp_path / "pwned"
    first = run_model(cache_dir)
    entries = ObjectCache(cache_dir).load(first["key"])
    entries["object"] = foreign_object(json.loads(entries["plan"]), marker)
    # the attacker knows the format and recomputes every checksum, but not this user's secret
    payload = first["key"].encode() + struct.pack("<I", len(entries))
    for name, blob in entries.items():
        payload += struct.pack("<I", len(name)) + name.encode() + struct.pack("<Q", len(blob)) + blob
    prefix = struct.pack("<8sIQ", b"SYMPROP\0", 2, len(payload))
    old_payload = payload[len(first["key"]):]  # format 1: no key, a SHA-256 of the payload in the header
    forgeries = [struct.pack("<8sIQ", b"SYMPROP\0", 1, len(old_payload)) + hashlib.sha256(old_payload).digest()
                 + old_payload,
                 prefix + hashlib.sha256(payload).digest() + payload,
                 prefix + hmac.new(b"guess", prefix + payload, hashlib.sha256).digest() + payload]
    for forgery in forgeries:
        entry_of(cache_dir).write_bytes(forgery)
        report = run_model(cache_dir)
        assert not report["from_cache"] and not marker.exists()
    assert run_model(cache_dir)["from_cache"]  # rebuilt and stored again


def test_an_entry_of_another_model_under_this_key_is_a_miss(tmp_path):
    tanh_dir, sigmoid_dir = tmp_path / "tanh", tmp_path / "sigmoid"
    run_model(tanh_dir, "tanh")
    sigmoid = run_model(sigmoid_dir, "sigmoid")
    (sigmoid_dir / SECRET_NAME).write_bytes((tanh_dir / SECRET_NAME).read_bytes())  # even with the same secret
    entry_of(sigmoid_dir).write_bytes(entry_of(tanh_dir).read_bytes())
    report = run_model(sigmoid_dir, "sigmoid")  # checks its answer is the sigmoid's
    assert report["key"] == sigmoid["key"] and not report["from_cache"]


def rewrite(cache_dir, key, change):
    """Change an entry and store it again with a valid MAC (as a bug in the writer might)."""
    cache = ObjectCache(cache_dir)
    entries = cache.load(key)
    change(entries)
    cache.store(key, entries)


def truncate_object(entries):
    entries["object"] = entries["object"][: len(entries["object"]) // 2]


def damage_plan(entries):
    entries["plan"] = entries["plan"][:-7]


def plan_of_wrong_types(entries):
    plan = json.loads(entries["plan"])
    plan["buffers"][0]["shape"] = ["no such dim"]
    entries["plan"] = json.dumps(plan).encode()


def damage_consts(entries):
    entries["consts"] = b"PK\x03\x04" + entries["consts"][4:40]


def drop_symbols(entries):
    plan = json.loads(entries["plan"])
    plan["entry"] = "sp_not_defined_entry"
    entries["plan"] = json.dumps(plan).encode()


@pytest.mark.parametrize("damage", [truncate_object, damage_plan, plan_of_wrong_types, damage_consts, drop_symbols])
def test_an_authentic_entry_that_does_not_parse_or_link_is_a_miss(tmp_path, damage):
    first = run_model(tmp_path)
    rewrite(tmp_path, first["key"], damage)
    assert ObjectCache(tmp_path).load(first["key"]) is not None  # it authenticates
    report = run_model(tmp_path)  # no crash, no traceback: compiled again, right answer
    assert not report["from_cache"]
    assert run_model(tmp_path)["from_cache"]


# ---- 5. the CLI never shows a traceback --------------------------------------------------------------

MODEL_FILE = """
[model]
input_features = 64
layers = [{{ type = "dense", units = {units}, activation = "relu" }}, {{ type = "dense", units = 10 }}]
[loss]
name = "cross_entropy"
[optimizer]
name = "adam"
lr = 0.01
[training]
dataset = "digits"
epochs = 1
batch_size = 32
"""


def cli_error(capsys, *argv) -> str:
    try:
        code = cli.main(["train", *map(str, argv), "--quiet"])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert "compiled forward" not in captured.out  # refused before compiling
    return captured.err


def test_cli_model_file_that_is_a_directory(tmp_path, capsys):
    assert f"{tmp_path}: is a directory; expected a TOML model file" in cli_error(capsys, tmp_path)


def test_cli_layer_too_large_for_memory(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(MODEL_FILE.format(units=10**13))
    assert "model.layers[0].units: expected at most" in cli_error(capsys, path)
    path.write_text(MODEL_FILE.format(units="1e13"))
    assert "model.layers[0].units: expected a positive integer" in cli_error(capsys, path)


@pytest.mark.parametrize("value", ["-3", "0", "two"])
def test_cli_negative_epochs(capsys, value):
    assert "argument --epochs: expected a positive integer" in cli_error(capsys, "--epochs", value)


@pytest.mark.parametrize("flag", ["--save", "--plot"])
def test_cli_output_in_a_missing_directory_is_refused_before_training(tmp_path, capsys, flag):
    err = cli_error(capsys, flag, tmp_path / "missing_dir" / "x.npz")
    assert f"{flag} {tmp_path / 'missing_dir' / 'x.npz'}: the directory" in err and "does not exist" in err
    assert f"{flag} {tmp_path}: is a directory" in cli_error(capsys, flag, tmp_path)


# ---- 6. no debris -----------------------------------------------------------------------------------

KILLED_SAVE = """
    import os, signal, sys
    import numpy as np
    import compiler as sp
    from compiler import optim
    x = sp.Input("x", ("batch", 4)); w = sp.Param("w", (4, 256))
    step = sp.compile_step(sp.sum(x @ w), optim.Adam(lr=0.1))
    real = np.savez
    def killed(file, **arrays):
        file.write(b"PK\\x03\\x04 half an archive")
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    np.savez = killed if os.environ["MODE"] == "kill" else real
    step.save(os.environ["TARGET"])
    print("saved")
"""


def partials(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".symprop-partial"))


def test_a_killed_save_leaves_at_most_one_temporary_which_the_next_save_removes(tmp_path):
    target = tmp_path / "model.npz"
    for _ in range(3):
        result = run_python(KILLED_SAVE, tmp_path / "cache", MODE="kill", TARGET=str(target))
        assert result.returncode == -signal.SIGKILL
        assert len(partials(tmp_path)) == 1
        assert not target.exists()
    assert run_python(KILLED_SAVE, tmp_path / "cache", MODE="save", TARGET=str(target)).returncode == 0
    assert partials(tmp_path) == []
    with np.load(target) as data:
        assert data["param/w"].shape == (4, 256)


def test_train_checks_its_arguments_before_compiling(tmp_path):
    from compiler.model_file import default_model_spec
    from compiler.train_job import TrainArgumentError, train
    spec = default_model_spec()
    with pytest.raises(TrainArgumentError, match="--epochs: expected a positive integer, got -3"):
        train(spec, epochs=-3, progress=False)
    with pytest.raises(TrainArgumentError, match="does not exist"):
        train(spec, epochs=1, progress=False, save=tmp_path / "missing_dir" / "x.npz")
