"""The few matrix-calculus notations sympy lacks, as sympy expressions.

- ``ElementwiseFunction(Lambda((d0, d1), f(d0, d1)), A, B)``: f applied entry by
  entry to equally shaped matrices, printed as ``f(A, B)`` (``tanh(X W + 1 b^T)``),
  the way papers write an activation applied to a matrix.
- ``EntrySum(M)``: the scalar sum of all entries, printed ``\\sum_{i,j} [M]_{ij}``.
- ``EntryMax(M)``: the scalar largest entry.
- ``AxisMax(M, axis)``: the column vector of maxima along one axis.
- ``OneByOne(a^T b)``: a 1x1 product read as the scalar it holds.
- ``Ones(m, n)``: sympy's ``OneMatrix``, printed ``1`` or, as a row, ``1^T``.

Each evaluates on explicit matrices (``doit`` / ``as_explicit``), so a printed
expression can be checked numerically against the graph it came from.
"""
from __future__ import annotations

import functools
import itertools

import sympy
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.pretty.stringpict import prettyForm

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
        bare = self.bare or isinstance(self.matrix, (sympy.MatrixSymbol, sympy.OneMatrix, ElementwiseFunction))
        return text if bare else f"\\left({text}\\right)" if printer.printmethod == "_latex" else f"({text})"

    def _latex(self, printer):
        return self._show(printer, printer._print(self.matrix))

    def _sympystr(self, printer):
        return self._show(printer, printer._print(self.matrix))

    def _pretty(self, printer):
        form = printer._print(self.matrix)
        return form if self.bare else prettyForm(*form.parens())


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


class ElementwiseFunction(MatrixExpr):
    """A scalar function (a sympy Lambda) applied entry by entry to equally shaped matrices."""

    def __new__(cls, function: sympy.Lambda, *matrices):
        shape = matrices[0].shape
        for m in matrices[1:]:
            if m.shape != shape:
                raise ValueError(f"ElementwiseFunction: shapes {shape} and {m.shape} differ")
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
            rows, cols = matrices[0].shape
            return sympy.ImmutableMatrix(rows, cols, lambda i, j: self.function(*[m[i, j] for m in matrices]))
        return ElementwiseFunction(self.function, *matrices)

    def _eval_transpose(self):
        return ElementwiseFunction(self.function, *[sympy.Transpose(m) for m in self.matrices])

    def _printed_body(self):
        """The body with each argument replaced by a symbol that prints as that argument."""
        variables = self.function.variables
        bare = _direct_function_arguments(self.function.expr)
        stand_ins = {}
        for variable, matrix in zip(variables, self.matrices):
            shown = _Shown(f"_shown{next(_placeholder_ids)}")
            shown.matrix, shown.bare = matrix, variable in bare
            stand_ins[variable] = shown
        return self.function.expr.xreplace(stand_ins)

    def _latex(self, printer):
        return printer._print(self._printed_body())

    def _sympystr(self, printer):
        return printer._print(self._printed_body())

    def _pretty(self, printer):
        return printer._print(self._printed_body())


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
