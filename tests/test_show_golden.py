"""The text form of graphs, pinned by golden files, and the per-pass view.

A golden file holds the expected ``compiler.show`` text of one small graph; a
change in declaration, differentiation or printing that alters it fails here.
When the change is intended, regenerate with

    SYMPROP_UPDATE_GOLDEN=1 pytest tests/test_show_golden.py

and review the diff of tests/golden/ like any other code change.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import compiler as C
from compiler.inspect import stages
from compiler.passes import PIPELINE

GOLDEN = Path(__file__).parent / "golden"


def tanh_regression():
    X, Y = C.Input("X", ("batch", 3)), C.Input("Y", ("batch", 2))
    W, b = C.Param("W", (3, 2)), C.Param("b", (2,))
    loss = C.sum((C.tanh(X @ W + b) - Y) ** 2)
    return C.show(loss, wrt=[W, b])


def curve_fit():
    t, y = C.Input("t", ("batch",)), C.Input("y", ("batch",))
    a, b, c = (C.Param(n, ()) for n in "abc")
    loss = C.mean((a * C.sin(b * t) + c - y) ** 2)
    return C.show(loss, wrt=[a, b, c])


def softmax_classifier():
    X, labels = C.Input("X", ("batch", 4)), C.Input("labels", ("batch",), "int64")
    W = C.Param("W", (4, 3))
    return C.show(C.cross_entropy(C.relu(X) @ W, labels))


GRAPHS = {"tanh_regression": tanh_regression, "curve_fit": curve_fit, "softmax_classifier": softmax_classifier}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_text_form_matches_golden_file(name):
    text = GRAPHS[name]() + "\n"
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("SYMPROP_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing; create it with SYMPROP_UPDATE_GOLDEN=1"
    assert text == path.read_text(), (
        f"compiler.show changed for {name}; if intended, regenerate with SYMPROP_UPDATE_GOLDEN=1 and review the diff")


def test_golden_text_is_the_documented_form():
    for name in GRAPHS:
        lines = (GOLDEN / f"{name}.txt").read_text().splitlines()
        assert lines[-1].startswith("return %")
        for line in lines[:-1]:
            assert re.fullmatch(r"%\d+ = \S.* : \(.*\) (float32|float64|int64|int32|bool)", line), line


# ---- show(nodes, passes=True) ---------------------------------------------------------------

def regression_loss():
    X, Y = C.Input("X", ("batch", 3)), C.Input("Y", ("batch", 2))
    W, b = C.Param("W", (3, 2)), C.Param("b", (2,))
    return C.sum((C.tanh(X @ W + b) - Y) ** 2), [W, b]


def blocks(text):
    """[(stage name, node count, body lines or None when unchanged)]."""
    result = []
    for block in re.split(r"\n(?===)", text):
        header, *body = block.split("\n")
        m = re.fullmatch(r"== (.+): (\d+) nodes(?: \([+-]\d+\))?(, unchanged)? ==", header)
        assert m, header
        result.append((m.group(1), int(m.group(2)), None if m.group(3) else body))
    return result


def test_passes_shows_every_stage_with_its_node_count():
    loss, params = regression_loss()
    parsed = blocks(C.show(loss, passes=True, wrt=params))
    names = [name for name, _, _ in parsed]
    assert names[:2] == ["declared", "differentiated"]
    assert names[2:2 + len(PIPELINE)] == [name for name, _ in PIPELINE]
    assert parsed[0][1] == len(C.show(loss).splitlines()) - 1
    assert parsed[1][1] == len(C.show(loss, wrt=params).splitlines()) - 1
    graph_stages = [stage for stage in parsed if not stage[0].startswith("fused")]
    for name, count, body in graph_stages:
        if body is not None:
            assert count == sum(1 for line in body if line.startswith("%")), name
            assert body[-1].startswith("return ")
    assert graph_stages[-1][1] == len(C.show(C.simplify([loss, *C.grad(loss, params)])).splitlines()) - 1
    fused_name, kernel_count, kernel_lines = parsed[-1]
    assert fused_name.startswith("fused") and kernel_count == len(kernel_lines)
    assert all(line.startswith(f"k{k} ") for k, line in enumerate(kernel_lines))


def test_later_stages_are_appended(monkeypatch):
    monkeypatch.setattr(stages, "LATER_STAGES", [])
    stages.register_stage("fused", lambda outputs: (2, "kernel 0: ...\nkernel 1: ..."))
    loss, _ = regression_loss()
    listed = stages.pass_stages(loss)
    assert listed[-1] == stages.Stage("fused", 2, "kernel 0: ...\nkernel 1: ...")
    delta = 2 - listed[-2].node_count
    assert C.show(loss, passes=True).endswith(f"== fused: 2 nodes ({delta:+d}) ==\nkernel 0: ...\nkernel 1: ...")
