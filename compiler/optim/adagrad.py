"""AdaGrad with learning-rate decay, weight decay and an initial accumulator.

torch.optim.Adagrad, as documented (t is the 1-based step):

    g = grad + weight_decay * p                         (if weight_decay != 0)
    clr = lr / (1 + (t - 1) * lr_decay)
    state_sum = state_sum + g * g                       (starts at initial_accumulator_value)
    p = p - clr * g / (sqrt(state_sum) + eps)
"""
from __future__ import annotations

from ..ops import sqrt
from .base import Optimizer, as_dtype


class AdaGrad(Optimizer):
    ARGUMENTS = ("lr", "lr_decay", "weight_decay", "eps", "initial_accumulator_value", "clip_grad_norm")

    def __init__(self, lr=0.01, lr_decay=0, weight_decay=0, eps=1e-10, initial_accumulator_value=0,
                 clip_grad_norm=None):
        super().__init__(lr, weight_decay, clip_grad_norm)
        self.lr_decay = self._number("lr_decay", lr_decay, minimum=0.0)
        self.eps = self._number("eps", eps, minimum=0.0)
        self.initial_accumulator_value = self._number("initial_accumulator_value", initial_accumulator_value,
                                                      minimum=0.0)

    def state_init(self):
        return {"sum": self.initial_accumulator_value}

    def rule(self, param, grad, state, step, lr):
        g = grad + self.weight_decay * param if self.weight_decay else grad
        clr = lr / (1 + (step - 1) * self.lr_decay) if self.lr_decay else lr
        state_sum = state["sum"] + g * g
        new_param = param - as_dtype(clr, param.dtype) * g / (sqrt(state_sum) + self.eps)
        return new_param, {"sum": state_sum}
