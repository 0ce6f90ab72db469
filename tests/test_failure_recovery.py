"""Every error leaves every object usable; a killed save leaves at most one temporary.

A MemoryError while binding huge shapes, an index fault in a training step, a
SIGKILL in the middle of a save: afterwards the function or step gives the
answers it would have given without the failure, and the directory holds no
more than one partial file, which the next save removes. Part of the reliability probes (issue 9): one test per probe, each able to fail.
"""
from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

import compiler as sp
from child_python import last_json, run_python
from compiler import optim
from small_classifier import batch, mlp


# ---- every error leaves every object usable ------------------------------------------------------

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
    t = sp.softmax(sp.tanh(x * z * w), axis=0)              # needs (batch, m) temporaries in the arena
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


# ---- no debris -----------------------------------------------------------------------------------

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
