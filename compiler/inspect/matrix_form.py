"""Tensor graphs as matrix-calculus expressions.

Each node of rank at most 2 becomes a sympy matrix expression: a leaf is a
``MatrixSymbol``, a vector of shape (n,) a column (n x 1), ``matmul`` a
``MatMul``, a product of maps a ``HadamardProduct``, a power a
``HadamardPower``, an activation an ``ElementwiseApplyFunction`` of a
``Lambda``, a broadcast of the bias ``b`` over rows ``1 b^T`` (``OneMatrix``),
a sum over rows ``M^T 1`` and a sum of all entries ``EntrySum``. Scalars and
single-element tensors stay sympy scalars. So the gradient of
``sum((tanh(X@W + b) - Y)**2)`` by ``W`` reads

    2 X^T ((tanh(X W + 1 b^T) - Y) ∘ (1 - tanh(X W + 1 b^T)^∘2))

and sympy evaluates it: ``expr.subs({X: Matrix(...), W: ..., b: ..., Y: ...,
N_batch: 4}).doit()`` is the explicit gradient (see ``matrix_notation``).
Where the notation ends (rank 3, slices, ...) ``matrix_expression`` raises
``NoMatrixForm``, or with ``name_parts=True`` writes those nodes as symbols;
an intermediate nested deeper than ``nesting.MAX_NESTING`` levels becomes a
symbol H1, H2, ... with its definition, so a deep graph never gives (or makes
sympy recurse through) an expression deeper than that bound.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy
from sympy import HadamardProduct, MatAdd, MatMul, MatrixSymbol, OneMatrix, Transpose

from ..graph import scalar_symbol
from ..shapes import broadcast_shapes
from .matrix_notation import AxisMax, EntryMax, EntrySum, EntrywisePower, OneByOne, Ones, OpaqueCall, Range, elementwise
from .nesting import MAX_NESTING, Namer, fresh_names, written_with_names
from .symbols import dim_symbol, exact_number, for_reading, is_opaque, is_scalar_like, scalar_leaf, size

MAX_EXPLICIT_CONSTANT = 16


class NoMatrixForm(NotImplementedError):
    """A node that the matrix notation cannot express (rank above 2, slicing, ...)."""


class Value(NamedTuple):
    """A node's expression with the tensor shape it stands for (scalar expr when single-valued)."""
    expr: sympy.Basic
    shape: tuple


def matrix_shape(shape) -> tuple:
    if len(shape) > 2:
        raise NoMatrixForm(f"a tensor of shape {shape}: matrix notation covers rank 0, 1 and 2")
    if len(shape) == 1:
        return size(shape[0]), sympy.Integer(1)
    return tuple(size(d) for d in shape)


# ---- readable constructors ---------------------------------------------------------------

def transpose(e):
    """e^T, pushed through products ((A B)^T = B^T A^T) and cancelled when doubled."""
    if isinstance(e, Transpose):
        return e.arg
    if isinstance(e, OneMatrix):
        return Ones(e.shape[1], e.shape[0])
    if isinstance(e, sympy.MatrixBase):
        return e.T
    if isinstance(e, MatMul):
        coefficient, factors = e.as_coeff_matrices()
        return matmul(coefficient, *[transpose(f) for f in reversed(factors)])
    return Transpose(e)


def matmul(*factors):
    factors = [f for f in factors if f != 1]
    return factors[0] if len(factors) == 1 else MatMul(*factors).doit(deep=False)


def scale(coefficient, matrix):
    """coefficient * matrix, kept as a factor (sympy would distribute 2*(A - B) into 2*A - 2*B)."""
    if coefficient == 1:
        return matrix
    if isinstance(matrix, (MatMul, OneMatrix)) or not isinstance(matrix, MatAdd):
        return matmul(coefficient, matrix)
    return MatMul(coefficient, matrix)


def split_coefficient(matrix):
    if isinstance(matrix, MatMul):
        coefficient, factors = matrix.as_coeff_matrices()
        return coefficient, (factors[0] if len(factors) == 1 else MatMul(*factors))
    return sympy.Integer(1), matrix


def hadamard(factors, shape):
    """The entrywise product, scalar coefficients pulled out and all-ones factors dropped."""
    coefficient, matrices = sympy.Integer(1), []
    for f in factors:
        c, m = split_coefficient(f)
        coefficient *= c
        if not isinstance(m, OneMatrix):
            matrices.append(m)
    if not matrices:
        product = Ones(*matrix_shape(shape))
    else:
        product = matrices[0] if len(matrices) == 1 else HadamardProduct(*matrices)
    return scale(coefficient, product)


def broadcast(value: Value, shape) -> sympy.Basic:
    """`value` broadcast (NumPy rules) to the tensor `shape`: scalar times ones, 1 b^T, c 1^T."""
    if is_scalar_like(shape):
        if not is_scalar_like(value.shape):
            raise NoMatrixForm(f"broadcast of {value.shape} to {shape}")
        return value.expr
    if is_scalar_like(value.shape):
        return scale(value.expr, Ones(*matrix_shape(shape)))
    if value.shape == shape:
        return value.expr
    if len(shape) == 2:
        expr, source = value.expr, value.shape
        if len(source) == 1:
            expr, source = transpose(expr), (1,) + source
        p, q = source
        m, n = shape
        if (p, q) == (m, n):
            return expr
        if p == 1 and q == n:
            return matmul(Ones(size(m), 1), expr)
        if p == m and q == 1:
            return matmul(expr, Ones(1, size(n)))
    raise NoMatrixForm(f"broadcast of {value.shape} to {shape}")


# ---- map bodies ---------------------------------------------------------------------------

def evaluable_scalar(expr):
    """A scalar expression with each opaque call wrapped so that sympy evaluates it on numbers."""
    return expr.replace(is_opaque, OpaqueCall)


def body_value(body, env: dict) -> Value:
    """A map body over arguments `env` (scalar symbol -> Value), entrywise in matrix notation."""
    matrices = {s for s, v in env.items() if not is_scalar_like(v.shape)}
    scalars = {s: v.expr for s, v in env.items() if is_scalar_like(v.shape)}

    def joint(values):
        return broadcast_shapes("to_sympy", *[v.shape for v in values])

    def translate(e) -> Value:
        if not e.free_symbols & matrices:
            return Value(evaluable_scalar(e.xreplace(scalars)), ())
        if e in env:
            return env[e]
        parts = [translate(a) for a in e.args]
        shape = joint(parts)
        if e.is_Add:
            return Value(MatAdd(*[broadcast(v, shape) for v in parts]).doit(deep=False), shape)
        if e.is_Mul:
            coefficient = sympy.Mul(*[v.expr for v in parts if is_scalar_like(v.shape)])
            entrywise = [broadcast(v, shape) for v in parts if not is_scalar_like(v.shape)]
            return Value(scale(coefficient, hadamard(entrywise, shape)), shape)
        if e.is_Pow and not e.exp.free_symbols & matrices:
            base, exponent = parts
            return Value(EntrywisePower(base.expr, exponent.expr), shape)
        variables, arguments, inner = [], [], []
        for v in parts:
            if is_scalar_like(v.shape):
                inner.append(v.expr)
            else:
                variable = sympy.Dummy(f"d{len(variables)}", real=True)
                variables.append(variable)
                arguments.append(broadcast(v, shape))
                inner.append(variable)
        return Value(elementwise(sympy.Lambda(tuple(variables), e.func(*inner)), *arguments), shape)

    return translate(body)


def _adds_leading_ones(node) -> bool:
    source = node.args[0].shape
    lead = node.ndim - len(source)
    return lead >= 0 and node.shape == (1,) * lead + source


def _peel_broadcast(node, define):
    """The node a map argument broadcasts from (the map broadcasts it the same way)."""
    while node not in define and (node.op == "broadcast" or node.op == "reshape" and (
            _adds_leading_ones(node) or is_scalar_like(node.shape) and is_scalar_like(node.args[0].shape))):
        node = node.args[0]
    return node


# ---- nodes ------------------------------------------------------------------------------------

def leaf_value(node, name) -> Value:
    if is_scalar_like(node.shape):
        return Value(scalar_leaf(name), node.shape)
    return Value(MatrixSymbol(name, *matrix_shape(node.shape)), node.shape)


def _constant(node) -> Value:
    array = node.attr("value").array
    if is_scalar_like(node.shape):
        return Value(exact_number(array.reshape(()), array.dtype), node.shape)
    matrix_shape(node.shape)
    flat = array.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return Value(scale(exact_number(flat[0], array.dtype), Ones(*matrix_shape(node.shape))), node.shape)
    if array.ndim == 1 and np.array_equal(array, np.arange(array.size)):
        return Value(Range(array.size), node.shape)
    if array.size > MAX_EXPLICIT_CONSTANT:
        raise NoMatrixForm(f"a non-uniform constant of shape {node.shape} (only up to {MAX_EXPLICIT_CONSTANT} entries are written out)")
    rows = array.reshape(-1, 1) if array.ndim == 1 else array
    return Value(sympy.ImmutableMatrix([[exact_number(v, array.dtype) for v in row] for row in rows]), node.shape)


def _reduce(node, x: Value) -> Value:
    kind, source = node.op, node.args[0].shape
    if is_scalar_like(source):
        return Value(x.expr, node.shape)
    if is_scalar_like(node.shape):
        if kind == "max":
            return Value(EntryMax(x.expr), node.shape)
        coefficient, matrix = split_coefficient(x.expr)
        return Value(coefficient * EntrySum(matrix), node.shape)
    axes = [a for a in node.attr("axes") if source[a] != 1]
    if not axes:
        return _reshape(Value(x.expr, source), node.shape)
    (axis,) = axes
    if kind == "max":
        return Value(AxisMax(x.expr, axis), node.shape)
    rows, cols = matrix_shape(source)
    if axis == 0:
        return Value(matmul(transpose(x.expr), Ones(rows, 1)), node.shape)
    return Value(matmul(x.expr, Ones(cols, 1)), node.shape)


def _is_row(shape) -> bool:
    return len(shape) == 2 and shape[0] == 1 and shape[1] != 1


def _reshape(x: Value, shape) -> Value:
    if is_scalar_like(x.shape) and is_scalar_like(shape):
        return Value(x.expr, shape)
    core_from, core_to = [d for d in x.shape if d != 1], [d for d in shape if d != 1]
    if core_from != core_to or len(shape) > 2:
        raise NoMatrixForm(f"reshape from {x.shape} to {shape}")
    flip = len(core_to) == 1 and _is_row(x.shape) != _is_row(shape)
    return Value(transpose(x.expr) if flip else x.expr, shape)


def _oriented(expr, term, index, side):
    """Operand `expr` with indices `term` turned so `index` is its column ('left') or row ('right')."""
    if len(term) == 1:
        return (transpose(expr) if side == "left" else expr), ""
    other = term[0] if term[1] == index else term[1]
    in_place = term[1] == index if side == "left" else term[0] == index
    return (expr if in_place else transpose(expr)), other


def _einsum(node, operands) -> Value:
    spec = node.attr("spec")
    terms, out = spec.split("->")
    terms = terms.split(",")
    if all(is_scalar_like(o.shape) for o in operands):
        return Value(sympy.Mul(*[o.expr for o in operands]), node.shape)
    if len(operands) == 2 and "" in terms:
        (scalar, term, other) = (operands[0], terms[1], operands[1]) if terms[0] == "" else (operands[1], terms[0], operands[0])
        if term == out:
            return Value(scale(scalar.expr, other.expr), node.shape)
        if len(out) == 2 and term == out[::-1]:
            return Value(scale(scalar.expr, transpose(other.expr)), node.shape)
    if len(operands) != 2 or any(is_scalar_like(o.shape) for o in operands):
        raise NoMatrixForm(f"einsum {spec!r} on shapes {[o.shape for o in operands]}")
    (a, b), (ta, tb) = [o.expr for o in operands], terms
    contracted = [c for c in ta if c in tb and c not in out]
    if len(contracted) == 1 and set(ta + tb) - set(out) == set(contracted):
        left, row = _oriented(a, ta, contracted[0], "left")
        right, col = _oriented(b, tb, contracted[0], "right")
        if out == row + col:
            product = matmul(left, right)
            if not row and col:
                product = transpose(product)
        elif out == col + row:
            product = matmul(transpose(right), transpose(left))
        else:
            raise NoMatrixForm(f"einsum {spec!r}")
        return Value(OneByOne(product) if not out else product, node.shape)
    if not contracted and len(ta) == len(tb) == 1 and ta != tb and out in (ta + tb, tb + ta):
        first, second = (a, b) if out == ta + tb else (b, a)
        return Value(matmul(first, transpose(second)), node.shape)
    raise NoMatrixForm(f"einsum {spec!r} on shapes {[o.shape for o in operands]}")


def node_value(node, values: dict, define: dict) -> Value:
    """The matrix expression of `node`, given those of its arguments."""
    if node in define:
        return leaf_value(node, define[node])
    op = node.op
    args = [values[a] for a in node.args]
    if op in ("input", "param"):
        return leaf_value(node, node.name)
    if op == "dim":
        return Value(dim_symbol(node.name), ())
    if op == "const":
        return _constant(node)
    matrix_shape(node.shape)
    if op == "map":
        env = {scalar_symbol(k): values[_peel_broadcast(a, define)] for k, a in enumerate(node.args)}
        return Value(broadcast(body_value(for_reading(node.attr("body")), env), node.shape), node.shape)
    if op in ("sum", "max"):
        return _reduce(node, args[0])
    if op == "einsum":
        return _einsum(node, args)
    if op == "reshape":
        return _reshape(args[0], node.shape)
    if op == "transpose":
        return Value(transpose(args[0].expr) if node.ndim == 2 else args[0].expr, node.shape)
    if op == "broadcast":
        return Value(broadcast(args[0], node.shape), node.shape)
    if op == "stop_gradient":
        return Value(args[0].expr, node.shape)
    raise NoMatrixForm(f"the {op} operation has no matrix-calculus form here")


class Part(NamedTuple):
    """A node written in the formula as the symbol `name`.

    Either a node the notation cannot write (`definition` is None): `arguments`
    are the expressions of the node's arguments (a named part's own symbol for
    those that are parts too); a part of rank 3 or more is a plain ``Symbol``,
    which only the descriptions of other parts use. Or an intermediate nested
    too deeply to write inline (see ``nesting``): `definition` is its expression,
    in terms of leaves and earlier parts.
    """
    name: str
    node: object
    symbol: sympy.Basic
    arguments: tuple
    reason: str
    definition: object = None


def _written(node) -> bool:
    """Whether a named node of this shape can stand in a formula (rank <= 2, or one value)."""
    return len(node.shape) <= 2 or is_scalar_like(node.shape)


def _part_symbol(node, name) -> Value:
    if _written(node):
        return leaf_value(node, name)
    return Value(sympy.Symbol(name), node.shape)


def _fresh_names(order, define, prefix="T"):
    return fresh_names(prefix, {n.name for n in order if n.name} | set(define.values()))


def matrix_expression(output, order, define: dict, name_parts: bool = False, max_depth: int | None = MAX_NESTING):
    """``(expression, parts)`` of `output`; raises NoMatrixForm where the notation ends.

    name_parts: instead of raising, write each node the notation cannot express (a
    tensor of rank 3, a slice, ...) as a symbol. Leaves keep their names, other
    parts are called T1, T2, ...
    max_depth: when an intermediate's expression would nest deeper than this, the
    graph is written with intermediates as symbols H1, H2, ... (parts with their
    `definition`; see ``nesting.Namer``), so deep graphs give expressions of bounded
    depth (None: never). `parts` lists both kinds, arguments first.
    """
    return written_with_names(lambda namer: _matrix_expression(output, order, dict(define), name_parts, namer),
                              output, order, define, max_depth)


def _matrix_expression(output, order, define: dict, name_parts: bool, namer: Namer):
    values, parts, named = {}, [], {}
    names = _fresh_names(order, define)
    hidden = _fresh_names(order, define, "H")
    for node in order:
        try:
            if node not in define and any(a in named and not _written(named[a].node) for a in node.args):
                raise NoMatrixForm("an argument is a tensor of rank 3 or more")
            values[node] = node_value(node, values, define)
        except NoMatrixForm as reason:
            if not name_parts:
                raise
            name = node.name if node.op in ("input", "param") else next(names)
            value = _part_symbol(node, name)
            named[node] = Part(name, node, value.expr, tuple(values[a].expr for a in node.args), str(reason))
            parts.append(named[node])
            values[node] = value
            continue
        if namer.named(node, values[node].expr, define):
            name = next(hidden)
            value = leaf_value(node, name)
            named[node] = Part(name, node, value.expr, tuple(values[a].expr for a in node.args),
                               "an intermediate of a deep graph", _in_our_notation(values[node].expr))
            parts.append(named[node])
            define[node] = name
            values[node] = value
    return _in_our_notation(values[output].expr), parts


def _in_our_notation(expr):
    """sympy's own all-ones matrices (its products make them) as ``Ones``, which evaluate under subs."""
    if not isinstance(expr, sympy.Basic):
        return expr
    plain = {o: Ones(*o.shape) for o in expr.atoms(OneMatrix) if type(o) is OneMatrix}
    return expr.xreplace(plain) if plain else expr
