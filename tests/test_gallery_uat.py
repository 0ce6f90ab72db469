"""The universal approximation example: one hidden layer of tanh units fits sin(3x), |x| and a
smoothed step, and the sup-norm error falls as the layer widens (a short run)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "universal_approximation.py"
WIDTHS = (2, 4, 8, 16, 64)


def load():
    spec = importlib.util.spec_from_file_location("universal_approximation", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoothstep(x):
    """0 below -1/2, 1 above 1/2, the cubic 1/2 + 3x/2 - 2x^3 between (the example's 3t^2 - 2t^3, t = x + 1/2)."""
    return np.where(x < -0.5, 0.0, np.where(x > 0.5, 1.0, 0.5 + 1.5 * x - 2 * x ** 3))


TARGETS = {"sin(3x)": lambda x: np.sin(3 * x), "|x|": np.abs, "smoothed step": smoothstep}
BOUND_AT_64 = {"sin(3x)": 0.02, "|x|": 0.1, "smoothed step": 0.02}  # measured 0.004, 0.038, 0.004


@pytest.fixture(scope="module")
def short_run():
    return load().main(widths=WIDTHS, steps=3000, progress=False)


def sup_errors(result, name):
    """max |target - fit| per width, the target written here, not read from the example."""
    exact = TARGETS[name](result["x"])
    return [float(np.abs(result["fits"][name][w] - exact).max()) for w in WIDTHS]


@pytest.mark.parametrize("name", list(TARGETS))
def test_the_widest_layer_fits_within_its_bound_and_far_better_than_two_units(short_run, name):
    errors = sup_errors(short_run, name)
    assert errors[-1] < BOUND_AT_64[name], errors
    assert errors[-1] < errors[0] / 4, errors  # measured 8x (|x|) to 250x (sin)


@pytest.mark.parametrize("name", list(TARGETS))
def test_the_error_falls_with_width(short_run, name):
    errors = sup_errors(short_run, name)
    for narrower, wider in zip(errors, errors[1:]):
        assert wider <= narrower + 0.005, errors  # non-strictly: near the optimiser's floor (~0.005) they jitter


def test_the_reported_errors_are_sup_norms_of_the_fits(short_run):
    for name in TARGETS:
        assert list(short_run["max_error"][name].values()) == pytest.approx(sup_errors(short_run, name), abs=1e-6)
    assert short_run["x"].min() == pytest.approx(-np.pi) and short_run["x"].max() == pytest.approx(np.pi)
    assert len(short_run["x"]) >= 1000  # a dense grid, not the training points


def test_two_tanh_units_cannot_follow_three_periods_of_a_sine(short_run):
    assert sup_errors(short_run, "sin(3x)")[0] > 0.5  # six turning points; a wide layer follows them (above)


def test_runs_are_deterministic():
    module = load()
    first, second = (module.main(widths=(2, 4), steps=200, progress=False) for _ in range(2))
    assert first["max_error"] == second["max_error"]


def test_figure_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "gallery" / "universal_approximation.png"
    load().main(widths=(2, 8), steps=200, figure=path, progress=False)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
