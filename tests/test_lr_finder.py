"""runtime.lr_finder: the suggested rate trains where a much smaller one crawls and a much larger one
diverges; the sweep stops at divergence and leaves the step exactly as it found it."""
from __future__ import annotations

import numpy as np
import pytest

import compiler as sp
import runtime
from compiler import optim


def digits_step():
    """A 64-64-10 ReLU network on the digits, SGD with momentum, and its training data."""
    x_train, y_train = runtime.datasets.load_digits("train")
    x = sp.Input("x", ("batch", 64))
    y = sp.Input("y", ("batch",), "int64")
    W1, W2 = sp.Param("lrf_W1", (64, 64)), sp.Param("lrf_W2", (64, 10))
    step = sp.compile_step(sp.cross_entropy(sp.relu(x @ W1) @ W2, y), optim.SGD(lr=0.1, momentum=0.9), seed=0)
    return step, {"x": x_train, "y": y_train}


def arrays(step) -> dict:
    return {f"{group}/{k}": v.copy() for group in ("params", "state", "buffers")
            for k, v in getattr(step, group).items()}


def test_the_suggested_rate_trains_and_rates_far_from_it_do_not():
    step, data = digits_step()
    initial = arrays(step)
    sweep = runtime.lr_finder(step, data, 64, start=1e-5, end=100.0, steps=80)
    assert len(sweep.lrs) == len(sweep.losses) > 40 and np.all(np.isfinite(sweep.losses))
    np.testing.assert_allclose(sweep.lrs[0], 1e-5)
    np.testing.assert_allclose(np.diff(np.log(sweep.lrs)), np.log(1e7) / 79)
    final = {}
    for factor in (0.01, 1.0, 100.0):
        for name, value in initial.items():
            group, key = name.split("/")
            getattr(step, group)[key] = value
        step.lr = sweep.suggested * factor
        final[factor] = runtime.fit(step, data, epochs=3, batch_size=64, progress=False)["loss"][-1]
    assert final[1.0] < 0.5 and final[0.01] > 1.5 and final[100.0] > 1.5, (sweep.suggested, final)


def test_the_step_is_restored():
    step, data = digits_step()
    step.lr = lambda k: 0.05 / (1 + k)  # a schedule: put back as it was
    step(**{k: v[:8] for k, v in data.items()})
    before, count, schedule = arrays(step), step.step_count, step.lr
    runtime.lr_finder(step, data, 32, steps=20)
    after = arrays(step)
    assert after.keys() == before.keys() and step.step_count == count and step.lr is schedule
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def test_the_sweep_stops_where_the_loss_diverges():
    """Full-batch gradient descent on a quadratic diverges above 2 / (the Hessian's largest eigenvalue)."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((128, 4)).astype(np.float32)
    targets = features @ rng.standard_normal((4, 1)).astype(np.float32)
    x, y = sp.Input("x", ("batch", 4)), sp.Input("y", ("batch", 1))
    w = sp.Param("lrf_w", (4, 1), init="zeros")
    step = sp.compile_step(sp.mse(x @ w, y), optim.SGD(lr=0.1))
    sweep = runtime.lr_finder(step, {"x": features, "y": targets}, 128, start=1e-3, end=1e6, steps=100)
    hessian = 2 / 128 * features.T.astype(np.float64) @ features
    threshold = 2 / np.linalg.eigvalsh(hessian).max()
    assert len(sweep.lrs) < 100 and np.all(np.isfinite(sweep.losses))
    assert sweep.lrs[-1] > threshold > sweep.suggested


@pytest.mark.parametrize("arguments, message", [
    ({"start": 1.0, "end": 0.1}, "0 < start < end"),
    ({"start": 0.0}, "0 < start < end"),
    ({"steps": 1}, "steps must be an int >= 2"),
])
def test_arguments_are_checked(arguments, message):
    with pytest.raises(ValueError, match=message):
        runtime.lr_finder(None, {}, 8, **arguments)
