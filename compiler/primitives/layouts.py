"""Layout primitives: they move elements, never compute them. Each maps the index of an
element of its output to the index of the element of its argument it is (``index``, validity
bounds included: see ``codegen/access.py``), so it never runs as a kernel of its own; its
cotangent is the inverse movement. ``concat`` reads each piece under its range; a reshape
that is not only unit axes stores its argument first."""
from __future__ import annotations

import numpy as np

from runtime.dimensions import concrete

from ..codegen.access import Affine, Bound, Index, through_broadcast
from ..dtypes import promote
from ..errors import fail
from ..graph import Node, scalar_symbol
from ..shapes import broadcast_shapes
from . import cotangents, define, maps


# ---- reshape -------------------------------------------------------------------------------

def make_reshape(x: Node, shape: tuple) -> Node:
    if shape == x.shape:
        return x
    if x.op == "reshape":
        x = x.args[0]
        if shape == x.shape:
            return x
    return Node("reshape", (x,), (("shape", shape),), shape, x.dtype)


def _index_reshape(node: Node, index: Index):
    """A reshape that splits axes (or inserts or removes size-1 axes) reads its argument at an
    affine index: each argument axis is a run of output axes, row-major. Any other (one that
    merges axes) needs its argument stored: None."""
    runs = _split_runs(node.args[0].shape, node.shape)
    if runs is None:
        return None
    dims = []
    for run in runs:
        affine, stride = Affine(), 1
        for j in reversed(run):
            affine = affine.plus(index.dims[j].scaled(stride))
            stride = stride * node.shape[j] if isinstance(node.shape[j], int) else None
        dims.append(affine)
    return index.with_dims(dims)


def _split_runs(source: tuple, out: tuple):
    """For each source axis, the output axes (not of size 1) it is split into, row-major; None when
    the reshape merges axes or splits a symbolic one. Unit axes on either side read index 0."""
    axes = [j for j, d in enumerate(out) if d != 1]
    runs, k = [], 0
    for d in source:
        if d == 1:
            runs.append([])
            continue
        if k == len(axes):
            return None
        if isinstance(d, str) or isinstance(out[axes[k]], str):
            if out[axes[k]] != d:
                return None
            runs.append([axes[k]])
            k += 1
            continue
        run, product = [], 1
        while product < d and k < len(axes) and isinstance(out[axes[k]], int):
            product *= out[axes[k]]
            run.append(axes[k])
            k += 1
        if product != d:
            return None
        runs.append(run)
    return runs if k == len(axes) else None


def _vjp_reshape(node, g):
    return [make_reshape(g, node.args[0].shape)]


define("reshape", "layout", make_reshape, lambda node, args, dims, values: args[0].reshape(concrete(node.shape, dims)),
       _vjp_reshape, "index", _index_reshape)


# ---- transpose -----------------------------------------------------------------------------

def make_transpose(x: Node, perm: tuple) -> Node:
    if perm == tuple(range(x.ndim)):
        return x
    return Node("transpose", (x,), (("perm", perm),), tuple(x.shape[p] for p in perm), x.dtype)


def _index_transpose(node: Node, index: Index) -> Index:
    dims = [None] * node.ndim
    for i, p in enumerate(node.attr("perm")):
        dims[p] = index.dims[i]
    return index.with_dims(dims)


def _vjp_transpose(node, g):
    perm = node.attr("perm")
    inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))
    return [make_transpose(g, inverse)]


define("transpose", "layout", make_transpose, lambda node, args, dims, values: np.transpose(args[0], node.attr("perm")),
       _vjp_transpose, "index", _index_transpose)


# ---- broadcast -----------------------------------------------------------------------------

def make_broadcast(x: Node, shape: tuple) -> Node:
    if shape == x.shape:
        return x
    if broadcast_shapes("broadcast_to", x.shape, shape) != tuple(shape):
        raise fail("broadcast_to", f"cannot broadcast {x.shape} to {shape}")
    return Node("broadcast", (x,), (("shape", tuple(shape)),), tuple(shape), x.dtype)


def _vjp_broadcast(node, g):
    return [cotangents.unbroadcast(g, node.args[0].shape)]


define("broadcast", "layout", make_broadcast,
       lambda node, args, dims, values: np.broadcast_to(args[0], concrete(node.shape, dims)), _vjp_broadcast, "index",
       lambda node, index: through_broadcast(index, node.args[0].shape, node.shape))


# ---- slice ---------------------------------------------------------------------------------

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


def _evaluate_slice(node, args, dims, values):
    stops = concrete(node.attr("stops"), dims)
    return args[0][tuple(slice(a, None if b < 0 else b, k) for a, b, k in zip(node.attr("starts"), stops, slice_steps(node)))]


def _index_slice(node: Node, index: Index) -> Index:
    return index.with_dims(d.scaled(step).shifted(start)
                           for d, start, step in zip(index.dims, node.attr("starts"), slice_steps(node)))


def _vjp_slice(node, g):
    """The cotangent scattered back to the sliced positions, zeros elsewhere: reversed where the
    step is negative, spread by reshape-and-pad where it is not 1, then padded into place."""
    x = node.args[0]
    for axis, (start, step, size) in enumerate(zip(node.attr("starts"), slice_steps(node), x.shape)):
        count = g.shape[axis]
        if isinstance(size, str):
            continue
        if count == 0:
            return [cotangents.zeros_like(x)]
        if step < 0:
            g = make_slice(g, _at(g, axis, count - 1, 0), _at(g, axis, -1, g.shape), _at(g, axis, -1, 1))
            start, step = start + (count - 1) * step, -step
        if step > 1:
            g = _spread(g, axis, step)
        used = g.shape[axis]
        g = make_pad(g, _at(g, axis, start, 0), _at(g, axis, size - start - used, 0))
    return [g]


def _at(node, axis, value, rest):
    """A per-axis tuple: `value` at `axis`, `rest` (a number, or a shape to copy) elsewhere."""
    return tuple(value if i == axis else (rest[i] if isinstance(rest, tuple) else rest) for i in range(node.ndim))


def _spread(g, axis, step):
    """g with step-1 zeros after each element along axis (but the last): (.., m, ..) -> (.., (m-1)*step+1, ..)."""
    m = g.shape[axis]
    expanded = make_reshape(g, g.shape[:axis + 1] + (1,) + g.shape[axis + 1:])
    padded = make_pad(expanded, (0,) * (g.ndim + 1), tuple(step - 1 if i == axis + 1 else 0 for i in range(g.ndim + 1)))
    flat = make_reshape(padded, g.shape[:axis] + (m * step,) + g.shape[axis + 1:])
    used = (m - 1) * step + 1
    return make_slice(flat, (0,) * g.ndim, _at(g, axis, used, flat.shape))


define("slice", "layout", make_slice, _evaluate_slice, _vjp_slice, "index", _index_slice)


# ---- pad -----------------------------------------------------------------------------------

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


def _index_pad(node: Node, index: Index) -> Index:
    """Each padded axis adds the bound of the argument's range, filling with the pad value."""
    value, dims = pad_value(node), []
    for d, lo, hi, size in zip(index.dims, node.attr("low"), node.attr("high"), node.args[0].shape):
        inner = d.shifted(-lo)
        if lo or hi:
            index = index.bounded(Bound(inner, 0, size, value))
        dims.append(inner)
    return index.with_dims(dims)


def _vjp_pad(node, g):
    x, low = node.args[0], node.attr("low")
    stops = tuple(lo + d if isinstance(d, int) else d for lo, d in zip(low, x.shape))
    return [make_slice(g, low, stops)]


define("pad", "layout", make_pad,
       lambda node, args, dims, values: np.pad(args[0], list(zip(node.attr("low"), node.attr("high"))),
                                               constant_values=pad_value(node)),
       _vjp_pad, "index", _index_pad)


# ---- concat --------------------------------------------------------------------------------

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
    xs = tuple(x if x.dtype == dtype else maps.make_map(scalar_symbol(0), [x], dtype) for x in xs)
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return Node("concat", xs, (("axis", axis),), tuple(shape), dtype)


def _vjp_concat(node, g):
    axis, offset, parts = node.attr("axis"), 0, []
    for x in node.args:
        starts = tuple(offset if i == axis else 0 for i in range(x.ndim))
        stops = tuple(offset + x.shape[axis] if i == axis else d for i, d in enumerate(g.shape))
        parts.append(make_slice(g, starts, stops))
        offset += x.shape[axis]
    return parts


define("concat", "layout", make_concat, lambda node, args, dims, values: np.concatenate(args, axis=node.attr("axis")),
       _vjp_concat, "pieces")


# ---- window ---------------------------------------------------------------------------------

def window_count(length: int, size: int, stride: int, dilation: int) -> int:
    """How many windows of `size` taps `dilation` apart, `stride` apart, fit in `length` elements."""
    return (length - dilation * (size - 1) - 1) // stride + 1


def make_window(x: Node, axis: int, size: int, stride: int = 1, dilation: int = 1) -> Node:
    """The windows of `size` taps along `axis`: output[..., i, ..., k] = x[..., i*stride + k*dilation, ...],
    the window position in place of `axis` and the tap as a new last axis (the view a
    convolution or a pooling contracts or reduces; nothing is copied)."""
    length = x.shape[axis]
    if isinstance(length, str):
        raise fail("window", f"cannot take windows along the symbolic dimension {length!r} of {x.shape}")
    if size < 1 or stride < 1 or dilation < 1:
        raise fail("window", f"size, stride and dilation must be >= 1, got {size}, {stride}, {dilation}")
    count = window_count(length, size, stride, dilation)
    if count < 1:
        raise fail("window", f"a window of {size} taps with dilation {dilation} spans {dilation * (size - 1) + 1} "
                             f"elements, more than the {length} of axis {axis} of {x.shape}")
    shape = x.shape[:axis] + (count,) + x.shape[axis + 1:] + (size,)
    attrs = (("axis", axis), ("size", size), ("stride", stride), ("dilation", dilation))
    return Node("window", (x,), attrs, shape, x.dtype)


def _evaluate_window(node, args, dims, values):
    axis, size, stride, dilation = (node.attr(k) for k in ("axis", "size", "stride", "dilation"))
    span = dilation * (size - 1) + 1
    views = np.lib.stride_tricks.sliding_window_view(args[0], span, axis=axis)
    picked = views[(slice(None),) * axis + (slice(None, None, stride),)][..., ::dilation]
    return np.ascontiguousarray(picked)


def _index_window(node: Node, index: Index) -> Index:
    axis, stride, dilation = node.attr("axis"), node.attr("stride"), node.attr("dilation")
    source = index.dims[axis].scaled(stride).plus(index.dims[-1].scaled(dilation))
    return index.with_dims(index.dims[:axis] + (source,) + index.dims[axis + 1:-1])


def _vjp_window(node, g):
    """Each tap's cotangent goes back where the tap read, summed over the taps. With stride 1 that
    is a sum of shifted taps. With stride s the argument's axis is split into (rows, s): at
    residue r only the taps with k*dilation = r (mod s) arrive, each shifted by whole rows, so
    every term stays an affine read; the split pieces are stored once, in the argument's layout."""
    x = node.args[0]
    axis, size, stride, dilation = (node.attr(k) for k in ("axis", "size", "stride", "dilation"))
    length, last = x.shape[axis], g.ndim - 1
    taps = [make_reshape(make_slice(g, _at(g, last, k, 0), _at(g, last, k + 1, g.shape)), g.shape[:-1])
            for k in range(size)]
    if stride == 1:
        return [_sum_of([_shifted(tap, axis, k * dilation, length) for k, tap in enumerate(taps)])]
    rows = -(-length // stride)
    pieces = []
    for r in range(stride):
        terms = [_shifted(taps[k], axis, (k * dilation - r) // stride, rows)
                 for k in range(size) if (k * dilation - r) % stride == 0]
        piece = _sum_of(terms) if terms else cotangents.zeros_like(_shifted(taps[0], axis, 0, rows))
        pieces.append(make_reshape(piece, piece.shape[:axis + 1] + (1,) + piece.shape[axis + 1:]))
    stacked = make_concat(pieces, axis + 1)
    split = make_reshape(stacked, x.shape[:axis] + (rows * stride,) + x.shape[axis + 1:])
    return [make_slice(split, (0,) * x.ndim, _at(x, axis, length, x.shape))]


def _shifted(t: Node, axis: int, shift: int, length: int) -> Node:
    """t moved `shift` places along `axis` (out[q] = t[q - shift], 0 outside t), cut or padded to `length`."""
    count = t.shape[axis]
    start = max(0, -shift)
    stop = min(count, length - shift)
    if stop <= start:
        return cotangents.zeros_like(make_pad(make_slice(t, _at(t, axis, 0, 0), _at(t, axis, 0, t.shape)),
                                              _at(t, axis, 0, 0), _at(t, axis, length, 0)))
    kept = make_slice(t, _at(t, axis, start, 0), _at(t, axis, stop, t.shape))
    low = start + shift
    return make_pad(kept, _at(t, axis, low, 0), _at(t, axis, length - low - (stop - start), 0))


def _sum_of(terms: list) -> Node:
    return terms[0] if len(terms) == 1 else maps.make_map(sum(scalar_symbol(i) for i in range(len(terms))), terms,
                                                           terms[0].dtype)


define("window", "layout", make_window, _evaluate_window, _vjp_window, "index", _index_window)


# ---- stop_gradient -------------------------------------------------------------------------

def make_stop_gradient(x: Node) -> Node:
    if x.op in ("stop_gradient", "const", "dim"):
        return x
    return Node("stop_gradient", (x,), (), x.shape, x.dtype)


define("stop_gradient", "layout", make_stop_gradient, lambda node, args, dims, values: args[0],
       lambda node, g: [None], "index", lambda node, index: index)


# ---- surrogate -----------------------------------------------------------------------------

def make_surrogate(value: Node, surrogate: Node) -> Node:
    """`value`, whose gradient is the gradient of `surrogate` (an expression equal to it in value).
    Only the gradient graph reads `surrogate`; compiled programs compute `value` (the simplifier's
    first pass), so a max pooling is one max reduction forward while its gradient goes to the
    first maximum as the surrogate's selection says."""
    if value.shape != surrogate.shape or value.dtype != surrogate.dtype:
        raise fail("surrogate", f"value {value.shape} {value.dtype} and surrogate {surrogate.shape} "
                                f"{surrogate.dtype} must agree")
    return Node("surrogate", (value, surrogate), (), value.shape, value.dtype)


define("surrogate", "layout", make_surrogate, lambda node, args, dims, values: args[0],
       lambda node, g: [None, g], "index", lambda node, index: index)
