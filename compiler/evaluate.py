"""The NumPy reference evaluator: the oracle for compiled code and a debugging aid.

``evaluate(nodes, values)`` computes every node in the dtype it declares. Map
bodies are turned into NumPy functions with ``sympy.lambdify`` (cached per
body), using the stable implementations of ``scalar_functions``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy

from runtime.dimensions import concrete

from .errors import GraphError
from .graph import pad_value, scalar_symbol, slice_steps
from .scalar_functions import NUMPY_IMPLEMENTATIONS
from .shapes import symbolic_dims
from .traversal import as_node_list, check_unique_names, topological_order


def evaluate(nodes, values: dict):
    """Values of `nodes` (one node -> ndarray, a list -> list) given Input/Param arrays by name."""
    single = not isinstance(nodes, (list, tuple))
    outputs = as_node_list(nodes)
    results = evaluate_all(outputs, values)
    arrays = [np.asarray(results[n]) for n in outputs]  # a full reduction gives a NumPy scalar
    return arrays[0] if single else arrays


def evaluate_all(outputs, values: dict) -> dict:
    """node -> ndarray for every node the outputs depend on."""
    order = topological_order(outputs)
    check_unique_names([n for n in order if n.op in ("input", "param")])
    dims = bind_dims(order, values)
    results = {}
    with np.errstate(all="ignore"):
        for node in order:
            results[node] = _evaluate_node(node, [results[a] for a in node.args], values, dims)
    return results


def bind_dims(order, values) -> dict:
    """Symbolic dimension -> size, read from the given arrays; checks every shape."""
    dims = {}
    for node in order:
        if node.op not in ("input", "param"):
            continue
        if node.name not in values:
            raise GraphError(f"evaluate: no value for {node.op} {node.name!r} {node.shape} {node.dtype}")
        array = np.asarray(values[node.name])
        if array.ndim != node.ndim:
            raise GraphError(f"evaluate: {node.name!r} expects shape {node.shape}, got {array.shape}")
        for expected, actual in zip(node.shape, array.shape):
            if isinstance(expected, str):
                if dims.setdefault(expected, actual) != actual:
                    raise GraphError(f"evaluate: dimension {expected!r} is {dims[expected]} elsewhere but {actual} "
                                     f"in {node.name!r} {array.shape}")
            elif expected != actual:
                raise GraphError(f"evaluate: {node.name!r} expects shape {node.shape}, got {array.shape}")
    for node in order:  # a gradient may have symbolic dims but not the Input that carries them
        for name in symbolic_dims(node.shape) + ([node.name] if node.op == "dim" else []):
            if name not in dims:
                size = values.get(name)
                if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
                    raise GraphError(f"evaluate: no Input of this graph has the dimension {name!r} ({node.op} "
                                     f"{node.shape}); give its size as values[{name!r}] or evaluate with a node "
                                     f"that reads such an Input")
                dims[name] = int(size)
    return dims


def concrete_shape(shape, dims) -> tuple:
    return concrete(shape, dims)


@lru_cache(maxsize=4096)
def numpy_function(body: sympy.Expr, nargs: int):
    """A NumPy function of nargs arrays computing the scalar body elementwise."""
    symbols = [scalar_symbol(i) for i in range(nargs)]
    return sympy.lambdify(symbols, body, modules=[NUMPY_IMPLEMENTATIONS, "numpy"])


def _evaluate_node(node, args, values, dims):
    op, dtype = node.op, node.dtype
    if op in ("input", "param"):
        return np.asarray(values[node.name]).astype(dtype, copy=False)
    if op == "const":
        return node.attr("value").array
    if op == "dim":
        return np.asarray(dims[node.name], dtype=dtype)
    shape = concrete_shape(node.shape, dims)
    if op == "map":
        compute_dtype = np.result_type(*args) if args else dtype
        args = [a.astype(compute_dtype, copy=False) for a in args]
        result = np.asarray(numpy_function(node.attr("body"), len(args))(*args))
        return np.broadcast_to(result, shape).astype(dtype)
    if op == "sum":
        return np.sum(args[0], axis=node.attr("axes"), dtype=dtype)
    if op == "max":
        x = args[0]
        if x.size == 0:
            return np.full(shape, -np.inf, dtype)
        return np.max(x, axis=node.attr("axes")).astype(dtype, copy=False)
    if op == "einsum":
        return np.einsum(node.attr("spec"), *args, optimize=True).astype(dtype, copy=False)
    if op == "bmm":
        return np.matmul(args[0], args[1]).astype(dtype, copy=False)
    if op == "reshape":
        return args[0].reshape(shape)
    if op == "transpose":
        return np.transpose(args[0], node.attr("perm"))
    if op == "broadcast":
        return np.broadcast_to(args[0], shape)
    if op == "slice":
        stops = concrete_shape(node.attr("stops"), dims)
        return args[0][tuple(slice(a, None if b < 0 else b, k)
                             for a, b, k in zip(node.attr("starts"), stops, slice_steps(node)))]
    if op == "pad":
        return np.pad(args[0], list(zip(node.attr("low"), node.attr("high"))), constant_values=pad_value(node))
    if op == "concat":
        return np.concatenate(args, axis=node.attr("axis"))
    if op == "stop_gradient":
        return args[0]
    raise GraphError(f"evaluate: unknown op {op!r}")
