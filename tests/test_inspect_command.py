"""`symprop inspect`: every format on a model file and on a Python model."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from compiler.cli import main

ROOT = os.path.join(os.path.dirname(__file__), "..")
TOML = os.path.join(ROOT, "examples", "digits_mlp.toml")
PYTHON = os.path.join(ROOT, "examples", "tanh_regression.py")


def run(capsys, *argv) -> str:
    assert main(["inspect", *argv]) == 0
    return capsys.readouterr().out


def test_text_of_a_gradient_ends_with_its_node(capsys):
    out = run(capsys, PYTHON, "--grad", "W", "--format", "text")
    assert "param W : (3, 2) float32" in out and out.strip().splitlines()[-1].startswith("return")


def test_math_and_latex_of_the_tanh_regression_gradient(capsys):
    math = run(capsys, PYTHON, "--grad", "W", "--format", "math")
    assert "tanh" in math and "X" in math
    latex = run(capsys, PYTHON, "--grad", "W", "--format", "latex")
    assert r"\tanh" in latex and "X^{T}" in latex.replace(" ", "")


def test_dot_has_one_node_line_per_graph_node(capsys):
    out = run(capsys, PYTHON, "--format", "dot")
    assert out.startswith("digraph") and out.rstrip().endswith("}")
    assert len(re.findall(r"^\s+n\d+ \[", out, re.M)) > 5


def test_kernels_and_machine_code_views(capsys):
    kernels = run(capsys, TOML, "--format", "kernels")
    assert re.search(r"^\d+ fused kernels", kernels)
    assert "bmm" in kernels and "update" in kernels
    ir = run(capsys, TOML, "--format", "llvm")
    assert "define" in ir and "_entry" in ir
    asm = run(capsys, TOML, "--format", "asm")
    assert "ymm" in asm or "zmm" in asm


def test_cost_table_and_scaling(capsys):
    cost = run(capsys, TOML, "--format", "cost", "--batch", "16")
    assert "batch=16" in cost and "total" in cost and "update" in cost
    scaling = run(capsys, TOML, "--cost", "--scale", "batch", "--batch", "8")
    rows = [line.split() for line in scaling.splitlines()[2:]]
    assert [int(r[0]) for r in rows] == [8, 16, 32, 64]
    flops = [float(r[2]) for r in rows]
    assert all(b > a for a, b in zip(flops, flops[1:]))  # FLOPs grow with the batch


def test_unknown_parameter_is_a_clear_error(capsys):
    assert main(["inspect", PYTHON, "--grad", "V"]) == 2
    err = capsys.readouterr().err
    assert "no parameter 'V'" in err and "W" in err and "b" in err


def test_python_file_without_loss(tmp_path, capsys):
    path = tmp_path / "model.py"
    path.write_text("x = 1\n")
    assert main(["inspect", str(path)]) == 2
    assert "expected a module-level `loss`" in capsys.readouterr().err


def test_console_script_entry_point():
    done = subprocess.run([sys.executable, "-m", "compiler.cli", "inspect", PYTHON, "--grad", "b"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "param b" in done.stdout
