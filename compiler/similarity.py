"""Vector norms along one axis, normalize and cosine_similarity, as torch.nn.functional's.

The norms are written so that their gradients are torch's where the textbook derivative is 0/0:
0 at a zero vector (torch masks it), and, for p < 1, 0 for a zero component. Each singular point is
a double `where` (the branch not taken is fed a harmless argument), so the gradient is finite there
and differentiable again, instead of a product of 0 and inf.
"""
from __future__ import annotations

import builtins
import math

import sympy

from . import scalar_functions as sf
from .dtypes import float_result, promote
from .errors import fail
from .graph import Node, as_node, scalar_symbol
from .ops import _is_int, _is_number, _sympy_number, abs, astype, broadcast_to, max, not_equal, stop_gradient, sum
from .primitives import make_map, make_reshape
from .primitives.layouts import make_surrogate
from .shapes import broadcast_shapes

__all__ = ["cosine_similarity", "normalize"]


def _dim(dim, ndim: int, op: str, shapes: str) -> int:
    """torch's dim of a rank-ndim tensor (a 0-d tensor takes 0 or -1), as a non-negative axis."""
    rank = builtins.max(ndim, 1)
    if not _is_int(dim) or not -rank <= dim < rank:
        raise fail(op, f"dim must be an int in [{-rank}, {rank}) for {shapes}, got {dim!r}")
    return int(dim) % rank


def _float(x: Node, dtype: str | None = None) -> Node:
    dtype = dtype or float_result(x.dtype)
    return x if x.dtype == dtype else astype(x, dtype)


def _safe_power(s: Node, exponent, at: float, op: str) -> Node:
    """s ** exponent, with `at` where s == 0 and a zero derivative there (torch masks that point)."""
    t, e = scalar_symbol(0), _sympy_number(exponent)
    zero = sf.Equal(t, 0)
    value = sympy.oo if at == math.inf else _sympy_number(at)
    return make_map(sf.Where(zero, value, sf.Where(zero, 1, t) ** e), [s], s.dtype, op)


def vector_norm(x: Node, p, axis: int, op: str) -> Node:
    """The p-norm of x along axis, kept as size 1, with torch's (linalg.vector_norm's) gradient: p = 2,
    1, inf (max |x|, a tie's gradient split evenly), -inf (min |x|), 0 (the count of nonzeros, no
    gradient) or any other real p, (sum |x|^p)^(1/p)."""
    if p == 2:
        return _safe_power(sum(x * x, axis, keepdims=True), sympy.S.Half, 0.0, op)
    if p == 1:
        return sum(abs(x), axis, keepdims=True)
    if p == math.inf:
        return max(abs(x), axis, keepdims=True)
    if p == -math.inf:
        return -max(-abs(x), axis, keepdims=True)
    if p == 0:
        return stop_gradient(_float(sum(not_equal(x, 0), axis, keepdims=True), x.dtype))
    powers = _safe_power(abs(x), p, 0.0 if p > 0 else math.inf, op)  # |0|^p: 0, or inf for p < 0
    return _safe_power(sum(powers, axis, keepdims=True), 1 / p, 0.0, op)


def _check_p(p, op: str) -> float:
    if not _is_number(p) or isinstance(p, bool) or math.isnan(float(p)):
        raise fail(op, f"p must be a real number (inf and -inf included), got {p!r}")
    return float(p)


def _check_eps(eps, op: str) -> float:
    if not _is_number(eps) or isinstance(eps, bool) or not float(eps) >= 0:
        raise fail(op, f"eps must be a number >= 0, got {eps!r}")
    return float(eps)


def normalize(x, p=2.0, dim=1, eps=1e-12):
    """x / max(||x||_p, eps) along dim, as torch.nn.functional.normalize (the clamp passes the gradient
    where the norm is >= eps, so a zero vector's gradient is the upstream one divided by eps). Integer
    x gives floats (torch rejects it)."""
    x = as_node(x)
    p, eps = _check_p(p, "normalize"), _check_eps(eps, "normalize")
    axis = _dim(dim, x.ndim, "normalize", f"x {x.shape}")
    x = _float(x)
    rows = make_reshape(x, (1,)) if x.ndim == 0 else x
    norm = vector_norm(rows, p, axis, "normalize")
    t = scalar_symbol(0)
    clamped = make_map(sf.Where(sf.Less(t, _sympy_number(eps)), _sympy_number(eps), t), [norm], x.dtype, "normalize")
    y = rows / clamped
    return make_reshape(y, ()) if x.ndim == 0 else y


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)) along dim of the broadcast shapes, as torch's
    (2.x) cosine_similarity; dim counts in the broadcast shape. The clamps are torch's: in-place without
    gradient, so the gradient flows through each norm as if unclamped (to 0 at a zero vector).
    Integers give floats (torch rejects them)."""
    x1, x2 = as_node(x1), as_node(x2)
    eps = _check_eps(eps, "cosine_similarity")
    shapes = f"x1 {x1.shape}, x2 {x2.shape}"
    shape = broadcast_shapes("cosine_similarity", x1.shape, x2.shape)
    axis = _dim(dim, len(shape), "cosine_similarity", shapes)
    dtype = float_result(promote([x1.dtype, x2.dtype]))
    x1, x2 = (_float(x, dtype) for x in (x1, x2))
    if not shape:
        shape, x1, x2 = (1,), make_reshape(x1, (1,)), make_reshape(x2, (1,))
    x1 = x1 if x1.shape == shape else broadcast_to(x1, shape)
    x2 = x2 if x2.shape == shape else broadcast_to(x2, shape)
    t = scalar_symbol(0)
    clamp = sf.Where(sf.Less(t, _sympy_number(eps)), _sympy_number(eps), t)

    def unit(x):
        norm = vector_norm(x, 2, axis, "cosine_similarity")
        return x / make_surrogate(make_map(clamp, [norm], dtype, "cosine_similarity"), norm)

    return sum(unit(x1) * unit(x2), axis)
