"""exp, expm1, log, log1p, pow, and sigmoid, softplus and erf built on exp and log.

Methods: Cody-Waite range reduction with the exponent built from integer bits
(exp, expm1), exponent/mantissa split with the fdlibm-style atanh series (log),
exp-based sigmoid and softplus, a two-piece erf. pow of a float goes through
double, so it is correctly rounded in practice; of a double it is
exp(y log|x|), relative error ~|y log|x|| * 2**-53.
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

from .math_emitter import DOUBLE_TYPE, Emitter

_LOG2E = 1.4426950408889634
_INF = math.inf
_NAN = math.nan


def exp(m: Emitter, x):
    f = m.f
    # Below exp_lo the result is 0. Those lanes compute exp(0) and select 0: scaling p by 2**-150
    # there would underflow through subnormals, which costs a microcode assist per element on
    # some CPUs (10x slower loops where half the scores are -inf, as in masked attention).
    below = m.lt(x, f.exp_lo)
    x = m.select(below, 0.0, m.select(m.gt(x, f.exp_hi), f.exp_hi, x))
    n, nf = m.round_to_int(m.mul(x, _LOG2E))
    r = m.sub(m.sub(x, m.mul(nf, f.ln2[0])), m.mul(nf, f.ln2[1]))
    p = m.add(m.add(r, m.mul(m.mul(r, r), m.poly(r, f.expm1_r2))), 1.0)
    return m.select(below, 0.0, m.ldexp(p, n))


def expm1(m: Emitter, x):
    f = m.f
    xc = m.clamp(x, f.expm1_lo, f.exp_hi)
    n, nf = m.round_to_int(m.mul(xc, _LOG2E))
    r = m.sub(m.sub(xc, m.mul(nf, f.ln2[0])), m.mul(nf, f.ln2[1]))
    p = m.add(r, m.mul(m.mul(r, r), m.poly(r, f.expm1_r2)))
    scaled = m.sub(m.ldexp(m.add(p, 1.0), n), 1.0)
    result = m.select(m.b.icmp_signed("==", n, m.ival(0)), p, scaled)
    return m.select(m.eq(x, 0.0), x, result)  # keeps the sign of -0.0


def log(m: Emitter, x):
    f = m.f
    subnormal = m.lt(x, f.min_normal)
    scale_bits = f.mantissa_bits + 1
    xs = m.select(subnormal, m.mul(x, 2.0**scale_bits), x)
    k_offset = m.select(subnormal, -float(scale_bits), 0.0)
    # x = 2**k * z with z in [sqrt(1/2), sqrt(2))
    ix = m.bits(xs)
    k_int = m.b.ashr(m.b.sub(ix, m.ival(f.sqrt_half_bits)), m.ival(f.mantissa_bits))
    z = m.from_bits(m.b.sub(ix, m.b.shl(k_int, m.ival(f.mantissa_bits))))
    if f.bits == 64:
        k_int = m.b.trunc(k_int, ir.IntType(32))  # int32 -> double vectorises on AVX2
    k = m.add(m.to_float(k_int), k_offset)
    # log(1 + g) = g - (g^2/2 - s (g^2/2 + R)), s = g / (2 + g), R = 2 (atanh(s)/s - 1)
    g = m.sub(z, 1.0)
    s = m.div(g, m.add(g, 2.0))
    w = m.mul(s, s)
    big_r = m.mul(w, m.poly(w, f.log_atanh))
    half_g2 = m.mul(m.mul(g, g), 0.5)
    inner = m.add(m.mul(s, m.add(half_g2, big_r)), m.mul(k, f.ln2[1]))
    y = m.sub(m.mul(k, f.ln2[0]), m.sub(m.sub(half_g2, inner), g))
    y = m.select(m.eq(x, _INF), _INF, y)
    y = m.select(m.eq(x, 0.0), -_INF, y)
    return m.select(m.b.fcmp_unordered("<", x, m.val(0.0)), _NAN, y)  # x < 0 or NaN


def log1p(m: Emitter, u):
    y = m.add(u, 1.0)
    log_y = m.call("log", y)
    # y = 1 + u rounded; the rounding error, divided by y, corrects log(y)
    correction = m.div(m.sub(u, m.sub(y, 1.0)), y)
    result = m.select(m.lt(m.fabs(u), 1.0), m.add(log_y, correction), log_y)
    return m.select(m.eq(u, 0.0), u, result)


def sigmoid(m: Emitter, x):
    e = m.call("exp", m.neg(m.fabs(x)))  # never overflows
    numerator = m.select(m.ge(x, 0.0), 1.0, e)  # NaN takes e = NaN
    return m.div(numerator, m.add(e, 1.0))


def softplus(m: Emitter, x):
    u = m.call("exp", m.neg(m.fabs(x)))  # in [0, 1]
    y = m.add(u, 1.0)
    log1p_u = m.add(m.call("log", y), m.div(m.sub(u, m.sub(y, 1.0)), y))
    return m.add(m.select(m.gt(x, 0.0), x, 0.0), log1p_u)


def erf(m: Emitter, x):
    f = m.f
    ax = m.fabs(x)
    x2 = m.mul(ax, ax)
    small = m.mul(ax, m.poly(x2, f.erf_small))
    erfc = m.mul(m.call("exp", m.neg(x2)), m.poly(m.sub(ax, f.erf_center), f.erfc_scaled))
    t = m.select(m.lt(ax, f.erf_split), small, m.sub(1.0, erfc))
    t = m.select(m.gt(ax, f.erf_one), 1.0, t)
    return m.copysign_of(t, x)


def power(m: Emitter, a, b):
    """a**b as C's pow: exp(b log|a|) with the sign and special-case rules."""
    floor = m.b.module.declare_intrinsic("llvm.floor", [m.ty])
    magnitude_base = m.fabs(a)
    if m.f.bits == 32:  # through double: float results then round correctly
        d = Emitter(m.b, DOUBLE_TYPE)
        log_a = d.call("log", m.b.fpext(magnitude_base, DOUBLE_TYPE))
        product = m.b.fmul(m.b.fpext(b, DOUBLE_TYPE), log_a)
        magnitude = m.b.fptrunc(d.call("exp", product), m.ty)
    else:
        magnitude = m.call("exp", m.mul(b, m.call("log", magnitude_base)))
    magnitude = m.select(m.eq(magnitude_base, 1.0), 1.0, magnitude)
    is_int = m.eq(m.b.call(floor, [b]), b)
    half = m.mul(b, 0.5)
    is_odd = m.b.and_(is_int, m.b.fcmp_ordered("!=", m.b.call(floor, [half]), half))
    negative_base = m.b.icmp_signed("<", m.bits(a), m.ival(0))
    result = m.flip_sign(magnitude, m.b.and_(negative_base, is_odd))
    finite_negative = m.b.and_(m.lt(a, 0.0), m.gt(a, -_INF))
    result = m.select(m.b.and_(finite_negative, m.b.not_(is_int)), _NAN, result)
    result = m.select(m.eq(b, 0.0), 1.0, result)
    return m.select(m.eq(a, 1.0), 1.0, result)
