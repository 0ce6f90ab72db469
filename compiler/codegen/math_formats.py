"""Bit layouts and polynomial coefficients of float and double, for the IR math functions.

Every function body in codegen/math_*.py is written once for both types; what
differs between them -- exponent bias, overflow thresholds, the coefficients
of each fit -- is a field of the `Format` the emitter picks from the value
type. Coefficients are Chebyshev interpolants computed with `mpmath.chebyfit`
(50 digits) on the stated interval; the float tanh rational comes from
Loeb/Lawson iterated least squares in mpmath (relative error 7e-9 before
rounding); all are rounded to the target precision.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

@dataclass(frozen=True)
class Format:
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


FLOAT = Format(
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

DOUBLE = Format(
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


def float_format(ty: ir.Type) -> Format:
    if isinstance(ty, ir.FloatType):
        return FLOAT
    if isinstance(ty, ir.DoubleType):
        return DOUBLE
    raise TypeError(f"math functions take float or double values, not {ty}")
