"""The matrix-calculus notations of the matrix form, as sympy expressions sympy evaluates.

- ``ElementwiseFunction(Lambda(d, f(d)), A)``: sympy's ``ElementwiseApplyFunction``,
  printed ``f(A)`` (``tanh(X W + 1 b^T)``), the way papers write an activation
  applied to a matrix; ``ElementwiseFunctionOfMany(Lambda((d0, d1), f(d0, d1)), A, B)``
  for functions of several equally shaped matrices (``elementwise`` picks one).
- ``EntrywisePower(A, 2)``: sympy's ``HadamardPower``, evaluated on explicit matrices.
- ``EntrySum(M)``: the scalar sum of all entries, printed ``\\sum_{i,j} [M]_{ij}``.
- ``EntryMax(M)``: the scalar largest entry.
- ``AxisMax(M, axis)``: the column vector of maxima along one axis.
- ``OneByOne(a^T b)``: a 1x1 product read as the scalar it holds.
- ``OpaqueCall(Sigmoid(s))``: an opaque function of scalars, evaluated on numbers.
- ``Ones(m, n)``: sympy's ``OneMatrix``, printed ``1`` or, as a row, ``1^T``.

Each evaluates with ``doit`` once its matrices are explicit, so
``expr.subs({W: Matrix(...), ..., N_batch: 4}).doit()`` is an explicit matrix
(or number) holding the graph's value; the opaque scalar functions (Sigmoid,
Relu, Where, ...) are then written in standard sympy functions so the entries
are numbers.
"""
from __future__ import annotations

import functools
import itertools

import sympy
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.pretty.stringpict import prettyForm

from .symbols import evaluable, in_standard_functions

_placeholder_ids = itertools.count()


@functools.lru_cache(maxsize=4096)
def _has_matrix_symbols(expr) -> bool:
    return any(isinstance(s, sympy.MatrixSymbol) for s in expr.free_symbols)


def _nothing_to_evaluate(expr) -> bool:
    """True while leaves are still symbols: ``doit`` then has no numbers to compute.

    sympy's printers call ``doit`` on every product they print (to test its sign),
    so a symbolic ``doit`` must be cheap or printing a deep gradient takes minutes.
    """
    return _has_matrix_symbols(expr)


def _is_explicit(matrix) -> bool:
    return isinstance(matrix, sympy.MatrixBase)


def _explicit(matrix):
    """An explicit matrix when every size and entry is known, else None."""
    matrix = matrix.doit()
    if _is_explicit(matrix):
        return matrix
    if all(isinstance(d, (int, sympy.Integer)) for d in matrix.shape) and not matrix.free_symbols:
        return matrix.as_explicit()
    return None


class _Shown(sympy.Symbol):
    """A stand-in scalar that prints as a matrix expression (inside a function body)."""

    def _show(self, printer, text):
        bare = self.bare or isinstance(self.matrix, (sympy.MatrixSymbol, sympy.OneMatrix, _PrintedAsFunction))
        return text if bare else f"\\left({text}\\right)" if printer.printmethod == "_latex" else f"({text})"

    def _latex(self, printer):
        return self._show(printer, printer._print(self.matrix))

    def _sympystr(self, printer):
        return self._show(printer, printer._print(self.matrix))

    def _pretty(self, printer):
        form = printer._print(self.matrix)
        return form if self.bare else prettyForm(*form.parens())


def shown_as(matrix, bare: bool = False) -> sympy.Symbol:
    """A scalar stand-in that prints as `matrix`, for writing a function body applied to it."""
    shown = _Shown(f"_shown{next(_placeholder_ids)}")
    shown.matrix, shown.bare = matrix, bare
    return shown


def _direct_function_arguments(body) -> set:
    """Symbols that occur only as direct arguments of a function call (printed without extra parentheses)."""
    direct, elsewhere = set(), set()

    def visit(expr, parent_is_call):
        if expr.is_Symbol:
            (direct if parent_is_call else elsewhere).add(expr)
            return
        for arg in expr.args:
            visit(arg, isinstance(expr, sympy.Function))

    visit(body, False)
    return direct - elsewhere


class _PrintedAsFunction:
    """Printing shared by the entrywise maps: ``f(A, B)``, the body with the matrices in its places."""

    def _printed_body(self):
        """The body with each argument replaced by a symbol that prints as that argument."""
        variables = self.function.variables
        bare = _direct_function_arguments(self.function.expr)
        stand_ins = {v: shown_as(m, v in bare) for v, m in zip(variables, self.matrices)}
        return self.function.expr.xreplace(stand_ins)

    def _latex(self, printer):
        return printer._print(self._printed_body())

    def _sympystr(self, printer):
        return printer._print(self._printed_body())

    def _pretty(self, printer):
        return printer._print(self._printed_body())


def _entrywise(function: sympy.Lambda, matrices):
    """`function` applied to the entries of explicit, equally shaped matrices (in standard functions)."""
    function = evaluable(function)
    rows, cols = matrices[0].shape
    return sympy.ImmutableMatrix(rows, cols, lambda i, j: in_standard_functions(function(*[m[i, j] for m in matrices])))


class ElementwiseFunction(_PrintedAsFunction, ElementwiseApplyFunction):
    """sympy's ``ElementwiseApplyFunction`` of a one-variable Lambda, printed ``f(M)``.

    ``doit`` on an explicit matrix applies the Lambda with the opaque functions
    (Sigmoid, Relu, ...) written in standard sympy, so the entries are numbers.
    """

    def __new__(cls, function: sympy.Lambda, matrix):
        # not sympy's constructor: it applies the function to a 1 x 1 matrix itself (a batch of one)
        if not isinstance(function, sympy.Lambda) or len(function.variables) != 1:
            raise ValueError(f"ElementwiseFunction: expected a Lambda of one variable, got {function}")
        return MatrixExpr.__new__(cls, function, sympy.sympify(matrix))

    @property
    def matrices(self) -> tuple:
        return (self.expr,)

    def doit(self, **hints):
        if _nothing_to_evaluate(self):
            return self
        matrix = self.expr.doit(**hints) if hints.get("deep", True) else self.expr
        if _is_explicit(matrix):
            return _entrywise(self.function, [matrix])
        return self.func(self.function, matrix)

    def _eval_transpose(self):
        return self.func(self.function, sympy.Transpose(self.expr))


class ElementwiseFunctionOfMany(_PrintedAsFunction, MatrixExpr):
    """A scalar function of several variables (a sympy Lambda) applied entry by entry to
    equally shaped matrices: ``Maximum(A, B)``, ``Where(C, A, B)`` (sympy's
    ``ElementwiseApplyFunction`` takes one matrix)."""

    def __new__(cls, function: sympy.Lambda, *matrices):
        shape = matrices[0].shape
        for m in matrices[1:]:
            # sizes known to differ (under subs, N_batch and 4 may meet before N_batch is bound)
            if any(sympy.sympify(a - b).is_zero is False for a, b in zip(m.shape, shape)):
                raise ValueError(f"ElementwiseFunctionOfMany: shapes {shape} and {m.shape} differ")
        return MatrixExpr.__new__(cls, function, *matrices)

    @property
    def function(self) -> sympy.Lambda:
        return self.args[0]

    @property
    def matrices(self) -> tuple:
        return self.args[1:]

    @property
    def shape(self):
        return self.matrices[0].shape

    def _entry(self, i, j, **kwargs):
        return self.function(*[m._entry(i, j, **kwargs) for m in self.matrices])

    def doit(self, **hints):
        if _nothing_to_evaluate(self):
            return self
        matrices = [m.doit(**hints) if hints.get("deep", True) else m for m in self.matrices]
        if all(_is_explicit(m) for m in matrices):
            return _entrywise(self.function, matrices)
        return ElementwiseFunctionOfMany(self.function, *matrices)

    def _eval_transpose(self):
        return ElementwiseFunctionOfMany(self.function, *[sympy.Transpose(m) for m in self.matrices])


def elementwise(function: sympy.Lambda, *matrices):
    """`function` (a Lambda of one variable per matrix) applied entry by entry."""
    if len(matrices) == 1:
        return ElementwiseFunction(function, matrices[0])
    return ElementwiseFunctionOfMany(function, *matrices)


class EntrywisePower(sympy.HadamardPower):
    """sympy's ``HadamardPower`` (printed the same) that ``doit`` evaluates on an explicit base."""

    def doit(self, **hints):
        base, exponent = (a.doit(**hints) for a in self.args) if hints.get("deep", True) else self.args
        if _is_explicit(base) and not isinstance(exponent, MatrixExpr):
            return base.applyfunc(lambda entry: entry ** exponent)
        return EntrywisePower(base, exponent)

    def _sympystr(self, printer):
        return "HadamardPower(%s, %s)" % (printer._print(self.base), printer._print(self.exp))


class OpaqueCall(sympy.Expr):
    """A call of an opaque scalar function outside any matrix (``Sigmoid(s)`` of a scalar
    parameter ``s``), printed as the call; ``doit`` gives a number once the arguments are numbers."""

    is_commutative = True

    def __new__(cls, call):
        return sympy.Expr.__new__(cls, call)

    @property
    def call(self):
        return self.args[0]

    def doit(self, **hints):
        call = self.call.doit(**hints) if hints.get("deep", True) else self.call
        value = in_standard_functions(call)
        return value if value.is_number else OpaqueCall(call)

    def _eval_evalf(self, prec):
        value = in_standard_functions(self.call)
        return value.evalf(prec) if value.is_number else None

    def _latex(self, printer):
        return printer._print(self.call)

    def _sympystr(self, printer):
        return printer._print(self.call)

    def _pretty(self, printer):
        return printer._print(self.call)


class _ScalarOfMatrix(sympy.Expr):
    """A scalar computed from one matrix; ``doit`` evaluates it once the matrix is explicit."""

    is_commutative = True

    def __new__(cls, matrix):
        return sympy.Expr.__new__(cls, matrix)

    @property
    def matrix(self):
        return self.args[0]

    def doit(self, **hints):
        if _nothing_to_evaluate(self):
            return self
        matrix = self.matrix.doit(**hints) if hints.get("deep", True) else self.matrix
        explicit = _explicit(matrix)
        return type(self)(matrix) if explicit is None else self.evaluate(explicit)

    def evaluate(self, explicit):
        raise NotImplementedError


class _EntryReduction(_ScalarOfMatrix):
    """A scalar computed from every entry of one matrix."""

    name = "?"
    latex_operator = "?"

    def evaluate(self, explicit):
        return self.reduce(list(explicit))

    def _indices(self):
        return "i" if self.matrix.shape[1] == 1 else "i,j"

    def _latex(self, printer):
        indices = self._indices()
        return r"%s_{%s} \left[%s\right]_{%s}" % (self.latex_operator, indices, printer._print(self.matrix),
                                                   indices.replace(",", " "))

    def _sympystr(self, printer):
        return f"{self.name}({printer._print(self.matrix)})"

    def _pretty(self, printer):
        form = prettyForm(*printer._print(self.matrix).parens())
        return prettyForm(*form.left(self.name))


class EntrySum(_EntryReduction):
    """The sum of all entries of a matrix (a scalar)."""

    name, latex_operator = "sum", r"\sum"

    @staticmethod
    def reduce(entries):
        return sympy.Add(*entries)


class EntryMax(_EntryReduction):
    """The largest entry of a matrix (a scalar)."""

    name, latex_operator = "max", r"\max"

    @staticmethod
    def reduce(entries):
        return sympy.Max(*entries)


class AxisMax(MatrixExpr):
    """Maxima along `axis` (0: down each column, 1: along each row) as a column vector."""

    def __new__(cls, matrix, axis):
        return MatrixExpr.__new__(cls, matrix, sympy.Integer(axis))

    @property
    def matrix(self):
        return self.args[0]

    @property
    def axis(self) -> int:
        return int(self.args[1])

    @property
    def shape(self):
        rows, cols = self.matrix.shape
        return (cols, sympy.Integer(1)) if self.axis == 0 else (rows, sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        rows, cols = self.matrix.shape
        if self.axis == 0:
            return sympy.Max(*[self.matrix._entry(k, i) for k in range(int(rows))])
        return sympy.Max(*[self.matrix._entry(i, k) for k in range(int(cols))])

    def doit(self, **hints):
        if _nothing_to_evaluate(self):
            return self
        matrix = self.matrix.doit(**hints) if hints.get("deep", True) else self.matrix
        explicit = _explicit(matrix)
        if explicit is None:
            return AxisMax(matrix, self.axis)
        return AxisMax(explicit, self.axis).as_explicit()

    def _latex(self, printer):
        over = "i" if self.axis == 0 else "j"
        return r"\max_{%s} \left[%s\right]_{i j}" % (over, printer._print(self.matrix))

    def _sympystr(self, printer):
        return f"max({printer._print(self.matrix)}, axis={self.axis})"

    def _pretty(self, printer):
        form = prettyForm(*printer._print(self.matrix).parens())
        return prettyForm(*form.left(f"max{'ᵢ' if self.axis == 0 else 'ⱼ'}"))


class OneByOne(_ScalarOfMatrix):
    """A 1x1 matrix product (``a^T b``) read as the scalar it holds."""

    def evaluate(self, explicit):
        return explicit[0, 0]

    def _latex(self, printer):
        return printer._print(self.matrix)

    def _sympystr(self, printer):
        return printer._print(self.matrix)

    def _pretty(self, printer):
        return printer._print(self.matrix)


class Ones(sympy.OneMatrix):
    """The all-ones matrix, printed 1 (a column or full matrix of ones) or 1^T (a row of ones)."""

    def _is_row(self) -> bool:
        return self.shape[0] == 1 and self.shape[1] != 1

    def _latex(self, printer):
        return r"\mathbf{1}^{T}" if self._is_row() else r"\mathbf{1}"

    def _sympystr(self, printer):
        return "1.T" if self._is_row() else "1"

    def _pretty(self, printer):
        return prettyForm("𝟙ᵀ" if self._is_row() else "𝟙")

    def _eval_transpose(self):
        return Ones(self.shape[1], self.shape[0])

    def doit(self, **hints):
        return self

    def _eval_subs(self, old, new):
        """Explicit ones once values are substituted and the size is known, so that sympy's
        products and sums with the substituted matrices evaluate (``doit`` keeps the notation:
        sympy calls it while it builds products)."""
        shape = [sympy.sympify(d).xreplace({old: new}) for d in self.shape]
        if all(isinstance(d, sympy.Integer) for d in shape) and (
                isinstance(new, sympy.MatrixBase) or getattr(new, "is_number", False)):
            return sympy.ImmutableMatrix.ones(*shape)
        return Ones(*shape) if tuple(shape) != self.shape else None


class Range(MatrixExpr):
    """The column (0, 1, ..., n-1): the class indices a one-hot comparison is made against."""

    def __new__(cls, n):
        return MatrixExpr.__new__(cls, sympy.Integer(n))

    @property
    def shape(self):
        return (self.args[0], sympy.Integer(1))

    def _entry(self, i, j, **kwargs):
        return sympy.Integer(i) if isinstance(i, int) else i

    def doit(self, **hints):
        return sympy.ImmutableMatrix(int(self.args[0]), 1, lambda i, j: i)

    def _latex(self, printer):
        return r"\left(0, 1, \ldots, %s\right)" % (self.args[0] - 1)

    def _sympystr(self, printer):
        return f"range({self.args[0]})"

    def _pretty(self, printer):
        return prettyForm(f"(0, 1, …, {self.args[0] - 1})")
