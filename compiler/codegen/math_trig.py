"""sin, cos, tan and the inverse functions atan, atan2, asin, acos.

sin and cos use a Cephes-style octant reduction, run in double for both types
(a float reduction picks the wrong octant once |x| * 4/pi has no fractional
bits); beyond |x| = 2**29 the result is NaN (NumPy still computes a value
there). tan (the same reduction), atan (fdlibm's reduction to |r| <= 7/16, a
degree-11 Chebyshev fit), atan2 (C's special cases), asin and acos (atan2 of x
and sqrt((1-x)(1+x))) are computed in double for both types.
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

from .math_emitter import Emitter, in_double

_FOUR_OVER_PI = 1.2732395447351628
_SINCOS_LIMIT = 2.0**29  # octant index stays in int32 below this
# pi/4 = p1 + p2 + p3 (double); p1, p2 have 24 bits, so j * p is exact for j < 2**29
_PIO4_PARTS = (0.7853981256484985, 3.774894707930798e-08, 2.6951514290790595e-15)
_PIO2 = (1.5707963267948966, 6.123233995736766e-17)  # pi/2 = hi + lo
_PI = (3.141592653589793, 1.2246467991473532e-16)
# atan(r) = r + r w P(w), w = r^2, |r| <= 7/16 (Chebyshev, mpmath.chebyfit, abs. error 4e-18 in P)
_ATAN_POLY = (0.014773184616983806, -0.033128134256069586, 0.04492259293193656,
              -0.05216679739313656, 0.05876946456755061, -0.06666241923359964,
              0.07692285554889286, -0.09090908355602592, 0.11111111096645038,
              -0.14285714285566806, 0.1999999999999941, -0.3333333333333333)
# fdlibm's reduction: |x| in [7/16, 11/16): atan(1/2) + atan((2x - 1)/(2 + x)), and so on
_ATAN_BREAKS = (  # (lower bound of |x|, c, atan(c) = hi + lo); the reduced r = (x - c) / (1 + c x)
    (7.0 / 16, 0.5, 0.4636476090008061, 2.2698777452961687e-17),
    (11.0 / 16, 1.0, 0.7853981633974483, 3.061616997868383e-17),
    (19.0 / 16, 1.5, 0.982793723247329, 1.3903311031230998e-17),
)
_INF = math.inf
_NAN = math.nan


def _octant(m: Emitter, x):
    """|x| = j pi/4 + r with j even, |r| <= pi/4: returns (j/2 mod 4, sin r, cos r).

    The reduction runs in double for both types: a float reduction picks the
    wrong octant once |x| * 4/pi has no fractional bits (|x| > ~1e6).
    """
    i32 = ir.IntType(32)
    double = ir.DoubleType()
    ax = m.fabs(x)
    ax = m.select(m.lt(ax, _SINCOS_LIMIT), ax, 0.0)  # the caller returns NaN beyond
    axd = ax if m.f.bits == 64 else m.b.fpext(ax, double)
    d = Emitter(m.b, double)
    j = m.b.fptosi(d.mul(axd, _FOUR_OVER_PI), i32)
    j = m.b.and_(m.b.add(j, ir.Constant(i32, 1)), ir.Constant(i32, -2))
    y = d.to_float(j)
    r = axd
    for part in _PIO4_PARTS:
        r = d.sub(r, d.mul(y, part))
    if m.f.bits == 32:
        r = m.b.fptrunc(r, m.ty)
    f = m.f
    w = m.mul(r, r)
    sin_r = m.add(r, m.mul(m.mul(r, w), m.poly(w, f.sin)))
    cos_r = m.add(m.sub(1.0, m.mul(w, 0.5)), m.mul(m.mul(w, w), m.poly(w, f.cos)))
    quadrant = m.b.and_(m.b.lshr(j, ir.Constant(i32, 1)), ir.Constant(i32, 3))
    return quadrant, sin_r, cos_r


def _finite_or_nan(m: Emitter, x, value):
    """NaN for inf, NaN, and |x| >= 2**29 where the reduction has no bits left."""
    return m.select(m.lt(m.fabs(x), _SINCOS_LIMIT), value, _NAN)


def sin(m: Emitter, x):
    i32 = ir.IntType(32)
    q, sin_r, cos_r = _octant(m, x)
    odd = m.b.trunc(q, ir.IntType(1))
    value = m.select(odd, cos_r, sin_r)
    negate = m.b.icmp_unsigned("!=", m.b.and_(q, ir.Constant(i32, 2)), ir.Constant(i32, 0))
    x_sign = m.b.and_(m.bits(x), m.ival(-(1 << (m.f.bits - 1))))
    return _finite_or_nan(m, x, m.flip_sign(value, negate, x_sign))


def cos(m: Emitter, x):
    i32 = ir.IntType(32)
    q, sin_r, cos_r = _octant(m, x)
    odd = m.b.trunc(q, ir.IntType(1))
    value = m.select(odd, sin_r, cos_r)
    shifted = m.b.add(q, ir.Constant(i32, 1))
    negate = m.b.icmp_unsigned("!=", m.b.and_(shifted, ir.Constant(i32, 2)), ir.Constant(i32, 0))
    return _finite_or_nan(m, x, m.flip_sign(value, negate))


def _atan_positive(m: Emitter, ax):
    """atan(ax) for ax >= 0 or NaN (ax = inf gives pi/2)."""
    numerator, denominator = ax, m.val(1.0)
    hi, lo = m.val(0.0), m.val(0.0)
    for bound, c, c_hi, c_lo in _ATAN_BREAKS:
        beyond = m.ge(ax, bound)
        numerator = m.select(beyond, m.sub(ax, c), numerator)
        denominator = m.select(beyond, m.add(m.mul(ax, c), 1.0), denominator)
        hi, lo = m.select(beyond, c_hi, hi), m.select(beyond, c_lo, lo)
    beyond = m.ge(ax, 39.0 / 16)  # atan(x) = pi/2 + atan(-1/x)
    numerator = m.select(beyond, -1.0, numerator)
    denominator = m.select(beyond, ax, denominator)
    hi, lo = m.select(beyond, _PIO2[0], hi), m.select(beyond, _PIO2[1], lo)
    r = m.div(numerator, denominator)
    w = m.mul(r, r)
    tail = m.mul(m.mul(r, w), m.poly(w, _ATAN_POLY))
    return m.add(hi, m.add(m.add(tail, lo), r))


@in_double
def tan(m: Emitter, x):
    """sin r / cos r, or -cos r / sin r in odd quadrants (the sin/cos reduction)."""
    q, sin_r, cos_r = _octant(m, x)
    odd = m.b.trunc(q, ir.IntType(1))
    value = m.div(m.select(odd, m.neg(cos_r), sin_r), m.select(odd, sin_r, cos_r))
    return _finite_or_nan(m, x, m.copysign_of(m.fabs(value), m.b.fmul(x, value)))


@in_double
def atan(m: Emitter, x):
    return m.copysign_of(_atan_positive(m, m.fabs(x)), x)


@in_double
def atan2(m: Emitter, y, x):
    """atan2(y, x) with C's rules for zeros, infinities and NaN."""
    ax, ay = m.fabs(x), m.fabs(y)
    swap = m.gt(ay, ax)
    small, large = m.select(swap, ax, ay), m.select(swap, ay, ax)
    ratio = m.div(small, large)
    ratio = m.select(m.eq(large, 0.0), 0.0, ratio)  # atan2(+-0, +-0)
    ratio = m.select(m.eq(small, _INF), 1.0, ratio)  # both infinite
    t = _atan_positive(m, ratio)
    negative_x = m.b.icmp_signed("<", m.bits(x), m.ival(0))  # x < 0 or x = -0
    # result = c + s t, with (c, s) = (0, 1), (pi/2, -1), (pi, -1), (pi/2, 1)
    c_hi = m.select(swap, _PIO2[0], m.select(negative_x, _PI[0], 0.0))
    c_lo = m.select(swap, _PIO2[1], m.select(negative_x, _PI[1], 0.0))
    minus = m.b.xor(swap, negative_x)
    signed_t = m.select(minus, m.neg(t), t)
    result = m.add(c_hi, m.add(c_lo, signed_t))
    result = m.select(m.b.fcmp_unordered("uno", x, y), _NAN, result)
    return m.copysign_of(m.fabs(result), y)


@in_double
def asin(m: Emitter, x):
    """atan2(x, sqrt((1 - x)(1 + x))); NaN beyond |x| = 1."""
    root = m.call("sqrt", m.mul(m.sub(1.0, x), m.add(1.0, x)))
    return m.call("atan2", x, root)


@in_double
def acos(m: Emitter, x):
    root = m.call("sqrt", m.mul(m.sub(1.0, x), m.add(1.0, x)))
    return m.call("atan2", root, x)
