"""Initial values of layer Params: PyTorch's defaults unless ``init=`` names another scheme.

A layer knows its fan-in and fan-out (a convolution's include the kernel size),
so it resolves ``init`` here into a value-comparable initializer: equal layers
built twice get equal Params (one hash-consed node) and the compile cache
sees the same program.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import fail


@dataclass(frozen=True)
class Uniform:
    """uniform(-bound, bound)."""

    bound: float

    def __call__(self, shape, rng):
        return rng.uniform(-self.bound, self.bound, shape)


@dataclass(frozen=True)
class Normal:
    """normal(0, std)."""

    std: float

    def __call__(self, shape, rng):
        return rng.standard_normal(shape) * self.std


WEIGHT_INITS = {
    # torch.nn's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)), i.e. uniform(+-1/sqrt(fan_in))
    "default": lambda fan_in, fan_out: Uniform(1 / math.sqrt(fan_in)),
    "he_uniform": lambda fan_in, fan_out: Uniform(math.sqrt(6 / fan_in)),
    "he_normal": lambda fan_in, fan_out: Normal(math.sqrt(2 / fan_in)),
    "glorot_uniform": lambda fan_in, fan_out: Uniform(math.sqrt(6 / (fan_in + fan_out))),
    "glorot_normal": lambda fan_in, fan_out: Normal(math.sqrt(2 / (fan_in + fan_out))),
    "normal": lambda fan_in, fan_out: "normal",
    "zeros": lambda fan_in, fan_out: "zeros",
    "ones": lambda fan_in, fan_out: "ones",
}


def weight_init(init, fan_in: int, fan_out: int, layer: str):
    """The Param init for a weight: None is PyTorch's default; a name in WEIGHT_INITS; or a callable
    (shape, rng) -> ndarray used as given."""
    if init is None:
        init = "default"
    if callable(init):
        return init
    if init not in WEIGHT_INITS:
        raise fail(layer, f"init: expected None, a callable (shape, rng) -> ndarray or one of "
                          f"{', '.join(WEIGHT_INITS)}, got {init!r}")
    return WEIGHT_INITS[init](max(fan_in, 1), max(fan_out, 1))


def bias_init(fan_in: int):
    """PyTorch's default bias: uniform(+-1/sqrt(fan_in))."""
    return Uniform(1 / math.sqrt(max(fan_in, 1)))
