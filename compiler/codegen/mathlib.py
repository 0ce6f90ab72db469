"""Vectorisable math functions written in LLVM IR.

A scalar libm call (`expf`, `tanhf`) inside a loop stops LLVM's loop
vectoriser, and the `llvm.exp`/`llvm.tanh` intrinsics are split back into such
calls. So every transcendental a kernel needs is defined here in plain IR --
arithmetic, bitcasts, integer ops, `fcmp` and `select`, no branches, no calls
out of the module -- as an `internal`, `alwaysinline` function defined once per
module (`symprop.expf` for float, `symprop.exp` for double). After inlining,
the loop around a call vectorises like any arithmetic.

Methods: Cody-Waite range reduction with the exponent built from integer bits
(exp, expm1), exponent/mantissa split with the fdlibm-style atanh series (log),
a rational tanh for float (a 13/6 minimax fit, one division, no exp) and
tanh = expm1(2x) / (expm1(2x) + 2) for double, exp-based sigmoid and softplus,
a two-piece erf, Cephes-style octant reduction for sin/cos. Polynomial
coefficients are Chebyshev interpolants computed with `mpmath.chebyfit` (50
digits) on the stated interval; the tanh rational comes from Loeb/Lawson
iterated least squares in mpmath (relative error 7e-9 before rounding); all
are rounded to the target precision.

Special values follow NumPy: every clamp is written with ordered comparisons,
so NaN passes through it, and infinities are mapped explicitly.

Worst relative error measured against NumPy's float64 functions
(tests/test_mathlib.py), in units of epsilon (2**-23 float32, 2**-52 float64):

    function   float32  float64        function   float32  float64
    exp          0.7      1.0          tanh         1.8      1.8
    expm1        1.8      1.9          sigmoid      1.3      1.4
    log          0.6      1.0          softplus     1.3      1.9
    log1p        1.1      1.0          erf          1.4      3.5

sin, cos: absolute error 9e-8 (float32) / 1.1e-16 (float64) for |x| < 2**29;
    the octant reduction runs in double; beyond 2**29 the result is NaN (NumPy
    still computes a value there).
pow: float32 goes through double, so it is correctly rounded in practice;
    float64 is exp(y log|x|), relative error ~|y log|x|| * 2**-53 (2**3 may
    come out 2 ulp below 8).
sqrt is the `llvm.sqrt` intrinsic: correctly rounded.

Computed in double for both types (a float argument is extended and the result
rounded once, so float32 results are within half an ulp or so, at half the
vector width): tan (the sin/cos reduction; NaN beyond 2**29 likewise), atan
(fdlibm's reduction to |r| <= 7/16, a degree-11 Chebyshev fit), atan2 (C's
special cases), asin and acos (atan2 of x and sqrt((1-x)(1+x))), sinh, cosh,
asinh, acosh, atanh (fdlibm's formulas on expm1, exp, log and log1p).
Worst float64 error measured, in epsilon: tan 2.0, atan 1.0, asin 1.5,
acos 1.1, sinh 2.1, cosh 1.0, asinh 1.4, acosh 1.0, atanh 1.4 (tan next to its
poles: up to ~7, the 3-part pi/4 of the reduction against glibc's exact one).

fmod is exact (no libm: MCJIT does not resolve it): steps of q = trunc(r / (b 2**s))
< 2**53 and r - q b 2**s by one FMA, which is exact since the quotient is
exact or one too large. Float arguments take 7 unrolled steps in double and
vectorise; double ones loop until the remainder is below |b| (up to 45 steps
for 1e308 mod 5e-324), which keeps such loops scalar. remainder (the sign of
b) and floor_divide follow NumPy's npy_divmod on it; all three match NumPy bit
for bit, signs of zero included. The rounding functions are LLVM intrinsics
(codegen/scalar.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import llvmlite.ir as ir

__all__ = ["math_call", "FUNCTIONS", "BINARY"]

_CONTRACT = ("contract",)


@dataclass(frozen=True)
class _Format:
    """Bit layout and precision-dependent constants of one float type.
    Coefficient tuples are listed highest degree first (Horner order)."""

    suffix: str
    bits: int
    mantissa_bits: int
    bias: int
    min_normal: float
    sqrt_half_bits: int  # bit pattern of sqrt(0.5): log's mantissa split point
    exp_lo: float  # exp(exp_lo) rounds to 0, exp(exp_hi) overflows
    exp_hi: float
    expm1_lo: float  # expm1(expm1_lo) rounds to -1
    tanh_one: float  # tanh(x) rounds to 1 beyond this
    tanh_rational: tuple | None  # (P, Q): tanh(x) = x P(x^2) / Q(x^2) on [0, tanh_one], or None
    erf_split: float  # erf: series below, 1 - exp(-x^2) * g(x) above
    erf_center: float  # centre of the interval g is fitted on
    erf_one: float  # erf(x) rounds to 1 beyond this
    ln2: tuple  # ln 2 = hi + lo, hi short enough that k * hi is exact
    expm1_r2: tuple  # (expm1(r) - r) / r^2 on |r| <= 1.05 ln2 / 2
    log_atanh: tuple  # 2 (atanh(s)/s - 1) / s^2 in w = s^2 on [0, 1.02 (3 - 2 sqrt 2)^2]
    erf_small: tuple  # erf(x) / x in w = x^2 on [0, erf_split^2]
    erfc_scaled: tuple  # erfc(x) exp(x^2) in u = x - erf_center on the large piece
    sin: tuple  # (sin(r) - r) / r^3 in w = r^2 on [0, (1.02 pi/4)^2]
    cos: tuple  # (cos(r) - 1 + w/2) / w^2 likewise


_FLOAT = _Format(
    suffix="f", bits=32, mantissa_bits=23, bias=127, min_normal=2.0**-126,
    sqrt_half_bits=0x3F3504F3, exp_lo=-104.0, exp_hi=89.0, expm1_lo=-20.0,
    tanh_one=9.0, erf_split=1.0, erf_center=2.5, erf_one=4.0,
    tanh_rational=(
        (-8.488396797574917e-14, 5.277898615740399e-11, -2.0225289446354825e-08,
         1.1154364285322497e-05, 0.0031039644048152498, 0.1308401844596674, 0.9999999934899868),
        (0.0002546155362773109, 0.0244952141009396, 0.4641734559766359, 1.0)),
    ln2=(0.693145751953125, 1.428606765330187e-06),
    expm1_r2=(0.0013930003624409437, 0.0083662373945117, 0.041666530072689056,
              0.16666558384895325, 0.5),
    log_atanh=(0.2960069179534912, 0.3998831808567047, 0.6666668653488159),
    erf_small=(7.875874871388078e-05, -0.000801686430349946, 0.005189087241888046,
               -0.02685421146452427, 0.11283594369888306, -0.3761262595653534,
               1.1283791065216064),
    erfc_scaled=(1.6118907524287351e-06, -6.377862064255169e-06, 1.4689557247038465e-05,
                 -5.362729280022904e-05, 0.00021231356367934495, -0.0007389278616756201,
                 0.0024665086530148983, -0.007999388501048088, 0.024938056245446205,
                 -0.0743475928902626, 0.21080636978149414),
    sin=(-0.00019577721832320094, 0.008332700468599796, -0.166666641831398),
    cos=(2.4537750505260192e-05, -0.0013888254761695862, 0.0416666641831398),
)

_DOUBLE = _Format(
    suffix="", bits=64, mantissa_bits=52, bias=1023, min_normal=2.0**-1022,
    sqrt_half_bits=0x3FE6A09E667F3BCD, exp_lo=-746.0, exp_hi=710.0, expm1_lo=-40.0,
    tanh_one=20.0, tanh_rational=None, erf_split=2.0, erf_center=4.0, erf_one=6.0,
    ln2=(0.6931471803691238, 1.9082149292705877e-10),
    expm1_r2=(2.0918570175887667e-09, 2.5110654925801775e-08, 2.755726383574471e-07,
              2.7557241666312034e-06, 2.480158733368155e-05, 0.00019841269886210894,
              0.00138888888888813, 0.008333333333322705, 0.04166666666666667,
              0.16666666666666674, 0.5),
    log_atanh=(0.14643628601909797, 0.15329500754204178, 0.18182956608063458,
               0.2222221019926421, 0.28571428631764334, 0.39999999999886615,
               0.666666666666667),
    erf_small=(2.619882931797671e-16, -1.290558908799701e-14, 3.3058796986101817e-13,
               -6.060071346338324e-12, 9.151576260509744e-11, -1.2205905837961665e-09,
               1.478725591131933e-08, -1.6362302229665498e-07, 1.6461642709130725e-06,
               -1.4925603960432574e-05, 0.00012055329686329773, -0.0008548326860291486,
               0.005223977620103297, -0.026866170644069265, 0.11283791670943988,
               -0.3761263890318329, 1.1283791670955126),
    erfc_scaled=(2.1830835516692716e-15, -1.2824550706745645e-14, 2.8685971668604395e-14,
                 -1.5906241385267505e-13, 1.2818355886604976e-12, -7.101452640130638e-12,
                 3.677219389729326e-11, -1.9759535348719885e-10, 1.0534242533473726e-09,
                 -5.50540722192864e-09, 2.833155769820526e-08, -1.4359391735885837e-07,
                 7.16045976819351e-07, -3.5103685220091016e-06, 1.690564913094474e-05,
                 -7.990887954492257e-05, 0.00037035246901912715, -0.0016811820768874804,
                 0.0074654332449742835, -0.03238350609501373, 0.13699945762506138),
    sin=(1.5912461499839467e-10, -2.505105158684691e-08, 2.7557315709635293e-06,
         -0.00019841269835985584, 0.008333333333330428, -0.16666666666666663),
    cos=(-1.1379086634729478e-11, 2.0876096058995368e-09, -2.755731702592346e-07,
         2.4801587298282115e-05, -0.001388888888888707, 0.041666666666666664),
)

_LOG2E = 1.4426950408889634
_FOUR_OVER_PI = 1.2732395447351628
_SINCOS_LIMIT = 2.0**29  # octant index stays in int32 below this
# pi/4 = p1 + p2 + p3 (double); p1, p2 have 24 bits, so j * p is exact for j < 2**29
_PIO4_PARTS = (0.7853981256484985, 3.774894707930798e-08, 2.6951514290790595e-15)
_INF = math.inf
_NAN = math.nan


def _format(ty: ir.Type) -> _Format:
    if isinstance(ty, ir.FloatType):
        return _FLOAT
    if isinstance(ty, ir.DoubleType):
        return _DOUBLE
    raise TypeError(f"math functions take float or double values, not {ty}")


class _Emitter:
    """Instruction helpers for one function body; Python numbers become constants."""

    def __init__(self, builder: ir.IRBuilder, ty: ir.Type):
        self.b = builder
        self.ty = ty
        self.f = _format(ty)
        self.ity = ir.IntType(self.f.bits)

    # values
    def val(self, v):
        return ir.Constant(self.ty, float(v)) if isinstance(v, (int, float)) else v

    def ival(self, v):
        return ir.Constant(self.ity, v) if isinstance(v, int) else v

    # float arithmetic (contract lets LLVM fuse a multiply and an add into an FMA)
    def add(self, a, b):
        return self.b.fadd(self.val(a), self.val(b), flags=_CONTRACT)

    def sub(self, a, b):
        return self.b.fsub(self.val(a), self.val(b), flags=_CONTRACT)

    def mul(self, a, b):
        return self.b.fmul(self.val(a), self.val(b), flags=_CONTRACT)

    def div(self, a, b):
        return self.b.fdiv(self.val(a), self.val(b))

    def neg(self, a):
        return self.b.fneg(a)

    def poly(self, x, coeffs):
        """Horner's rule, highest degree first."""
        acc = self.val(coeffs[0])
        for c in coeffs[1:]:
            acc = self.add(self.mul(acc, x), c)
        return acc

    def fabs(self, a):
        return self.b.call(self.b.module.declare_intrinsic("llvm.fabs", [self.ty]), [a])

    # comparisons: ordered ones are false for NaN, so a select on them lets NaN through
    def lt(self, a, b):
        return self.b.fcmp_ordered("<", self.val(a), self.val(b))

    def gt(self, a, b):
        return self.b.fcmp_ordered(">", self.val(a), self.val(b))

    def ge(self, a, b):
        return self.b.fcmp_ordered(">=", self.val(a), self.val(b))

    def eq(self, a, b):
        return self.b.fcmp_ordered("==", self.val(a), self.val(b))

    def select(self, cond, a, b):
        return self.b.select(cond, self.val(a), self.val(b))

    def clamp(self, x, lo, hi):
        """min(max(x, lo), hi) that returns NaN for NaN."""
        return self.select(self.lt(x, lo), lo, self.select(self.gt(x, hi), hi, x))

    # bit-level access
    def bits(self, a):
        return self.b.bitcast(a, self.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def copysign_of(self, magnitude, sign_source):
        """magnitude (>= 0 or NaN) with the sign bit of sign_source."""
        sign = self.b.and_(self.bits(sign_source), self.ival(-(1 << (self.f.bits - 1))))
        return self.from_bits(self.b.or_(self.bits(magnitude), sign))

    def round_to_int(self, v):
        """(n as int, n as float) with n = v rounded to nearest, for |v| < 2**(mantissa-1)."""
        shifter = 1.5 * 2.0**self.f.mantissa_bits
        t = self.add(v, shifter)
        n_float = self.sub(t, shifter)
        n_int = self.b.sub(self.bits(t), self.bits(self.val(shifter)))
        return n_int, n_float

    def pow2(self, k):
        """2**k for an integer k in the normal exponent range."""
        biased = self.b.add(k, self.ival(self.f.bias))
        return self.from_bits(self.b.shl(biased, self.ival(self.f.mantissa_bits)))

    def ldexp(self, p, n):
        """p * 2**n in two exact steps, so results reaching overflow or the
        subnormal range are rounded once."""
        n1 = self.b.ashr(n, self.ival(1))
        n2 = self.b.sub(n, n1)
        return self.b.fmul(self.b.fmul(p, self.pow2(n1)), self.pow2(n2))

    def to_float(self, i32):
        return self.b.sitofp(i32, self.ty)

    def call(self, name, *args):
        return math_call(self.b, name, [self.val(a) for a in args])


# ---------------------------------------------------------------- function bodies

def _exp(m: _Emitter, x):
    f = m.f
    x = m.clamp(x, f.exp_lo, f.exp_hi)
    n, nf = m.round_to_int(m.mul(x, _LOG2E))
    r = m.sub(m.sub(x, m.mul(nf, f.ln2[0])), m.mul(nf, f.ln2[1]))
    p = m.add(m.add(r, m.mul(m.mul(r, r), m.poly(r, f.expm1_r2))), 1.0)
    return m.ldexp(p, n)


def _expm1(m: _Emitter, x):
    f = m.f
    xc = m.clamp(x, f.expm1_lo, f.exp_hi)
    n, nf = m.round_to_int(m.mul(xc, _LOG2E))
    r = m.sub(m.sub(xc, m.mul(nf, f.ln2[0])), m.mul(nf, f.ln2[1]))
    p = m.add(r, m.mul(m.mul(r, r), m.poly(r, f.expm1_r2)))
    scaled = m.sub(m.ldexp(m.add(p, 1.0), n), 1.0)
    result = m.select(m.b.icmp_signed("==", n, m.ival(0)), p, scaled)
    return m.select(m.eq(x, 0.0), x, result)  # keeps the sign of -0.0


def _log(m: _Emitter, x):
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


def _log1p(m: _Emitter, u):
    y = m.add(u, 1.0)
    log_y = m.call("log", y)
    # y = 1 + u rounded; the rounding error, divided by y, corrects log(y)
    correction = m.div(m.sub(u, m.sub(y, 1.0)), y)
    result = m.select(m.lt(m.fabs(u), 1.0), m.add(log_y, correction), log_y)
    return m.select(m.eq(u, 0.0), u, result)


def _tanh(m: _Emitter, x):
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


def _sigmoid(m: _Emitter, x):
    e = m.call("exp", m.neg(m.fabs(x)))  # never overflows
    numerator = m.select(m.ge(x, 0.0), 1.0, e)  # NaN takes e = NaN
    return m.div(numerator, m.add(e, 1.0))


def _softplus(m: _Emitter, x):
    u = m.call("exp", m.neg(m.fabs(x)))  # in [0, 1]
    y = m.add(u, 1.0)
    log1p_u = m.add(m.call("log", y), m.div(m.sub(u, m.sub(y, 1.0)), y))
    return m.add(m.select(m.gt(x, 0.0), x, 0.0), log1p_u)


def _erf(m: _Emitter, x):
    f = m.f
    ax = m.fabs(x)
    x2 = m.mul(ax, ax)
    small = m.mul(ax, m.poly(x2, f.erf_small))
    erfc = m.mul(m.call("exp", m.neg(x2)), m.poly(m.sub(ax, f.erf_center), f.erfc_scaled))
    t = m.select(m.lt(ax, f.erf_split), small, m.sub(1.0, erfc))
    t = m.select(m.gt(ax, f.erf_one), 1.0, t)
    return m.copysign_of(t, x)


def _octant(m: _Emitter, x):
    """|x| = j pi/4 + r with j even, |r| <= pi/4: returns (j/2 mod 4, sin r, cos r).

    The reduction runs in double for both types: a float reduction picks the
    wrong octant once |x| * 4/pi has no fractional bits (|x| > ~1e6).
    """
    i32 = ir.IntType(32)
    double = ir.DoubleType()
    ax = m.fabs(x)
    ax = m.select(m.lt(ax, _SINCOS_LIMIT), ax, 0.0)  # the caller returns NaN beyond
    axd = ax if m.f.bits == 64 else m.b.fpext(ax, double)
    d = _Emitter(m.b, double)
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


def _flip_sign(m: _Emitter, v, flip_i1, extra_sign_bits=None):
    sign = m.b.shl(m.b.zext(flip_i1, m.ity), m.ival(m.f.bits - 1))
    if extra_sign_bits is not None:
        sign = m.b.xor(sign, extra_sign_bits)
    return m.from_bits(m.b.xor(m.bits(v), sign))


def _finite_or_nan(m: _Emitter, x, value):
    """NaN for inf, NaN, and |x| >= 2**29 where the reduction has no bits left."""
    return m.select(m.lt(m.fabs(x), _SINCOS_LIMIT), value, _NAN)


def _sin(m: _Emitter, x):
    i32 = ir.IntType(32)
    q, sin_r, cos_r = _octant(m, x)
    odd = m.b.trunc(q, ir.IntType(1))
    value = m.select(odd, cos_r, sin_r)
    negate = m.b.icmp_unsigned("!=", m.b.and_(q, ir.Constant(i32, 2)), ir.Constant(i32, 0))
    x_sign = m.b.and_(m.bits(x), m.ival(-(1 << (m.f.bits - 1))))
    return _finite_or_nan(m, x, _flip_sign(m, value, negate, x_sign))


def _cos(m: _Emitter, x):
    i32 = ir.IntType(32)
    q, sin_r, cos_r = _octant(m, x)
    odd = m.b.trunc(q, ir.IntType(1))
    value = m.select(odd, sin_r, cos_r)
    shifted = m.b.add(q, ir.Constant(i32, 1))
    negate = m.b.icmp_unsigned("!=", m.b.and_(shifted, ir.Constant(i32, 2)), ir.Constant(i32, 0))
    return _finite_or_nan(m, x, _flip_sign(m, value, negate))


def _pow(m: _Emitter, a, b):
    """a**b as C's pow: exp(b log|a|) with the sign and special-case rules."""
    floor = m.b.module.declare_intrinsic("llvm.floor", [m.ty])
    magnitude_base = m.fabs(a)
    if m.f.bits == 32:  # through double: float results then round correctly
        double = ir.DoubleType()
        log_a = math_call(m.b, "log", [m.b.fpext(magnitude_base, double)])
        product = m.b.fmul(m.b.fpext(b, double), log_a)
        magnitude = m.b.fptrunc(math_call(m.b, "exp", [product]), m.ty)
    else:
        magnitude = m.call("exp", m.mul(b, m.call("log", magnitude_base)))
    magnitude = m.select(m.eq(magnitude_base, 1.0), 1.0, magnitude)
    is_int = m.eq(m.b.call(floor, [b]), b)
    half = m.mul(b, 0.5)
    is_odd = m.b.and_(is_int, m.b.fcmp_ordered("!=", m.b.call(floor, [half]), half))
    negative_base = m.b.icmp_signed("<", m.bits(a), m.ival(0))
    result = _flip_sign(m, magnitude, m.b.and_(negative_base, is_odd))
    finite_negative = m.b.and_(m.lt(a, 0.0), m.gt(a, -_INF))
    result = m.select(m.b.and_(finite_negative, m.b.not_(is_int)), _NAN, result)
    result = m.select(m.eq(b, 0.0), 1.0, result)
    return m.select(m.eq(a, 1.0), 1.0, result)


# ---------------------------------------------------------------- functions computed in double
#
# The functions below run their algorithm in double for both types: a float
# argument is extended, the double result rounded once (error ~0.5 ulp in
# float, at half the vector width). Each takes an _Emitter over double.

_DOUBLE_TYPE = ir.DoubleType()
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
_LN2 = 0.6931471805599453
_HYPERBOLIC_EXP = 22.0  # sinh, cosh: exp(-|x|) is below half an ulp of exp(|x|) beyond this
_HYPERBOLIC_SPLIT = 700.0  # beyond: exp(|x|/2)^2 / 2, as exp(|x|) alone would overflow first
_ASINH_LARGE = 2.0**28  # asinh, acosh: log(2|x|) beyond


def _in_double(body):
    """A function computed by `body(double emitter, *args)` for both types."""
    def lower(m: _Emitter, *args):
        if m.f.bits == 64:
            return body(m, *args)
        d = _Emitter(m.b, _DOUBLE_TYPE)
        return m.b.fptrunc(body(d, *[m.b.fpext(a, _DOUBLE_TYPE) for a in args]), m.ty)
    lower.__name__ = body.__name__
    lower.__doc__ = body.__doc__
    return lower


def _atan_positive(m: _Emitter, ax):
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


@_in_double
def _atan(m: _Emitter, x):
    return m.copysign_of(_atan_positive(m, m.fabs(x)), x)


@_in_double
def _atan2(m: _Emitter, y, x):
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


@_in_double
def _asin(m: _Emitter, x):
    """atan2(x, sqrt((1 - x)(1 + x))); NaN beyond |x| = 1."""
    root = m.call("sqrt", m.mul(m.sub(1.0, x), m.add(1.0, x)))
    return m.call("atan2", x, root)


@_in_double
def _acos(m: _Emitter, x):
    root = m.call("sqrt", m.mul(m.sub(1.0, x), m.add(1.0, x)))
    return m.call("atan2", root, x)


@_in_double
def _tan(m: _Emitter, x):
    """sin r / cos r, or -cos r / sin r in odd quadrants (the sin/cos reduction)."""
    q, sin_r, cos_r = _octant(m, x)
    odd = m.b.trunc(q, ir.IntType(1))
    value = m.div(m.select(odd, m.neg(cos_r), sin_r), m.select(odd, sin_r, cos_r))
    return _finite_or_nan(m, x, m.copysign_of(m.fabs(value), m.b.fmul(x, value)))


@_in_double
def _sinh(m: _Emitter, x):
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


@_in_double
def _cosh(m: _Emitter, x):
    ax = m.fabs(x)
    e = m.call("exp", ax)
    result = m.add(m.mul(e, 0.5), m.div(0.5, e))
    half = m.call("exp", m.mul(ax, 0.5))
    return m.select(m.ge(ax, _HYPERBOLIC_SPLIT), m.mul(m.mul(half, 0.5), half), result)


@_in_double
def _asinh(m: _Emitter, x):
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


@_in_double
def _acosh(m: _Emitter, x):
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


@_in_double
def _atanh(m: _Emitter, x):
    """fdlibm: log1p(2|x| + 2|x|^2 / (1 - |x|)) / 2 below 1/2, log1p(2|x| / (1 - |x|)) / 2 above."""
    ax = m.fabs(x)
    twice = m.add(ax, ax)
    one_minus = m.sub(1.0, ax)
    small = m.add(twice, m.div(m.mul(twice, ax), one_minus))
    large = m.div(twice, one_minus)
    result = m.mul(m.call("log1p", m.select(m.lt(ax, 0.5), small, large)), 0.5)
    return m.copysign_of(result, x)


# ---------------------------------------------------------------- fmod, remainder, floor division

_FMOD_CHUNK = 52  # quotient bits removed per step: q < 2**53 is exact, so a - q b is exact
_FMOD_FLOAT_STEPS = 7  # float exponents differ by at most 277: 6 steps of 52 bits, and one
_FMOD_DOUBLE_STEPS = 45  # double exponents differ by at most 2097


def _exponent(m: _Emitter, v):
    """floor(log2(v)) as an integer for v > 0, subnormals included."""
    f = m.f
    subnormal = m.lt(v, f.min_normal)
    scale = f.mantissa_bits + 2
    scaled = m.select(subnormal, m.mul(v, 2.0**scale), v)
    field = m.b.lshr(m.bits(scaled), m.ival(f.mantissa_bits))
    offset = m.b.select(subnormal, m.ival(f.bias + scale), m.ival(f.bias))
    return m.b.sub(field, offset)


def _fmod_step(m: _Emitter, r, b, b_exponent):
    """r mod (b 2**s) with s = max(0, exponent(r) - exponent(b) - 52), exactly:
    q = trunc(r / (b 2**s)) < 2**53 is exact or one too large (the division rounds
    monotonically), so r - q b 2**s is a multiple of b's ulp below b 2**s in magnitude."""
    shift = m.b.sub(m.b.sub(_exponent(m, r), b_exponent), m.ival(_FMOD_CHUNK))
    shift = m.b.select(m.b.icmp_signed(">", shift, m.ival(0)), shift, m.ival(0))
    scaled_b = m.ldexp(b, shift)
    trunc = m.b.module.declare_intrinsic("llvm.trunc", [m.ty])
    fma = m.b.module.declare_intrinsic("llvm.fma", [m.ty], ir.FunctionType(m.ty, [m.ty] * 3))
    q = m.b.call(trunc, [m.div(r, scaled_b)])
    rest = m.b.call(fma, [m.neg(q), scaled_b, r])
    return m.select(m.lt(rest, 0.0), m.add(rest, scaled_b), rest)


def _fmod_magnitude_loop(m: _Emitter, ar, ab, b_exponent):
    """Repeats the step while the remainder is at least |b| (double: up to 45 times)."""
    builder = m.b
    function = builder.function
    entry = builder.block
    loop = function.append_basic_block("fmod.loop")
    done = function.append_basic_block("fmod.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    r = builder.phi(m.ty)
    count = builder.phi(ir.IntType(32))
    r.add_incoming(ar, entry)
    count.add_incoming(ir.Constant(ir.IntType(32), 0), entry)
    following = _fmod_step(m, r, ab, b_exponent)
    next_count = builder.add(count, ir.Constant(ir.IntType(32), 1))
    more = builder.and_(m.ge(following, ab),
                        builder.icmp_signed("<", next_count, ir.Constant(ir.IntType(32), _FMOD_DOUBLE_STEPS)))
    r.add_incoming(following, builder.block)
    count.add_incoming(next_count, builder.block)
    builder.cbranch(more, loop, done)
    builder.position_at_end(done)
    return following


@_in_double
def _fmod(m: _Emitter, a, b):
    """C's fmod (the sign of a), exact. Float arguments (exponents within 277 of each
    other) take a fixed number of steps and vectorise; double ones loop until done."""
    aa, ab = m.fabs(a), m.fabs(b)
    b_exponent = _exponent(m, ab)
    if getattr(m, "float_range", False):
        r = aa
        for _ in range(_FMOD_FLOAT_STEPS):
            r = _fmod_step(m, r, ab, b_exponent)
    else:
        r = _fmod_magnitude_loop(m, aa, ab, b_exponent)
    result = m.copysign_of(r, a)
    result = m.select(m.lt(aa, ab), a, result)  # also |b| = inf with a finite
    invalid = m.b.or_(m.b.or_(m.eq(ab, 0.0), m.eq(aa, _INF)), m.b.fcmp_unordered("uno", a, b))
    return m.select(invalid, _NAN, result)


def _fmod_any(m: _Emitter, a, b):
    if m.f.bits == 64:
        return _fmod(m, a, b)
    d = _Emitter(m.b, _DOUBLE_TYPE)
    d.float_range = True
    return m.b.fptrunc(_fmod(d, m.b.fpext(a, _DOUBLE_TYPE), m.b.fpext(b, _DOUBLE_TYPE)), m.ty)


def _divmod(m: _Emitter, a, b):
    """(floor(a / b), a - b floor(a / b)) as NumPy's npy_divmod computes them."""
    floor = m.b.module.declare_intrinsic("llvm.floor", [m.ty])
    mod = m.call("fmod", a, b)
    div = m.div(m.sub(a, mod), b)
    adjust = m.b.and_(m.b.fcmp_ordered("!=", mod, m.val(0.0)), m.b.xor(m.lt(b, 0.0), m.lt(mod, 0.0)))
    mod = m.select(adjust, m.add(mod, b), mod)
    div = m.select(adjust, m.sub(div, 1.0), div)
    mod = m.select(m.eq(mod, 0.0), m.copysign_of(m.val(0.0), b), mod)
    whole = m.b.call(floor, [div])
    whole = m.select(m.gt(m.sub(div, whole), 0.5), m.add(whole, 1.0), whole)
    quotient = m.div(a, b)
    whole = m.select(m.eq(div, 0.0), m.copysign_of(m.val(0.0), quotient), whole)
    whole = m.select(m.eq(b, 0.0), quotient, whole)
    return whole, mod


def _remainder(m: _Emitter, a, b):
    """a mod b with the sign of b (Python's and NumPy's %)."""
    return _divmod(m, a, b)[1]


def _floor_divide(m: _Emitter, a, b):
    """floor(a / b) as NumPy and PyTorch compute it (a - fmod(a, b), divided exactly)."""
    return _divmod(m, a, b)[0]


FUNCTIONS = {
    "exp": _exp,
    "expm1": _expm1,
    "log": _log,
    "log1p": _log1p,
    "tanh": _tanh,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "erf": _erf,
    "sin": _sin,
    "cos": _cos,
    "pow": _pow,
    "tan": _tan,
    "atan": _atan,
    "atan2": _atan2,
    "asin": _asin,
    "acos": _acos,
    "sinh": _sinh,
    "cosh": _cosh,
    "asinh": _asinh,
    "acosh": _acosh,
    "atanh": _atanh,
    "fmod": _fmod_any,
    "remainder": _remainder,
    "floor_divide": _floor_divide,
    "sqrt": None,  # the llvm.sqrt intrinsic
}
"""Every name math_call accepts."""

BINARY = frozenset({"pow", "atan2", "fmod", "remainder", "floor_divide"})
"""The functions of two arguments (atan2 takes y, x); the others take one."""


def math_call(builder: ir.IRBuilder, name: str, args: list) -> ir.Value:
    """Emit a call of math function `name` on `args` (all float or all double).

    The function is defined in the builder's module on first use; it is inlined
    by the optimiser, so the call costs nothing and the loop vectorises.
    """
    if name not in FUNCTIONS:
        raise ValueError(f"unknown math function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
    ty = args[0].type
    if any(arg.type != ty for arg in args):
        raise TypeError(f"{name}: arguments of mixed types {[str(a.type) for a in args]}")
    module = builder.module
    if name == "sqrt":
        _format(ty)
        return builder.call(module.declare_intrinsic("llvm.sqrt", [ty]), args)
    return builder.call(_define(module, name, ty, len(args)), args)


def _define(module: ir.Module, name: str, ty: ir.Type, arity: int) -> ir.Function:
    symbol = f"symprop.{name}{_format(ty).suffix}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * arity), name=symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    builder.ret(FUNCTIONS[name](_Emitter(builder, ty), *fn.args))
    return fn
