"""An LSTM reads each 8x8 digit as a sequence of 8 rows of 8 pixels and classifies it from its last step.

The model is ``nn.LSTM(64, batch_first=True)`` over (batch, 8 rows, 8 pixels) -- pixels scaled to
[0, 1] -- and a dense layer from the last step's hidden state to the 10 classes, trained with Adam
and a cosine schedule. The LSTM is one ``compiler.scan`` over the rows: its input projection for all
8 rows is one matrix product before the loop, and backprop through time is one reverse loop. Its
Params are named as torch.nn.LSTM's state dict (``lstm.weight_ih_l0`` of shape (256, 8), ...).
The same model as a model file: ``symprop train examples/digits_lstm.toml``.

    python examples/digits_lstm.py [epochs]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import compiler as sp
from compiler import nn
from runtime import datasets, fit

ROWS, PIXELS = 8, 8


def build(hidden: int = 64):
    """(x, logits, model): x (batch, 8, 8) rows of pixels -> logits (batch, 10)."""
    x = sp.Input("x", ("batch", ROWS, PIXELS))
    with nn.names():
        lstm, head = nn.LSTM(hidden, batch_first=True), nn.Dense(10)
        _, (h_n, _) = lstm(x)          # h_n: (num_layers, batch, hidden); its last layer is the last step's output
        logits = head(h_n[-1])
    return x, logits, [lstm, head]


def main(epochs: int = 30, hidden: int = 64, lr: float = 1e-2, batch_size: int = 32, seed: int = 0,
         progress: bool = True) -> dict:
    started = time.perf_counter()
    x_train, y_train = datasets.load_digits("train")   # pixels in [0, 1]
    x_test, y_test = datasets.load_digits("test")
    x_train, x_test = x_train.reshape(-1, ROWS, PIXELS), x_test.reshape(-1, ROWS, PIXELS)
    x, logits, layers = build(hidden)
    labels = sp.Input("labels", ("batch",), "int64")
    step = sp.compile_step(sp.cross_entropy(logits, labels), sp.optim.Adam(lr=lr), seed=seed)
    predict = step.function(logits)
    compiled = time.perf_counter() - started

    def validate():
        return {"test_accuracy": float(np.mean(predict(x=x_test).argmax(axis=1) == y_test))}

    history = fit(step, {"x": x_train, "labels": y_train}, epochs=epochs, batch_size=batch_size, validate=validate,
                  seed=seed, epoch_schedule=sp.schedules.Cosine(lr, T_max=epochs), progress=progress)
    accuracy = validate()["test_accuracy"]
    seconds = time.perf_counter() - started
    params = [p.name for layer in layers for p in layer.params]
    print(f"LSTM({hidden}) over 8 rows of 8 pixels: test accuracy {accuracy:.2%} after {epochs} epochs; "
          f"{seconds:.1f} s wall time ({compiled:.1f} s compiling {len(step.kernels())} kernels)")
    return {"accuracy": accuracy, "params": params, "seconds": seconds, "compile_seconds": compiled,
            "history": history}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
