"""The scalar vocabulary of elementwise bodies.

A map node's body is a sympy expression over real symbols. Besides sympy's own
functions (exp, log, tanh, sin, cos, erf, Abs, sign, Pow, ...) bodies use the
opaque functions below. Each carries its own derivative (``fdiff``), so
derivatives reuse forward values (``Sigmoid' = Sigmoid*(1-Sigmoid)``) and keep
overflow-prone forms such as ``log(1+exp(x))`` out of sight: every one of them
has a numerically stable NumPy reference here and a stable lowering in codegen.

Conventions at non-differentiable points are PyTorch's (documented, tested):
``relu'(0) = 0``; ``maximum(x, y)`` and ``minimum(x, y)`` split a tie's
gradient evenly (1/2 each); ``clip`` passes the gradient at its bounds;
``abs'(0) = sign(0) = 0``; floor, ceil, round, trunc, sign and floor division
have derivative 0; ``remainder(a, b)`` has derivatives 1 and ``-floor_divide(a, b)``,
``fmod(a, b)`` 1 and ``-trunc(a / b)``; ``d(x**y)/dy`` is 0 where ``x = 0`` and
``y >= 0``, ``d(x**y)/dx`` is 0 where ``y = 0`` (``derivative`` below).
Comparisons and ``Step`` evaluate to 0 or 1 and have derivative 0.

Every function a body may use is listed by ``codegen.scalar.SUPPORTED``;
``canonical_body`` writes sympy's own forms of the functions above
(``floor``, ``ceiling``, ``Mod``) as these, so their derivatives follow the
same conventions.
"""
from __future__ import annotations

import math

import numpy as np
import sympy


class Sigmoid(sympy.Function):
    """1 / (1 + exp(-x)), stable for any magnitude."""

    nargs = 1

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _latex(self, printer):
        return r"\sigma\left(%s\right)" % printer._print(self.args[0])


class Softplus(sympy.Function):
    """log(1 + exp(x)), evaluated as max(x, 0) + log1p(exp(-|x|))."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Sigmoid(self.args[0])

    def _latex(self, printer):
        return r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])


class Step(sympy.Function):
    """1 where x > 0, else 0 (so Step(0) = 0: relu'(0) = 0)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _latex(self, printer):
        return r"\left[%s > 0\right]" % printer._print(self.args[0])


class Relu(sympy.Function):
    """max(x, 0) with derivative Step(relu(x)) (= Step(x)): written on the output, so a gradient
    reads the activation that is stored anyway, not the pre-activation."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Step(self)

    def _latex(self, printer):
        return r"\operatorname{relu}\left(%s\right)" % printer._print(self.args[0])


class _Comparison(sympy.Function):
    """A comparison whose value is 1 (true) or 0 (false); derivative 0."""

    nargs = 2
    symbol = "?"

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _latex(self, printer):
        a, b = (printer._print(arg) for arg in self.args)
        return r"\left[%s %s %s\right]" % (a, self.latex_symbol, b)

    def _sympystr(self, printer):
        a, b = (printer._print(arg) for arg in self.args)
        return "[%s %s %s]" % (a, self.symbol, b)


class Greater(_Comparison):
    symbol, latex_symbol = ">", ">"


class GreaterEqual(_Comparison):
    symbol, latex_symbol = ">=", r"\geq"


class Less(_Comparison):
    symbol, latex_symbol = "<", "<"


class LessEqual(_Comparison):
    symbol, latex_symbol = "<=", r"\leq"


class Equal(_Comparison):
    symbol, latex_symbol = "==", "="


class NotEqual(_Comparison):
    symbol, latex_symbol = "!=", r"\neq"


class Where(sympy.Function):
    """a where c is nonzero, else b. Never multiplies by a mask, so inf/nan in the
    branch not taken do not leak into the result."""

    nargs = 3

    @classmethod
    def eval(cls, c, a, b):
        if a == b:
            return a
        if c.is_Number:
            return b if c.is_zero else a  # (Float(0.0) != 0 in sympy: compare by value)

    def fdiff(self, argindex=1):
        c = self.args[0]
        if argindex == 1:
            return sympy.S.Zero
        if argindex == 2:
            return Where(c, 1, 0)
        return Where(c, 0, 1)

    def _eval_derivative(self, s):
        """d/ds Where(c, a, b) is Where(c, da/ds, db/ds): a selection, not the chain rule's products with
        the masks, so an inf derivative of the branch not taken is not multiplied by 0 (nan)."""
        c, a, b = self.args
        return Where(c, a.diff(s), b.diff(s))

    def _latex(self, printer):
        c, a, b = (printer._print(arg) for arg in self.args)
        return r"\begin{cases} %s & \text{if } %s \\ %s & \text{otherwise} \end{cases}" % (a, c, b)


class Maximum(sympy.Function):
    """Elementwise max(x, y); a tie splits the gradient evenly (torch). NaN propagates."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        loses = Less(x, y) if argindex == 1 else Greater(x, y)
        return Where(loses, 0, Where(Equal(x, y), sympy.S.Half, 1))

    def _latex(self, printer):
        return r"\max\left(%s, %s\right)" % tuple(printer._print(a) for a in self.args)


class Minimum(sympy.Function):
    """Elementwise min(x, y); a tie splits the gradient evenly (torch). NaN propagates."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        loses = Greater(x, y) if argindex == 1 else Less(x, y)
        return Where(loses, 0, Where(Equal(x, y), sympy.S.Half, 1))

    def _latex(self, printer):
        return r"\min\left(%s, %s\right)" % tuple(printer._print(a) for a in self.args)


# ---- rounding, division and sign functions ----------------------------------------------------
#
# Opaque so sympy neither rewrites them (floor(x + 1) -> floor(x) + 1) nor leaves their
# derivatives unevaluated; with numbers for arguments they evaluate as NumPy does.

def _sympy_value(value: float):
    """A float64 result as an exact sympy number."""
    if math.isnan(value):
        return sympy.nan
    if math.isinf(value):
        return sympy.oo if value > 0 else -sympy.oo
    if value == int(value):
        return sympy.Integer(int(value))
    return sympy.Rational(repr(value))


class _Numeric(sympy.Function):
    """A function that evaluates NumPy's `numpy_function` when every argument is a number."""

    numpy_function = None  # a staticmethod or ufunc of float64 values
    latex_name = None

    @classmethod
    def eval(cls, *args):
        if not all(a.is_number and a.is_extended_real is not False for a in args):
            return None
        try:
            values = [np.float64(float(a)) for a in args]
        except (TypeError, ValueError):
            return None
        with np.errstate(all="ignore"):
            return _sympy_value(float(cls.numpy_function(*values)))

    def fdiff(self, argindex=1):
        return sympy.S.Zero

    def _latex(self, printer):
        args = ", ".join(printer._print(a) for a in self.args)
        return r"\operatorname{%s}\left(%s\right)" % (self.latex_name, args)


class Clip(_Numeric):
    """min(max(x, lo), hi); the gradient reaches x where lo <= x <= hi, a bound where
    x is beyond it, hi wherever hi < lo (torch.clamp). NaN propagates."""

    nargs, latex_name = 3, "clip"
    numpy_function = staticmethod(lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi))

    def fdiff(self, argindex=1):
        x, lo, hi = self.args
        if argindex == 1:
            return GreaterEqual(x, lo) * LessEqual(x, hi)
        if argindex == 2:  # with hi < lo the value is hi, whatever x and lo are
            return Where(GreaterEqual(x, lo), 0, Where(Less(hi, lo), 0, 1))
        return Where(Less(hi, lo), 1, Where(LessEqual(x, hi), 0, 1))


class Floor(_Numeric):
    """The largest integer <= x; derivative 0."""
    nargs, numpy_function, latex_name = 1, np.floor, "floor"

    def _latex(self, printer):
        return r"\left\lfloor %s \right\rfloor" % printer._print(self.args[0])


class Ceil(_Numeric):
    """The smallest integer >= x; derivative 0."""
    nargs, numpy_function, latex_name = 1, np.ceil, "ceil"

    def _latex(self, printer):
        return r"\left\lceil %s \right\rceil" % printer._print(self.args[0])


class Round(_Numeric):
    """The nearest integer, halfway cases to the even one (NumPy, PyTorch); derivative 0."""
    nargs, numpy_function, latex_name = 1, np.round, "round"


class Trunc(_Numeric):
    """x rounded toward 0; derivative 0."""
    nargs, numpy_function, latex_name = 1, np.trunc, "trunc"


class FloorDivide(_Numeric):
    """floor(a / b) as NumPy and PyTorch compute it (a // b); derivative 0."""
    nargs, numpy_function, latex_name = 2, np.floor_divide, "floordiv"


class Remainder(_Numeric):
    """a - b floor(a / b), the sign of b (Python's and NumPy's %, torch.remainder)."""
    nargs, numpy_function, latex_name = 2, np.remainder, "remainder"

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.S.One if argindex == 1 else -FloorDivide(a, b)


class FMod(_Numeric):
    """a - b trunc(a / b), the sign of a (C's fmod, torch.fmod)."""
    nargs, numpy_function, latex_name = 2, np.fmod, "fmod"

    def fdiff(self, argindex=1):
        a, b = self.args
        return sympy.S.One if argindex == 1 else -Trunc(a / b)


class Copysign(_Numeric):
    """|x| with the sign bit of y; d/dx = sign(x) copysign(1, y) (0 at x = 0), d/dy = 0."""
    nargs, numpy_function, latex_name = 2, np.copysign, "copysign"

    def fdiff(self, argindex=1):
        x, y = self.args
        return sympy.sign(x) * Copysign(1, y) if argindex == 1 else sympy.S.Zero


OPAQUE_FUNCTIONS = (Sigmoid, Softplus, Step, Relu, Greater, GreaterEqual, Less,
                    LessEqual, Equal, NotEqual, Where, Maximum, Minimum)

NUMERIC_FUNCTIONS = (Clip, Floor, Ceil, Round, Trunc, FloorDivide, Remainder, FMod, Copysign)
"""Opaque functions that evaluate themselves on numbers (NumPy's float64 result)."""


# ---- canonical bodies and derivatives ---------------------------------------------------------

def canonical_body(body):
    """sympy's floor, ceiling and Mod as Floor, Ceil and Remainder; a literal division by
    zero (sympy's zoo, which NumPy cannot print) as +inf, IEEE's 1/+0."""
    body = sympy.sympify(body)
    if body.has(sympy.zoo):
        body = body.xreplace({sympy.zoo: sympy.oo})
    replacements = {sympy.floor: Floor, sympy.ceiling: Ceil, sympy.Mod: Remainder}
    if any(body.has(f) for f in replacements):
        body = body.replace(lambda e: type(e) in replacements, lambda e: replacements[type(e)](*e.args))
    return body


class _Power(sympy.Function):
    """x**y while a derivative is taken: the derivative conventions of torch.pow."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        if argindex == 1:
            return Where(Equal(y, 0), 0, y * x ** (y - 1))
        return Where(Equal(x, 0) * GreaterEqual(y, 0), 0, x ** y * sympy.log(x))


def derivative(body, symbol):
    """d body / d symbol with the conventions above: x**y with a non-constant exponent
    follows torch.pow (no log(0) * 0 = NaN), DiracDelta (sympy's derivative of sign and
    Heaviside) is 0, and a derivative that is not real (sympy's log(-2) = log(2) + I*pi) is nan."""
    powers = {p: _Power(*p.args) for p in body.atoms(sympy.Pow) if not p.exp.is_number}
    result = sympy.diff(body.xreplace(powers) if powers else body, symbol)
    if result.has(_Power):
        result = result.replace(lambda e: isinstance(e, _Power), lambda e: sympy.Pow(*e.args))
    if result.has(sympy.DiracDelta):
        result = result.replace(sympy.DiracDelta, lambda *args: sympy.S.Zero)
    if result.has(sympy.I):  # log of a negative constant (d/dy (-2)**y): not real, nan as in torch
        result = result.xreplace({sympy.I: sympy.nan})
    return canonical_body(result)


def _sigmoid(x):
    """1/(1+exp(-x)) for x >= 0 and exp(x)/(1+exp(x)) below: accurate at every magnitude."""
    x = np.asarray(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _nan_aware(pick):
    def f(x, y):
        x, y = np.asarray(x), np.asarray(y)
        return np.where(np.isnan(x) | np.isnan(y), x + y, pick(x, y))
    return f


NUMPY_IMPLEMENTATIONS = {
    "Sigmoid": _sigmoid,
    "Softplus": lambda x: np.logaddexp(0, x),
    "Step": lambda x: np.asarray(x > 0),
    "Relu": lambda x: np.maximum(x, 0),
    "Greater": np.greater,
    "GreaterEqual": np.greater_equal,
    "Less": np.less,
    "LessEqual": np.less_equal,
    "Equal": np.equal,
    "NotEqual": np.not_equal,
    "Where": lambda c, a, b: np.where(np.asarray(c) != 0, a, b),
    "Maximum": _nan_aware(lambda x, y: np.where(x >= y, x, y)),
    "Minimum": _nan_aware(lambda x, y: np.where(x <= y, x, y)),
    "Clip": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.round,
    "Trunc": np.trunc,
    "FloorDivide": np.floor_divide,
    "Remainder": np.remainder,
    "FMod": np.fmod,
    "Copysign": np.copysign,
    "sign": np.sign,
    "erf": np.vectorize(math.erf, otypes=[float]),
}
