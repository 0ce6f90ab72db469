"""fn.cost() and step.cost(): per-kernel FLOPs, bytes and time, measured on live buffers."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

import compiler as sp


def test_cost_rows_follow_the_kernels_and_their_estimates():
    x = sp.Input("x", ("batch", 64))
    W = sp.Param("W", (64, 32))
    fn = sp.compile(sp.sum(sp.tanh(x @ W)))
    values = {"x": np.ones((16, 64), np.float32), "W": np.ones((64, 32), np.float32)}
    report = fn.cost(**values)
    assert [r.kind for r in report.rows] == [k["kind"] for k in fn.kernels()]
    product = next(r for r in report.rows if r.kind == "bmm")
    assert product.flops == 2 * 16 * 64 * 32
    assert all(r.seconds > 0 for r in report.rows)
    assert report.dims == {"batch": 16}
    assert "total" in str(report)


def test_cost_keeps_the_buffers_it_times_alive():
    """Timing kernels on outputs that were already freed wrote into freed memory."""
    code = ("import numpy as np, compiler as sp\n"
            "x = sp.Input('x', (1 << 22,))\n"
            "report = sp.compile(x + 1).cost(x=np.ones(1 << 22, np.float32))\n"
            "import gc; gc.collect(); print(len(report.rows))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


def test_step_cost_leaves_the_parameters_as_they_were():
    x = sp.Input("x", ("batch", 4))
    w = sp.Param("w", (4,))
    step = sp.compile_step(sp.mean((x @ w - 1.0) ** 2), sp.optim.Adam(lr=0.1))
    before = {name: array.copy() for name, array in {**step.params, **step.state}.items()}
    report = step.cost(x=np.ones((8, 4), np.float32))
    assert {r.phase for r in report.rows} >= {"forward", "update"}
    for name, array in {**step.params, **step.state}.items():
        np.testing.assert_array_equal(array, before[name])
    assert step.step_count == 0
