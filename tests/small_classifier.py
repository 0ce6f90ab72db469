"""A one-layer classifier with int64 labels, and a batch for it: the model the reliability probes
train, fault and checkpoint."""
from __future__ import annotations

import numpy as np

import compiler as sp


def mlp():
    """(cross-entropy loss, logits) of x @ rel_W over 3 classes."""
    x = sp.Input("x", ("batch", 4))
    y = sp.Input("y", ("batch",), "int64")
    W = sp.Param("rel_W", (4, 3))
    logits = x @ W
    return sp.cross_entropy(logits, y), logits


def batch(n=4):
    """n rows of x and labels 0, 1, 2, 0, ..."""
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 4)).astype(np.float32), "y": np.arange(n) % 3}
