"""Random numbers drawn inside the compiled loops: the ``random`` primitive.

A random node is a tensor of uniform (in [0, 1)) or normal numbers whose
element i is a pure function of (seed, counter, stream, i), by Philox-4x32-10
(``runtime/philox.py``). Its arguments are the two int64 scalar Inputs
``rng_seed`` and ``rng_counter`` (``runtime/random_inputs.py``), so no random
array is passed in: every kernel that reads the node draws the elements it
reads, and a forward and a backward kernel reading one node draw the same
bits. The node carries its distribution and a stream number, so two random
nodes of one program draw independent numbers.

Stream numbers are handed out when nodes are built, then renumbered 0, 1, ...
in graph order (``canonical_streams``) by the evaluator, the simplifier and the
compile cache's key: the same model built twice compiles to the same program,
and ``compiler.evaluate`` of the outputs a program computes draws its numbers.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import sympy

from runtime import philox
from runtime.dimensions import concrete
from runtime.random_inputs import COUNTER_INPUT, DTYPE, FIRST_COUNTER, NAMES, SEED_INPUT

from ..dtypes import FLOAT_DTYPES, canonical_dtype
from ..errors import fail
from ..graph import Input, Node
from ..shapes import canonical_shape
from ..traversal import as_node_list, topological_order
from . import define

DISTRIBUTIONS = ("uniform", "normal")
LANES = {"uniform": (0,), "normal": (0, 1)}  # which uniforms of a Philox block a distribution uses

_streams = itertools.count()  # a fresh stream per node built; canonical_streams renumbers them


def random_inputs() -> tuple:
    """The (seed, counter) Inputs every random node reads."""
    return Input(SEED_INPUT, (), DTYPE), Input(COUNTER_INPUT, (), DTYPE)


def make_random(distribution: str, shape, dtype="float32", stream: int | None = None) -> Node:
    """A tensor of `shape` drawn from `distribution` ("uniform" in [0, 1) or standard "normal")."""
    op = f"random_{distribution}" if distribution in DISTRIBUTIONS else "random"
    if distribution not in DISTRIBUTIONS:
        raise fail(op, f"distribution must be one of {', '.join(map(repr, DISTRIBUTIONS))}, got {distribution!r}")
    shape = canonical_shape(shape, op)
    dtype = canonical_dtype(dtype, op)
    if dtype not in FLOAT_DTYPES:
        raise fail(op, f"dtype must be float32 or float64, got {dtype!r}")
    stream = next(_streams) if stream is None else stream
    if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
        raise fail(op, f"stream must be an int >= 0, got {stream!r}")
    return Node("random", random_inputs(), (("distribution", distribution), ("stream", stream)), shape, dtype)


def _evaluate_random(node, args, dims, values):
    seed, counter = (int(np.asarray(a)) for a in args)
    return philox.random_values(node.attr("distribution"), concrete(node.shape, dims), node.dtype,
                                node.attr("stream"), seed, counter)


def _vjp_random(node, g):
    return [None, None]  # the numbers do not depend on anything differentiable


define("random", "random", make_random, _evaluate_random, _vjp_random, "random")


def value_of_uniforms(distribution: str, uniforms) -> sympy.Expr:
    """The scalar a kernel computes from the block's uniforms (sympy symbols, one per lane in LANES):
    the uniform itself, or Box-Muller's normal (as ``philox.normal_from_uniforms``)."""
    if distribution == "uniform":
        return uniforms[0]
    u0, u1 = uniforms
    return sympy.sqrt(-2 * sympy.log(1 - u0)) * sympy.cos(sympy.Float(2 * math.pi, 17) * u1)


# ---- stream numbers -----------------------------------------------------------------------------------


def renumbered_streams(outputs) -> dict:
    """node -> node for every node `outputs` depend on, with the random nodes' streams renumbered
    0, 1, ... in graph order; {} when they already are (or there are none)."""
    order = topological_order(outputs)
    randoms = [node for node in order if node.op == "random"]
    if all(node.attr("stream") == k for k, node in enumerate(randoms)):
        return {}
    if len(randoms) > philox.STREAMS:
        raise ValueError(f"a program draws from at most {philox.STREAMS} random nodes, this one has {len(randoms)}")
    from ..passes.rewrite import rebuild
    rank = {node: k for k, node in enumerate(randoms)}
    replaced = {}
    for node in order:
        if node.op == "random":
            attrs = tuple((k, rank[node] if k == "stream" else v) for k, v in node.attrs)
            replaced[node] = Node("random", node.args, attrs, node.shape, node.dtype, node.location)
        else:
            replaced[node] = rebuild(node, [replaced[a] for a in node.args])
    return replaced


def canonical_streams(outputs) -> list:
    """`outputs` (a list) with the streams of their random nodes numbered 0, 1, ... in graph order."""
    outputs = as_node_list(outputs)
    replaced = renumbered_streams(outputs)
    return [replaced[n] for n in outputs] if replaced else outputs


def with_default_random_inputs(order, values: dict) -> dict:
    """`values` with the seed 0 and the counter of a fresh function's first call, where a graph
    reading them (its nodes: `order`) is given neither."""
    missing = [node.name for node in order if node.op == "input" and node.name in NAMES and node.name not in values]
    if not missing:
        return values
    defaults = {SEED_INPUT: np.int64(0), COUNTER_INPUT: np.int64(FIRST_COUNTER)}
    return {**values, **{name: defaults[name] for name in missing}}
