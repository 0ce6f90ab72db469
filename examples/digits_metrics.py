"""Training curves with several metrics: the digits MLP trained by ``runtime.fit`` with compiled
metrics, callbacks and a learning-rate finder, its History drawn by ``History.plot``.

A 64-128-10 ReLU MLP with dropout, Adam on a cosine schedule. Validation loss, accuracy and top-3
accuracy are one compiled function over the test set (``sp.accuracy``, ``sp.top_k_accuracy``), the
training accuracy a ``Metric`` callback every third epoch, and a ``Sample`` callback prints which
digit the confusion matrix (``sp.confusion_matrix``) says is most often mistaken. Before training,
``runtime.lr_finder`` sweeps the learning rate and puts the step back as it was.

    python examples/digits_metrics.py [epochs]       # writes docs/gallery/digits_metrics.png
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import compiler as sp
import runtime
from runtime.callbacks import Metric, Sample

FIGURE = Path(__file__).resolve().parent.parent / "docs" / "gallery" / "digits_metrics.png"


def build():
    """(loss, logits): the MLP with dropout after its hidden layer."""
    x, y = sp.Input("x", ("batch", 64)), sp.Input("y", ("batch",), "int64")
    w1, b1 = sp.Param("W1", (64, 128), init="he_normal"), sp.Param("b1", (128,), init="zeros")
    w2, b2 = sp.Param("W2", (128, 10)), sp.Param("b2", (10,), init="zeros")
    logits = sp.dropout(sp.relu(x @ w1 + b1), 0.2) @ w2 + b2
    return sp.cross_entropy(logits, y), logits


def main(epochs: int = 30, lr: float = 3e-3, figure=None, progress: bool = True, seed: int = 0) -> dict:
    started = time.perf_counter()
    x_train, y_train = runtime.datasets.load_digits("train")
    x_test, y_test = runtime.datasets.load_digits("test")
    loss, logits = build()
    y = sp.Input("y", ("batch",), "int64")
    step = sp.compile_step(loss, sp.optim.Adam(lr=lr), seed=seed)
    measure = step.function([loss, sp.accuracy(logits, y), sp.top_k_accuracy(logits, y, 3)])
    train_accuracy = step.function(sp.accuracy(logits, y))
    confusion = step.function(sp.confusion_matrix(logits, y, 10))

    def validate():
        val_loss, accuracy, top3 = measure(x=x_test, y=y_test)
        return {"val_loss": float(val_loss), "val_accuracy": float(accuracy), "val_top3_accuracy": float(top3)}

    def most_confused(epoch, _step):
        counts = confusion(x=x_test, y=y_test)
        errors = counts.sum(1) - np.diag(counts)
        return f"epoch {epoch}: digit {int(np.argmax(errors))} is most often mistaken ({int(errors.max())} errors)"

    train = {"x": x_train, "y": y_train}
    sweep = runtime.lr_finder(step, train, 64, start=1e-5, end=10, steps=80)
    if progress:
        print(f"lr_finder suggests {sweep.suggested:.3g} (training at {lr:g})")
    history = runtime.fit(step, train, epochs=epochs, batch_size=64, validate=validate, progress=progress,
                          epoch_schedule=sp.schedules.Cosine(lr, T_max=epochs),
                          callbacks=[Metric("train_accuracy", lambda: train_accuracy(x=x_train, y=y_train), every=3),
                                     Sample(most_confused, every=10)])
    if figure is not None:
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        history.plot(figure, logy=True)
    counts = confusion(x=x_test, y=y_test)
    result = {"history": history, "suggested_lr": sweep.suggested, "confusion": counts,
              "val_accuracy": history["val_accuracy"][-1], "seconds": time.perf_counter() - started}
    if progress:
        print(f"{history}; {result['seconds']:.1f} s")
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30, figure=FIGURE)
