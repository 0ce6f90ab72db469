"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

torch.optim.SGD, as documented:

    g = grad + weight_decay * p                         (if weight_decay != 0)
    if momentum != 0:
        b = g                          on the first step
        b = momentum * b + (1 - dampening) * g   afterwards
        g = g + momentum * b  if nesterov  else  b
    p = p - lr * g
"""
from __future__ import annotations

from .. import scalar_functions as sf
from ..ops import elementwise
from .base import HyperparameterError, Optimizer, as_dtype


class SGD(Optimizer):
    ARGUMENTS = ("lr", "momentum", "dampening", "nesterov", "weight_decay", "clip_grad_norm")

    def __init__(self, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0, clip_grad_norm=None):
        super().__init__(lr, weight_decay, clip_grad_norm)
        self.momentum = self._number("momentum", momentum, minimum=0.0)
        self.dampening = self._number("dampening", dampening)
        self.nesterov = self._flag("nesterov", nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise HyperparameterError("SGD", "nesterov", "False unless momentum > 0 and dampening == 0", nesterov)

    def state_init(self):
        return {"momentum_buffer": 0.0} if self.momentum else {}

    def rule(self, param, grad, state, step, lr):
        g = grad + self.weight_decay * param if self.weight_decay else grad
        new_state = {}
        if self.momentum:
            buffer = _momentum_buffer(param.dtype)(as_dtype(step, param.dtype), g, state["momentum_buffer"],
                                                   self.momentum, 1 - self.dampening)
            new_state["momentum_buffer"] = buffer
            g = g + self.momentum * buffer if self.nesterov else buffer
        return param - as_dtype(lr, param.dtype) * g, new_state


def _momentum_buffer(dtype):
    """g on the first step, momentum * b + (1 - dampening) * g afterwards: one map whose
    condition compares the step count inside the body."""
    return elementwise(lambda t, g, b, momentum, keep: sf.Where(sf.Equal(t, 1), g, momentum * b + keep * g),
                       "momentum_buffer", dtype=dtype)
