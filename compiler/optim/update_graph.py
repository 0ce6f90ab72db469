"""The symbolic training step: loss, gradients and the new values of parameters and state.

``update_graph(loss, optimizer)`` is everything a training step computes, as
graph nodes over named leaves: the model's Inputs and Params, one Input per
optimizer state buffer (named ``<param>__<state>``), and two float64 scalar
Inputs, the 1-based step count and the learning rate. Evaluating
``graph.outputs`` -- in the reference evaluator or in compiled code -- is one
step; writing ``new_params`` / ``new_state`` / ``new_buffers`` back over their
leaves is the update. Buffers (batch norm's running statistics) are never
trained: their new values come from the layers that own them
(``compiler.modes.buffer_updates``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..autodiff import grad as gradient
from ..evaluate import evaluate
from ..graph import Input, Node, is_buffer
from ..modes import buffer_updates
from ..traversal import leaves
from runtime.random_inputs import COUNTER_INPUT as RANDOM_COUNTER, NAMES as RANDOM_INPUTS
from .base import Optimizer

STEP_INPUT = "optimizer_step"
LR_INPUT = "optimizer_lr"
SCALAR_DTYPE = "float64"


def state_input_name(param_name: str, state_name: str) -> str:
    return f"{param_name}__{state_name}"


@dataclass(frozen=True)
class UpdateGraph:
    """One training step as a graph. Dicts are keyed by leaf name, in parameter order."""

    loss: Node
    optimizer: Optimizer
    params: tuple                   # the trained Params
    grads: tuple                    # d loss / d param, before clipping
    step: Input                     # scalar float64, 1 on the first step
    lr: Input                       # scalar float64, the current learning rate
    state: dict = field(default_factory=dict)        # state input name -> Input
    state_specs: dict = field(default_factory=dict)  # state input name -> StateSpec
    new_params: dict = field(default_factory=dict)   # param name -> Node
    new_state: dict = field(default_factory=dict)    # state input name -> Node
    buffers: tuple = ()                              # the Buffers the step updates in place
    new_buffers: dict = field(default_factory=dict)  # buffer name -> Node (its training-mode update)

    @property
    def outputs(self) -> list:
        """[loss, *new params, *new state, *new buffers]: every value a step produces."""
        return [self.loss, *self.new_params.values(), *self.new_state.values(), *self.new_buffers.values()]

    @property
    def data_inputs(self) -> list:
        """The Inputs fed per step (the model's, not the optimizer's)."""
        own = {self.step, self.lr, *self.state.values()}
        return [leaf for leaf in leaves(self.outputs)
                if leaf.op == "input" and leaf not in own and leaf.name not in RANDOM_INPUTS]  # the step's seed, counter

    def initial_state(self) -> dict:
        """state input name -> a fresh array filled with the state's initial value."""
        return {name: np.full(spec.shape, spec.init_value, dtype=spec.dtype) for name, spec in self.state_specs.items()}

    def evaluate(self, params: dict, state: dict, step: int, lr: float, inputs: dict,
                 buffers: dict | None = None) -> "StepValues":
        """One step in the NumPy reference evaluator: (loss, new params, new state, new buffers) as
        arrays; `buffers`: the value of each Buffer the graph reads, by name. Random nodes draw
        with the step number as their counter, as a compiled step does (give the step's seed
        as inputs["rng_seed"]; default 0)."""
        values = {RANDOM_COUNTER: np.int64(step), **params, **(buffers or {}), **state, **inputs,
                  STEP_INPUT: np.float64(step), LR_INPUT: np.float64(lr)}
        results = evaluate(self.outputs, values)
        n, m = len(self.new_params), len(self.new_state)
        return StepValues(float(results[0]), dict(zip(self.new_params, results[1:1 + n])),
                          dict(zip(self.new_state, results[1 + n:1 + n + m])),
                          dict(zip(self.new_buffers, results[1 + n + m:])))


class StepValues(NamedTuple):
    """What one step computes: the loss before the update and the new values, by name."""

    loss: float
    params: dict
    state: dict
    buffers: dict


def update_graph(loss: Node, optimizer: Optimizer, params=None, grads=None) -> UpdateGraph:
    """The step graph of `optimizer` minimising the scalar `loss` over `params`
    (default: every Param the loss depends on, in order of first use; never a Buffer).
    A listed Param the loss does not depend on is skipped, as torch.optim skips a parameter
    whose gradient is None: no update (no weight decay either) and no optimizer state.
    grads: the gradients to apply, one node per param (default: d loss / d param; a
    data-parallel step passes its ranks' mean gradients)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"update_graph: expected an optimizer from compiler.optim, got {optimizer!r}")
    if params is None:
        params = [leaf for leaf in leaves(loss) if leaf.op == "param" and not is_buffer(leaf)]
    params = list(params)
    for p in params:
        if not isinstance(p, Node) or p.op != "param":
            raise TypeError(f"update_graph: params must be Param nodes, got {p!r}")
        if is_buffer(p):
            raise TypeError(f"update_graph: {p.name!r} is a Buffer, updated in place by its layer (batch norm's "
                            f"running statistics), never trained; remove it from params")
    if len({p.name for p in params}) != len(params):
        raise ValueError(f"update_graph: a parameter is listed twice in {[p.name for p in params]}")
    if grads is None:
        used = set(leaves(loss))
        params = [p for p in params if p in used]
        grads = gradient(loss, params) if params else []
    grads = list(grads)
    if len(grads) != len(params) or any(g.shape != p.shape for g, p in zip(grads, params)):
        raise ValueError(f"update_graph: expected one gradient of each parameter's shape, got "
                         f"{[g.shape for g in grads]} for {[p.shape for p in params]}")
    step = Input(STEP_INPUT, (), SCALAR_DTYPE)
    lr = Input(LR_INPUT, (), SCALAR_DTYPE)
    state_inputs, specs, per_param = {}, {}, []
    for p in params:
        own = {}
        for spec in optimizer.state_specs(p):
            name = state_input_name(p.name, spec.name)
            own[spec.name] = state_inputs[name] = Input(name, spec.shape, spec.dtype)
            specs[name] = spec
        per_param.append(own)
    new_params, new_states = optimizer.update_all(params, grads, per_param, step, lr)
    new_state = {state_input_name(p.name, k): v for p, s in zip(params, new_states) for k, v in s.items()}
    updates = buffer_updates(loss)
    return UpdateGraph(loss=loss, optimizer=optimizer, params=tuple(params), grads=tuple(grads), step=step, lr=lr,
                       state=state_inputs, state_specs=specs,
                       new_params={p.name: v for p, v in zip(params, new_params)}, new_state=new_state,
                       buffers=tuple(b for b, _ in updates), new_buffers={b.name: v for b, v in updates})
