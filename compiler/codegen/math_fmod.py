"""fmod, remainder and floor_divide, exact and equal to NumPy's bit for bit.

fmod has no libm call (MCJIT does not resolve it): steps of
q = trunc(r / (b 2**s)) < 2**53 and r - q b 2**s by one FMA, which is exact
since the quotient is exact or one too large. Float arguments take 7 unrolled
steps in double and vectorise; double ones loop until the remainder is below
|b| (up to 45 steps for 1e308 mod 5e-324), which keeps such loops scalar.
remainder (the sign of b) and floor_divide follow NumPy's npy_divmod on it,
signs of zero included.
"""
from __future__ import annotations

import math

import llvmlite.ir as ir

from .math_emitter import DOUBLE_TYPE, Emitter, in_double

_FMOD_CHUNK = 52  # quotient bits removed per step: q < 2**53 is exact, so a - q b is exact
_FMOD_FLOAT_STEPS = 7  # float exponents differ by at most 277: 6 steps of 52 bits, and one
_FMOD_DOUBLE_STEPS = 45  # double exponents differ by at most 2097
_INF = math.inf
_NAN = math.nan


def _exponent(m: Emitter, v):
    """floor(log2(v)) as an integer for v > 0, subnormals included."""
    f = m.f
    subnormal = m.lt(v, f.min_normal)
    scale = f.mantissa_bits + 2
    scaled = m.select(subnormal, m.mul(v, 2.0**scale), v)
    field = m.b.lshr(m.bits(scaled), m.ival(f.mantissa_bits))
    offset = m.b.select(subnormal, m.ival(f.bias + scale), m.ival(f.bias))
    return m.b.sub(field, offset)


def _fmod_step(m: Emitter, r, b, b_exponent):
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


def _fmod_magnitude_loop(m: Emitter, ar, ab, b_exponent):
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


@in_double
def _fmod_double(m: Emitter, a, b):
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


def fmod(m: Emitter, a, b):
    if m.f.bits == 64:
        return _fmod_double(m, a, b)
    d = Emitter(m.b, DOUBLE_TYPE)
    d.float_range = True
    return m.b.fptrunc(_fmod_double(d, m.b.fpext(a, DOUBLE_TYPE), m.b.fpext(b, DOUBLE_TYPE)), m.ty)


def _divmod(m: Emitter, a, b):
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


def remainder(m: Emitter, a, b):
    """a mod b with the sign of b (Python's and NumPy's %)."""
    return _divmod(m, a, b)[1]


def floor_divide(m: Emitter, a, b):
    """floor(a / b) as NumPy and PyTorch compute it (a - fmod(a, b), divided exactly)."""
    return _divmod(m, a, b)[0]
