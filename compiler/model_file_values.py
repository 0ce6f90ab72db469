"""What a model file's values may be: the predicates its readers pass to ``Table.take`` and the words
that describe them in errors. One place, so every layer type accepts and describes a size alike."""
from __future__ import annotations

import numbers

from .nn.activations import ACTIVATIONS

SIZE = "a positive integer or an array of 2 positive integers"
PADDING = "a non-negative integer or an array of 2"


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_natural(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_positive(value) -> bool:
    return is_number(value) and value > 0


def is_probability(value) -> bool:
    """A dropout rate: 1 would drop everything."""
    return is_number(value) and 0 <= value < 1


def is_flag(value) -> bool:
    return isinstance(value, bool)


def is_size(value) -> bool:
    """A positive integer or an array of two (a kernel size, stride or dilation per spatial axis)."""
    return is_count(value) or (isinstance(value, list) and len(value) == 2 and all(is_count(v) for v in value))


def is_padding(value) -> bool:
    return is_natural(value) or (isinstance(value, list) and len(value) == 2 and all(is_natural(v) for v in value))


def as_size(value):
    """An array read from TOML as the tuple the nn layers take."""
    return tuple(value) if isinstance(value, list) else value


def read_activation(entry):
    """A layer entry's activation function name (a model_file.Table's key), None for "linear" (the default)."""
    name = entry.choice("activation", tuple(ACTIVATIONS), default="linear")
    return None if name == "linear" else name
