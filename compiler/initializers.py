"""Initial values of Params, from their ``init`` and a seeded generator.

Weights are laid out (fan_in, fan_out) as in ``x @ W``; for higher ranks the
last axis is fan_out and the product of the others fan_in.
"""
from __future__ import annotations

import math

import numpy as np

from .graph import Node


def fans(shape) -> tuple:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    fan_out = shape[-1]
    return math.prod(shape[:-1]), fan_out


def initial_value(param: Node, rng: np.random.Generator) -> np.ndarray:
    """A fresh array for `param`: glorot_uniform, zeros, ones, normal (N(0, 1)), he_normal, or the callable."""
    init, shape, dtype = param.attr("init"), param.shape, param.dtype
    fan_in, fan_out = fans(shape)
    if callable(init):
        value = np.asarray(init(shape, rng))
        if value.shape != tuple(shape):
            raise ValueError(f"init of Param {param.name!r} returned shape {value.shape}, expected {shape}")
    elif init == "zeros":
        return np.zeros(shape, dtype=dtype)
    elif init == "ones":
        return np.ones(shape, dtype=dtype)
    elif init == "normal":
        value = rng.standard_normal(shape)
    elif init == "he_normal":
        value = rng.standard_normal(shape)
        value *= math.sqrt(2.0 / max(fan_in, 1))
    elif init == "glorot_uniform":
        limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        value = rng.uniform(-limit, limit, shape)
    else:
        raise ValueError(f"unknown init {init!r} of Param {param.name!r}")
    return np.array(value, dtype=dtype, order="C")  # a fresh array (0-d stays 0-d)


def initial_values(params, seed: int = 0) -> dict:
    """name -> array for every Param, drawn in order from one generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    return {p.name: initial_value(p, rng) for p in params}
