"""RMSProp, plain or centered, with momentum and weight decay.

torch.optim.RMSprop, as documented:

    g = grad + weight_decay * p                         (if weight_decay != 0)
    v = alpha * v + (1 - alpha) * g * g
    if centered:  g_avg = alpha * g_avg + (1 - alpha) * g;  v~ = v - g_avg**2
    else:         v~ = v
    if momentum > 0:  b = momentum * b + g / (sqrt(v~) + eps);  p = p - lr * b
    else:             p = p - lr * g / (sqrt(v~) + eps)

Every buffer starts at zero.
"""
from __future__ import annotations

from ..ops import sqrt
from .base import Optimizer, as_dtype


class RMSProp(Optimizer):
    ARGUMENTS = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "clip_grad_norm")

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 clip_grad_norm=None):
        super().__init__(lr, weight_decay, clip_grad_norm)
        self.alpha = self._number("alpha", alpha, minimum=0.0)
        self.eps = self._number("eps", eps, minimum=0.0)
        self.momentum = self._number("momentum", momentum, minimum=0.0)
        self.centered = self._flag("centered", centered)

    def state_init(self):
        state = {"square_avg": 0.0}
        if self.centered:
            state["grad_avg"] = 0.0
        if self.momentum > 0:
            state["momentum_buffer"] = 0.0
        return state

    def rule(self, param, grad, state, step, lr):
        g = grad + self.weight_decay * param if self.weight_decay else grad
        alpha = self.alpha
        new_state = {"square_avg": alpha * state["square_avg"] + (1 - alpha) * g * g}
        variance = new_state["square_avg"]
        if self.centered:
            new_state["grad_avg"] = alpha * state["grad_avg"] + (1 - alpha) * g
            variance = variance - new_state["grad_avg"] * new_state["grad_avg"]
        direction = g / (sqrt(variance) + self.eps)
        if self.momentum > 0:
            new_state["momentum_buffer"] = self.momentum * state["momentum_buffer"] + direction
            direction = new_state["momentum_buffer"]
        return param - as_dtype(lr, param.dtype) * direction, new_state
