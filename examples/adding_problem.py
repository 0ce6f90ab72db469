"""The adding problem: a GRU remembers two marked numbers across 100 steps and adds them.

Each sequence has T = 100 steps of two inputs: a value drawn uniformly from [0, 1], and a marker
that is 1 at exactly two steps (one in each half of the sequence) and 0 elsewhere. The target is the
sum of the two marked values. Predicting the mean sum (1) for every sequence scores the variance of a
sum of two uniforms, 1/6 ~ 0.167; solving it needs the network to carry information across up to
100 steps, which backprop through time (``compiler.scan``'s reverse loop) has to deliver.

The model is ``nn.GRU(hidden, batch_first=True)`` over (batch, T, 2) (the rows ``run_epoch`` draws
mini-batches from) and a dense layer from the final hidden state to one number, trained with Adam on
an MSE; each epoch draws fresh sequences. The test MSE is measured on 2,000 held-out sequences.

    python examples/adding_problem.py [epochs]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import compiler as sp
from compiler import nn
from runtime import fit

STEPS = 100
BASELINE = 1 / 6  # the MSE of always predicting 1


def adding_data(count: int, steps: int = STEPS, rng=None) -> tuple:
    """(x, y): x (count, steps, 2) float32 -- at each step a value in [0, 1] and a marker -- and y (count, 1),
    the sum of the two marked values; one marker in each half of the sequence."""
    rng = np.random.default_rng(0) if rng is None else rng
    values = rng.uniform(0, 1, (count, steps)).astype(np.float32)
    first = rng.integers(0, steps // 2, count)
    second = rng.integers(steps // 2, steps, count)
    markers = np.zeros((count, steps), np.float32)
    rows = np.arange(count)
    markers[rows, first] = markers[rows, second] = 1
    x = np.ascontiguousarray(np.stack([values, markers], axis=2))
    y = (values[rows, first] + values[rows, second])[:, None].astype(np.float32)
    return x, y


def build(hidden: int = 32, steps: int = STEPS):
    """(x, prediction, layers): x (batch, steps, 2) -> prediction (batch, 1)."""
    x = sp.Input("x", ("batch", steps, 2))
    with nn.names():
        gru, head = nn.GRU(hidden, batch_first=True), nn.Dense(1)
        _, h_n = gru(x)
        prediction = head(h_n[-1])
    return x, prediction, [gru, head]


def main(epochs: int = 12, hidden: int = 32, sequences: int = 4096, batch_size: int = 64, lr: float = 1e-2,
         steps: int = STEPS, seed: int = 0, progress: bool = True) -> dict:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    x_test, y_test = adding_data(2000, steps, np.random.default_rng(seed + 1000))
    x, prediction, layers = build(hidden, steps)
    target = sp.Input("target", ("batch", 1))
    step = sp.compile_step(sp.mse(prediction, target), sp.optim.Adam(lr=lr, clip_grad_norm=1.0), seed=seed)
    predict = step.function(prediction)
    compiled = time.perf_counter() - started

    def fresh(epoch):
        x_train, y_train = adding_data(sequences, steps, rng)
        return {"x": x_train, "target": y_train}

    def validate():
        return {"test_mse": float(np.mean((predict(x=x_test) - y_test) ** 2))}

    history = fit(step, fresh, epochs=epochs, batch_size=batch_size, validate=validate, seed=seed,
                  progress=progress)
    mse = validate()["test_mse"]
    seconds = time.perf_counter() - started
    print(f"GRU({hidden}) on the adding problem at T = {steps}: test MSE {mse:.4f} (baseline {BASELINE:.3f}) after "
          f"{epochs} epochs of {sequences} sequences; {seconds:.1f} s wall time ({compiled:.1f} s compiling)")
    return {"mse": mse, "baseline": BASELINE, "seconds": seconds, "compile_seconds": compiled, "history": history}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 12)
