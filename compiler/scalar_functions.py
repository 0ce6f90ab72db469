"""The scalar vocabulary of elementwise bodies.

A map node's body is a sympy expression over real symbols. Besides sympy's own
functions (exp, log, tanh, sin, cos, erf, Abs, sign, Pow, ...) bodies use the
opaque functions below. Each carries its own derivative (``fdiff``), so
derivatives reuse forward values (``Sigmoid' = Sigmoid*(1-Sigmoid)``) and keep
overflow-prone forms such as ``log(1+exp(x))`` out of sight: every one of them
has a numerically stable NumPy reference here and a stable lowering in codegen.

Conventions at non-differentiable points (documented, tested):
``relu'(0) = 0``; ``maximum(x, y)`` sends the gradient of a tie to ``x``;
``minimum(x, y)`` likewise to ``x``; ``abs'(0) = sign(0) = 0``.
Comparisons and ``Step`` evaluate to 0 or 1 and have derivative 0.
"""
from __future__ import annotations

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
    """max(x, 0) with derivative Step(x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return Step(self.args[0])

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
            return a if c != 0 else b

    def fdiff(self, argindex=1):
        c = self.args[0]
        if argindex == 1:
            return sympy.S.Zero
        if argindex == 2:
            return Where(c, 1, 0)
        return Where(c, 0, 1)

    def _latex(self, printer):
        c, a, b = (printer._print(arg) for arg in self.args)
        return r"\begin{cases} %s & \text{if } %s \\ %s & \text{otherwise} \end{cases}" % (a, c, b)


class Maximum(sympy.Function):
    """Elementwise max(x, y); a tie sends the gradient to x. NaN propagates."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        return GreaterEqual(x, y) if argindex == 1 else Less(x, y)

    def _latex(self, printer):
        return r"\max\left(%s, %s\right)" % tuple(printer._print(a) for a in self.args)


class Minimum(sympy.Function):
    """Elementwise min(x, y); a tie sends the gradient to x. NaN propagates."""

    nargs = 2

    def fdiff(self, argindex=1):
        x, y = self.args
        return LessEqual(x, y) if argindex == 1 else Greater(x, y)

    def _latex(self, printer):
        return r"\min\left(%s, %s\right)" % tuple(printer._print(a) for a in self.args)


OPAQUE_FUNCTIONS = (Sigmoid, Softplus, Step, Relu, Greater, GreaterEqual, Less,
                    LessEqual, Equal, NotEqual, Where, Maximum, Minimum)


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
    "sign": np.sign,
    "erf": np.vectorize(__import__("math").erf, otypes=[float]),
}
