"""Dtypes of graph nodes and their promotion, as in NumPy 2.

Python numbers are weak: ``0.1 * x`` keeps a float32 ``x`` float32, an int
scalar never widens an integer tensor.
"""
from __future__ import annotations

import numpy as np

from .errors import fail

DTYPES = ("bool", "int32", "int64", "float32", "float64")
FLOAT_DTYPES = ("float32", "float64")


def canonical_dtype(dtype, op: str = "dtype") -> str:
    """The dtype's name ('float32', ...) or a GraphError naming the supported ones."""
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise fail(op, f"unsupported dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return name


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def promote(dtypes, weak=()) -> str:
    """Result dtype of an elementwise op over tensors of `dtypes` and Python scalars `weak`."""
    dtypes = list(dtypes)
    if not dtypes:
        return "float32"
    result = np.result_type(*[np.dtype(d) for d in dtypes]).name
    for value in weak:
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and not is_float(result):
            result = "float64"
    return result


def float_result(dtype: str) -> str:
    """Dtype of a transcendental function of `dtype` (integers go to float64, as in NumPy)."""
    return dtype if is_float(dtype) else "float64"
