"""Input domains and shape strategies for the gradient op table (grad_op_table.py).

A domain is ``fn(rng, shape, all_shapes) -> float64 array``: where an operand
is drawn so the op is smooth there and a five-point stencil of step 1e-3 stays
on one side of every kink, tie or jump (``off_grid`` for relu, ``distinct``
for max, ``unit_divisor`` for remainder). A shape strategy draws
``(shapes, kwargs)``: broadcasting between ranks, size-1 dims, axes, indices.
They live apart from the table so that a row stays one line.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

# ---- input domains: fn(rng, shape, all_shapes) -> float64 array -------------------------------


def real(lo=-2.0, hi=2.0):
    return lambda rng, shape, shapes: rng.uniform(lo, hi, shape)


def positive(lo=0.5, hi=3.0):
    return real(lo, hi)


def nonzero(rng, shape, shapes):
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def off_grid(rng, shape, shapes):
    """At least 0.1 away from every multiple of 0.5: clear of relu/abs/clip kinks at 0, +-0.5, 1."""
    return 0.5 * rng.integers(-4, 4, shape) + 0.25 + rng.uniform(-0.15, 0.15, shape)


def on_grid(rng, shape, shapes):
    """Within 0.05 of a multiple of 0.5: at least 0.05 away from any off_grid value."""
    return 0.5 * rng.integers(-4, 4, shape) + rng.uniform(-0.05, 0.05, shape)


def unit_divisor(rng, shape, shapes):
    """+-1/2 or +-1: an off_grid value divided by one is at least 0.1 from an integer (clear of the jumps
    of remainder, fmod and floor division)."""
    return rng.choice([-1.0, -0.5, 0.5, 1.0], shape)


def below_grid(rng, shape, shapes):
    """0.02 to 0.04 below a multiple of 0.5: clear of off_grid values and of above_grid ones."""
    return 0.5 * rng.integers(-4, 4, shape) - rng.uniform(0.02, 0.04, shape)


def above_grid(rng, shape, shapes):
    return 0.5 * rng.integers(-4, 4, shape) + rng.uniform(0.02, 0.04, shape)


def distinct(rng, shape, shapes):
    """Values at least 0.15 apart, so a max reduction has no near-tie for the stencil to cross."""
    n = math.prod(shape)
    return ((rng.permutation(n) - n / 2) * 0.25 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


def labels_for_logits(rng, shape, shapes):
    return rng.integers(0, shapes[0][1], shape)


def unit(rng, shape, shapes):
    return rng.uniform(0.0, 1.0, shape)


# ---- shape strategies: each yields (shapes, kwargs) -------------------------------------------

SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
SHAPE_AT_LEAST_1D = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def one_shape(shapes=SHAPE, **kwargs):
    return shapes.map(lambda s: ((s,), kwargs))


def broadcast_shapes(n):
    """n shapes that broadcast together: different ranks, size-1 dims."""
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=3, min_side=1, max_side=4).map(
        lambda b: (tuple(b.input_shapes), {}))


@st.composite
def reduction_case(draw, allow_tuple=True, keepdims=True):
    shape = draw(SHAPE)
    choices = [st.none()] if allow_tuple else []
    if shape:
        choices.append(st.integers(-len(shape), len(shape) - 1))
        if allow_tuple:
            choices.append(hnp.valid_tuple_axes(len(shape)))
    axis = draw(st.one_of(*choices)) if choices else None
    kwargs = {"axis": axis}
    if keepdims:
        kwargs["keepdims"] = draw(st.booleans())
    return (shape,), kwargs


@st.composite
def axis_case(draw):
    shape = draw(SHAPE_AT_LEAST_1D)
    return (shape,), {"axis": draw(st.integers(-len(shape), len(shape) - 1))}


@st.composite
def matmul_case(draw):
    """1-D operands, matrices, and batches whose batch dims broadcast."""
    batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)).input_shapes
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    a = (k,) if draw(st.booleans()) else batch_a + (m, k)
    b = (k,) if draw(st.booleans()) else batch_b + (k, n)
    return (a, b), {}


EINSUM_SPECS = [
    "ij,jk->ik",       # matmul
    "i,j->ij",         # outer product
    "bij,bjk->bik",    # batched
    "ijk,jl->il",      # k appears in one operand only: summed away
    "ij,jkl->ik",      # l likewise, in the second operand
    "ij->",            # a full sum
    "ij->ji",          # a transpose
    "i,i->",           # a dot product
    "bi,bi->b",        # row-wise dots
    "ij,jk,kl->il",    # three operands
    "ij,jk",           # implicit output (NumPy: 'ik')
]


@st.composite
def einsum_case(draw):
    spec = draw(st.sampled_from(EINSUM_SPECS))
    terms = spec.split("->")[0].split(",")
    sizes = {c: draw(st.integers(1, 4)) for c in sorted(set("".join(terms)))}
    return tuple(tuple(sizes[c] for c in t) for t in terms), {"spec": spec}


@st.composite
def concat_case(draw, same_shapes=False):
    base = draw(SHAPE_AT_LEAST_1D)
    count = draw(st.integers(1, 3))
    if same_shapes:
        axis = draw(st.integers(-len(base) - 1, len(base)))
        return (base,) * count, {"axis": axis}
    axis = draw(st.integers(-len(base), len(base) - 1))
    shapes = []
    for _ in range(count):
        s = list(base)
        s[axis] = draw(st.integers(1, 3))
        shapes.append(tuple(s))
    return tuple(shapes), {"axis": axis}


@st.composite
def broadcast_to_case(draw):
    target = draw(SHAPE)
    keep = draw(st.integers(0, len(target)))
    source = tuple(1 if draw(st.booleans()) else d for d in target[len(target) - keep:])
    return (source,), {"shape": target}


@st.composite
def reshape_case(draw):
    shape = draw(SHAPE)
    n = math.prod(shape)
    options = [(n,), shape[::-1], shape + (1,), (1,) + shape, (-1,)]
    if shape:
        options.append((-1,) + shape[-1:])
    target = draw(st.sampled_from(options))
    return (shape,), {"shape": target, "as_method": draw(st.booleans())}


@st.composite
def transpose_case(draw):
    shape = draw(SHAPE)
    perm = draw(st.permutations(range(len(shape))))
    return (shape,), {"axes": None if draw(st.booleans()) else tuple(perm)}


@st.composite
def index_case(draw):
    """Basic indices: ints (also negative), slices with any step (negative too), None and one Ellipsis."""
    shape = draw(SHAPE_AT_LEAST_1D)
    items = []
    for d in shape[:draw(st.integers(1, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            items.append(draw(st.integers(-d, d - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-d, d)))
            stop = draw(st.one_of(st.none(), st.integers(-d, d)))
            step = draw(st.sampled_from([None, 1, 2, 3, -1, -2]))
            items.append(slice(start, stop, step))
        else:
            items.append(slice(None))
    if draw(st.booleans()):
        items.insert(draw(st.integers(0, len(items))), None)
    if draw(st.booleans()) and len(items) < len(shape):
        items.append(Ellipsis)  # after the items, which index the leading dims
    index = tuple(items) if len(items) != 1 or draw(st.booleans()) else items[0]
    return (shape,), {"index": index}


@st.composite
def pad_case(draw):
    """Per-axis widths a mode can take: reflect up to size-1, circular and replicate up to size."""
    shape = draw(SHAPE_AT_LEAST_1D)
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    limit = {"constant": 3, "reflect": None, "replicate": None, "circular": None}[mode]
    widths = []
    for d in shape:
        top = limit if limit is not None else (d - 1 if mode == "reflect" else d)
        widths.append((draw(st.integers(0, top)), draw(st.integers(0, top))))
    return (shape,), {"widths": tuple(widths), "mode": mode, "value": draw(st.sampled_from([0.0, -1.5]))}


def np_pad(x, widths, mode, value):
    if mode == "constant":
        return np.pad(x, widths, constant_values=value)
    return np.pad(x, widths, {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode])


@st.composite
def roll_case(draw):
    shape = draw(SHAPE_AT_LEAST_1D)
    if draw(st.booleans()):
        return (shape,), {"shift": draw(st.integers(-7, 7)), "axis": None}
    return (shape,), {"shift": draw(st.integers(-7, 7)), "axis": draw(st.integers(-len(shape), len(shape) - 1))}


@st.composite
def tile_case(draw):
    shape = draw(SHAPE)
    return (shape,), {"reps": tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))}


@st.composite
def repeat_case(draw):
    shape = draw(SHAPE_AT_LEAST_1D)
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return (shape,), {"repeats": draw(st.integers(0, 3)), "axis": axis}


@st.composite
def diagonal_case(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    axis1, axis2 = draw(st.permutations(range(len(shape))))[:2]
    return (shape,), {"offset": draw(st.integers(-3, 3)), "axis1": axis1, "axis2": axis2}


@st.composite
def triangle_case(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    return (shape,), {"diagonal": draw(st.integers(-3, 3))}


@st.composite
def cross_entropy_case(draw):
    batch, classes = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return ((batch, classes), (batch,)), {}


@st.composite
def cross_entropy_nd_case(draw):
    """Logits (..., classes) with 0 to 2 leading axes, labels of the leading shape."""
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    return (lead + (draw(st.integers(1, 5)),), lead), {}


def labels_for_last_axis(rng, shape, shapes):
    return rng.integers(0, shapes[0][-1], shape)


@st.composite
def topk_case(draw):
    (shape,), kwargs = draw(axis_case())
    return (shape,), {**kwargs, "k": draw(st.integers(0, shape[kwargs["axis"]]))}


SPREAD = hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)  # std needs 2 distinct values
