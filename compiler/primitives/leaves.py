"""Leaves: data passed at each call (input), trainable tensors (param), constants and the
runtime value of a symbolic dimension (dim). Their constructors live with the node type in
``graph``; nothing flows back from them."""
from __future__ import annotations

import numpy as np

from ..graph import Input, Param, const, dim_size
from . import define


def _evaluate_argument(node, args, dims, values):
    return np.asarray(values[node.name]).astype(node.dtype, copy=False)


define("input", "leaf", Input, _evaluate_argument, None, "leaf")
define("param", "leaf", Param, _evaluate_argument, None, "leaf")
define("const", "leaf", const, lambda node, args, dims, values: node.attr("value").array, None, "leaf")
define("dim", "leaf", dim_size, lambda node, args, dims, values: np.asarray(dims[node.name], dtype=node.dtype),
       None, "leaf")
