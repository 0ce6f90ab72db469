"""``fit``: epochs of compiled mini-batch training with progress, validation, callbacks,
checkpoints and early stopping, recorded in a History."""
from __future__ import annotations

import math
import os

from .callbacks import StopTraining
from .history import History


def fit(step, train_inputs, epochs: int, batch_size: int, *, validate=None, shuffle: bool = True,
        seed: int = 0, checkpoint_every: int | None = None, checkpoint_path=None,
        early_stopping: int | None = None, monitor: str = "loss", mode: str = "min",
        epoch_schedule=None, progress: bool = True, history: History | None = None, callbacks=()) -> History:
    """Train `step` (a TrainStep) for `epochs` passes over `train_inputs`.

    Each epoch is one native call (``step.run_epoch``) over batches shuffled by a
    generator seeded with `seed`. train_inputs: the data arrays by input name, or a callable
    ``epoch -> arrays`` (1-based) giving each epoch its own data, such as fresh random windows of a
    text. validate: a callable returning {metric: value}
    after each epoch (e.g. validation loss and accuracy through ``step.function``).
    callbacks: callables ``(epoch, metrics, step) -> dict | None`` run after `validate` each epoch
    (``runtime.callbacks``: ``Metric``, ``Sample``); the metrics they return are recorded and
    shown, and one may raise ``StopTraining`` to end training after that epoch.
    checkpoint_every: save to `checkpoint_path` (``{epoch}`` is formatted) every N
    epochs. early_stopping: stop when `monitor` has not improved (``mode`` "min" or
    "max") for that many epochs. Returns the History (loss per epoch, metrics,
    seconds per epoch).
    """
    import time

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("fit: checkpoint_every needs checkpoint_path")
    if mode not in ("min", "max"):
        raise ValueError(f"fit: mode must be 'min' or 'max', got {mode!r}")
    history = history if history is not None else History()
    bar = _progress(epochs, progress)
    patience = _Patience(early_stopping, monitor, mode, callbacks) if early_stopping is not None else None
    shown = {}
    try:
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            if epoch_schedule is not None:
                step.lr = float(epoch_schedule(epoch - 1))
            data = train_inputs(epoch) if callable(train_inputs) else train_inputs
            loss = step.run_epoch(data, batch_size, shuffle=shuffle, seed=seed + epoch)
            metrics = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - started}
            if epoch_schedule is not None:
                metrics["lr"] = step.lr
            if validate is not None:
                metrics.update(validate())
            stop = _run_callbacks(callbacks, epoch, metrics, step)
            history.record(**metrics)
            bar.update(1)
            shown.update({k: f"{v:.4g}" for k, v in metrics.items() if k not in ("epoch", "seconds", "lr")})
            bar.set_postfix(shown)  # a metric measured every N epochs keeps its latest value in between
            if checkpoint_every and epoch % checkpoint_every == 0:
                step.save(os.fspath(checkpoint_path).format(epoch=epoch))
            if stop is not None:
                bar.write(f"stopped after epoch {epoch}: {stop}")
                break
            if patience is not None and patience.exhausted(metrics, history):
                bar.write(f"early stopping after epoch {epoch}: {monitor} has not improved for {early_stopping} epochs")
                break
    finally:
        bar.close()
    return history


def _run_callbacks(callbacks, epoch: int, metrics: dict, step) -> StopTraining | None:
    """Run each callback, adding the metrics it returns to `metrics`; the StopTraining one raised, if any."""
    for callback in callbacks:
        try:
            extra = callback(epoch, dict(metrics), step)
        except StopTraining as stop:
            return stop
        if extra is not None and not isinstance(extra, dict):
            raise TypeError(f"fit: callback {callback!r} returned {extra!r}; expected None or a dict of metrics")
        metrics.update(extra or {})
    return None


class _Patience:
    """Early stopping's count of epochs since `monitor` last improved. An epoch that did not measure
    it (a ``Metric`` taken every N epochs) does not count; a monitor that the first epoch did not
    record and no ``Metric`` names is a mistake (KeyError)."""

    def __init__(self, epochs: int, monitor: str, mode: str, callbacks):
        self.epochs, self.monitor, self.mode = epochs, monitor, mode
        self.best, self.since_best = (math.inf if mode == "min" else -math.inf), 0
        self.announced = monitor in {getattr(callback, "name", None) for callback in callbacks}

    def exhausted(self, metrics: dict, history: History) -> bool:
        if not self.announced and self.monitor not in history:
            raise KeyError(f"fit: early stopping monitors {self.monitor!r}, which is not recorded; "
                           f"the metrics are {', '.join(history.keys())}")
        if self.monitor not in metrics:
            return False
        value = metrics[self.monitor]
        improved = value < self.best if self.mode == "min" else value > self.best
        self.best, self.since_best = (value, 0) if improved else (self.best, self.since_best + 1)
        return self.since_best >= self.epochs


class _Silent:
    def update(self, n):
        pass

    def set_postfix(self, values):
        pass

    def write(self, text):
        pass

    def close(self):
        pass


def _progress(epochs: int, enabled: bool):
    if not enabled:
        return _Silent()
    from tqdm import tqdm
    return tqdm(total=epochs, unit="epoch", desc="training", dynamic_ncols=True)
