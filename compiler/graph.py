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

This module holds the node type and the leaves; each other primitive's
constructor (its shape and dtype rule), reference, gradient and lowering are
defined together in ``primitives``; ``ops`` holds what users call.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np
import sympy

from .dtypes import canonical_dtype, promote
from .errors import fail, user_location
from .shapes import canonical_shape

LEAF_OPS = ("input", "param", "const", "dim")

_nodes: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_nodes_lock = threading.Lock()  # a node made by two threads at once is still one node


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
            made = object.__new__(cls)
            for name, value in (("op", op), ("args", args), ("attrs", attrs), ("shape", shape), ("dtype", dtype),
                                ("location", location or user_location())):
                object.__setattr__(made, name, value)
            with _nodes_lock:
                node = _nodes.get(key)
                if node is None:
                    node = _nodes[key] = made
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
        op, shape, dtype = _state_leaf("Param", "a parameter", name, shape, dtype)
        if not (callable(init) or init in INITIALIZERS):
            raise fail(op, f"unknown init {init!r}; expected one of {', '.join(INITIALIZERS)} or a callable (shape, rng) -> ndarray")
        return Node.__new__(cls, "param", (), (("name", name), ("init", init)), shape, dtype)


class Buffer(Node):
    """Non-trainable state a training step updates in place (batch norm's running statistics).

    A Buffer is read like a Param -- bound by name, saved and loaded with the parameters --
    but no optimizer updates it: a ``training`` node (``primitives.modes``) says its new value.
    """

    __slots__ = ()

    def __new__(cls, name: str, shape, init="zeros", dtype="float32"):
        op, shape, dtype = _state_leaf("Buffer", "a buffer", name, shape, dtype)
        if init not in ("zeros", "ones"):
            raise fail(op, f"unknown init {init!r}; expected 'zeros' or 'ones'")
        return Node.__new__(cls, "param", (), (("name", name), ("init", init), ("buffer", True)), shape, dtype)


def is_buffer(node: Node) -> bool:
    """Whether a leaf is a Buffer (a param leaf no optimizer trains)."""
    return node.op == "param" and ("buffer", True) in node.attrs


def _state_leaf(kind: str, what: str, name, shape, dtype) -> tuple:
    """(label, shape, dtype) of a Param or Buffer, checked: a valid name and a concrete shape."""
    _check_name(name, kind)
    op = f"{kind}({name!r})"
    shape = canonical_shape(shape, op)
    if any(isinstance(d, str) for d in shape):
        raise fail(op, f"{what}'s shape must be concrete, got {shape}")
    return op, shape, canonical_dtype(dtype, op)


def _check_name(name, op):
    """Leaf names are Python identifiers, or several joined by dots (a layer's ``conv2d.weight``)."""
    if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
        raise fail(op, f"name must be a Python identifier or dot-separated identifiers (like 'conv2d.weight'), "
                       f"got {name!r}")


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


def as_node(value, like: Node | None = None) -> Node:
    if isinstance(value, Node):
        return value
    if is_python_number(value) and like is not None:
        return const(value, promote([like.dtype], [value]))
    return const(value)
