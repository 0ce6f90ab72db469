"""sympy scalar expressions -> LLVM IR: the body of an elementwise kernel.

A printer in the manner of sympy's own code printers: one method per node
type, memoised per node, so a subtree that occurs twice is emitted once. Every
value has the kernel's float type; conditions are `i1` and become 1.0 / 0.0
only where a number is needed.

NaN and infinities behave as the NumPy references in
compiler/scalar_functions.py: comparisons are ordered (NaN compares false)
except `!=`; Maximum / Minimum / Max / Min propagate NaN; Where tests `c != 0`,
so a NaN condition selects the first branch. The only fast-math flag is
`contract` on multiply and add (FMA fusion), which changes no NaN or infinity.

Documented differences from the lambdify reference: Relu(-inf) is 0 (the
reference `np.where(x > 0, x, 0 * x)` gives NaN there; Relu(NaN) is NaN in
both); Heaviside(NaN) is NaN as in `np.heaviside` (lambdify's select gives 1);
DiracDelta, which sympy leaves in second derivatives of Abs, Max or Heaviside,
is 0. A general power `x**y` is exp(y log|x|) with C's sign and special-case
rules (mathlib: float64 error ~|y log x| * 2**-53); integer powers up to 16
are multiplications, half-integer ones use sqrt.

Floor, Ceil, Trunc, Round (halfway to even) and Copysign are the LLVM
intrinsics `llvm.floor`, `llvm.ceil`, `llvm.trunc`, `llvm.roundeven`,
`llvm.copysign` (one instruction each with SSE4.1); sign gives +0 for -0. sympy's
zoo (a literal division by zero) is +inf, IEEE's 1/+0. `SUPPORTED` lists every
function this printer lowers; `compiler.ops.elementwise` checks a body against
it (`unsupported_functions`) when it is declared, so nothing fails here later.
"""
from __future__ import annotations

import functools

import sympy
from llvmlite import ir
from sympy.codegen.cfunctions import expm1, log1p
from sympy.logic.boolalg import Boolean, BooleanFalse, BooleanTrue

from .. import scalar_functions as sf
from .mathlib import math_call

__all__ = ["lower_expr", "lower_cse", "CSE_OPTIMIZATIONS", "SUPPORTED", "unsupported_functions"]

_CONTRACT = ("contract",)
_MAX_INTEGER_POWER = 16  # x**n by multiplication: error ~|n| ulp; larger |n| go through pow

CSE_OPTIMIZATIONS = None
"""`sympy.cse` optimizations used by lower_cse. Measured on GELU forward+backward,
an Adam update and swish derivatives: 'basic' took 3-9x longer (0.5-3 ms
against 0.1-0.4 ms per body) and changed the operation count by -10% to +13%."""


def lower_expr(builder: ir.IRBuilder, expr: sympy.Expr, env: dict, ty: ir.Type) -> ir.Value:
    """Emit `expr` at the builder's position; `env` maps each free symbol to a value of type `ty`."""
    return _Printer(builder, env, ty).value(sympy.sympify(expr))


def lower_cse(builder: ir.IRBuilder, exprs: list, env: dict, ty: ir.Type) -> list:
    """Emit several expressions sharing their common subexpressions (sympy.cse)."""
    replacements, reduced = _shared_subexpressions(tuple(sympy.sympify(e) for e in exprs))
    printer = _Printer(builder, env, ty)
    for symbol, subexpr in replacements:
        printer.bind(symbol, subexpr)
    return [printer.value(e) for e in reduced]


@functools.lru_cache(maxsize=1024)
def _shared_subexpressions(exprs: tuple) -> tuple:
    """sympy.cse of a kernel's bodies, once per distinct tuple of bodies (the layers of a deep
    network repeat them: a residual MLP's 23 loops have 11 distinct bodies)."""
    temporaries = sympy.numbered_symbols("cse", cls=sympy.Dummy)
    return sympy.cse(list(exprs), symbols=temporaries, optimizations=CSE_OPTIMIZATIONS, order="none")


_COMPARISONS = {  # predicate, ordered?  (NaN: ordered -> false, unordered != -> true)
    sf.Greater: (">", True), sympy.StrictGreaterThan: (">", True),
    sf.GreaterEqual: (">=", True), sympy.GreaterThan: (">=", True),
    sf.Less: ("<", True), sympy.StrictLessThan: ("<", True),
    sf.LessEqual: ("<=", True), sympy.LessThan: ("<=", True),
    sf.Equal: ("==", True), sympy.Equality: ("==", True),
    sf.NotEqual: ("!=", False), sympy.Unequality: ("!=", False),
}

_MATHLIB = {
    sympy.exp: "exp", sympy.log: "log", sympy.tanh: "tanh", sympy.sin: "sin", sympy.cos: "cos",
    sympy.erf: "erf", sf.Sigmoid: "sigmoid", sf.Softplus: "softplus", log1p: "log1p",
    expm1: "expm1", sympy.tan: "tan", sympy.asin: "asin", sympy.acos: "acos", sympy.atan: "atan",
    sympy.atan2: "atan2", sympy.sinh: "sinh", sympy.cosh: "cosh", sympy.asinh: "asinh",
    sympy.acosh: "acosh", sympy.atanh: "atanh", sf.FMod: "fmod", sf.Remainder: "remainder",
    sympy.Mod: "remainder", sf.FloorDivide: "floor_divide",
}

_INTRINSICS = {  # one LLVM instruction each on x86-64 with SSE4.1 (roundss/roundps and bit operations)
    sf.Floor: "llvm.floor", sympy.floor: "llvm.floor", sf.Ceil: "llvm.ceil", sympy.ceiling: "llvm.ceil",
    sf.Trunc: "llvm.trunc", sf.Round: "llvm.roundeven", sf.Copysign: "llvm.copysign",
}


class _Printer:
    def __init__(self, builder: ir.IRBuilder, env: dict, ty: ir.Type):
        if not isinstance(ty, (ir.FloatType, ir.DoubleType)):
            raise TypeError(f"scalar bodies are lowered to float or double, not {ty}")
        self.b = builder
        self.ty = ty
        self.env = dict(env)
        self.conditions = {}  # Boolean temporaries from cse, as i1
        self.memo = {}
        self.condition_memo = {}

    def bind(self, symbol, expr):
        if _is_condition(expr):
            self.conditions[symbol] = self.condition(expr)
        else:
            self.env[symbol] = self.value(expr)

    def const(self, v) -> ir.Constant:
        return ir.Constant(self.ty, float(v))

    # ---- values ----------------------------------------------------------------------------

    def value(self, expr) -> ir.Value:
        cached = self.memo.get(expr)
        if cached is None:
            cached = self.memo[expr] = self._value(expr)
        return cached

    def _value(self, expr) -> ir.Value:
        if isinstance(expr, sympy.Symbol):
            return self._symbol(expr)
        if _is_condition(expr) or type(expr) in _COMPARISONS:
            return self.b.uitofp(self.condition(expr), self.ty)
        constant = _constant_value(expr)
        if constant is not None:
            return self.const(constant)
        if expr.is_Add:
            return self._add(expr)
        if expr.is_Mul:
            return self._mul(expr)
        if expr.is_Pow:
            return self._pow(*expr.args)
        for cls in type(expr).__mro__:
            handler = _HANDLERS.get(cls)
            if handler is not None:
                return handler(self, *expr.args)
        raise NotImplementedError(
            f"cannot lower {type(expr).__name__} ({expr}) to LLVM IR; supported functions: "
            f"{', '.join(sorted(c.__name__ for c in _HANDLERS))}")

    def _symbol(self, symbol) -> ir.Value:
        if symbol in self.conditions:
            return self.b.uitofp(self.conditions[symbol], self.ty)
        try:
            value = self.env[symbol]
        except KeyError:
            known = ", ".join(sorted(map(str, self.env))) or "none"
            raise KeyError(f"symbol {symbol} has no value (known symbols: {known})") from None
        if value.type != self.ty:
            raise TypeError(f"symbol {symbol} is {value.type}, the body is computed in {self.ty}")
        return value

    def _add(self, expr) -> ir.Value:
        positive, negative = [], []
        for term in expr.args:
            coeff, rest = term.as_coeff_Mul()
            if coeff.is_negative:
                negative.append(self.value(-coeff * rest))
            else:
                positive.append(self.value(term))
        acc = positive[0] if positive else self.b.fneg(negative.pop(0))
        for term in positive[1:]:
            acc = self.b.fadd(acc, term, flags=_CONTRACT)
        for term in negative:
            acc = self.b.fsub(acc, term, flags=_CONTRACT)
        return acc

    def _mul(self, expr) -> ir.Value:
        coeff, factors = expr.as_coeff_mul()
        numerator, denominator = [], []
        for factor in factors:
            base, exponent = factor.as_base_exp()
            if exponent.is_Number and exponent.is_negative:
                denominator.append(self.value(base ** -exponent))
            else:
                numerator.append(self.value(factor))
        negate = coeff == -1
        if coeff != 1 and not negate:
            numerator.insert(0, self.const(coeff))
        if not numerator:
            numerator.append(self.const(-1.0 if negate else 1.0))
            negate = False
        acc = self._product(numerator)
        if denominator:
            acc = self.b.fdiv(acc, self._product(denominator))
        return self.b.fneg(acc) if negate else acc

    def _product(self, values) -> ir.Value:
        acc = values[0]
        for v in values[1:]:
            acc = self.b.fmul(acc, v, flags=_CONTRACT)
        return acc

    def _pow(self, base, exponent) -> ir.Value:
        if exponent.is_Number and exponent.is_finite:
            as_rational = sympy.Rational(exponent) if exponent.is_Float else exponent
            if as_rational.q == 1 and abs(as_rational.p) <= _MAX_INTEGER_POWER:
                return self._integer_power(self.value(base), int(as_rational.p))
            if as_rational.q == 2 and abs(as_rational.p) <= _MAX_INTEGER_POWER:
                root = math_call(self.b, "sqrt", [self.value(base)])
                return self._integer_power(root, int(as_rational.p))
        return self._general_power(self.value(base), self.value(exponent))

    def _general_power(self, x: ir.Value, y: ir.Value) -> ir.Value:
        """pow(x, y), exact where x and y >= 0 are integers and the result is below 2**53 (in float64;
        2**24 in float32): pow is within an ulp or two, so 7**2 came out 48.999999999999993 and
        an int64 map, stored truncated, 48. Such a result is an integer, and rounded to it."""
        b = self.b
        power = math_call(b, "pow", [x, y])
        rint = b.module.declare_intrinsic("llvm.rint", [self.ty])
        fabs = b.module.declare_intrinsic("llvm.fabs", [self.ty])
        nearest = b.call(rint, [power])
        exact = 2.0 ** (53 if self.ty == ir.DoubleType() else 24)
        integers = b.and_(b.fcmp_ordered("==", x, b.call(rint, [x])),
                          b.and_(b.fcmp_ordered("==", y, b.call(rint, [y])), b.fcmp_ordered(">=", y, self.const(0.0))))
        representable = b.fcmp_ordered("<", b.call(fabs, [power]), self.const(exact))
        return b.select(b.and_(integers, representable), nearest, power)

    def _integer_power(self, base: ir.Value, n: int) -> ir.Value:
        """base**n by squaring; a negative n divides 1 by base**|n| (as NumPy, x**0 is 1 for NaN too)."""
        if n == 0:
            return self.const(1.0)
        result, square, k = None, base, abs(n)
        while True:
            if k & 1:
                result = square if result is None else self.b.fmul(result, square, flags=_CONTRACT)
            k >>= 1
            if not k:
                break
            square = self.b.fmul(square, square, flags=_CONTRACT)
        return self.b.fdiv(self.const(1.0), result) if n < 0 else result

    # ---- conditions (i1) ---------------------------------------------------------------------

    def condition(self, expr) -> ir.Value:
        cached = self.condition_memo.get(expr)
        if cached is None:
            cached = self.condition_memo[expr] = self._condition(expr)
        return cached

    def _condition(self, expr) -> ir.Value:
        b = self.b
        if isinstance(expr, BooleanTrue):
            return ir.Constant(ir.IntType(1), 1)
        if isinstance(expr, BooleanFalse):
            return ir.Constant(ir.IntType(1), 0)
        if expr in self.conditions:
            return self.conditions[expr]
        comparison = _COMPARISONS.get(type(expr))
        if comparison is not None:
            predicate, ordered = comparison
            lhs, rhs = (self.value(arg) for arg in expr.args)
            compare = b.fcmp_ordered if ordered else b.fcmp_unordered
            return compare(predicate, lhs, rhs)
        if isinstance(expr, sympy.And):
            return functools.reduce(b.and_, [self.condition(a) for a in expr.args])
        if isinstance(expr, sympy.Or):
            return functools.reduce(b.or_, [self.condition(a) for a in expr.args])
        if isinstance(expr, sympy.Not):
            return b.not_(self.condition(expr.args[0]))
        if isinstance(expr, sympy.Xor):
            return functools.reduce(b.xor, [self.condition(a) for a in expr.args])
        if _is_condition(expr):
            raise NotImplementedError(f"cannot lower condition {type(expr).__name__} ({expr})")
        return b.fcmp_unordered("!=", self.value(expr), self.const(0.0))  # NaN counts as true

    # ---- functions ---------------------------------------------------------------------------

    def select(self, cond, a, b) -> ir.Value:
        return self.b.select(cond, a, b)

    def maximum(self, x, y) -> ir.Value:
        """x if x >= y else y; NaN if either is NaN (NumPy's maximum)."""
        picked = self.select(self.b.fcmp_ordered(">=", x, y), x, y)
        return self.select(self.b.fcmp_unordered("uno", x, y), self.b.fadd(x, y), picked)

    def minimum(self, x, y) -> ir.Value:
        picked = self.select(self.b.fcmp_ordered("<=", x, y), x, y)
        return self.select(self.b.fcmp_unordered("uno", x, y), self.b.fadd(x, y), picked)


def _is_condition(expr) -> bool:
    """A truth value (relational, And, true, ...); sympy's Symbol is a Boolean too, but a number here."""
    return isinstance(expr, Boolean) and not isinstance(expr, sympy.Expr)


def _constant_value(expr):
    """The float value of a constant subexpression (pi/2, sqrt(2), oo, nan), else None."""
    if expr.free_symbols:
        return None
    if expr is sympy.zoo:  # sympy's 1/0: IEEE's division by +0
        return float("inf")
    try:
        return float(expr)
    except (TypeError, ValueError, OverflowError):
        return None  # an opaque function of constants: lowered like any other call


def _mathlib(name):
    def lower(p: _Printer, *args):
        return math_call(p.b, name, [p.value(a) for a in args])
    return lower


def _intrinsic(name):
    def lower(p: _Printer, *args):
        function_type = ir.FunctionType(p.ty, [p.ty] * len(args))
        return p.b.call(p.b.module.declare_intrinsic(name, [p.ty], function_type), [p.value(a) for a in args])
    return lower


def _clip(p: _Printer, x, lo, hi):
    return p.minimum(p.maximum(p.value(x), p.value(lo)), p.value(hi))


def _abs(p: _Printer, x):
    return p.b.call(p.b.module.declare_intrinsic("llvm.fabs", [p.ty]), [p.value(x)])


def _sign(p: _Printer, x):
    """1, -1, +0 for +-0, NaN for NaN (NumPy's sign)."""
    v = p.value(x)
    zero_or_nan = p.b.fadd(v, p.const(0.0))  # -0 + 0 is +0
    negative = p.select(p.b.fcmp_ordered("<", v, p.const(0.0)), p.const(-1.0), zero_or_nan)
    return p.select(p.b.fcmp_ordered(">", v, p.const(0.0)), p.const(1.0), negative)


def _step(p: _Printer, x):
    return p.b.uitofp(p.b.fcmp_ordered(">", p.value(x), p.const(0.0)), p.ty)


def _relu(p: _Printer, x):
    """x for x > 0 and for NaN, else 0."""
    v = p.value(x)
    return p.select(p.b.fcmp_ordered("<=", v, p.const(0.0)), p.const(0.0), v)


def _where(p: _Printer, c, a, b):
    return p.select(p.condition(c), p.value(a), p.value(b))


def _maximum(p: _Printer, *args):
    return functools.reduce(p.maximum, [p.value(a) for a in args])


def _minimum(p: _Printer, *args):
    return functools.reduce(p.minimum, [p.value(a) for a in args])


def _heaviside(p: _Printer, x, h0=sympy.S.Half):
    """1 for x > 0, 0 for x < 0, h0 at 0, NaN for NaN (NumPy's heaviside)."""
    v = p.value(x)
    step = p.select(p.b.fcmp_ordered(">", v, p.const(0.0)), p.const(1.0), p.const(0.0))
    step = p.select(p.b.fcmp_ordered("==", v, p.const(0.0)), p.value(h0), step)
    return p.select(p.b.fcmp_unordered("uno", v, v), v, step)


def _dirac_delta(p: _Printer, x, *order):
    """0 (NaN for NaN): second derivatives of Abs, Heaviside, Max take 0 at the
    kink, the convention compiler.scalar_functions uses for first derivatives."""
    v = p.value(x)
    return p.select(p.b.fcmp_unordered("uno", v, v), v, p.const(0.0))


def _piecewise(p: _Printer, *pieces):
    """Nested selects, last piece innermost; NaN where no condition holds (as lambdify)."""
    result = p.const(float("nan"))
    for value, cond in reversed(pieces):
        if cond == sympy.true:
            result = p.value(value)
        else:
            result = p.select(p.condition(cond), p.value(value), result)
    return result


_HANDLERS = {
    **{cls: _mathlib(name) for cls, name in _MATHLIB.items()},
    **{cls: _intrinsic(name) for cls, name in _INTRINSICS.items()},
    sf.Clip: _clip,
    sympy.Abs: _abs,
    sympy.sign: _sign,
    sf.Step: _step,
    sf.Relu: _relu,
    sf.Where: _where,
    sf.Maximum: _maximum,
    sf.Minimum: _minimum,
    sympy.Max: _maximum,
    sympy.Min: _minimum,
    sympy.Heaviside: _heaviside,
    sympy.Piecewise: _piecewise,
    sympy.DiracDelta: _dirac_delta,
}


_STRUCTURE = (sympy.Symbol, sympy.Add, sympy.Mul, sympy.Pow, sympy.logic.boolalg.BooleanAtom,
              sympy.And, sympy.Or, sympy.Not, sympy.Xor, sympy.core.relational.Relational,
              sympy.functions.elementary.piecewise.ExprCondPair)

SUPPORTED = tuple(sorted(_HANDLERS, key=lambda cls: cls.__name__))
"""Every function a body may use: what lower_expr has a lowering for (besides arithmetic,
powers, constants, comparisons and And/Or/Not)."""


class Kept(sympy.Function):
    """x itself, opaque to sympy's algebra: the scheduler wraps a size-1 constant 0 it writes into a
    body in it, and every operand of an inlined body whose algebra would cancel one of them
    (``codegen.schedule._substituted``), so x * 0 and (a k) / k are computed as written (nan for an
    inf or nan operand, as in NumPy). Not a body function: SUPPORTED does not list it. Real and
    evaluable as its argument, so Max, Min and comparisons take a kept constant."""

    nargs = 1

    def _eval_is_extended_real(self):
        return self.args[0].is_extended_real

    def _eval_evalf(self, prec):
        return self.args[0]._eval_evalf(prec)


def _kept(p: _Printer, x):
    return p.value(x)


_HANDLERS[Kept] = _kept


def unsupported_functions(expr) -> list:
    """Names of the functions in `expr` that lower_expr cannot lower (empty: it compiles)."""
    missing, pending = [], [sympy.sympify(expr)]
    while pending:
        node = pending.pop()
        if isinstance(node, _STRUCTURE) or _is_supported(node) or node.is_Atom and node.is_number:
            pending.extend(node.args)
        elif node.free_symbols or _constant_value(node) is None:
            name = getattr(type(node), "__name__", str(node))
            if name not in missing:
                missing.append(name)
    return sorted(missing)


def _is_supported(node) -> bool:
    if type(node) in _COMPARISONS:
        return True
    return any(cls in _HANDLERS for cls in type(node).__mro__)
