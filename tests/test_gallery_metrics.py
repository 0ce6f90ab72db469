"""The metrics example: compiled metrics, callbacks, the learning-rate finder and History.plot together."""
from __future__ import annotations

import math

import numpy as np
import pytest

from test_examples import load


@pytest.fixture(scope="module")
def short_run():
    return load("digits_metrics").main(epochs=6, progress=False)


def test_the_metrics_agree_with_each_other_and_the_model_learns(short_run):
    history, counts = short_run["history"], short_run["confusion"]
    assert counts.shape == (10, 10) and counts.sum() == 359  # every test digit counted once
    assert np.trace(counts) / 359 == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
    assert history["val_accuracy"][-1] > 0.85  # chance is 10 %
    assert all(top3 >= top1 for top1, top3 in zip(history["val_accuracy"], history["val_top3_accuracy"]))


def test_callbacks_and_the_finder_leave_their_marks(short_run):
    history = short_run["history"]
    measured = [not math.isnan(v) for v in history["train_accuracy"]]
    assert measured == [False, False, True, False, False, True]  # every third epoch
    assert history["lr"][0] == pytest.approx(3e-3) and history["lr"][-1] < 0.1 * history["lr"][0]  # the cosine schedule
    assert 1e-5 < short_run["suggested_lr"] < 10


def test_the_figure_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    load("digits_metrics").main(epochs=3, progress=False, figure=path)
    assert path.stat().st_size > 10_000
