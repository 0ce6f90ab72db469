"""Where a compile's time goes (``compile_seconds``), and a training step compiled before loading
without differentiating: in a fresh process it is the program from the cache, keyed by the step as
declared, and it trains exactly as the step compiled from scratch."""
from __future__ import annotations

import json

import numpy as np
import pytest

import compiler as sp
from compiler import optim
from child_python import last_json, run_python

MODEL = """
import json, numpy as np, compiler as sp
from compiler import optim
x = sp.Input("x", ("batch", 4)); y = sp.Input("y", ("batch",), "int64")
w = sp.Param("w", (4, 8)); b = sp.Param("b", (8,), init="zeros"); v = sp.Param("v", (8, 3))
loss = sp.cross_entropy(sp.dropout(sp.tanh(x @ w + b), 0.25) @ v, y)
step = sp.compile_step(loss, {optimizer}, seed=3)
rng = np.random.default_rng(0)
losses = [step(x=rng.standard_normal((16, 4)).astype(np.float32), y=rng.integers(0, 3, 16)) for _ in range(4)]
print(json.dumps({{"stages": list(step.compile_seconds), "losses": losses, "state": sorted(step.state),
                   "w": step.params["w"].tolist(), "from_cache": step.from_cache}}))
"""


def run_model(cache_dir, optimizer="optim.Adam(lr=0.01, betas=(0.8, 0.99))", prelude=""):
    return last_json(run_python(prelude + MODEL.format(optimizer=optimizer), cache_dir=cache_dir))


def test_a_compiled_step_loads_in_a_fresh_process_without_differentiating(tmp_path):
    cold = run_model(tmp_path)
    assert "differentiate" in cold["stages"] and "LLVM optimise" in cold["stages"]
    cached = run_model(tmp_path)
    assert "differentiate" not in cached["stages"] and "LLVM optimise" not in cached["stages"]
    assert cached["from_cache"] and not cold["from_cache"]
    assert cached["state"] == cold["state"] == ["b__exp_avg", "b__exp_avg_sq", "v__exp_avg", "v__exp_avg_sq",
                                                "w__exp_avg", "w__exp_avg_sq"]
    assert cached["losses"] == cold["losses"] and cached["w"] == cold["w"]  # the same dropout masks and updates


def test_another_optimizer_setting_is_another_step(tmp_path):
    run_model(tmp_path)
    other = run_model(tmp_path, "optim.Adam(lr=0.01, betas=(0.8, 0.9))")
    assert "differentiate" in other["stages"]  # betas are constants of the program
    momentum = run_model(tmp_path, "optim.SGD(lr=0.01, momentum=0.9)")
    assert "differentiate" in momentum["stages"] and momentum["state"] == ["b__momentum_buffer", "v__momentum_buffer",
                                                                           "w__momentum_buffer"]


def test_an_optimizer_defined_elsewhere_is_differentiated_every_time(tmp_path):
    prelude = """
from compiler.optim import SGD
class Halved(SGD):  # its rule differs from what its arguments say
    def rule(self, param, grad, state, step, lr):
        return super().rule(param, grad * 0.5, state, step, lr)
"""
    first = run_model(tmp_path, "Halved(lr=0.1)", prelude)
    second = run_model(tmp_path, "Halved(lr=0.1)", prelude)
    assert "differentiate" in first["stages"] and "differentiate" in second["stages"]
    assert second["from_cache"] and second["losses"] == first["losses"]


def test_a_damaged_record_is_a_miss(tmp_path):
    cold = run_model(tmp_path)
    for entry in tmp_path.iterdir():  # tamper with every entry: none authenticates now
        if entry.suffix and entry.name != "secret.key":
            entry.write_bytes(entry.read_bytes()[:-1] + b"x")
    again = run_model(tmp_path)
    assert "differentiate" in again["stages"] and again["losses"] == cold["losses"]


def test_compile_seconds_name_the_stages_of_a_cold_compile():
    x = sp.Input("x", ("batch", 3))
    w = sp.Param("w_compile_seconds", (3, 2))
    f = sp.compile(sp.sum(sp.tanh(x @ w) * 1.25))  # a program this session has not built
    stages = list(f.compile_seconds)
    assert stages[:2] == ["key", "cache"]
    if not f.from_cache:
        assert ["simplify", "schedule", "generate IR", "LLVM optimise", "machine code", "load"] == \
            [s for s in stages if s not in ("key", "cache")]
    assert all(seconds >= 0 for seconds in f.compile_seconds.values())
    step = sp.compile_step(sp.sum(sp.tanh(x @ w) ** 2), optim.SGD(lr=0.1))
    assert {"key", "initialise", "runtime"} <= set(step.compile_seconds)


def test_an_in_process_recompile_reuses_the_record():
    x = sp.Input("x", ("batch", 2))
    w = sp.Param("w_recompile", (2, 2))
    loss = sp.mean(sp.tanh(x @ w) ** 2)
    first = sp.compile_step(loss, optim.Adam(lr=0.1))
    second = sp.compile_step(loss, optim.Adam(lr=0.1))
    assert "differentiate" in first.compile_seconds and "differentiate" not in second.compile_seconds
    data = np.ones((3, 2), np.float32)
    assert [first(x=data) for _ in range(3)] == [second(x=data) for _ in range(3)]


def test_an_initializer_error_reaches_the_caller_of_compile_step():
    """Initial values are drawn beside the compile, on another thread; its error is raised here."""
    x = sp.Input("x", ("batch", 2))
    w = sp.Param("w_bad_init", (2, 3), init=lambda shape, rng: np.zeros((3, 2)))
    with pytest.raises(ValueError, match="w_bad_init.*returned shape"):
        sp.compile_step(sp.sum(x @ w), optim.SGD(lr=0.1))


SPLIT_PROGRAM = """
import json, numpy as np, compiler as sp, runtime
x = sp.Input("x", ("batch", 6), "float64")
w, v = sp.Param("w", (6, 5), dtype="float64"), sp.Param("v", (5, 4), dtype="float64")
h = sp.tanh(x @ w)
outputs = [sp.sum(h @ v), sp.max(h, axis=1), sp.sigmoid(h) * 2.0, sp.grad(sp.sum((h @ v) ** 2), w)]
values = {"x": np.linspace(-1, 1, 18).reshape(3, 6), "w": np.ones((6, 5)) * 0.1, "v": np.ones((5, 4)) * 0.2}
f = sp.compile(outputs)
got = [np.asarray(a).tolist() for a in f(**values)]
want = [np.asarray(a).tolist() for a in sp.evaluate(outputs, values)]
print(json.dumps({"key": f.key, "kernels": len(f.kernels()), "modules": len(f.plan["part_symbols"]) + 1,
                  "equal": bool(all(np.allclose(a, b, rtol=1e-12) for a, b in zip(got, want))), "got": got}))
"""

LOAD_WITHOUT_COMPILER = """
import json, sys, numpy as np
sys.modules["sympy"] = None  # the runtime alone, as a deployment has it
import runtime.programs
f = runtime.programs.load(sys.argv[1] if len(sys.argv) > 1 else "{key}")
values = {{"x": np.linspace(-1, 1, 18).reshape(3, 6), "w": np.ones((6, 5)) * 0.1, "v": np.ones((5, 4)) * 0.2}}
print(json.dumps({{"got": [np.asarray(a).tolist() for a in f(**values)], "from_cache": f.from_cache}}))
"""


def test_a_program_split_into_modules_runs_and_loads_from_the_cache_without_the_compiler(tmp_path):
    built = last_json(run_python(SPLIT_PROGRAM, cache_dir=tmp_path, SYMPROP_COMPILE_THREADS="3"))
    assert built["kernels"] >= 4 and built["modules"] == 3 and built["equal"]
    entry = last_json(run_python(LOAD_WITHOUT_COMPILER.format(key=built["key"]), cache_dir=tmp_path))
    assert entry["from_cache"] and entry["got"] == built["got"]
    single = last_json(run_python(SPLIT_PROGRAM, cache_dir=tmp_path / "one", SYMPROP_COMPILE_THREADS="1"))
    assert single["modules"] == 1 and single["got"] == built["got"]  # the same code, however it is split
