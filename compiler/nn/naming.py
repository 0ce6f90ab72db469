"""Layer names: unique within a naming scope, so a model built twice can get the same names.

An unnamed layer takes its kind (``conv2d``) and, if that is taken in the current
scope, the first free ``conv2d_1``, ``conv2d_2``, ...; its Params are named
``<layer>.<param>``. Outside any scope the process has one scope, so names
never repeat. ``with nn.names():`` opens a fresh scope (counters start again),
so building a model inside it twice gives the same names -- and, graphs being
hash-consed, the same Params. ``nn.names("encoder")`` also prefixes every name
made inside it (``encoder.dense.weight``). A name given twice in one scope is an
error: two layers with one name would silently share their Params. For the same
reason, two different models that meet in one graph (a GAN's generator and
discriminator) are built in scopes with different prefixes, not in two
unprefixed fresh scopes.
"""
from __future__ import annotations

import contextlib
import contextvars

from ..errors import fail


class NameScope:
    """The names used so far in one scope, and the prefix of names made in it."""

    def __init__(self, prefix: str = ""):
        self.prefix, self.used = prefix, set()

    def claim(self, name: str | None, kind: str, layer: str) -> str:
        if name is None:
            name, count = kind, 0
            while self.prefix + name in self.used:
                count += 1
                name = f"{kind}_{count}"
        else:
            check_layer_name(name, layer)
            if self.prefix + name in self.used:
                raise fail(layer, f"name {name!r} is already used by another layer in this naming scope (two "
                                  "layers of one name would share their Params); expected a new name, or build the "
                                  "model again inside `with compiler.nn.names():`")
        self.used.add(self.prefix + name)
        return self.prefix + name


_ROOT = NameScope()
_current: contextvars.ContextVar = contextvars.ContextVar("symprop_nn_names", default=_ROOT)


def check_layer_name(name, layer: str) -> None:
    if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
        raise fail(layer, f"name: expected a Python identifier or dot-separated identifiers, got {name!r}")


@contextlib.contextmanager
def names(prefix: str | None = None):
    """A fresh naming scope: default names start again (``dense``, ``dense_1``, ...); with `prefix`,
    every layer name made inside is ``<prefix>.<name>``."""
    if prefix is not None:
        check_layer_name(prefix, "nn.names")
    outer = _current.get()
    scope = NameScope(outer.prefix + prefix + "." if prefix is not None else outer.prefix)
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def claim_name(name: str | None, kind: str, layer: str) -> str:
    """A layer's full name in the current scope (see the module docstring)."""
    return _current.get().claim(name, kind, layer)


@contextlib.contextmanager
def inside(layer_name: str):
    """The scope of a layer's parts: every name made inside is ``<layer_name>.<name>``, whatever scope the
    layer itself was made in (its name already carries that scope's prefix). A TransformerBlock builds its
    attention and norms here (``transformer_block.self_attn``, ``transformer_block.norm1``)."""
    token = _current.set(NameScope(layer_name + "."))
    try:
        yield
    finally:
        _current.reset(token)
