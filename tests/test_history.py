"""runtime.history: per-epoch metrics, aligned lists, plotting or a clear hint."""
import math
import subprocess
import sys

import numpy as np
import pytest

from runtime.history import PLOT_HINT, History


def test_record_aligns_metrics_measured_on_some_epochs():
    history = History()
    history.record(loss=1.0)
    history.record(loss=0.5, val_accuracy=0.8)
    history.record(loss=0.25)
    assert len(history) == 3 and history.keys() == ["loss", "val_accuracy"]
    assert history["loss"] == [1.0, 0.5, 0.25]
    values = history["val_accuracy"]
    assert math.isnan(values[0]) and values[1] == 0.8 and math.isnan(values[2])
    assert history.best("loss") == (2, 0.25)
    assert history.best("val_accuracy", mode="max") == (1, 0.8)
    assert history.last()["loss"] == 0.25


def test_to_dict_round_trip_and_copies():
    history = History()
    history.record(loss=2.0, accuracy=0.1)
    history.record(loss=1.0, accuracy=0.6)
    data = history.to_dict()
    assert data == {"loss": [2.0, 1.0], "accuracy": [0.1, 0.6]}
    data["loss"].append(9.0)
    assert history["loss"] == [2.0, 1.0]
    assert History.from_dict(history.to_dict()).to_dict() == history.to_dict()


def test_errors():
    history = History()
    with pytest.raises(TypeError, match="loss"):
        history.record(loss="low")
    with pytest.raises(KeyError, match="accuracy"):
        history["accuracy"]
    with pytest.raises(ValueError, match="one value per epoch"):
        History({"loss": [1.0, 2.0], "accuracy": [0.5]})


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    history = History({"loss": [1.0, 0.5]})
    with pytest.raises(ImportError) as info:
        history.plot(tmp_path / "curves.png")
    assert 'pip install "symprop[plot]"' in str(info.value) and str(info.value) == PLOT_HINT


def test_plot_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    history = History({"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6], "val_accuracy": [0.5, 0.8, 0.9]})
    path = history.plot(tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_imports_neither_sympy_nor_the_compiler():
    code = "import sys, runtime.history; bad = [m for m in ('sympy', 'compiler') if m in sys.modules]; print(bad)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


MANY = {"loss": [2.0, 1.0, 0.5, 0.4], "val_loss": [2.1, 1.2, 0.8, 0.9], "train_accuracy": [0.3, 0.6, 0.8, 0.9],
        "val_accuracy": [0.3, 0.5, 0.7, 0.7], "val_mse": [4.0, 2.0, 0.0, 2.0], "test_mse": [4.5, 2.5, 1.0, 1.5],
        "lr": [0.1, 0.1, 0.01, 0.01], "perplexity": [7.0, math.nan, 3.0, math.nan],
        "epoch": [1, 2, 3, 4], "seconds": [0.1, 0.1, 0.1, 0.1]}


def panels(figure):
    """{title: [line labels]} of each axes, and the (rows, columns) of the grid."""
    grids = {axes.get_subplotspec().get_geometry()[:2] for axes in figure.axes}
    assert len(grids) == 1
    return {axes.get_title(): [line.get_label() for line in axes.get_lines()] for axes in figure.axes}, grids.pop()


def test_plot_groups_metrics_into_panels_on_a_grid(tmp_path):
    pytest.importorskip("matplotlib")
    history = History(MANY)
    titles, grid = panels(history.figure())
    assert titles == {"loss": ["loss", "val_loss"], "accuracy": ["train_accuracy", "val_accuracy"],
                      "mse": ["val_mse", "test_mse"], "lr": ["lr"], "perplexity": ["perplexity"]}
    assert list(titles) == ["loss", "accuracy", "mse", "perplexity", "lr"]  # the schedule last
    assert grid == (2, 3)  # five panels, three to a row; "epoch" and "seconds" are not drawn
    perplexity = next(a for a in history.figure().axes if a.get_title() == "perplexity").get_lines()[0]
    assert list(perplexity.get_xdata()) == [1, 3]  # drawn through the measured epochs
    titles, grid = panels(history.figure(["val_accuracy", "seconds", "loss"], columns=2))
    assert titles == {"loss": ["loss"], "accuracy": ["val_accuracy"], "seconds": ["seconds"]} and grid == (2, 2)
    path = history.plot(tmp_path / "many.png", logy=True, smooth=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 200_000


def test_plot_log_scale_for_losses_and_moving_averages():
    pytest.importorskip("matplotlib")
    figure = History(MANY).figure(logy=True, smooth=2)
    scales = {axes.get_title(): axes.get_yscale() for axes in figure.axes}
    assert scales == {"loss": "log", "accuracy": "linear", "mse": "linear", "lr": "linear", "perplexity": "linear"}
    mse = next(axes for axes in figure.axes if axes.get_title() == "mse").get_lines()
    assert len(mse) == 4 and mse[1].get_label() == "val_mse (mean of 2)"
    np.testing.assert_allclose(mse[1].get_ydata(), [4.0, 3.0, 1.0, 1.0])  # 4, (4+2)/2, (2+0)/2, (0+2)/2
    np.testing.assert_allclose(mse[0].get_ydata(), MANY["val_mse"])  # the raw curve stays, faded
    assert mse[0].get_alpha() < 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_plot_smooth_and_columns_are_positive_ints(bad):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="smooth must be an int >= 1"):
        History(MANY).figure(smooth=bad)
    with pytest.raises(ValueError, match="columns must be an int >= 1"):
        History(MANY).figure(columns=bad)
