"""The pieces every hand-written NumPy baseline shares: softmax cross-entropy with its gradient,
and torch.optim.Adam's update in place (float32, as the compiled steps compute them)."""
from __future__ import annotations

import math

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple:
    """(mean loss, its gradient with respect to the logits) for integer labels `y`."""
    rows = np.arange(len(y))
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
    g = exp
    g /= total
    g[rows, y] -= 1
    g *= np.float32(1.0 / len(y))
    return loss, g


def adam_update(triples, t: int, lr: float, betas: tuple, eps: float) -> None:
    """torch.optim.Adam's step `t` (from 1) on each (param, grad, (m, v)), in place; grad is overwritten."""
    beta1, beta2 = betas
    step_size = lr / (1 - beta1 ** t)
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** t)
    for p, g, (m, v) in triples:
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        g *= g
        g *= 1 - beta2
        v += g
        denominator = np.sqrt(v)
        denominator /= np.float32(bias_correction2_sqrt)
        denominator += np.float32(eps)
        np.divide(m, denominator, out=denominator)
        denominator *= np.float32(step_size)
        p -= denominator


class AdamBaseline:
    """What every hand-written NumPy baseline trained by Adam keeps: copies of the weights (by name),
    their two moments and the step count; ``adam(grads)`` takes one step."""

    def __init__(self, weights: dict):
        self.params = {name: w.copy() for name, w in weights.items()}
        self.m = {name: np.zeros_like(w) for name, w in weights.items()}
        self.v = {name: np.zeros_like(w) for name, w in weights.items()}
        self.t = 0

    def adam(self, grads: dict, lr: float, betas: tuple, eps: float) -> None:
        """One update of the named parameters; each gradient array is overwritten."""
        self.t += 1
        adam_update([(self.params[name], g, (self.m[name], self.v[name])) for name, g in grads.items()],
                    self.t, lr, betas, eps)
