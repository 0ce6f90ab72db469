"""The NumPy reference evaluator: the oracle for compiled code and a debugging aid.

``evaluate(nodes, values)`` computes every node in the dtype it declares, with
each primitive's own NumPy rule (``primitives``; map bodies are lambdified with
the stable implementations of ``scalar_functions``).
"""
from __future__ import annotations

import numpy as np

from runtime.executable import check_size_minimums

from .errors import GraphError
from .label_ranges import check_evaluated
from .primitives import lookup
from .primitives.random import renumbered_streams, with_default_random_inputs
from .shapes import symbolic_dims
from .size_requirements import size_checks
from .traversal import as_node_list, check_unique_names, topological_order


def evaluate(nodes, values: dict):
    """Values of `nodes` (one node -> ndarray, a list -> list) given Input/Param arrays by name.

    A graph is evaluated as a training step computes it: batch norm and dropout in training mode
    (``compiler.inference`` switches them), so Buffers read only in inference mode need no value."""
    from .passes.training_mode import training_mode
    single = not isinstance(nodes, (list, tuple))
    outputs = training_mode(as_node_list(nodes))
    results = evaluate_all(outputs, values)
    arrays = [np.asarray(results[n]) for n in outputs]  # a full reduction gives a NumPy scalar
    return arrays[0] if single else arrays


def evaluate_all(outputs, values: dict) -> dict:
    """node -> ndarray for every node the outputs depend on.

    Random nodes draw with their streams numbered in graph order, as a compiled program of the
    same outputs does; ``rng_seed`` and ``rng_counter`` default to a fresh function's first call
    (seed 0, counter 1)."""
    renumbered = renumbered_streams(outputs)
    if renumbered:
        results = evaluate_all([renumbered[n] for n in outputs], values)
        return {node: results[new] for node, new in renumbered.items()}
    order = topological_order(outputs)
    values = with_default_random_inputs(order, values)
    check_unique_names([n for n in order if n.op in ("input", "param")])
    dims = bind_dims(order, values)
    check_size_minimums(size_checks(outputs), dims)  # as a compiled program checks them (batch_norm)
    results = {}
    with np.errstate(all="ignore"):
        for node in order:
            check_evaluated(node, results)
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


def _evaluate_node(node, args, values, dims):
    return lookup(node.op).evaluate(node, args, dims, values)
