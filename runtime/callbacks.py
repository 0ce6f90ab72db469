"""Code ``fit`` runs at the end of each epoch: a custom metric, a sampler, a reason to stop.

A callback is any callable ``callback(epoch, metrics, step)``: `epoch` counts from 1, `metrics` is
a copy of the epoch's row so far (loss, seconds, what ``validate`` and earlier callbacks gave), `step`
the TrainStep. It returns None or a dict {name: number} of extra metrics, which ``fit`` records in
the History and shows on the progress bar. To end training, it raises ``StopTraining(reason)``:
``fit`` records the epoch (with the metrics earlier callbacks gave), prints the reason and returns
the History; later callbacks of that epoch do not run.

``Metric`` and ``Sample`` are the two callbacks the examples need; anything else is a function.
"""
from __future__ import annotations

import numbers

import numpy as np


class StopTraining(Exception):
    """Raised by a callback to end ``fit`` after the current epoch; the message says why."""


class Metric:
    """Record ``fn()`` as metric `name` every `every` epochs (NaN in the History on the others).

    `fn` takes no arguments and returns a number or a 0-d array, such as a compiled function
    of the live parameters: ``Metric("val_accuracy", lambda: measure(x=x_val, y=y_val))`` with
    ``measure = step.function(compiler.accuracy(logits, y))``."""

    def __init__(self, name: str, fn, every: int = 1):
        self.name, self.fn, self.every = name, fn, _every(every, "Metric")

    def __call__(self, epoch: int, metrics: dict, step):
        if epoch % self.every:
            return None
        value = self.fn()
        if np.ndim(value) != 0 or not isinstance(np.asarray(value).item(), numbers.Real):
            raise TypeError(f"Metric {self.name!r}: expected a number, got {value!r}")
        return {self.name: float(value)}

    def __repr__(self):
        return f"Metric({self.name!r}, every={self.every})"


class Sample:
    """Call ``fn(epoch, step)`` every `every` epochs, e.g. to generate text or save images.

    Text it returns (a str) is printed through tqdm, above the progress bar, so the bar stays
    whole; None prints nothing (the sampler saved a file)."""

    def __init__(self, fn, every: int = 1):
        self.fn, self.every = fn, _every(every, "Sample")

    def __call__(self, epoch: int, metrics: dict, step):
        if epoch % self.every:
            return None
        text = self.fn(epoch, step)
        if text is not None:
            from tqdm import tqdm
            tqdm.write(str(text))
        return None

    def __repr__(self):
        return f"Sample({getattr(self.fn, '__name__', self.fn)!r}, every={self.every})"


def _every(every, kind: str) -> int:
    if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
        raise ValueError(f"{kind}: every must be an int >= 1, got {every!r}")
    return int(every)
