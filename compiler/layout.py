"""Layout operations users call beyond the primitives: pad modes, flip, roll, tile,
repeat, diagonal, tril/triu, and einsum's repeated indices and ellipsis.

Each is written with the layout primitives of ``graph`` (slice with any step,
pad, concat, broadcast, reshape, transpose) and maps, so its gradient,
reference evaluation and lowering are theirs: nothing here needs a rule of
its own. Semantics are NumPy's (and PyTorch's, where the two agree; where
they differ the docstring says which).
"""
from __future__ import annotations

import string

import numpy as np

from .errors import fail
from .graph import Node, as_node, const
from .primitives import make_broadcast, make_concat, make_pad, make_reshape, make_slice, make_transpose
from .shapes import normalize_axes

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def take(x: Node, axis: int, start: int, stop: int, step: int = 1) -> Node:
    """x[start:stop:step] along one axis (start/stop already resolved, as slice.indices gives)."""
    starts = tuple(start if i == axis else 0 for i in range(x.ndim))
    stops = tuple(stop if i == axis else d for i, d in enumerate(x.shape))
    steps = tuple(step if i == axis else 1 for i in range(x.ndim))
    return make_slice(x, starts, stops, steps)


def static_size(x: Node, axis: int, op: str) -> int:
    """The size of `axis`, which must be concrete: constants (an index iota) and pads are built from it."""
    size = x.shape[axis]
    if isinstance(size, str):
        raise fail(op, f"axis {axis} of shape {x.shape} is the symbolic dimension {size!r}; {op} needs a concrete size")
    return size


def _widths(widths, ndim: int) -> list:
    """NumPy's pad widths: an int, one (low, high) pair for every axis, or one pair per axis."""
    try:
        array = np.asarray(widths, dtype=object)
        if array.ndim == 0:
            pairs = [(int(widths), int(widths))] * ndim
        elif array.shape == (2,) and ndim != 1 or array.shape == (1, 2):
            pairs = [(int(array.flat[0]), int(array.flat[1]))] * ndim
        elif array.shape == (ndim, 2):
            pairs = [(int(lo), int(hi)) for lo, hi in array]
        elif array.shape == (2,) and ndim == 1:
            pairs = [(int(array[0]), int(array[1]))]
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise fail("pad", f"widths must be an int, a (low, high) pair or {ndim} such pairs, got {widths!r}") from None
    if any(lo < 0 or hi < 0 for lo, hi in pairs):
        raise fail("pad", f"pad widths must be >= 0, got {widths!r}")
    return pairs


def pad(x, widths, mode: str = "constant", value=0.0):
    """Pad like ``numpy.pad``: widths as numpy's; mode ``constant`` (with `value`), ``reflect``
    (mirror without the edge), ``replicate`` (numpy's ``edge``) or ``circular`` (numpy's
    ``wrap``; each width at most the axis size, as PyTorch requires)."""
    x = as_node(x)
    if mode not in PAD_MODES:
        raise fail("pad", f"unknown mode {mode!r}; expected one of {', '.join(PAD_MODES)}")
    pairs = _widths(widths, x.ndim)
    if mode == "constant":
        return make_pad(x, tuple(lo for lo, _ in pairs), tuple(hi for _, hi in pairs), float(value))
    for axis, (lo, hi) in enumerate(pairs):
        if lo or hi:
            x = _pad_axis(x, axis, lo, hi, mode)
    return x


def _pad_axis(x: Node, axis: int, lo: int, hi: int, mode: str) -> Node:
    n = static_size(x, axis, f"pad(mode={mode!r})")
    limit = {"reflect": n - 1, "circular": n, "replicate": max(lo, hi) if n else -1}[mode]
    if lo > limit or hi > limit:
        raise fail("pad", f"mode {mode!r} pads axis {axis} of size {n} by at most {limit}, got ({lo}, {hi})")
    if mode == "reflect":
        low, high = take(x, axis, lo, 0, -1), take(x, axis, n - 2, n - 2 - hi, -1)
    elif mode == "circular":
        low, high = take(x, axis, n - lo, n), take(x, axis, 0, hi)
    else:
        edge_shape = lambda k: tuple(k if i == axis else d for i, d in enumerate(x.shape))  # noqa: E731
        low = make_broadcast(take(x, axis, 0, 1), edge_shape(lo))
        high = make_broadcast(take(x, axis, n - 1, n), edge_shape(hi))
    return make_concat([p for p in (low, x, high) if p.shape[axis] != 0], axis)


def flip(x, axis=None):
    """x reversed along `axis` (an int, a tuple, or None for every axis: numpy.flip; torch.flip's dims)."""
    x = as_node(x)
    for a in normalize_axes(axis, x.ndim, "flip"):
        n = static_size(x, a, "flip")
        x = take(x, a, n - 1, -1, -1)
    return x


def roll(x, shift, axis=None):
    """Elements shifted by `shift` along `axis`, wrapping around (numpy.roll / torch.roll);
    axis None rolls the flattened tensor. `shift` and `axis` may be tuples of one length."""
    x = as_node(x)
    if axis is None:
        if not isinstance(shift, (int, np.integer)):
            raise fail("roll", f"with axis=None the shift must be an int, got {shift!r}")
        flat = make_reshape(x, (_size(x, "roll"),))
        return make_reshape(roll(flat, shift, 0), x.shape)
    shifts = tuple(shift) if isinstance(shift, (tuple, list)) else (shift,)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if len(shifts) != len(axes):
        raise fail("roll", f"shift {shift!r} and axis {axis!r} must have one length")
    for s, a in zip(shifts, axes):
        a = normalize_axes(a, x.ndim, "roll")[0]
        n = static_size(x, a, "roll")
        s = int(s) % n if n else 0
        if s:
            x = make_concat([take(x, a, n - s, n), take(x, a, 0, n - s)], a)
    return x


def _size(x: Node, op: str) -> int:
    for axis in range(x.ndim):
        static_size(x, axis, op)
    return int(np.prod(x.shape, dtype=np.int64))


def tile(x, reps):
    """numpy.tile: the whole tensor repeated reps[i] times along axis i (torch's Tensor.repeat)."""
    x = as_node(x)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    if any(r < 0 for r in reps):
        raise fail("tile", f"repetitions must be >= 0, got {reps}")
    ndim = max(len(reps), x.ndim)
    reps = (1,) * (ndim - len(reps)) + reps
    x = make_reshape(x, (1,) * (ndim - x.ndim) + x.shape)
    for a in range(ndim):
        if reps[a] != 1:
            static_size(x, a, "tile")
    interleaved = make_reshape(x, sum(((1, d) for d in x.shape), ()))
    spread = make_broadcast(interleaved, sum(((r, d) for r, d in zip(reps, x.shape)), ()))
    return make_reshape(spread, tuple(r * d if r != 1 else d for r, d in zip(reps, x.shape)))


def repeat(x, repeats: int, axis=None):
    """numpy.repeat with an int count: each element repeated `repeats` times along axis (None:
    the flattened tensor), as torch.repeat_interleave."""
    x = as_node(x)
    if not isinstance(repeats, (int, np.integer)) or repeats < 0:
        raise fail("repeat", f"repeats must be an int >= 0, got {repeats!r}")
    if axis is None:
        x, axis = make_reshape(x, (_size(x, "repeat"),)), 0
    axis = normalize_axes(axis, x.ndim, "repeat")[0]
    n = static_size(x, axis, "repeat")
    expanded = make_reshape(x, x.shape[:axis + 1] + (1,) + x.shape[axis + 1:])
    spread = make_broadcast(expanded, x.shape[:axis + 1] + (int(repeats),) + x.shape[axis + 1:])
    return make_reshape(spread, x.shape[:axis] + (n * int(repeats),) + x.shape[axis + 1:])


def diagonal(x, offset: int = 0, axis1: int = 0, axis2: int = 1):
    """The diagonal of the (axis1, axis2) planes as the last axis (numpy.diagonal, torch.diagonal):
    elements (i, i + offset). A strided slice of the planes flattened."""
    x = as_node(x)
    if x.ndim < 2:
        raise fail("diagonal", f"needs at least 2 axes, got shape {x.shape}")
    a1, a2 = (normalize_axes(a, x.ndim, "diagonal")[0] for a in (axis1, axis2))
    if a1 == a2:
        raise fail("diagonal", f"axis1 and axis2 must differ, both are {a1}")
    n, m = static_size(x, a1, "diagonal"), static_size(x, a2, "diagonal")
    rest = [a for a in range(x.ndim) if a not in (a1, a2)]
    planes = make_transpose(x, tuple(rest) + (a1, a2))
    flat = make_reshape(planes, planes.shape[:-2] + (n * m,))
    start = offset if offset >= 0 else -offset * m
    count = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    if count == 0:
        return take(flat, flat.ndim - 1, 0, 0)
    return take(flat, flat.ndim - 1, start, start + (count - 1) * (m + 1) + 1, m + 1)


def _triangle(x, k: int, lower: bool, op: str):
    from .ops import where  # ops imports this module
    x = as_node(x)
    if x.ndim < 2:
        raise fail(op, f"needs at least 2 axes, got shape {x.shape}")
    n, m = static_size(x, x.ndim - 2, op), static_size(x, x.ndim - 1, op)
    rows, cols = np.arange(n)[:, None], np.arange(m)[None, :]
    mask = (cols - rows <= k) if lower else (cols - rows >= k)
    return where(const(mask), x, 0)


def tril(x, diagonal: int = 0):
    """Elements on and below the `diagonal`-th diagonal of the last two axes; zeros above."""
    return _triangle(x, diagonal, True, "tril")


def triu(x, diagonal: int = 0):
    """Elements on and above the `diagonal`-th diagonal of the last two axes; zeros below."""
    return _triangle(x, diagonal, False, "triu")


def expand_einsum(spec: str, operands: list):
    """(spec, operands) with `...` replaced by letters (broadcasting operands to one shape) and
    repeated indices within an operand taken as diagonals, as numpy.einsum reads them."""
    spec = spec.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise fail(f"einsum({spec!r})", f"{len(terms)} operand specs but {len(operands)} operands")
    used = set(spec) - set(",.->")
    spare = [c for c in string.ascii_letters if c not in used]
    if "..." in spec:
        terms, operands, ell = _expand_ellipsis(spec, terms, operands, spare)
        if arrow:
            out = out.replace("...", ell)
    else:
        ell = ""
    if not arrow:
        letters = "".join(terms)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    for k, (term, x) in enumerate(zip(terms, operands)):
        while len(set(term)) != len(term):
            c = next(c for c in term if term.count(c) > 1)
            i = term.index(c)
            j = term.index(c, i + 1)
            if x.shape[i] != x.shape[j]:
                raise fail(f"einsum({spec!r})", f"repeated index {c!r} of operand {k} has sizes {x.shape[i]} and {x.shape[j]}")
            x = diagonal(x, 0, i, j)
            term = term[:i] + term[i + 1:j] + term[j + 1:] + c
        terms[k], operands[k] = term, x
    return ",".join(terms) + "->" + out, operands


def _expand_ellipsis(spec, terms, operands, spare):
    from .shapes import broadcast_shapes
    rank = {}
    for k, (term, x) in enumerate(zip(terms, operands)):
        if term.count("...") > 1:
            raise fail(f"einsum({spec!r})", "only one '...' per operand")
        if "..." in term:
            rank[k] = x.ndim - (len(term) - 3)
            if rank[k] < 0:
                raise fail(f"einsum({spec!r})", f"operand {k} of shape {x.shape} has fewer axes than {term!r} names")
    width = max(rank.values(), default=0)
    ell = "".join(spare[:width])
    shapes = [x.shape[term.index("..."):term.index("...") + rank[k]] for k, (term, x) in enumerate(zip(terms, operands))
              if k in rank]
    batch = broadcast_shapes(f"einsum({spec!r})", *shapes)
    new_terms, new_operands = [], []
    for k, (term, x) in enumerate(zip(terms, operands)):
        if k in rank:
            at = term.index("...")
            own = x.shape[at:at + rank[k]]
            target = x.shape[:at] + batch + x.shape[at + rank[k]:]
            if own != batch:
                x = make_reshape(x, x.shape[:at] + (1,) * (width - rank[k]) + x.shape[at:])
                x = make_broadcast(x, target)
            term = term.replace("...", ell)
        new_terms.append(term)
        new_operands.append(x)
    return new_terms, new_operands, ell
