"""One definition per primitive: everything the compiler knows about an op, in one place.

A graph is built from a closed set of primitive ops. Each is one ``Primitive``,
defined in the module of its family next to its constructor:

- ``build``: the constructor, which holds the shape and dtype rule;
- ``evaluate(node, args, dims, values)``: the NumPy reference (``compiler.evaluate``);
- ``vjp(node, g)``: the cotangent of each argument, written with primitives
  (None for an argument no gradient reaches), so gradients are graphs again;
- ``lowering``: how the code generator computes it (one of ``LOWERINGS``), and for
  a layout op ``index(node, Index)``: the index of its argument, validity included.

The families: ``leaves`` (input, param, const, dim), ``maps`` (map), ``reductions``
(sum, max), ``contractions`` (einsum, bmm) and ``layouts`` (reshape, transpose,
broadcast, slice, pad, concat, stop_gradient), ``modes`` (training: a value that
differs between training and inference) and ``random`` (random: uniform or normal
numbers drawn inside the loops), ``scan`` (a loop over time whose body is a graph) and
``attention`` (softmax(q k^T) v with an online softmax: no T x T matrix in the forward pass). Adding a primitive is one
``define`` in one of these modules (``docs/adding_an_op.md``); ``autodiff``,
``evaluate`` and the scheduler look every op up in ``PRIMITIVES``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

LOWERINGS = {
    "leaf": "a buffer the caller passes, or a number or size written into the reading loop",
    "inline": "computed inside the loop of each kernel that reads it (scalar code from the sympy body)",
    "reduction": "a loop that accumulates into its output (joins the loop producing its input)",
    "einsum": "rewritten as layout ops around one bmm before scheduling (codegen/contraction.py)",
    "gemm": "a call of the register-tiled matrix product (codegen/gemm.py)",
    "index": "index arithmetic with validity bounds in the reading kernel (its `index` rule)",
    "pieces": "each piece read under the bound of its range, 0 elsewhere, summed",
    "random": "drawn in each reading loop by Philox-4x32-10 from the seed, the counter, the stream and the "
              "element's index (codegen/random_bits.py)",
    "gather": "read in the reading kernel at an index loaded from the ids, in range or 0 (codegen/gather_kernels.py)",
    "scatter": "a kernel that copies its tensor, then adds each source element at its id in a fixed order "
               "(codegen/gather_kernels.py)",
    "scan": "one native loop over the steps calling the body's kernels, compiled once (codegen/scan_lowering.py)",
    "attention": "a kernel over blocks of queries and keys with an online softmax, storing no Tq x Tk matrix "
                 "(codegen/attention_kernel.py)",
}


@dataclass(frozen=True)
class Primitive:
    op: str
    family: str
    build: Callable
    evaluate: Callable
    vjp: Callable | None  # None: a leaf, nothing to propagate to
    lowering: str
    index: Callable | None = None  # lowering "index": (node, Index) -> Index of node.args[0], or None (store it)


PRIMITIVES: dict = {}


def define(op: str, family: str, build, evaluate, vjp, lowering: str, index=None) -> Primitive:
    if op in PRIMITIVES:
        raise ValueError(f"primitive {op!r} is defined twice")
    if lowering not in LOWERINGS:
        raise ValueError(f"primitive {op!r}: unknown lowering {lowering!r}; expected one of {', '.join(LOWERINGS)}")
    primitive = Primitive(op, family, build, evaluate, vjp, lowering, index)
    PRIMITIVES[op] = primitive
    return primitive


def lookup(op: str) -> Primitive:
    try:
        return PRIMITIVES[op]
    except KeyError:
        raise KeyError(f"{op!r} is not a primitive; defined: {', '.join(sorted(PRIMITIVES))}") from None


def ops_lowered_as(lowering: str) -> tuple:
    return tuple(op for op, p in PRIMITIVES.items() if p.lowering == lowering)


from . import leaves, maps, reductions, contractions, layouts, modes, random, scan  # noqa: E402,F401  (each defines its primitives)
from . import gathers  # noqa: E402,F401  (gather, scatter_add: read or add at positions an integer tensor holds)
from . import attention  # noqa: E402,F401  (attention: softmax(q k^T) v and its log-sum-exp, fused)
from .maps import canonical_args, make_map, rename_symbols, size_of  # noqa: E402
from .reductions import make_reduce  # noqa: E402
from .contractions import make_bmm, make_einsum  # noqa: E402
from .layouts import (make_broadcast, make_concat, make_pad, make_reshape, make_slice,  # noqa: E402
                      make_stop_gradient, make_transpose, pad_value, slice_steps)
from .cotangents import unbroadcast, zeros_like  # noqa: E402
