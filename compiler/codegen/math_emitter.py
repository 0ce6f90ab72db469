"""The instruction helpers every IR math function body is written with.

A body (codegen/math_exp_log.py, math_trig.py, ...) takes an `Emitter` over
float or double and its arguments, and builds branch-free IR through it:
Python numbers become constants, arithmetic carries the `contract` flag so
LLVM may fuse multiply-adds, comparisons are ordered so a `select` on them lets
NaN through, and bit-level helpers build powers of two and copy signs.
`in_double` runs a body in double for both types.
"""
from __future__ import annotations

import llvmlite.ir as ir

from .math_formats import float_format

_CONTRACT = ("contract",)
DOUBLE_TYPE = ir.DoubleType()


class Emitter:
    """Instruction helpers for one function body; Python numbers become constants."""

    def __init__(self, builder: ir.IRBuilder, ty: ir.Type):
        self.b = builder
        self.ty = ty
        self.f = float_format(ty)
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

    def flip_sign(self, v, flip_i1, extra_sign_bits=None):
        """v with its sign bit flipped where flip_i1 is set (and xor-ed with extra_sign_bits)."""
        sign = self.b.shl(self.b.zext(flip_i1, self.ity), self.ival(self.f.bits - 1))
        if extra_sign_bits is not None:
            sign = self.b.xor(sign, extra_sign_bits)
        return self.from_bits(self.b.xor(self.bits(v), sign))

    def call(self, name, *args):
        """A call of another math function (mathlib imports the bodies, so it is imported here)."""
        from .mathlib import math_call
        return math_call(self.b, name, [self.val(a) for a in args])


def in_double(body):
    """A function computed by `body(double emitter, *args)` for both types."""
    def lower(m: Emitter, *args):
        if m.f.bits == 64:
            return body(m, *args)
        d = Emitter(m.b, DOUBLE_TYPE)
        return m.b.fptrunc(body(d, *[m.b.fpext(a, DOUBLE_TYPE) for a in args]), m.ty)
    lower.__name__ = body.__name__
    lower.__doc__ = body.__doc__
    return lower
