"""tanh, sinh, cosh and the inverse functions asinh, acosh, atanh.

tanh of a float is a 13/6 rational minimax fit (one division, no exp); of a
double it is expm1(2x) / (expm1(2x) + 2). The others are computed in double for
both types with fdlibm's formulas on expm1, exp, log and log1p.
"""
from __future__ import annotations

import math

from .math_emitter import Emitter, in_double

_LN2 = 0.6931471805599453
_HYPERBOLIC_EXP = 22.0  # sinh, cosh: exp(-|x|) is below half an ulp of exp(|x|) beyond this
_HYPERBOLIC_SPLIT = 700.0  # beyond: exp(|x|/2)^2 / 2, as exp(|x|) alone would overflow first
_ASINH_LARGE = 2.0**28  # asinh, acosh: log(2|x|) beyond
_NAN = math.nan


def tanh(m: Emitter, x):
    f = m.f
    ax = m.fabs(x)
    if f.tanh_rational is not None:  # float: one division, no exp
        numerator, denominator = f.tanh_rational
        w = m.mul(x, x)
        t = m.div(m.mul(x, m.poly(w, numerator)), m.poly(w, denominator))
        return m.select(m.ge(ax, f.tanh_one), m.copysign_of(m.val(1.0), x), t)
    e = m.call("expm1", m.mul(ax, 2.0))
    t = m.div(e, m.add(e, 2.0))  # tanh|x| = expm1(2|x|) / (expm1(2|x|) + 2)
    t = m.select(m.gt(ax, f.tanh_one), 1.0, t)
    return m.copysign_of(t, x)


@in_double
def sinh(m: Emitter, x):
    ax = m.fabs(x)
    t = m.call("expm1", ax)
    small = m.mul(m.sub(m.mul(t, 2.0), m.div(m.mul(t, t), m.add(t, 1.0))), 0.5)  # |x| < 1
    medium = m.mul(m.add(t, m.div(t, m.add(t, 1.0))), 0.5)
    large = m.mul(m.call("exp", ax), 0.5)
    half = m.call("exp", m.mul(ax, 0.5))
    huge = m.mul(m.mul(half, 0.5), half)
    result = m.select(m.lt(ax, 1.0), small, medium)
    result = m.select(m.ge(ax, _HYPERBOLIC_EXP), large, result)
    result = m.select(m.ge(ax, _HYPERBOLIC_SPLIT), huge, result)
    return m.copysign_of(result, x)


@in_double
def cosh(m: Emitter, x):
    ax = m.fabs(x)
    e = m.call("exp", ax)
    result = m.add(m.mul(e, 0.5), m.div(0.5, e))
    half = m.call("exp", m.mul(ax, 0.5))
    return m.select(m.ge(ax, _HYPERBOLIC_SPLIT), m.mul(m.mul(half, 0.5), half), result)


@in_double
def asinh(m: Emitter, x):
    """fdlibm: log1p(|x| + x^2 / (1 + sqrt(1 + x^2))) below 2, log(2|x| + 1 / (|x| + sqrt(x^2 + 1)))
    up to 2**28, log(|x|) + log(2) beyond."""
    ax = m.fabs(x)
    x2 = m.mul(ax, ax)
    root = m.call("sqrt", m.add(x2, 1.0))
    small = m.call("log1p", m.add(ax, m.div(x2, m.add(root, 1.0))))
    large_argument = m.add(m.mul(ax, 2.0), m.div(1.0, m.add(root, ax)))
    huge = m.ge(ax, _ASINH_LARGE)
    large = m.add(m.call("log", m.select(huge, ax, large_argument)), m.select(huge, _LN2, 0.0))
    return m.copysign_of(m.select(m.gt(ax, 2.0), large, small), x)


@in_double
def acosh(m: Emitter, x):
    """fdlibm: log1p(t + sqrt(2t + t^2)), t = x - 1, up to 2; log(2x - 1 / (x + sqrt(x^2 - 1)))
    up to 2**28; log(x) + log(2) beyond; NaN below 1."""
    t = m.sub(x, 1.0)
    small = m.call("log1p", m.add(t, m.call("sqrt", m.add(m.mul(t, 2.0), m.mul(t, t)))))
    root = m.call("sqrt", m.sub(m.mul(x, x), 1.0))
    large_argument = m.sub(m.mul(x, 2.0), m.div(1.0, m.add(x, root)))
    huge = m.ge(x, _ASINH_LARGE)
    large = m.add(m.call("log", m.select(huge, x, large_argument)), m.select(huge, _LN2, 0.0))
    result = m.select(m.gt(x, 2.0), large, small)
    return m.select(m.lt(x, 1.0), _NAN, result)


@in_double
def atanh(m: Emitter, x):
    """fdlibm: log1p(2|x| + 2|x|^2 / (1 - |x|)) / 2 below 1/2, log1p(2|x| / (1 - |x|)) / 2 above."""
    ax = m.fabs(x)
    twice = m.add(ax, ax)
    one_minus = m.sub(1.0, ax)
    small = m.add(twice, m.div(m.mul(twice, ax), one_minus))
    large = m.div(twice, one_minus)
    result = m.mul(m.call("log1p", m.select(m.lt(ax, 0.5), small, large)), 0.5)
    return m.copysign_of(result, x)
