"""Optimizers as symbolic update rules, compiled into the training step.

Each optimizer follows the update rule torch.optim documents for the same
arguments; ``update_graph`` assembles loss, gradients and updates into one
step graph.
"""
from .adagrad import AdaGrad
from .adam import Adam, AdamW
from .base import HyperparameterError, Optimizer, StateSpec
from .clipping import clip_by_global_norm, global_norm
from .rmsprop import RMSProp
from .sgd import SGD
from .update_graph import LR_INPUT, STEP_INPUT, UpdateGraph, state_input_name, update_graph

OPTIMIZERS = {"sgd": SGD, "adagrad": AdaGrad, "rmsprop": RMSProp, "adam": Adam, "adamw": AdamW}

__all__ = ["SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "Optimizer", "StateSpec", "HyperparameterError",
           "clip_by_global_norm", "global_norm", "update_graph", "UpdateGraph", "state_input_name",
           "STEP_INPUT", "LR_INPUT", "OPTIMIZERS"]
