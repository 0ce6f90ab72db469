"""Vectorisable math functions written in LLVM IR: the table of functions and `math_call`.

A scalar libm call (`expf`, `tanhf`) inside a loop stops LLVM's loop
vectoriser, and the `llvm.exp`/`llvm.tanh` intrinsics are split back into such
calls. So every transcendental a kernel needs is defined here in plain IR --
arithmetic, bitcasts, integer ops, `fcmp` and `select`, no branches, no calls
out of the module -- as an `internal`, `alwaysinline` function defined once per
module (`symprop.expf` for float, `symprop.exp` for double). After inlining,
the loop around a call vectorises like any arithmetic.

The bodies live by family, each module saying its methods: math_exp_log.py
(exp, expm1, log, log1p, pow, sigmoid, softplus, erf), math_hyperbolic.py,
math_trig.py, math_fmod.py (fmod, remainder, floor_divide); they are written
with the helpers of math_emitter.py over the constants of math_formats.py.

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
vector width): tan, atan, atan2, asin, acos, sinh, cosh, asinh, acosh, atanh.
Worst float64 error measured, in epsilon: tan 2.0, atan 1.0, asin 1.5,
acos 1.1, sinh 2.1, cosh 1.0, asinh 1.4, acosh 1.0, atanh 1.4 (tan next to its
poles: up to ~7, the 3-part pi/4 of the reduction against glibc's exact one).

fmod, remainder and floor_divide match NumPy bit for bit, signs of zero
included. The rounding functions are LLVM intrinsics (codegen/scalar.py).
"""
from __future__ import annotations

import llvmlite.ir as ir

from . import math_exp_log as exp_log
from . import math_fmod as fmod
from . import math_hyperbolic as hyperbolic
from . import math_trig as trig
from .math_emitter import Emitter
from .math_formats import float_format

__all__ = ["math_call", "FUNCTIONS", "BINARY"]

FUNCTIONS = {
    "exp": exp_log.exp,
    "expm1": exp_log.expm1,
    "log": exp_log.log,
    "log1p": exp_log.log1p,
    "tanh": hyperbolic.tanh,
    "sigmoid": exp_log.sigmoid,
    "softplus": exp_log.softplus,
    "erf": exp_log.erf,
    "sin": trig.sin,
    "cos": trig.cos,
    "pow": exp_log.power,
    "tan": trig.tan,
    "atan": trig.atan,
    "atan2": trig.atan2,
    "asin": trig.asin,
    "acos": trig.acos,
    "sinh": hyperbolic.sinh,
    "cosh": hyperbolic.cosh,
    "asinh": hyperbolic.asinh,
    "acosh": hyperbolic.acosh,
    "atanh": hyperbolic.atanh,
    "fmod": fmod.fmod,
    "remainder": fmod.remainder,
    "floor_divide": fmod.floor_divide,
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
        float_format(ty)
        return builder.call(module.declare_intrinsic("llvm.sqrt", [ty]), args)
    return builder.call(_define(module, name, ty, len(args)), args)


def _define(module: ir.Module, name: str, ty: ir.Type, arity: int) -> ir.Function:
    symbol = f"symprop.{name}{float_format(ty).suffix}"
    existing = module.globals.get(symbol)
    if existing is not None:
        return existing
    fn = ir.Function(module, ir.FunctionType(ty, [ty] * arity), name=symbol)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    fn.attributes.add("nounwind")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    builder.ret(FUNCTIONS[name](Emitter(builder, ty), *fn.args))
    return fn
