"""What every optimizer is: the state it keeps per parameter and one symbolic update rule.

An optimizer never touches arrays. ``update`` takes graph nodes (the parameter,
its gradient, its state, the step count and the learning rate) and returns
nodes for their new values, so the update compiles into the same program as
forward and backward. Hyperparameters are constants baked into that program;
the learning rate and the 1-based step count are runtime scalars, so a
schedule changes the rate without recompiling and one program serves every
step (first-step behaviour is a ``where(step == 1, ...)``).

Scalar coefficients (bias corrections, decayed rates) are computed in the
dtype of ``step`` and ``lr`` (float64 in ``update_graph``) and cast to the
parameter's dtype where they meet tensors, as PyTorch computes them in Python
floats before scaling float32 tensors.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

from ..graph import Node
from .clipping import clip_by_global_norm


class StateSpec(NamedTuple):
    """One optimizer state buffer of a parameter, filled with init_value before the first step."""

    name: str
    shape: tuple
    dtype: str
    init_value: float


class HyperparameterError(ValueError):
    """A hyperparameter out of its domain; names its owner (optimizer or schedule), the argument,
    what was expected and what was found."""

    def __init__(self, owner: str, argument: str, expected: str, found):
        self.owner, self.argument, self.expected, self.found = owner, argument, expected, found
        super().__init__(f"{owner}: {argument} must be {expected}, got {found!r}")


def as_dtype(node: Node, dtype: str) -> Node:
    """`node` in `dtype` (a cast only when it differs)."""
    return node if node.dtype == dtype else node.astype(dtype)


class Optimizer:
    """Base class. Subclasses define ``STATE`` (state names and init values) and ``rule``."""

    def __init__(self, lr, weight_decay=0.0, clip_grad_norm=None):
        self.lr = self._number("lr", lr, minimum=0.0)
        self.weight_decay = self._number("weight_decay", weight_decay, minimum=0.0)
        if clip_grad_norm is not None:
            clip_grad_norm = self._number("clip_grad_norm", clip_grad_norm, minimum=0.0, strict=True)
        self.clip_grad_norm = clip_grad_norm

    # ---- what subclasses provide ------------------------------------------------------

    def state_init(self) -> dict:
        """state name -> initial value, for the state this configuration keeps."""
        return {}

    def rule(self, param: Node, grad: Node, state: dict, step: Node, lr: Node) -> tuple[Node, dict]:
        raise NotImplementedError

    # ---- the interface the step builder uses --------------------------------------------

    def state_specs(self, param: Node) -> list[StateSpec]:
        """The state buffers `param` needs: same shape and dtype as the parameter."""
        return [StateSpec(name, param.shape, param.dtype, float(value)) for name, value in self.state_init().items()]

    def update(self, param: Node, grad: Node, state: dict, step: Node, lr: Node) -> tuple[Node, dict]:
        """(new parameter, {state name: new state}) after one step; `step` and `lr` are scalar nodes."""
        where = f"{type(self).__name__}.update"
        expected = set(self.state_init())
        if set(state) != expected:
            raise ValueError(f"{where}: state must hold {sorted(expected)}, got {sorted(state)}")
        if grad.shape != param.shape:
            raise ValueError(f"{where}: gradient shape {grad.shape} != parameter shape {param.shape}")
        for name, node in (("step", step), ("lr", lr)):
            if node.shape != ():
                raise ValueError(f"{where}: {name} must be a scalar node, got shape {node.shape}")
        new_param, new_state = self.rule(param, as_dtype(grad, param.dtype), dict(state), step, lr)
        return as_dtype(new_param, param.dtype), {k: as_dtype(v, param.dtype) for k, v in new_state.items()}

    def update_all(self, params, grads, states, step: Node, lr: Node) -> tuple[list, list]:
        """Update every parameter: clip the gradients together (when clip_grad_norm is set), then `update` each."""
        grads = list(grads)
        if self.clip_grad_norm is not None:
            grads = clip_by_global_norm(grads, self.clip_grad_norm)
        new_params, new_states = [], []
        for param, grad, state in zip(params, grads, states, strict=True):
            new_param, new_state = self.update(param, grad, state, step, lr)
            new_params.append(new_param)
            new_states.append(new_state)
        return new_params, new_states

    def hyperparameters(self) -> dict:
        """The constructor arguments, by name (what a model file may set)."""
        return {name: getattr(self, name) for name in self.ARGUMENTS}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    # ---- argument checks, shared by the subclasses ----------------------------------------

    def _number(self, argument, value, minimum=None, below=None, strict=False) -> float:
        """`value` as a float, checked against [minimum, below) (or (minimum, below) when strict)."""
        bounds = [f"{'>' if strict else '>='} {minimum:g}" if minimum is not None else None,
                  f"< {below:g}" if below is not None else None]
        expected = "a number " + " and ".join(b for b in bounds if b) if any(bounds) else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
            raise HyperparameterError(type(self).__name__, argument, expected, value)
        too_low = minimum is not None and (value < minimum or (strict and value == minimum))
        if too_low or (below is not None and not value < below):
            raise HyperparameterError(type(self).__name__, argument, expected, value)
        return float(value)

    def _flag(self, argument, value) -> bool:
        if not isinstance(value, bool):
            raise HyperparameterError(type(self).__name__, argument, "True or False", value)
        return value

    def _betas(self, value) -> tuple[float, float]:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise HyperparameterError(type(self).__name__, "betas", "a pair of numbers in [0, 1)", value)
        return (self._number("betas[0]", value[0], minimum=0.0, below=1.0),
                self._number("betas[1]", value[1], minimum=0.0, below=1.0))
