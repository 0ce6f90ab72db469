"""How a kernel reads a buffer: layout ops folded into index arithmetic with validity.

A kernel iterates over an index space (its output shape, or its input shape for
a reduction). Broadcast, transpose, slice (any step), pad, concat and size-1
reshapes never copy: they change which element of a source buffer an iteration
point reads. A read is an ``Index``: for every dimension of the buffer's view an
affine expression of the iteration indices,

    source[d] = sum(coef * iteration[axis]) + offset,

and a list of ``Bound`` conditions ``lo <= affine < hi``, each with the value the
read yields when it fails. The rule, as tinygrad carries ``valid`` through its
movement ops:

- every layout op maps its output index to its input index *and adds the
  conditions of its own range*: a pad adds ``0 <= source < size`` (yielding the
  pad value), a concat piece adds the piece's range on the axis (yielding 0);
  a slice, broadcast, transpose or unit reshape moves the index and keeps every
  condition it received;
- conditions are listed outermost first; a read yields the fill of the first
  condition that fails, else the loaded element;
- an invalid read never touches memory: the load runs only where every
  condition holds (a masked load once vectorised), and the fill is selected;
- a condition that holds at every point of the iteration space is dropped
  (``Index.within``), so a slice that undoes a pad reads plainly again.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from runtime.dimensions import dim_parts



@dataclass(frozen=True)
class Buffer:
    """A NumPy array the program reads or writes: one pointer in the program's buffer table."""

    index: int
    shape: tuple
    dtype: str
    role: str  # "input", "param", "const", "output", "temp"
    name: str


@dataclass(frozen=True)
class Affine:
    """sum(coef * iteration[axis] for axis, coef in terms) + offset (integers)."""

    terms: tuple = ()  # ((axis, coef), ...) by axis, no zero coefficient
    offset: int = 0

    @staticmethod
    def axis(axis: int) -> "Affine":
        return Affine(((axis, 1),))

    def shifted(self, k: int) -> "Affine":
        return Affine(self.terms, self.offset + k)

    def scaled(self, k: int) -> "Affine":
        if k == 0:
            return Affine((), 0)
        return Affine(tuple((a, c * k) for a, c in self.terms), self.offset * k)

    def plus(self, other: "Affine") -> "Affine":
        """The sum of two affine indices."""
        coefs = dict(self.terms)
        for axis, coef in other.terms:
            coefs[axis] = coefs.get(axis, 0) + coef
        return Affine(tuple(sorted((a, c) for a, c in coefs.items() if c)), self.offset + other.offset)

    def range_over(self, space: tuple):
        """(least, greatest) value over the iteration space, or None when a symbolic size matters."""
        low = high = self.offset
        for axis, coef in self.terms:
            size = space[axis]
            if not isinstance(size, int):
                return None
            if size == 0:
                return None  # an empty space: nothing is read
            low += min(0, coef * (size - 1))
            high += max(0, coef * (size - 1))
        return low, high

    def __str__(self):
        parts = []
        for axis, coef in self.terms:
            term = f"i{axis}" if coef == 1 else f"-i{axis}" if coef == -1 else f"{coef}*i{axis}"
            parts.append(term if not parts or term.startswith("-") else "+" + term)
        if self.offset or not parts:
            parts.append(str(self.offset) if not parts or self.offset < 0 else f"+{self.offset}")
        return "".join(parts)


@dataclass(frozen=True)
class Bound:
    """The read is valid only where lo <= index < hi; elsewhere it yields `fill`."""

    index: Affine
    lo: int
    hi: int
    fill: float = 0.0

    def always_holds(self, space: tuple) -> bool:
        span = self.index.range_over(space)
        return span is not None and self.lo <= span[0] and span[1] < self.hi

    def __str__(self):
        fill = "" if self.fill == 0 else f" else {self.fill}"
        return f"{self.lo}<={self.index}<{self.hi}{fill}"


@dataclass(frozen=True)
class Index:
    """Which element one iteration point reads: an Affine per view dim, and when the read is valid."""

    dims: tuple  # Affine per view dim
    valid: tuple = ()  # Bounds, outermost first

    def with_dims(self, dims) -> "Index":
        return Index(tuple(dims), self.valid)

    def bounded(self, bound: Bound) -> "Index":
        return Index(self.dims, self.valid + (bound,))

    def within(self, space: tuple) -> "Index":
        """This index without the conditions that hold everywhere in `space`."""
        valid = tuple(b for b in self.valid if not b.always_holds(space))
        return self if valid == self.valid else Index(self.dims, valid)


def identity_index(ndim: int) -> Index:
    return Index(tuple(Affine.axis(a) for a in range(ndim)))


@dataclass(frozen=True)
class Access:
    """Element `index` of `buffer` viewed with shape `view_shape` (contiguous, row-major)."""

    buffer: Buffer
    view_shape: tuple
    index: Index

    @property
    def checked(self) -> bool:
        return bool(self.index.valid)

    def describe(self, name: str) -> str:
        """`x[i0, i1-2 | 0<=i1-2<3]`: the buffer, the element read and the conditions of the read."""
        if self.view_shape == self.buffer.shape and self.index == identity_index(len(self.view_shape)):
            return name
        view = "" if self.view_shape == self.buffer.shape else "(" + ",".join(map(str, self.view_shape)) + ")"
        text = f"{name}{view}[{', '.join(str(d) for d in self.index.dims)}"
        if self.index.valid:
            text += " | " + ", ".join(str(b) for b in self.index.valid)
        return text + "]"


def through_broadcast(index: Index, source_shape: tuple, out_shape: tuple) -> Index:
    """Index of a source that NumPy-broadcasts to out_shape: broadcast dims read element 0."""
    lead = len(out_shape) - len(source_shape)
    dims = []
    for j, d in enumerate(source_shape):
        if d == 1 and out_shape[j + lead] != 1:
            dims.append(Affine())
        else:
            dims.append(index.dims[j + lead])
    return index.with_dims(dims)


def concat_piece(index: Index, axis: int, offset: int, size: int) -> Index:
    """Index into one piece of a concatenation (at `offset` along `axis`): valid in its range, else 0."""
    inner = index.dims[axis].shifted(-offset)
    dims = index.dims[:axis] + (inner,) + index.dims[axis + 1:]
    return Index(dims, index.valid + (Bound(inner, 0, size, 0.0),))


def size_expr(dim) -> sympy.Expr:
    """A dimension as a sympy integer (named dims become positive integer symbols, "batch*16" their product)."""
    if isinstance(dim, int):
        return sympy.Integer(dim)
    factor, names = dim_parts(dim)
    return sympy.Integer(factor) * sympy.Mul(*[sympy.Symbol(n, integer=True, positive=True) for n in names])


def contiguous_strides(shape) -> list:
    strides, running = [], sympy.Integer(1)
    for d in reversed(shape):
        strides.append(running)
        running = running * size_expr(d)
    return list(reversed(strides))


def linear_form(access: Access, ndim: int):
    """(coefficient per iteration axis, constant offset) in elements of the element read."""
    return affine_linear(access.index.dims, contiguous_strides(access.view_shape), ndim)


def affine_linear(dims, strides, ndim: int):
    coefs = [sympy.Integer(0)] * ndim
    offset = sympy.Integer(0)
    for stride, d in zip(strides, dims):
        for axis, coef in d.terms:
            coefs[axis] += coef * stride
        offset += d.offset * stride
    return coefs, offset


@dataclass(frozen=True)
class IndexedMatrix:
    """A product's A operand read through offset tables instead of being stored: element
    [batch..., m, k] of the view is ``buffer[offset + sum(batch[i] * batch index i) +
    row_offsets[m] + depth_offsets[k]]``. A convolution's im2col matrix is one: its rows (output
    positions) and depths (channel x tap) each step through the padded input with strides that
    a single leading dimension cannot express (14 positions of a row, then a jump of 16).

    `rows` and `depths` are the digits of m and k, most significant first: (size, stride) pairs;
    an offset is the sum of each digit times its stride (``digit_offsets``)."""

    buffer: Buffer
    view_shape: tuple
    batch: tuple  # int element stride per batch axis of the view
    offset: int
    rows: tuple  # ((size, stride), ...)
    depths: tuple

    def describe(self, name: str) -> str:
        def digits(pairs):
            return "+".join(f"{stride}*[{size}]" for size, stride in pairs)
        return f"{name}[rows {digits(self.rows)}; depths {digits(self.depths)}]"


def digit_offsets(digits: tuple) -> list:
    """Offset of each index 0 .. prod(sizes) - 1 whose mixed-radix digits (sizes, most significant
    first) are weighted by the strides: the table an IndexedMatrix's GEMM reads."""
    offsets = [0]
    for size, stride in digits:
        offsets = [base + d * stride for base in offsets for d in range(size)]
    return offsets
