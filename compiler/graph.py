"""Immutable, hash-consed nodes of a tensor graph.

A node is (op, args, attrs, shape, dtype). Building the same expression twice
returns the same node object, so common subexpressions are shared for free and
nodes compare by identity. The primitive ops, in four families:

- leaves: ``input``, ``param``, ``const``, ``dim`` (a symbolic dimension's value)
- map: elementwise with NumPy broadcasting; ``attrs["body"]`` is a sympy
  expression of the scalar symbols ``x0, x1, ...`` standing for the args
- reduce: ``sum`` and ``max`` over ``attrs["axes"]`` (the axes disappear)
- contract: ``einsum`` with ``attrs["spec"]`` such as ``"ij,jk->ik"``
- layout: ``reshape``, ``transpose``, ``broadcast``, ``slice``, ``pad``, ``concat``
- ``stop_gradient``: identity whose gradient is zero

This module holds the node type and the primitive constructors with their
shape and dtype rules; ``ops`` holds what users call.
"""
from __future__ import annotations

import weakref

import numpy as np
import sympy

from .dtypes import canonical_dtype, promote
from .errors import fail, user_location
from .shapes import broadcast_shapes, canonical_shape, size_factors

LEAF_OPS = ("input", "param", "const", "dim")

_nodes: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def scalar_symbol(i: int) -> sympy.Symbol:
    """The scalar standing for a map's i-th argument."""
    return sympy.Symbol(f"x{i}", real=True)


class ConstValue:
    """A constant array, hashable by content so equal constants are one node."""

    __slots__ = ("array", "_key")

    def __init__(self, array: np.ndarray):
        self.array = np.array(array, order="C")
        self.array.setflags(write=False)
        self._key = (self.array.dtype.str, self.array.shape, self.array.tobytes())

    def __hash__(self):
        return hash(self._key)

    def __eq__(self, other):
        return isinstance(other, ConstValue) and self._key == other._key

    def __repr__(self):
        if self.array.size <= 4:
            return np.array2string(self.array, separator=", ")
        return f"<{self.array.shape} array>"


class Node:
    """One tensor-valued operation. Create through the constructors, never directly."""

    __slots__ = ("op", "args", "attrs", "shape", "dtype", "location", "__weakref__")
    __array_priority__ = 1000  # make numpy defer to Node's reflected operators

    def __new__(cls, op: str, args: tuple, attrs: tuple, shape: tuple, dtype: str, location: str | None = None):
        key = (cls, op, args, attrs, shape, dtype)
        node = _nodes.get(key)
        if node is None:
            node = object.__new__(cls)
            for name, value in (("op", op), ("args", args), ("attrs", attrs), ("shape", shape), ("dtype", dtype),
                                ("location", location or user_location())):
                object.__setattr__(node, name, value)
            _nodes[key] = node
        return node

    def __setattr__(self, name, value):
        raise AttributeError(f"graph nodes are immutable (shared by every graph that uses them); cannot set {name!r}")

    def __delattr__(self, name):
        raise AttributeError(f"graph nodes are immutable; cannot delete {name!r}")

    def attr(self, key: str):
        for k, v in self.attrs:
            if k == key:
                return v
        raise KeyError(key)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def name(self) -> str | None:
        return self.attr("name") if self.op in ("input", "param", "dim") else None

    @property
    def is_leaf(self) -> bool:
        return self.op in LEAF_OPS

    def __bool__(self):
        raise TypeError("a symbolic tensor has no truth value; use compiler.where for conditions")

    def __repr__(self):
        label = f" {self.name!r}" if self.name else ""
        return f"<{self.op}{label} {self.shape} {self.dtype}>"

    def __reduce__(self):
        raise TypeError("graph nodes are not picklable; compile them instead")


class Input(Node):
    """Data fed at each call. A shape entry may name a symbolic dimension."""

    __slots__ = ()

    def __new__(cls, name: str, shape, dtype="float32"):
        _check_name(name, "Input")
        shape = canonical_shape(shape, f"Input({name!r})")
        for d in shape:
            if isinstance(d, str) and not d.isidentifier():
                raise fail(f"Input({name!r})", f"a symbolic dimension of an Input is a name, got {d!r}")
        dtype = canonical_dtype(dtype, f"Input({name!r})")
        return Node.__new__(cls, "input", (), (("name", name),), shape, dtype)


INITIALIZERS = ("glorot_uniform", "zeros", "ones", "normal", "he_normal")


class Param(Node):
    """A trainable tensor with an initializer (a name in INITIALIZERS or ``(shape, rng) -> ndarray``)."""

    __slots__ = ()

    def __new__(cls, name: str, shape, init="glorot_uniform", dtype="float32"):
        _check_name(name, "Param")
        op = f"Param({name!r})"
        shape = canonical_shape(shape, op)
        if any(isinstance(d, str) for d in shape):
            raise fail(op, f"a parameter's shape must be concrete, got {shape}")
        if not (callable(init) or init in INITIALIZERS):
            raise fail(op, f"unknown init {init!r}; expected one of {', '.join(INITIALIZERS)} or a callable (shape, rng) -> ndarray")
        dtype = canonical_dtype(dtype, op)
        return Node.__new__(cls, "param", (), (("name", name), ("init", init)), shape, dtype)


def _check_name(name, op):
    if not isinstance(name, str) or not name.isidentifier():
        raise fail(op, f"name must be a Python identifier, got {name!r}")


def is_python_number(value) -> bool:
    """A Python bool, int or float: weak in dtype promotion. NumPy scalars are not (NumPy 2)."""
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def const(value, dtype=None) -> Node:
    """A constant tensor (a NumPy array or number)."""
    array = np.asarray(value)
    if dtype is None and array.dtype.kind == "f" and is_python_number(value):
        dtype = "float32"
    if dtype is None and array.dtype.kind in "iu" and is_python_number(value):
        dtype = "int64"
    dtype = canonical_dtype(dtype or array.dtype, "const")
    array = array.astype(dtype)
    return Node("const", (), (("value", ConstValue(array)),), array.shape, dtype)


def dim_size(name: str, dtype: str = "float32") -> Node:
    """The runtime value of a symbolic dimension, as a scalar of `dtype`."""
    return Node("dim", (), (("name", name),), (), canonical_dtype(dtype))


def size_of(shape, axes, dtype: str):
    """Number of elements in `axes` of `shape`: an int, or a node when symbolic dims occur."""
    n, names = size_factors([shape[a] for a in axes])
    symbolic = sorted(names.elements())
    if not symbolic:
        return n
    result = dim_size(symbolic[0], dtype)
    for name in symbolic[1:]:
        result = make_map(scalar_symbol(0) * scalar_symbol(1), [result, dim_size(name, dtype)], dtype)
    return make_map(scalar_symbol(0) * n, [result], dtype) if n != 1 else result


def as_node(value, like: Node | None = None) -> Node:
    if isinstance(value, Node):
        return value
    if is_python_number(value) and like is not None:
        return const(value, promote([like.dtype], [value]))
    return const(value)


# ---- map ----------------------------------------------------------------------------

def make_map(body, args, dtype: str | None = None, op_name: str = "map") -> Node:
    """Elementwise node: `body` over scalar_symbol(i) for args[i]; NumPy broadcasting.

    Arguments that appear twice are merged, unused ones dropped, and a body that is
    just one argument returns that argument (when shape and dtype already match).
    """
    body = sympy.sympify(body)
    args = list(args)
    shape = broadcast_shapes(op_name, *[a.shape for a in args]) if args else ()
    if dtype is None:
        dtype = promote([a.dtype for a in args])
    body, args = canonical_args(body, args)
    if not args:
        if not body.is_number:
            raise fail(op_name, f"body {body} uses symbols that are not arguments")
        return make_broadcast(const(float(body), dtype), shape)
    if body.is_Symbol and args[0].shape == shape and args[0].dtype == dtype:
        return args[0]
    if not body.free_symbols <= {scalar_symbol(i) for i in range(len(args))}:
        raise fail(op_name, f"body {body} uses symbols that are not arguments")
    return Node("map", tuple(args), (("body", body),), shape, dtype)


def rename_symbols(expr, mapping: dict):
    """Simultaneous symbol substitution (x1 -> x2 and x2 -> x3 without collisions)."""
    temps = {old: sympy.Dummy() for old in mapping}
    return expr.xreplace(temps).xreplace({temps[old]: new for old, new in mapping.items()})


def canonical_args(body, args):
    """Drop unused and duplicate args; renumber symbols densely in order."""
    used = body.free_symbols
    kept, mapping, seen = [], {}, {}
    for i, arg in enumerate(args):
        sym = scalar_symbol(i)
        if sym not in used:
            continue
        if arg in seen:
            mapping[sym] = seen[arg]
            continue
        new = scalar_symbol(len(kept))
        mapping[sym] = new
        seen[arg] = new
        kept.append(arg)
    if any(k != v for k, v in mapping.items()):
        body = body.xreplace(mapping)
    return body, kept


# ---- reduce, contract, layout ------------------------------------------------------------

def make_reduce(kind: str, x: Node, axes: tuple) -> Node:
    if not axes:
        return x
    shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    dtype = x.dtype
    if kind == "sum" and dtype in ("bool", "int32"):
        dtype = "int64"
    return Node(kind, (x,), (("axes", tuple(axes)),), shape, dtype)


def make_einsum(spec: str, *operands: Node) -> Node:
    op = f"einsum({spec!r})"
    if "->" not in spec:
        raise fail(op, "spec must be explicit, like 'ij,jk->ik'")
    lhs, out = spec.replace(" ", "").split("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise fail(op, f"{len(terms)} operand specs but {len(operands)} operands")
    sizes = {}
    for term, x in zip(terms, operands):
        if len(term) != x.ndim:
            raise fail(op, f"operand spec {term!r} has {len(term)} indices but the operand has shape {x.shape}")
        if len(set(term)) != len(term):
            raise fail(op, f"repeated index within operand spec {term!r} is not supported")
        for index, d in zip(term, x.shape):
            if sizes.setdefault(index, d) != d:
                raise fail(op, f"index {index!r} is {sizes[index]} in one operand and {d} in another; shapes "
                           + ", ".join(str(o.shape) for o in operands))
    if len(set(out)) != len(out) or any(i not in sizes for i in out):
        raise fail(op, f"bad output spec {out!r}")
    dtype = promote([x.dtype for x in operands])
    return Node("einsum", tuple(operands), (("spec", f"{','.join(terms)}->{out}"),),
                tuple(sizes[i] for i in out), dtype)


def make_reshape(x: Node, shape: tuple) -> Node:
    if shape == x.shape:
        return x
    if x.op == "reshape":
        x = x.args[0]
        if shape == x.shape:
            return x
    return Node("reshape", (x,), (("shape", shape),), shape, x.dtype)


def make_transpose(x: Node, perm: tuple) -> Node:
    if perm == tuple(range(x.ndim)):
        return x
    return Node("transpose", (x,), (("perm", perm),), tuple(x.shape[p] for p in perm), x.dtype)


def make_broadcast(x: Node, shape: tuple) -> Node:
    if shape == x.shape:
        return x
    if broadcast_shapes("broadcast_to", x.shape, shape) != tuple(shape):
        raise fail("broadcast_to", f"cannot broadcast {x.shape} to {shape}")
    return Node("broadcast", (x,), (("shape", tuple(shape)),), tuple(shape), x.dtype)


def make_slice(x: Node, starts: tuple, stops: tuple, steps: tuple | None = None) -> Node:
    """Elements start, start+step, ... before stop on each axis (Python's slice rule; any nonzero
    step). A symbolic dimension can only be taken whole."""
    steps = tuple(steps) if steps is not None else (1,) * x.ndim
    shape = tuple(len(range(a, b, k)) if isinstance(d, int) else d for a, b, k, d in zip(starts, stops, steps, x.shape))
    for a, b, k, d in zip(starts, stops, steps, x.shape):
        if k == 0 or isinstance(d, str) and (a, b, k) != (0, d, 1):
            raise fail("slice", f"bad slice {a}:{b}:{k} of dimension {d!r} in {x.shape}")
    if shape == x.shape and all(k == 1 for k in steps):
        return x
    attrs = (("starts", tuple(starts)), ("stops", tuple(stops)))
    if any(k != 1 for k in steps):
        attrs += (("steps", steps),)
    return Node("slice", (x,), attrs, shape, x.dtype)


def slice_steps(node: Node) -> tuple:
    """The steps of a slice node (1 unless given)."""
    return dict(node.attrs).get("steps", (1,) * node.ndim)


def make_pad(x: Node, low: tuple, high: tuple, value: float = 0.0) -> Node:
    """x with `low`/`high` elements of `value` added before/after each axis."""
    if not any(low) and not any(high):
        return x
    for d, lo, hi in zip(x.shape, low, high):
        if isinstance(d, str) and (lo or hi):
            raise fail("pad", f"cannot pad the symbolic dimension {d!r}")
        if lo < 0 or hi < 0:
            raise fail("pad", f"pad widths must be >= 0, got low {low} and high {high}")
    shape = tuple(d + lo + hi if isinstance(d, int) else d for d, lo, hi in zip(x.shape, low, high))
    attrs = (("low", tuple(low)), ("high", tuple(high)))
    value = float(value)
    if value != 0.0 or str(value) != "0.0":  # -0.0 and nan are values of their own
        attrs += (("value", value),)
    return Node("pad", (x,), attrs, shape, x.dtype)


def pad_value(node: Node) -> float:
    """The value a pad node fills with (0 unless given)."""
    return dict(node.attrs).get("value", 0.0)


def make_concat(xs, axis: int) -> Node:
    if len(xs) == 1:
        return xs[0]
    first = xs[0]
    for x in xs[1:]:
        same = all(a == b for i, (a, b) in enumerate(zip(x.shape, first.shape)) if i != axis)
        if x.ndim != first.ndim or not same:
            raise fail("concat", f"shapes {', '.join(str(x.shape) for x in xs)} differ off axis {axis}")
    if any(isinstance(x.shape[axis], str) for x in xs):
        raise fail("concat", f"cannot concatenate along a symbolic dimension (shapes {[x.shape for x in xs]})")
    dtype = promote([x.dtype for x in xs])
    xs = tuple(x if x.dtype == dtype else make_map(scalar_symbol(0), [x], dtype) for x in xs)
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return Node("concat", xs, (("axis", axis),), tuple(shape), dtype)


def make_stop_gradient(x: Node) -> Node:
    if x.op in ("stop_gradient", "const", "dim"):
        return x
    return Node("stop_gradient", (x,), (), x.shape, x.dtype)
