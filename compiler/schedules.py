"""Learning-rate schedules: plain callables ``schedule(t) -> lr``, evaluated on the host.

The compiled step reads the learning rate from a runtime scalar, so changing
it costs nothing: the trainer calls the schedule between steps (or between
epochs) and passes the result. ``t`` counts from 0, like torch's
``last_epoch``: the first epoch (or step) trains at ``schedule(0)``. Each
schedule is the closed form of its torch.optim.lr_scheduler counterpart.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .optim.base import HyperparameterError


def _number(schedule, argument, value, minimum=None, strict=False, maximum=None) -> float:
    bounds = [f"{'>' if strict else '>='} {minimum:g}" if minimum is not None else "",
              f"<= {maximum:g}" if maximum is not None else ""]
    expected = " and ".join(["a number " + bounds[0] if bounds[0] else "a number"] + ([bounds[1]] if bounds[1] else []))
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise HyperparameterError(schedule, argument, expected, value)
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise HyperparameterError(schedule, argument, expected, value)
    if maximum is not None and value > maximum:
        raise HyperparameterError(schedule, argument, expected, value)
    return float(value)


def _count(schedule, argument, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise HyperparameterError(schedule, argument, "a positive integer", value)
    return int(value)


def _step_index(t) -> int:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
        raise ValueError(f"a schedule is called with the 0-based step count, got {t!r}")
    return int(t)


class Schedule:
    """Base class: a callable t -> lr."""

    def __call__(self, t: int) -> float:
        return self.rate(_step_index(t))

    def rate(self, t: int) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    """lr at every step."""

    lr: float

    def __post_init__(self):
        object.__setattr__(self, "lr", _number("Constant", "lr", self.lr, minimum=0.0))

    def rate(self, t):
        return self.lr


@dataclass(frozen=True)
class StepDecay(Schedule):
    """lr * gamma ** (t // step_size), as torch's StepLR."""

    lr: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        object.__setattr__(self, "lr", _number("StepDecay", "lr", self.lr, minimum=0.0))
        object.__setattr__(self, "step_size", _count("StepDecay", "step_size", self.step_size))
        object.__setattr__(self, "gamma", _number("StepDecay", "gamma", self.gamma, minimum=0.0))

    def rate(self, t):
        return self.lr * self.gamma ** (t // self.step_size)


@dataclass(frozen=True)
class Exponential(Schedule):
    """lr * gamma ** t, as torch's ExponentialLR."""

    lr: float
    gamma: float

    def __post_init__(self):
        object.__setattr__(self, "lr", _number("Exponential", "lr", self.lr, minimum=0.0))
        object.__setattr__(self, "gamma", _number("Exponential", "gamma", self.gamma, minimum=0.0))

    def rate(self, t):
        return self.lr * self.gamma ** t


@dataclass(frozen=True)
class Cosine(Schedule):
    """eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2, as torch's CosineAnnealingLR
    (whose closed form keeps following the cosine past T_max)."""

    lr: float
    T_max: int
    eta_min: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "lr", _number("Cosine", "lr", self.lr, minimum=0.0))
        object.__setattr__(self, "T_max", _count("Cosine", "T_max", self.T_max))
        object.__setattr__(self, "eta_min", _number("Cosine", "eta_min", self.eta_min, minimum=0.0))

    def rate(self, t):
        return self.eta_min + (self.lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


@dataclass(frozen=True)
class LinearWarmup(Schedule):
    """A linear ramp from start_factor * after(0) up to after(0) over warmup_steps, then `after`
    restarted at 0: torch's SequentialLR([LinearLR(start_factor, 1, warmup_steps), after],
    milestones=[warmup_steps])."""

    after: Schedule
    warmup_steps: int
    start_factor: float = 1 / 3

    def __post_init__(self):
        if not callable(self.after):
            raise HyperparameterError("LinearWarmup", "after", "a schedule (a callable t -> lr)", self.after)
        object.__setattr__(self, "warmup_steps", _count("LinearWarmup", "warmup_steps", self.warmup_steps))
        object.__setattr__(self, "start_factor", _number("LinearWarmup", "start_factor", self.start_factor,
                                                         minimum=0.0, strict=True, maximum=1.0))

    def rate(self, t):
        if t >= self.warmup_steps:
            return self.after(t - self.warmup_steps)
        factor = self.start_factor + (1 - self.start_factor) * t / self.warmup_steps
        return self.after(0) * factor


SCHEDULES = {"constant": Constant, "step": StepDecay, "exponential": Exponential, "cosine": Cosine}

__all__ = ["Schedule", "Constant", "StepDecay", "Exponential", "Cosine", "LinearWarmup", "SCHEDULES"]
