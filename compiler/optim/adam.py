"""Adam (L2 weight decay in the gradient) and AdamW (decoupled weight decay), with AMSGrad.

torch.optim.Adam / AdamW, as documented (t is the 1-based step):

    AdamW:  p = p - lr * weight_decay * p               (before the moments)
    Adam:   g = grad + weight_decay * p                 (if weight_decay != 0)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m^ = m / (1 - beta1**t)
    amsgrad:  v_max = max(v_max, v);  v^ = v_max / (1 - beta2**t)
    else:     v^ = v / (1 - beta2**t)
    p = p - lr * m^ / (sqrt(v^) + eps)

evaluated as PyTorch does: p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps).
"""
from __future__ import annotations

from ..ops import maximum, sqrt
from .base import Optimizer, as_dtype


class Adam(Optimizer):
    ARGUMENTS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "clip_grad_norm")
    DECOUPLED_WEIGHT_DECAY = False

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, clip_grad_norm=None):
        super().__init__(lr, weight_decay, clip_grad_norm)
        self.betas = self._betas(betas)
        self.eps = self._number("eps", eps, minimum=0.0)
        self.amsgrad = self._flag("amsgrad", amsgrad)

    def state_init(self):
        state = {"exp_avg": 0.0, "exp_avg_sq": 0.0}
        if self.amsgrad:
            state["max_exp_avg_sq"] = 0.0
        return state

    def rule(self, param, grad, state, step, lr):
        beta1, beta2 = self.betas
        g = grad
        if self.weight_decay and self.DECOUPLED_WEIGHT_DECAY:
            param = param * as_dtype(1 - lr * self.weight_decay, param.dtype)
        elif self.weight_decay:
            g = grad + self.weight_decay * param
        new_state = {"exp_avg": beta1 * state["exp_avg"] + (1 - beta1) * g,
                     "exp_avg_sq": beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g}
        second_moment = new_state["exp_avg_sq"]
        if self.amsgrad:
            new_state["max_exp_avg_sq"] = maximum(state["max_exp_avg_sq"], second_moment)
            second_moment = new_state["max_exp_avg_sq"]
        step_size = as_dtype(lr / (1 - beta1 ** step), param.dtype)
        bias_correction2_sqrt = as_dtype(sqrt(1 - beta2 ** step), param.dtype)
        denominator = sqrt(second_moment) / bias_correction2_sqrt + self.eps
        return param - step_size * new_state["exp_avg"] / denominator, new_state


class AdamW(Adam):
    DECOUPLED_WEIGHT_DECAY = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, clip_grad_norm=None):
        super().__init__(lr, betas, eps, weight_decay, amsgrad, clip_grad_norm)
