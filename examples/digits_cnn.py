"""The convolutional network of examples/digits_cnn.toml, written in Python with compiler.nn.

Layers make their Params on first call (``conv2d.weight``, ``batch_norm.running_mean``,
...); building inside ``nn.names()`` gives the same names every time. The test accuracy
is measured through ``step.function``, which runs batch norm and dropout in inference
mode.

    python examples/digits_cnn.py [epochs]
"""
from __future__ import annotations

import sys

import numpy as np

import compiler as sp
from compiler import nn
from runtime import datasets, fit


def build():
    """(x, logits, model): two conv-ReLU-batch-norm-pool blocks, dropout and a dense layer."""
    x = sp.Input("x", ("batch", 1, 8, 8))
    with nn.names():
        model = nn.Sequential(
            nn.Conv2d(16, 3, padding=1, activation="relu"), nn.BatchNorm2d(), nn.MaxPool2d(2),   # 16 x 4 x 4
            nn.Conv2d(32, 3, padding=1, activation="relu"), nn.BatchNorm2d(), nn.MaxPool2d(2),   # 32 x 2 x 2
            nn.Flatten(), nn.Dropout(0.25), nn.Dense(10),
        )
        logits = model(x)
    return x, logits, model


def main(epochs: int = 40, seed: int = 0, progress: bool = True) -> dict:
    x_train, y_train = datasets.load_digits("train")
    x_test, y_test = datasets.load_digits("test")
    x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    x, logits, model = build()
    labels = sp.Input("labels", ("batch",), "int64")
    step = sp.compile_step(sp.cross_entropy(logits, labels), sp.optim.AdamW(lr=5e-3, weight_decay=0.5), seed=seed)
    predict = step.function(logits)  # inference mode: running statistics, no dropout

    def validate():
        return {"test_accuracy": float(np.mean(predict(x=x_test).argmax(axis=1) == y_test))}

    fit(step, {"x": x_train, "labels": y_train}, epochs=epochs, batch_size=32, validate=validate, seed=seed,
        epoch_schedule=sp.schedules.Cosine(5e-3, T_max=epochs), progress=progress)
    accuracy = validate()["test_accuracy"]
    print(f"{len(model.params)} Params ({', '.join(p.name for p in model.params)}); "
          f"test accuracy {accuracy:.2%} after {epochs} epochs")
    return {"accuracy": accuracy, "params": [p.name for p in model.params], "buffers": dict(step.buffers)}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
