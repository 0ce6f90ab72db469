"""Reductions: ``sum`` and ``max`` over ``axes`` (the axes disappear). Lowered as a loop that
accumulates into its output; the gradient of a max is split evenly among tied maxima."""
from __future__ import annotations

import numpy as np

from runtime.dimensions import concrete

from .. import scalar_functions as sf
from ..graph import Node, scalar_symbol
from . import cotangents, define, maps



def make_reduce(kind: str, x: Node, axes: tuple) -> Node:
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    dtype = x.dtype
    if kind == "sum" and dtype in ("bool", "int32"):
        dtype = "int64"
    return Node(kind, (x,), (("axes", tuple(axes)),), shape, dtype)


def _evaluate_sum(node, args, dims, values):
    return np.sum(args[0], axis=node.attr("axes"), dtype=node.dtype)


def _evaluate_max(node, args, dims, values):
    x = args[0]
    if x.size == 0:
        return np.full(concrete(node.shape, dims), -np.inf, node.dtype)
    return np.max(x, axis=node.attr("axes")).astype(node.dtype, copy=False)


def _vjp_sum(node, g):
    return [cotangents.expand_reduced(g, node.args[0], node.attr("axes"))]


def _vjp_max(node, g):
    x, axes = node.args[0], node.attr("axes")
    m = cotangents.expand_reduced(node, x, axes)
    is_max = maps.make_map(sf.Equal(scalar_symbol(0), scalar_symbol(1)), [x, m], x.dtype)
    count = cotangents.expand_reduced(make_reduce("sum", is_max, axes), x, axes)
    share = maps.make_map(sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), scalar_symbol(2) / scalar_symbol(3), 0),
                     [x, m, cotangents.expand_reduced(g, x, axes), count], x.dtype)
    return [share]


define("sum", "reduce", lambda x, axes: make_reduce("sum", x, axes), _evaluate_sum, _vjp_sum, "reduction")
define("max", "reduce", lambda x, axes: make_reduce("max", x, axes), _evaluate_max, _vjp_max, "reduction")
