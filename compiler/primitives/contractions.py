"""Contractions: ``einsum`` with an explicit spec (``"ij,jk->ik"``), rewritten before
scheduling as layout ops around ``bmm``, a batched matrix product (batch..., M, K) @
(batch..., K, N) that calls the GEMM routine. The cotangent of an einsum is an einsum."""
from __future__ import annotations

import numpy as np

from ..dtypes import promote
from ..errors import fail
from ..graph import Node
from . import define, layouts


def make_einsum(spec: str, *operands: Node) -> Node:
    op = f"einsum({spec!r})"
    if "->" not in spec:
        raise fail(op, "spec must be explicit, like 'ij,jk->ik'")
    lhs, out = spec.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise fail(op, f"{len(terms)} operand specs but {len(operands)} operands")
    sizes = {}
    for term, x in zip(terms, operands):
        if len(term) != x.ndim:
            raise fail(op, f"operand spec {term!r} has {len(term)} indices but the operand has shape {x.shape}")
        if len(set(term)) != len(term):
            raise fail(op, f"repeated index within operand spec {term!r} is not supported")
        for index, d in zip(term, x.shape):
            if sizes.setdefault(index, d) != d:
                raise fail(op, f"index {index!r} is {sizes[index]} in one operand and {d} in another; shapes "
                           + ", ".join(str(o.shape) for o in operands))
    if len(set(out)) != len(out) or any(i not in sizes for i in out):
        raise fail(op, f"bad output spec {out!r}")
    dtype = promote([x.dtype for x in operands])
    return Node("einsum", tuple(operands), (("spec", f"{','.join(terms)}->{out}"),),
                tuple(sizes[i] for i in out), dtype)


def make_bmm(a: Node, b: Node) -> Node:
    shape = a.shape[:-2] + (a.shape[-2], b.shape[-1])
    return Node("bmm", (a, b), (), shape, a.dtype)


def _evaluate_einsum(node, args, dims, values):
    return np.einsum(node.attr("spec"), *args, optimize=True).astype(node.dtype, copy=False)


def _evaluate_bmm(node, args, dims, values):
    return np.matmul(args[0], args[1]).astype(node.dtype, copy=False)


def _vjp_einsum(node, g):
    inputs, out = node.attr("spec").split("->")
    terms = inputs.split(",")
    result = []
    for k, (term, operand) in enumerate(zip(terms, node.args)):
        others = [(t, a) for j, (t, a) in enumerate(zip(terms, node.args)) if j != k]
        available = set(out).union(*[set(t) for t, _ in others])
        reachable = "".join(c for c in term if c in available)
        spec = ",".join([out] + [t for t, _ in others]) + "->" + reachable
        partial = make_einsum(spec, g, *[a for _, a in others])
        if reachable != term:
            partial = layouts.make_broadcast(layouts.make_reshape(partial, tuple(d if c in available else 1 for c, d in zip(term, operand.shape))),
                                     operand.shape)
        result.append(partial)
    return result


def _vjp_bmm(node, g):
    a, b = node.args
    swap = tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2)
    return [make_bmm(g, layouts.make_transpose(b, swap)), make_bmm(layouts.make_transpose(a, swap), g)]


define("einsum", "contract", make_einsum, _evaluate_einsum, _vjp_einsum, "einsum")
define("bmm", "contract", make_bmm, _evaluate_bmm, _vjp_bmm, "gemm")
