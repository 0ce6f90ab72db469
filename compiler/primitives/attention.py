"""The ``attention`` primitive: softmax(q k^T * scale + mask) v without a stored T x T matrix.

Arguments q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv) with the same leading dims, and
optionally a mask of shape (..., Tq, Tk): bool (True = attend) or additive of q's dtype
(-inf = masked). Attributes: ``scale`` (a float) and ``causal`` (key j > query i masked, top-left
aligned). A graph node holds one tensor, so the result is (..., Tq, dv + 1): the output rows,
then each row's log-sum-exp of its scores. ``scaled_dot_product_attention`` returns the slice
``[..., :dv]`` (a view); the VJP reads the log-sum-exp from the same node.

A query whose every key is masked has log-sum-exp -inf, output 0 and no gradient (torch's safe
softmax). The lowering (``codegen/attention_kernel.py``) runs over blocks of queries and keys
with an online max and sum (FlashAttention's rescaling); the VJP recomputes the probabilities
once, as ordinary primitives: P = softmax(S) from each row's max (``_probabilities``),
dV = P^T dO, dS = P (dO V^T - rowsum(dO O) + dlse), dQ = dS K scale, dK = dS^T Q scale, and the
mask's cotangent is dS.
"""
from __future__ import annotations

import numpy as np

from ..errors import fail
from ..graph import Node, const
from . import define
from .layouts import make_slice


def make_attention(q: Node, k: Node, v: Node, mask: Node | None = None, causal: bool = False,
                   scale: float = 1.0) -> Node:
    """The (..., Tq, dv + 1) node: attention output rows, then each row's log-sum-exp."""
    lead = q.shape[:-2]
    if q.ndim < 2 or k.shape[:-2] != lead or v.shape[:-2] != lead:
        raise fail("attention", f"q, k and v need the same leading dims: {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise fail("attention", f"q (..., Tq, d), k (..., Tk, d) and v (..., Tk, dv) expected: "
                   f"{q.shape}, {k.shape}, {v.shape}")
    if not q.dtype == k.dtype == v.dtype or q.dtype not in ("float32", "float64"):
        raise fail("attention", f"q, k and v must be float32 or float64 of one dtype: {q.dtype}, {k.dtype}, {v.dtype}")
    dv = v.shape[-1]
    if not isinstance(dv, int):
        raise fail("attention", f"the feature axis of v must have a concrete size, got {dv!r}")
    args = (q, k, v)
    if mask is not None:
        if mask.shape != lead + (q.shape[-2], k.shape[-2]) or mask.dtype not in ("bool", q.dtype):
            raise fail("attention", f"mask must be bool or {q.dtype} of shape {lead + (q.shape[-2], k.shape[-2])}, "
                       f"got {mask.dtype} {mask.shape}")
        args += (mask,)
    attrs = (("causal", bool(causal)), ("scale", float(scale)))
    return Node("attention", args, attrs, lead + (q.shape[-2], dv + 1), q.dtype)


def _evaluate_attention(node, args, dims, values):
    q, k, v = args[:3]
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) * np.asarray(node.attr("scale"), q.dtype)
    if len(args) == 4:
        mask = args[3]
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + mask
    if node.attr("causal"):
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True, initial=-np.inf)
    shift = np.where(np.isfinite(top), top, 0)
    e = np.exp(scores - shift)
    total = e.sum(axis=-1, keepdims=True)
    out = np.matmul(e, v) / np.where(total > 0, total, 1)
    lse = np.where(total > 0, shift + np.log(np.where(total > 0, total, 1)), -np.inf)
    return np.concatenate([out, lse], axis=-1).astype(node.dtype, copy=False)


def attention_scores(q: Node, k: Node, mask: Node | None, causal: bool, scale: float) -> Node:
    """q k^T * scale with the mask added (bool: -inf where False) and the causal -inf above the diagonal."""
    from .. import ops
    swap = tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2)
    scores = ops.matmul(q, ops.transpose(k, swap)) * scale
    if mask is not None:
        scores = ops.where(mask, scores, -np.inf) if mask.dtype == "bool" else scores + mask
    if causal:
        tq, tk = scores.shape[-2:]
        if not (isinstance(tq, int) and isinstance(tk, int)):
            raise fail("attention", f"causal attention needs concrete lengths, got Tq {tq!r} and Tk {tk!r}")
        scores = ops.where(const(np.tril(np.ones((tq, tk), dtype=bool))), scores, -np.inf)
    return scores


def _probabilities(scores: Node) -> Node:
    """softmax(scores) over the keys, 0 in fully masked rows. Recomputed from the row's own maximum:
    exp(scores - lse) loses the row when the mask is a large finite number (-1e9 in float32 makes
    lse round to the shift, and every masked key weigh 1)."""
    from .. import ops
    e = ops.exp(scores - ops._shift(scores, (scores.ndim - 1,)))
    total = ops.sum(e, -1, keepdims=True)
    return e / ops.where(total > 0, total, 1.0)


def _vjp_attention(node, g):
    from .. import ops
    q, k, v = node.args[:3]
    mask = node.args[3] if len(node.args) == 4 else None
    scale, dv = node.attr("scale"), v.shape[-1]
    lead = node.shape[:-1]

    def columns(x, start, stop):
        return make_slice(x, (0,) * (x.ndim - 1) + (start,), lead + (stop,))

    out = columns(node, 0, dv)
    g_out, g_lse = columns(g, 0, dv), columns(g, dv, dv + 1)
    swap = tuple(range(q.ndim - 2)) + (q.ndim - 1, q.ndim - 2)
    scores = attention_scores(q, k, mask, node.attr("causal"), scale)
    p = _probabilities(scores)
    g_v = ops.matmul(ops.transpose(p, swap), g_out)
    g_p = ops.matmul(g_out, ops.transpose(v, swap))
    g_s = p * (g_p - (ops.sum(g_out * out, -1, keepdims=True) - g_lse))
    g_q = ops.matmul(g_s, k) * scale
    g_k = ops.matmul(ops.transpose(g_s, swap), q) * scale
    g_mask = None if mask is None or mask.dtype == "bool" else g_s
    return [g_q, g_k, g_v] + ([g_mask] if mask is not None else [])


define("attention", "contract", make_attention, _evaluate_attention, _vjp_attention, "attention")
