"""The history of a training run: per-epoch metrics, as Keras' History.

``history["loss"]`` is the list of one value per epoch. A metric that is not
measured every epoch (validation every N epochs) holds NaN where it was not
measured, so every list has one entry per epoch and lines up with the others.
"""
from __future__ import annotations

import math
import numbers

PLOT_HINT = 'History.plot draws with matplotlib, an optional extra: pip install "symprop[plot]"'


class History:
    """metric name -> list of per-epoch values."""

    def __init__(self, metrics: dict | None = None):
        self._metrics: dict[str, list[float]] = {}
        self.epochs = 0
        if metrics:
            lengths = {len(v) for v in metrics.values()}
            if len(lengths) != 1:
                raise ValueError(f"History: every metric needs one value per epoch, got lengths "
                                 f"{ {k: len(v) for k, v in metrics.items()} }")
            for epoch in range(lengths.pop()):
                self.record(**{k: v[epoch] for k, v in metrics.items()})

    def record(self, **metrics) -> None:
        """Append one epoch's metrics (name=value); metrics not given this epoch get NaN."""
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"History.record: {name} must be a number, got {value!r}")
            if name not in self._metrics:
                self._metrics[name] = [math.nan] * self.epochs
        for name, values in self._metrics.items():
            values.append(float(metrics[name]) if name in metrics else math.nan)
        self.epochs += 1

    def __getitem__(self, name: str) -> list:
        if name not in self._metrics:
            raise KeyError(f"no metric {name!r} in this history; it has {', '.join(self._metrics) or 'none'}")
        return list(self._metrics[name])

    def __contains__(self, name) -> bool:
        return name in self._metrics

    def __len__(self) -> int:
        return self.epochs

    def keys(self) -> list:
        return list(self._metrics)

    def last(self) -> dict:
        """The metrics of the latest epoch."""
        return {name: values[-1] for name, values in self._metrics.items()} if self.epochs else {}

    def best(self, name: str, mode: str = "min") -> tuple[int, float]:
        """(0-based epoch, value) of the best measured value of a metric; mode is "min" or "max"."""
        if mode not in ("min", "max"):
            raise ValueError(f"History.best: mode must be 'min' or 'max', got {mode!r}")
        measured = [(v, e) for e, v in enumerate(self[name]) if not math.isnan(v)]
        if not measured:
            raise ValueError(f"History.best: metric {name!r} was never measured")
        value, epoch = (min if mode == "min" else max)(measured, key=lambda pair: pair[0])
        return epoch, value

    def to_dict(self) -> dict:
        """{metric: [value per epoch]} as plain lists (JSON-ready, except for NaN)."""
        return {name: list(values) for name, values in self._metrics.items()}

    @classmethod
    def from_dict(cls, metrics: dict) -> "History":
        return cls(metrics)

    def plot(self, path, metrics=None):
        """Draw the curves to an image file (format from the suffix): losses on the left, other
        metrics on the right. Needs matplotlib (pip install "symprop[plot]")."""
        try:
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError as error:
            raise ImportError(PLOT_HINT) from error
        names = list(metrics) if metrics is not None else self.keys()
        for name in names:
            self[name]  # a clear KeyError for an unknown metric
        losses = [n for n in names if "loss" in n]
        others = [n for n in names if "loss" not in n]
        panels = [group for group in (losses, others) if group]
        if not panels:
            raise ValueError("History.plot: nothing to plot (no metrics recorded)")
        figure = Figure(figsize=(5 * len(panels), 3.5), layout="constrained")
        epochs = range(1, self.epochs + 1)
        for i, group in enumerate(panels):
            axes = figure.add_subplot(1, len(panels), i + 1)
            for name in group:
                axes.plot(epochs, self._metrics[name], marker="o", markersize=3, label=name)
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_ylabel("loss" if group is losses else "metric")
            axes.grid(alpha=0.3)
            axes.legend()
        figure.savefig(path)
        return path

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items())
        return f"History({self.epochs} epochs{': ' + last if last else ''})"
