"""An autoencoder on the digits: 64 -> 16 -> 64 with tanh, trained with Adam, compiled.

Prints the reconstruction error before and after training and how well the
16-number codes separate the classes (nearest class mean in code space).

    python examples/digits_autoencoder.py [epochs]
"""
from __future__ import annotations

import sys

import numpy as np

import compiler as sp
from runtime import datasets, fit


def build(code_size: int = 16):
    x = sp.Input("x", ("batch", 64))
    W_enc = sp.Param("W_enc", (64, code_size))
    b_enc = sp.Param("b_enc", (code_size,), init="zeros")
    W_dec = sp.Param("W_dec", (code_size, 64))
    b_dec = sp.Param("b_dec", (64,), init="zeros")
    code = sp.tanh(x @ W_enc + b_enc)
    reconstruction = sp.sigmoid(code @ W_dec + b_dec)
    return x, code, sp.mse(reconstruction, x)


def nearest_mean_accuracy(codes_train, labels_train, codes_test, labels_test) -> float:
    means = np.stack([codes_train[labels_train == c].mean(axis=0) for c in range(10)])
    distances = ((codes_test[:, None, :] - means[None]) ** 2).sum(axis=2)
    return float(np.mean(distances.argmin(axis=1) == labels_test))


def train_autoencoder(build, epochs: int, shape: tuple = (64,), progress: bool = True) -> dict:
    """Train the autoencoder `build()` gives ((x, code, loss), x of (batch, *shape)) with Adam; report
    the test reconstruction error before and after, and how well its codes separate the classes."""
    x_train, y_train = datasets.load_digits("train")
    x_test, y_test = datasets.load_digits("test")
    x_train, x_test = x_train.reshape(-1, *shape), x_test.reshape(-1, *shape)
    x, code, loss = build()
    step = sp.compile_step(loss, sp.optim.Adam(lr=1e-2), seed=0)
    error, encode = step.function(loss), step.function(code)
    before = float(error(x=x_test))
    fit(step, {"x": x_train}, epochs=epochs, batch_size=32, progress=progress)
    after = float(error(x=x_test))
    accuracy = nearest_mean_accuracy(encode(x=x_train), y_train, encode(x=x_test), y_test)
    print(f"test reconstruction error {before:.4f} -> {after:.4f}; "
          f"nearest class mean in code space: {accuracy:.1%} test accuracy")
    return {"before": before, "after": after, "accuracy": accuracy}


def main(epochs: int = 30) -> dict:
    return train_autoencoder(build, epochs)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
