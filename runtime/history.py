"""The history of a training run: per-epoch metrics, as Keras' History.

``history["loss"]`` is the list of one value per epoch. A metric that is not
measured every epoch (validation every N epochs) holds NaN where it was not
measured, so every list has one entry per epoch and lines up with the others.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

PLOT_HINT = 'History.plot draws with matplotlib, an optional extra: pip install "symprop[plot]"'
BOOKKEEPING = ("epoch", "seconds")  # recorded by fit, not drawn unless asked for
SPLITS = ("train_", "training_", "val_", "valid_", "validation_", "test_")
MARKERS_UP_TO = 60  # values per curve drawn with a marker on each


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

    def plot(self, path, metrics=None, *, logy: bool = False, smooth: int | None = None, columns: int = 3):
        """Draw the curves to an image file (format from the suffix); see ``figure``. Returns `path`.
        Needs matplotlib (pip install "symprop[plot]")."""
        self.figure(metrics, logy=logy, smooth=smooth, columns=columns).savefig(path)
        return path

    def figure(self, metrics=None, *, logy: bool = False, smooth: int | None = None, columns: int = 3):
        """A matplotlib Figure with one panel per group of metrics, in a grid of up to `columns`.

        Losses share a panel, accuracies share one, and any other metric shares one with the metrics
        of its name but another split (``val_mse`` with ``test_mse``); ``lr`` and ``seconds`` are
        their own. metrics: the names to draw (default every metric but the bookkeeping ``epoch``
        and ``seconds``). logy: the loss panel on a log scale. smooth: also draw each curve's
        trailing moving average over that many measured values (the raw curve fades), for noisy
        per-step curves. A metric measured on some epochs only is drawn through the measured ones."""
        try:
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError(PLOT_HINT) from error
        names = list(metrics) if metrics is not None else [n for n in self.keys() if n not in BOOKKEEPING]
        for name in names:
            self[name]  # a clear KeyError for an unknown metric
        if smooth is not None and not _positive_int(smooth):
            raise ValueError(f"History.plot: smooth must be an int >= 1 (a window of values), got {smooth!r}")
        if not _positive_int(columns):
            raise ValueError(f"History.plot: columns must be an int >= 1, got {columns!r}")
        panels = _panels(names)
        if not panels:
            raise ValueError("History.plot: nothing to plot (no metrics recorded)")
        columns = min(columns, len(panels))
        rows = -(-len(panels) // columns)
        figure = Figure(figsize=(4.5 * columns, 3.2 * rows), dpi=100, layout="constrained")
        for i, (title, group) in enumerate(panels.items()):
            axes = figure.add_subplot(rows, columns, i + 1)
            for name in group:
                self._draw(axes, name, smooth)
            _label(axes, title, log=logy and title == "loss")
        return figure

    def _draw(self, axes, name: str, smooth: int | None) -> None:
        """One metric's measured values against the epoch; with `smooth`, faded under its moving average."""
        measured = [(epoch, v) for epoch, v in enumerate(self._metrics[name], 1) if not math.isnan(v)]
        epochs, values = [e for e, _ in measured], [v for _, v in measured]
        marker = dict(marker="o", markersize=3) if len(values) <= MARKERS_UP_TO else {}
        if smooth is None or smooth == 1:
            axes.plot(epochs, values, label=name, **marker)
            return
        raw, = axes.plot(epochs, values, alpha=0.3, linewidth=1)
        axes.plot(epochs, _moving_average(values, smooth), color=raw.get_color(), label=f"{name} (mean of {smooth})")

    def __repr__(self):
        last = ", ".join(f"{k}={v:.4g}" for k, v in self.last().items())
        return f"History({self.epochs} epochs{': ' + last if last else ''})"


def _positive_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _group(name: str) -> str:
    """The panel of a metric: "loss", "accuracy", or its name without a split prefix."""
    if "loss" in name:
        return "loss"
    if "accuracy" in name:
        return "accuracy"
    for prefix in SPLITS:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return name


def _panels(names) -> dict:
    """{panel title: [metric names]}: losses, accuracies, the other metrics in the order given, then
    the bookkeeping (``lr``, ``seconds``)."""
    order = {"loss": 0, "accuracy": 1, "lr": 3, "seconds": 3, "epoch": 3}
    panels: dict[str, list] = {}
    for name in sorted(names, key=lambda n: order.get(_group(n), 2)):
        panels.setdefault(_group(name), []).append(name)
    return panels


def _label(axes, title: str, log: bool) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    axes.set_title(title)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 0.1, not 10^-1
        axes.yaxis.set_minor_formatter(_minor_log_formatter())
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")


def _minor_log_formatter():
    """matplotlib's choice of minor log ticks to label (some over a short range, none over a long
    one), written as plain numbers (0.6, not 6e-01)."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, value, pos=None):
            return f"{value:g}" if super().__call__(value, pos) else ""
    return PlainLogFormatter(labelOnlyBase=False)


def _moving_average(values: list, window: int) -> np.ndarray:
    """Mean of each value and the up to window - 1 before it."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - window, 0)
    return (sums[end] - sums[start]) / (end - start)
