"""The map primitive: elementwise with NumPy broadcasting, its body a sympy expression of the
scalar symbols ``x0, x1, ...`` standing for its arguments. Its derivative is ``sympy.diff`` of
the body; its reference is the body lambdified for NumPy; the code generator prints the body
as scalar code inside the loop of each kernel that reads it."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy

from runtime.dimensions import concrete

from .. import scalar_functions as sf
from ..dtypes import is_float, promote
from ..errors import fail
from ..graph import Node, const, dim_size, scalar_symbol
from ..scalar_functions import NUMPY_IMPLEMENTATIONS
from ..shapes import broadcast_shapes, size_factors
from . import cotangents, define, layouts

_OUT = sympy.Symbol("y_out", real=True)
_COTANGENT = sympy.Symbol("g_in", real=True)


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
        return layouts.make_broadcast(const(float(body), dtype), shape)
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


@lru_cache(maxsize=4096)
def numpy_function(body: sympy.Expr, nargs: int):
    """A NumPy function of nargs arrays computing the scalar body elementwise."""
    symbols = [scalar_symbol(i) for i in range(nargs)]
    # numpy the module, not "numpy": sympy's import of the name touches every attribute, and
    # NumPy then loads its f2py submodule (~60 ms on the first evaluation of a process)
    return sympy.lambdify(symbols, body, modules=[NUMPY_IMPLEMENTATIONS, np])


def _evaluate(node, args, dims, values):
    compute_dtype = np.result_type(*args) if args else node.dtype
    args = [a.astype(compute_dtype, copy=False) for a in args]
    result = np.asarray(numpy_function(node.attr("body"), len(args))(*args))
    return np.broadcast_to(result, concrete(node.shape, dims)).astype(node.dtype)


def _vjp_map(node, g):
    body = node.attr("body")
    out = []
    for i, arg in enumerate(node.args):
        partial = map_partial(body, i, len(node.args)) if is_float(arg.dtype) else None
        if partial is None:
            out.append(None)
            continue
        expr, uses_output = partial
        args = [g] + list(node.args) + ([node] if uses_output else [])
        contribution = make_map(expr, args, node.dtype)
        out.append(cotangents.unbroadcast(contribution, arg.shape))
    return out


@lru_cache(maxsize=4096)
def map_partial(body, i: int, nargs: int):
    """Body of the map computing a map's cotangent contribution to its argument i, over
    (cotangent, the map's arguments..., [its output]), and whether it reads the output;
    None where the derivative is 0. Cached: a chain of equal layers differentiates one body."""
    # torch's conventions where the calculus has none: DiracDelta is 0, d(x**y)/dy is 0 at x = 0 (sf.derivative)
    derivative = sf.derivative(body, scalar_symbol(i))
    if derivative == 0:
        return None
    uses_output = not body.is_Symbol and derivative.has(body)
    if uses_output:
        derivative = derivative.xreplace({body: _OUT})
    expr = _COTANGENT * derivative
    symbols = [_COTANGENT] + [scalar_symbol(j) for j in range(nargs)] + ([_OUT] if uses_output else [])
    renamed = {s: scalar_symbol(k) for k, s in enumerate(symbols)}
    return rename_symbols(expr, renamed), uses_output


define("map", "map", make_map, _evaluate, _vjp_map, "inline")
