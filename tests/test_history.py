"""runtime.history: per-epoch metrics, aligned lists, plotting or a clear hint."""
import math
import subprocess
import sys

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
