"""A learning-rate range test (Smith, 2017; fastai's ``lr_find``): train for a few mini-batches at a
rate that grows exponentially, watch where the loss stops falling, and put the step back as it was.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class LRSweep(NamedTuple):
    """The rates tried, the loss of each step (before its update), and the suggested rate."""
    lrs: np.ndarray
    losses: np.ndarray
    suggested: float


def lr_finder(step, inputs: dict, batch_size: int, *, start: float = 1e-7, end: float = 10.0, steps: int = 100,
              seed: int = 0, beta: float = 0.98, diverge: float = 4.0) -> LRSweep:
    """Run up to `steps` training steps of `step` at rates from `start` to `end` (a geometric series)
    over shuffled mini-batches of `inputs` (cycled as needed), then restore the parameters, optimizer
    state, buffers, step count and rate.

    The sweep stops early once the loss diverges: not finite, or its moving average (an exponential
    one with factor `beta`, bias-corrected) above `diverge` times its lowest. The suggestion is the
    rate of that lowest average divided by 10, a rate at which the loss still falls fast.
    """
    if not 0 < start < end:
        raise ValueError(f"lr_finder: expected 0 < start < end, got start={start!r}, end={end!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"lr_finder: steps must be an int >= 2, got {steps!r}")
    rates = start * (end / start) ** (np.arange(steps) / (steps - 1))
    saved = _save(step)
    try:
        losses, smoothed = _sweep(step, _batches(inputs, batch_size, seed), rates, beta, diverge)
    finally:
        _restore(step, saved)
    lrs = rates[:len(losses)]
    return LRSweep(lrs, losses, float(lrs[int(np.argmin(smoothed))] / 10) if len(losses) else math.nan)


def _sweep(step, batches, rates: np.ndarray, beta: float, diverge: float) -> tuple[np.ndarray, np.ndarray]:
    """(losses, their moving average) of each step, up to the first that diverges (kept when finite).
    The average is exponential, divided by 1 - beta**n so the first values are not pulled to 0."""
    losses, smoothed, average, lowest = [], [], 0.0, math.inf
    for rate in rates:
        step.lr = float(rate)
        try:
            loss = step(**next(batches))
        except FloatingPointError:  # a step with debug_nans: the loss or a parameter was not finite
            break
        if not math.isfinite(loss):
            break
        losses.append(loss)
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** len(losses)))
        lowest = min(lowest, smoothed[-1])
        if smoothed[-1] > diverge * lowest:
            break
    return np.array(losses), np.array(smoothed)


def _batches(inputs: dict, batch_size: int, seed: int):
    """Mini-batches of `inputs` in a new shuffled order on every pass, forever."""
    rows = len(next(iter(inputs.values())))
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(rows)
        for first in range(0, rows, batch_size):
            index = order[first:first + batch_size]
            yield {name: array[index] for name, array in inputs.items()}


def _save(step) -> dict:
    return {"params": {k: v.copy() for k, v in step.params.items()},
            "state": {k: v.copy() for k, v in step.state.items()},
            "buffers": {k: v.copy() for k, v in step.buffers.items()},
            "step_count": step.step_count, "lr": step.lr}


def _restore(step, saved: dict) -> None:
    step.params.update(saved["params"])
    step.state.update(saved["state"])
    step.buffers.update(saved["buffers"])
    step.step_count, step.lr = saved["step_count"], saved["lr"]
