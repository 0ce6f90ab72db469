"""The ``scan`` primitive: a loop over time whose body is a graph traced once.

A scan has one body (``ScanBody``): placeholders for the carries, for one slice
of each sequence (``xs`` along axis 0) and for the values the body captured
from outside, and the body's outputs (new carries, per-step outputs). Its
arguments are the initial carries, the sequences and the captured values.

A graph node holds one tensor, so a scan is a family of sibling nodes with the
same arguments and body, one per result it gives (attribute ``result``):

- ``("carry", j)``: the j-th carry after the last step;
- ``("stack", n)``: the value of body node ``n`` at every step, stacked along a
  new axis 0 (the per-step outputs, and the carries or intermediates that the
  backward pass reads).

Siblings are computed by one loop (``codegen/scan_lowering.py``) and
differentiated together (``scan_vjp``: one reverse scan over the body's
vector-Jacobian product, in ``compiler/scan.py``).
"""
from __future__ import annotations

import itertools

import numpy as np

from ..graph import Input, Node
from . import define

_ids = itertools.count(1)


class ScanBody:
    """The traced body of a scan; compared by identity (each trace is a new body)."""

    __slots__ = ("id", "carries", "xs", "captured", "new_carries", "ys", "length", "reverse", "remat", "__weakref__")

    def __init__(self, carries, xs, captured, new_carries, ys, length, reverse: bool, remat: bool, id: int):
        self.id = id
        self.carries, self.xs, self.captured = tuple(carries), tuple(xs), tuple(captured)
        self.new_carries, self.ys = tuple(new_carries), tuple(ys)
        self.length, self.reverse, self.remat = length, bool(reverse), bool(remat)

    @property
    def placeholders(self) -> tuple:
        return self.carries + self.xs + self.captured

    def __repr__(self):
        return f"body{self.id}"


def next_body_id() -> int:
    return next(_ids)


def placeholder(body_id: int, role: str, k: int, shape, dtype) -> Node:
    """A leaf of a scan body standing for one of its arguments at one step.

    Its name cannot be a user's (``scan3$carry0``), so a body captured inside another body
    never confuses the two bodies' placeholders."""
    return Node.__new__(Input, "input", (), (("name", f"scan{body_id}${role}{k}"),), tuple(shape), dtype)


def make_scan_result(args, body: ScanBody, result: tuple) -> Node:
    """The node for one result of the scan of `body` over `args` (init + xs + captured)."""
    kind, which = result
    if kind == "carry":
        like = body.carries[which]
        shape = like.shape
    elif kind == "stack":
        like = which
        shape = (body.length,) + which.shape
    else:
        raise ValueError(f"scan result {result!r}: expected ('carry', j) or ('stack', body node)")
    return Node("scan", tuple(args), (("body", body), ("result", result)), shape, like.dtype)


def siblings_key(node: Node) -> tuple:
    """Scan nodes with equal keys are results of one loop."""
    return node.args, node.attr("body")


def split_args(body: ScanBody, args) -> tuple:
    """(initial carries, sequences, captured values) of a scan's argument list."""
    n_c, n_x = len(body.carries), len(body.xs)
    return tuple(args[:n_c]), tuple(args[n_c:n_c + n_x]), tuple(args[n_c + n_x:])


def run_scan(body: ScanBody, args, dims: dict, values: dict, stacked=()) -> tuple:
    """NumPy reference: (final carries, {body node: stacked values}) of the scan over `args`."""
    from ..evaluate import evaluate_all
    inits, xs, captured = split_args(body, args)
    length = body.length if isinstance(body.length, int) else dims[body.length]
    env = dict(values)
    env.update(dims)
    env.update({p.name: np.asarray(a) for p, a in zip(body.captured, captured)})
    carries = [np.asarray(c, dtype=p.dtype) for c, p in zip(inits, body.carries)]
    stacks = {n: [None] * length for n in stacked}
    steps = range(length - 1, -1, -1) if body.reverse else range(length)
    outputs = list(body.new_carries) + list(stacked)
    for s in steps:
        env.update({p.name: c for p, c in zip(body.carries, carries)})
        env.update({p.name: np.asarray(x[s]) for p, x in zip(body.xs, xs)})
        results = evaluate_all(outputs, env)
        for n in stacked:
            stacks[n][s] = np.asarray(results[n], dtype=n.dtype)
        carries = [np.asarray(results[n], dtype=p.dtype) for n, p in zip(body.new_carries, body.carries)]
    concrete = {n: tuple(dims.get(d, d) if isinstance(d, str) else d for d in n.shape) for n in stacked}
    arrays = {n: np.stack(stacks[n]) if length else np.zeros((0,) + concrete[n], n.dtype) for n in stacked}
    return carries, arrays


def _evaluate_scan(node, args, dims, values):
    body, (kind, which) = node.attr("body"), node.attr("result")
    carries, stacks = run_scan(body, args, dims, values, [which] if kind == "stack" else [])
    return carries[which] if kind == "carry" else stacks[which]


def _vjp_scan(node, g):
    """One result's cotangent alone (autodiff gives a scan's siblings theirs together: ``scan_vjp``)."""
    from ..scan import scan_vjp
    return scan_vjp([node], [g])


def _build_scan(args, body, result):
    return make_scan_result(args, body, result)


define("scan", "control", _build_scan, _evaluate_scan, _vjp_scan, "scan")
