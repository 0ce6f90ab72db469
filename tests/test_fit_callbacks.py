"""runtime.fit's callbacks: custom metrics in the History and on the bar, samplers printed above the
bar, StopTraining, and early stopping on a callback's metric."""
from __future__ import annotations

import math

import numpy as np
import pytest

import compiler as sp
import runtime
from compiler import optim
from runtime.callbacks import Metric, Sample, StopTraining


@pytest.fixture(scope="module")
def classifier():
    """(step, inputs, measure): a 6-8-3 tanh classifier of two separable blobs and a third, its
    training data, and its compiled accuracy on that data."""
    x = sp.Input("x", ("batch", 6))
    y = sp.Input("y", ("batch",), "int64")
    W1 = sp.Param("cb_W1", (6, 8))
    W2 = sp.Param("cb_W2", (8, 3))
    logits = sp.tanh(x @ W1) @ W2
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    centres = rng.standard_normal((3, 6)) * 3
    inputs = {"x": (centres[labels] + rng.standard_normal((90, 6))).astype(np.float32), "y": labels}
    step = sp.compile_step(sp.cross_entropy(logits, y), optim.Adam(lr=0.02), seed=0)
    initial = {name: value.copy() for name, value in step.params.items()}
    measure = step.function([sp.accuracy(logits, y), logits])

    def fresh():
        for name, value in initial.items():
            step.params[name][...] = value
        return step, inputs, measure
    return fresh


def test_a_metric_is_recorded_every_n_epochs_and_shown_on_the_bar(classifier, capsys):
    step, inputs, measure = classifier()
    seen = []

    def accuracy():
        value, logits = measure(**inputs)
        seen.append(float(np.mean(np.argmax(logits, 1) == inputs["y"])))
        return value

    history = runtime.fit(step, inputs, epochs=5, batch_size=16,
                          callbacks=[Metric("train_accuracy", accuracy, every=2)])
    values = history["train_accuracy"]
    assert [math.isnan(v) for v in values] == [True, False, True, False, True]
    assert values[1::2] == pytest.approx(seen)  # the compiled accuracy is NumPy's of the same logits
    assert seen[-1] > 0.9 and seen[-1] > seen[0] - 1e-9
    last_bar = capsys.readouterr().err.split("\r")[-1]
    assert "5/5" in last_bar and f"train_accuracy={seen[-1]:.4g}" in last_bar  # epoch 4's, kept on the bar


def test_callbacks_see_the_row_so_far_and_add_to_it(classifier):
    step, inputs, _ = classifier()
    rows = []

    def spy(epoch, metrics, got_step):
        assert got_step is step
        rows.append((epoch, dict(metrics)))
        return {"twice_loss": 2 * metrics["loss"]}

    history = runtime.fit(step, inputs, epochs=2, batch_size=16, progress=False, validate=lambda: {"val": 0.5},
                          callbacks=[Metric("one", lambda: 1), spy, lambda e, m, s: None])
    assert [epoch for epoch, _ in rows] == [1, 2]
    assert all(row["val"] == 0.5 and row["one"] == 1.0 and "twice_loss" not in row for _, row in rows)
    assert history["twice_loss"] == pytest.approx([2 * v for v in history["loss"]])
    assert history.keys() == ["epoch", "loss", "seconds", "val", "one", "twice_loss"]


def test_a_sampler_prints_above_the_bar_every_n_epochs(classifier, capsys):
    step, inputs, _ = classifier()
    calls = []

    def sample(epoch, got_step):
        calls.append(epoch)
        assert got_step is step
        return f"sample after epoch {epoch}"

    history = runtime.fit(step, inputs, epochs=5, batch_size=16, callbacks=[Sample(sample, every=2)])
    out = capsys.readouterr().out
    assert calls == [2, 4] and len(history) == 5
    assert out.splitlines() == ["sample after epoch 2", "sample after epoch 4"]


def test_stop_training_ends_after_the_epoch(classifier, capsys):
    step, inputs, _ = classifier()
    later = []

    def stop_at_three(epoch, metrics, _):
        if epoch == 3:
            raise StopTraining("enough")

    history = runtime.fit(step, inputs, epochs=10, batch_size=16,
                          callbacks=[Metric("m", lambda: 7.0), stop_at_three, lambda e, m, s: later.append(e)])
    assert len(history) == 3 and history["m"] == [7.0] * 3
    assert later == [1, 2]  # callbacks after the one that stopped do not run in its epoch
    assert capsys.readouterr().out == "stopped after epoch 3: enough\n"


def test_early_stopping_on_a_metric_taken_every_other_epoch(classifier):
    step, inputs, _ = classifier()
    history = runtime.fit(step, inputs, epochs=20, batch_size=16, progress=False, early_stopping=2, monitor="flat",
                          callbacks=[Metric("flat", lambda: 1.0, every=2)])
    assert len(history) == 6  # measured at 2 (best), 4 and 6: two measurements without improvement
    with pytest.raises(KeyError, match="'missing', which is not recorded"):
        runtime.fit(step, inputs, epochs=2, batch_size=16, progress=False, early_stopping=1, monitor="missing")


@pytest.mark.parametrize("callback, error, message", [
    (lambda e, m, s: 3.0, TypeError, "expected None or a dict"),
    (Metric("bad", lambda: np.ones(2)), TypeError, "Metric 'bad': expected a number"),
    (Metric("bad", lambda: None), TypeError, "Metric 'bad': expected a number"),
    (lambda e, m, s: {"word": "high"}, TypeError, "word must be a number"),
])
def test_callback_mistakes_are_named(classifier, callback, error, message):
    step, inputs, _ = classifier()
    with pytest.raises(error, match=message):
        runtime.fit(step, inputs, epochs=1, batch_size=16, progress=False, callbacks=[callback])


@pytest.mark.parametrize("every", [0, -1, 1.5, True])
def test_every_must_be_a_positive_int(every):
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        Metric("m", lambda: 0.0, every=every)
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        Sample(lambda e, s: None, every=every)
