"""The normalisations and the attention of sequence models, written on ordinary ops.

``layer_norm`` and ``rms_norm`` normalise over the last axis; ``scaled_dot_product_attention`` is
softmax(q k^T / sqrt(d) + mask) v over ``(..., T, d)`` layouts. Each equals its
``torch.nn.functional`` namesake, values and gradients, and is a composite: the gradient, the NumPy
evaluation and the lowering come from the ops it is written with.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .dtypes import is_float
from .errors import fail
from .graph import Node, const
from .ops import _shift, exp, matmul, mean, sqrt, sum, transpose, where
from .derived_reductions import var
from .primitives.attention import make_attention
from .primitives.layouts import make_broadcast, make_slice
from .randomness import dropout
from .shapes import broadcast_shapes

FLASH_MIN_T = 128
"""Key length (Tk) from which ``scaled_dot_product_attention`` is the fused ``attention`` primitive
(online softmax, no stored Tk-wide probabilities in the forward pass) rather than the composite of
products and reductions; measured in docs/architecture.md ("Attention")."""


class _Failure:
    """Raises the op's GraphError with the shapes it was given, named in every message."""

    def __init__(self, op: str, **shapes):
        self.op = op
        self.shapes = ", ".join(f"{name} {shape}" for name, shape in shapes.items() if shape is not None)

    def __call__(self, message: str):
        return fail(self.op, f"{message} ({self.shapes})")


def _shape(value):
    return value.shape if isinstance(value, Node) else None


def _check_tensor(name: str, value, error: _Failure, min_ndim: int = 1) -> None:
    if not isinstance(value, Node):
        raise error(f"{name} must be a graph node, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise error(f"{name} must have at least {min_ndim} dimension{'s' if min_ndim > 1 else ''}, "
                    f"got shape {value.shape}")
    if not is_float(value.dtype):
        raise error(f"{name} must be a float tensor, got dtype {value.dtype}")


def _check_eps(eps, error: _Failure) -> None:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise error(f"eps must be a positive number, got {eps!r}")


def _check_last_axis(name: str, value, x: Node, error: _Failure) -> None:
    """None, or a float node of shape (x.shape[-1],) and x's dtype."""
    if value is None:
        return
    if not isinstance(value, Node):
        raise error(f"{name} must be a graph node of shape ({x.shape[-1]},) or None, got {type(value).__name__}")
    if value.shape != (x.shape[-1],):
        raise error(f"{name} has shape {value.shape}, but the last axis of x {x.shape} has {x.shape[-1]} "
                    f"elements: expected ({x.shape[-1]},)")
    if value.dtype != x.dtype:
        raise error(f"{name} has dtype {value.dtype}, x {x.dtype}: they must be equal")


def layer_norm(x, gamma=None, beta=None, eps=1e-5) -> Node:
    """``torch.nn.functional.layer_norm(x, (d,), gamma, beta, eps)`` over the last axis (size d):
    (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance (divided by d).

    gamma, beta: (d,) nodes of x's dtype, or None (no scale, no shift).
    """
    error = _Failure("layer_norm", x=_shape(x), gamma=_shape(gamma), beta=_shape(beta))
    _check_tensor("x", x, error)
    _check_last_axis("gamma", gamma, x, error)
    _check_last_axis("beta", beta, x, error)
    _check_eps(eps, error)
    centred = x - mean(x, -1, keepdims=True)
    out = centred / sqrt(var(x, -1, correction=0, keepdims=True) + eps)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out


def rms_norm(x, gamma=None, eps=1e-6) -> Node:
    """``torch.nn.functional.rms_norm(x, (d,), gamma, eps)`` over the last axis (size d):
    x / sqrt(mean(x**2) + eps) * gamma.

    gamma: a (d,) node of x's dtype, or None. The default eps is 1e-6 (LLaMA's); torch's default
    (eps=None) is the machine epsilon of x's dtype: pass eps to match it.
    """
    error = _Failure("rms_norm", x=_shape(x), gamma=_shape(gamma))
    _check_tensor("x", x, error)
    _check_last_axis("gamma", gamma, x, error)
    _check_eps(eps, error)
    out = x / sqrt(mean(x * x, -1, keepdims=True) + eps)
    return out if gamma is None else out * gamma


def _masked_softmax(scores: Node) -> Node:
    """Softmax over the last axis of scores whose masked entries are -inf: those get exactly 0, and a
    row of -inf only (every key masked) gets 0 everywhere (torch's safe softmax), with a zero gradient.
    The max-shift is the stable softmax's (``ops._shift``: without gradient, 0 where not finite)."""
    e = exp(scores - _shift(scores, (scores.ndim - 1,)))
    total = sum(e, -1, keepdims=True)
    return e / where(total > 0, total, 1.0)


def _check_concrete(name: str, dim, error: _Failure) -> int:
    if not isinstance(dim, int):
        raise error(f"{name} must have a concrete size, got {dim!r}")
    return dim


def scaled_dot_product_attention(q, k, v, mask=None, causal=False, scale=None, fused=None, dropout_p=0.0) -> Node:
    """``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
    scale=scale, dropout_p=dropout_p)``: softmax(q @ k^T * scale + bias) @ v, scale = 1/sqrt(d) unless
    given. dropout_p > 0 drops attention weights (``ops.dropout``: the identity after
    ``compiler.inference``, as a module in eval mode passes 0) and takes the composite form.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, dv); their leading dims broadcast; the result is
    (..., Tq, dv). mask: None, a bool tensor (True = attend; False entries get -inf) or an additive
    float tensor of q's dtype, broadcastable to (..., Tq, Tk). causal=True masks key j > query i
    (top-left aligned, as torch's ``is_causal``); unlike torch, which refuses the two together, a
    mask and causal=True combine (a key is attended where both allow it).

    A query whose every key is masked (its scores all -inf) attends to nothing: its row of weights
    and its output are 0, and no gradient flows through it, as torch's (2.5 on, the "safe softmax"
    of its math kernel; earlier versions returned NaN, which would have made the gradients of k and
    v NaN too). Masked entries get exactly 0 weight and finite (zero) gradients.

    fused: None (the default) chooses by the key length: the fused ``attention`` primitive from
    Tk = FLASH_MIN_T on, the composite below; True or False forces one (both give the same values
    and gradients). The fused form needs concrete Tk and dv.
    """
    error = _Failure("scaled_dot_product_attention", q=_shape(q), k=_shape(k), v=_shape(v), mask=_shape(mask))
    for name, value in (("q", q), ("k", k), ("v", v)):
        _check_tensor(name, value, error, min_ndim=2)
    if not q.dtype == k.dtype == v.dtype:
        raise error(f"q, k and v must have one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise error(f"q and k must have one feature size (last axis): {q.shape[-1]!r} != {k.shape[-1]!r}")
    if k.shape[-2] != v.shape[-2]:
        raise error(f"k and v must have one sequence length (axis -2): {k.shape[-2]!r} != {v.shape[-2]!r}")
    try:
        broadcast_shapes("scaled_dot_product_attention", q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except Exception:
        raise error("the leading dimensions of q, k and v do not broadcast") from None
    tq, tk = q.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1 / math.sqrt(_check_concrete("the feature axis of q", q.shape[-1], error))
    elif isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise error(f"scale must be a number or None, got {scale!r}")
    if not isinstance(causal, bool):
        raise error(f"causal must be True or False, got {causal!r}")
    if fused not in (None, True, False):
        raise error(f"fused must be None, True or False, got {fused!r}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) or not 0 <= dropout_p <= 1:
        raise error(f"dropout_p must be a probability in [0, 1], got {dropout_p!r}")
    if dropout_p and fused:
        raise error("the fused form has no dropout: use fused=None or False with dropout_p > 0")
    if mask is not None:
        _check_mask(mask, q, tq, tk, error)
    if causal:
        _check_concrete("Tq (axis -2 of q) with causal=True", tq, error)
        _check_concrete("Tk (axis -2 of k) with causal=True", tk, error)
    if fused is None:
        fused = not dropout_p and isinstance(tk, int) and tk >= FLASH_MIN_T and isinstance(v.shape[-1], int)
    if fused:
        return _fused_attention(q, k, v, mask, causal, float(scale), error)

    scores = matmul(q, transpose(k, tuple(range(k.ndim - 2)) + (k.ndim - 1, k.ndim - 2))) * float(scale)
    if mask is not None:
        scores = where(mask, scores, -math.inf) if mask.dtype == "bool" else scores + mask
    if causal:
        scores = where(const(np.tril(np.ones((tq, tk), dtype=bool))), scores, -math.inf)
    weights = _masked_softmax(scores)
    return matmul(dropout(weights, float(dropout_p)) if dropout_p else weights, v)


def _check_mask(mask, q, tq, tk, error: _Failure) -> None:
    if not isinstance(mask, Node):
        raise error(f"mask must be a graph node (bool, or additive of q's dtype), got {type(mask).__name__}")
    if mask.dtype != "bool" and mask.dtype != q.dtype:
        raise error(f"mask must be bool (True = attend) or additive of q's dtype {q.dtype}, got {mask.dtype}")
    if mask.ndim == 0 or any(m != 1 and m != s for m, s in zip(reversed(mask.shape), (tk, tq))):
        raise error(f"mask must broadcast to (..., Tq, Tk) = (..., {tq!r}, {tk!r})")


def _fused_attention(q, k, v, mask, causal: bool, scale: float, error: _Failure) -> Node:
    """The ``attention`` primitive over q, k, v (and the mask) broadcast to common leading dims (views,
    never copies); its output rows are the slice [..., :dv] of the node (the rest is the log-sum-exp)."""
    tq, tk, dv = q.shape[-2], k.shape[-2], v.shape[-1]
    if not isinstance(dv, int):
        raise error(f"the fused form needs a concrete feature size of v, got {dv!r}")
    leads = [q.shape[:-2], k.shape[:-2], v.shape[:-2]] + ([mask.shape[:-2]] if mask is not None else [])
    lead = broadcast_shapes("scaled_dot_product_attention", *leads)
    q, k, v = (make_broadcast(x, lead + x.shape[-2:]) for x in (q, k, v))
    if mask is not None:
        mask = make_broadcast(mask, lead + (tq, tk))
    node = make_attention(q, k, v, mask, causal, scale)
    return make_slice(node, (0,) * node.ndim, lead + (tq, dv))
