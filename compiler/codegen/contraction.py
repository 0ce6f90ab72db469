"""Einsum as batched matrix multiplication (a pass before scheduling).

Every einsum becomes layout ops around one ``bmm`` node:
``bmm(A, B)`` with A of shape ``batch + (M, K)`` and B of ``batch + (K, N)``
gives ``batch + (M, N)``. Index groups (M, N, K) of several dimensions are
merged by reshapes; an index summed in one operand only is summed first;
a symbolic index shares a contracted (K) group as a product dimension
(``"batch*8"``: the reshape of contiguous axes is free), but never an M or N
group: there it becomes a batch index, the other operand broadcast along it.
A product with a matrix dimension of size 1 (an outer product, a
matrix-vector product) is no GEMM: it becomes a multiply and a sum, loops
that join their neighbours' (``_a_loop_is_better``); one with a matrix
dimension of at most TINY_PRODUCT (3) static elements is split along it into
such products (``_tiny_index``): a network's 3 inputs or 2 outputs, the GEMM
kept for everything wider. Three or more operands contract
pairwise, cheapest pair first (pairs sharing an index before outer products).
The scheduler then turns the transposes into BLAS transpose flags or strides
where it can.
"""
from __future__ import annotations

import math

from ..errors import GraphError
from ..graph import Node, const, scalar_symbol
from ..shapes import product_dim, size_factors
from ..primitives import (make_bmm, make_broadcast, make_map, make_pad, make_reduce, make_reshape, make_slice,
                          make_transpose)
from ..passes.rewrite import rewrite


def _group_size(x: Node, axes, spec) -> int | str:
    """The size of one matrix dimension made of several indices: a product ("batch*8") if symbolic."""
    dims = [x.shape[spec.index(c)] for c in axes]
    if len(dims) == 1:
        return dims[0]
    return product_dim(*size_factors(dims))


def _operand(x: Node, spec: str, batch, rows, cols) -> Node:
    order = [spec.index(c) for c in batch + rows + cols]
    moved = make_transpose(x, tuple(order))
    shape = tuple(x.shape[spec.index(c)] for c in batch) + (_group_size(x, rows, spec), _group_size(x, cols, spec))
    return make_reshape(moved, shape)


def _pre_sum(x: Node, spec: str, keep) -> tuple:
    axes = tuple(i for i, c in enumerate(spec) if c not in keep)
    if not axes:
        return x, spec
    return make_reduce("sum", x, axes), "".join(c for c in spec if c in keep)


def _new_axis(x: Node, spec: str, index: str, size) -> tuple:
    """x broadcast along a new last axis named `index`."""
    unit = make_reshape(x, x.shape + (1,))
    return make_broadcast(unit, x.shape + (size,)), spec + index


def _symbolic_as_batch(a: Node, ta: str, b: Node, tb: str, out: str, sizes: dict) -> tuple:
    """Make every symbolic index that would share an M or N group with others a batch index (a
    product dimension such as "batch*8" is one matrix dimension only where it is contracted: a K
    of (steps x batch) rows is one large product, not one per sample and a sum after).

    Returns the operands (a, ta, b, tb).
    """
    def crowded(group):
        return [c for c in group if isinstance(sizes[c], str)] if len(group) > 1 else []

    m = [c for c in out if c in ta and c not in tb]
    n = [c for c in out if c in tb and c not in ta]
    for c in crowded(m):
        b, tb = _new_axis(b, tb, c, sizes[c])
    for c in crowded(n):
        a, ta = _new_axis(a, ta, c, sizes[c])
    return a, ta, b, tb


def lower_pair(a: Node, ta: str, b: Node, tb: str, out: str, dtype: str) -> Node:
    a, ta = _pre_sum(a, ta, set(tb) | set(out))
    b, tb = _pre_sum(b, tb, set(ta) | set(out))
    sizes = {c: d for spec, x in ((ta, a), (tb, b)) for c, d in zip(spec, x.shape)}
    a, ta, b, tb = _symbolic_as_batch(a, ta, b, tb, out, sizes)
    batch = [c for c in out if c in ta and c in tb]
    m = [c for c in out if c in ta and c not in tb]
    n = [c for c in out if c in tb and c not in ta]
    k = [c for c in ta if c in tb and c not in out]
    free = [c for c in out if c not in batch]
    if free and free[0] in n:  # C^T = B^T A^T keeps the output in row order
        a, ta, b, tb, m, n = b, tb, a, ta, n, m
    if _pack_the_smaller(m, n, k, sizes):
        a, ta, b, tb, m, n = b, tb, a, ta, n, m
    natural = batch + m + n
    tiny = _tiny_index(m, n, k, sizes)
    if _a_loop_is_better(m, n, k, sizes):
        unmerged = _product_loop(a, ta, b, tb, natural, k, sizes)
    elif tiny is not None:
        return _split_product(a, ta, b, tb, out, tiny, sizes[tiny], dtype)
    else:
        product = make_bmm(_operand(a, ta, batch, m, k), _operand(b, tb, batch, k, n))
        unmerged = make_reshape(product, tuple(sizes[c] for c in natural))
    result = make_transpose(unmerged, tuple(natural.index(c) for c in out))
    if result.dtype != dtype:
        raise GraphError(f"einsum: operand dtypes differ from the result dtype {dtype}")
    return result


SMALL_RESULT = 1 << 14  # elements of a product's result that its readers may read transposed at no cost


def _pack_the_smaller(m, n, k, sizes) -> bool:
    """The cost rule of orientation: the GEMM packs B (K x N) and reads A in place, so a deep product
    whose N is over twice its M runs as C^T = B^T A^T, packing the smaller operand -- when the result
    is small enough that reading it transposed costs nothing (a weight's gradient, read by the
    update). Measured: 32 x 128 x 1024 takes 62 us, 128 x 32 x 1024 53 us (an RNN's W_ih gradient)."""
    rows, columns, depth = (_static_size(group, sizes) for group in (m, n, k))
    if rows is None or columns is None:
        return False
    deep = depth is None or depth >= 4 * columns  # symbolic: a sum over the batch
    return columns > 2 * rows and deep and rows * columns <= SMALL_RESULT


def _static_size(group, sizes) -> int | None:
    """The size of a matrix dimension made of the indices `group`; None when one is symbolic."""
    return math.prod(sizes[c] for c in group) if all(isinstance(sizes[c], int) for c in group) else None


def _a_loop_is_better(m, n, k, sizes) -> bool:
    """The cost rule: a product with a matrix dimension of size 1 -- an outer product (K = 1) or a
    matrix-vector product (M = 1 or N = 1) -- reads each element of its larger operand once and
    does one multiply-add per element read, so it is memory-bound: a GEMM call would only add a
    kernel boundary and its packing. As a multiply (and a sum over K) it is an ordinary loop that
    joins its neighbours' fused loops (the 1-64-1 network's four products)."""
    return 1 in (_static_size(m, sizes), _static_size(n, sizes), _static_size(k, sizes))


TINY_PRODUCT = 3  # a matrix dimension of at most this many (static) elements: the product splits along it


def _tiny_index(m, n, k, sizes) -> str | None:
    """The cost rule's second half: an index of a matrix dimension of at most TINY_PRODUCT elements
    (a network's 2 or 3 inputs, 2 outputs). A GEMM that thin runs its packing for a few multiply-adds
    per element; split along it, the product is a sum of outer products (K) or matrix-vector
    products side by side (M, N): loops that join their neighbours' as the size-1 products do, the
    slices' loops joined into one that reads each operand once. Measured on (256, 64) layers (tanh
    beside, one core): the split wins at 2 and 3 for K, M and N, the GEMM at 4 for K and N."""
    for group in (k, m, n):
        size = _static_size(group, sizes)
        if group and size is not None and size <= TINY_PRODUCT:
            return group[0]
    return None


def _split_product(a: Node, ta: str, b: Node, tb: str, out: str, index: str, size: int, dtype: str) -> Node:
    """The product of a and b as one product per element of `index`: their sum when `index` is
    contracted; when it is kept, the sum of each zero-padded to its place along it (a concat that
    the loops reading it compute in place, where a concat inside a map would be stored first)."""
    rest = out.replace(index, "")
    pieces = [lower_pair(_element(a, ta, index, p), ta.replace(index, ""), _element(b, tb, index, p),
                         tb.replace(index, ""), rest, dtype) for p in range(size)]
    if index in out:
        axis = out.index(index)
        pieces = [make_pad(make_reshape(piece, piece.shape[:axis] + (1,) + piece.shape[axis:]),
                           tuple(p if i == axis else 0 for i in range(len(out))),
                           tuple(size - 1 - p if i == axis else 0 for i in range(len(out))))
                  for p, piece in enumerate(pieces)]
    return make_map(sum((scalar_symbol(i) for i in range(size)), 0), pieces, dtype)


def _element(x: Node, spec: str, index: str, position: int) -> Node:
    """x at `position` of the axis named `index` (that axis dropped); x itself when it has none."""
    if index not in spec:
        return x
    axis = spec.index(index)
    starts = tuple(position if i == axis else 0 for i in range(x.ndim))
    stops = tuple(position + 1 if i == axis else d for i, d in enumerate(x.shape))
    taken = make_slice(x, starts, stops)
    return make_reshape(taken, x.shape[:axis] + x.shape[axis + 1:])


def _product_loop(a: Node, ta: str, b: Node, tb: str, natural: list, k: list, sizes: dict) -> Node:
    """sum over k of a * b, both broadcast over the indices (natural + k) they lack: shape natural."""
    k = [c for c in k if sizes[c] != 1]  # an index of size 1 is no sum: a plain multiply
    kept = [c for c in natural if sizes[c] != 1]  # nor a loop axis (the loop then joins its neighbours')
    outer = any(isinstance(sizes[c], str) for c in k)  # summed over the batch (a weight's gradient): the
    order = k + kept if outer else kept + k            # batch outermost, accumulating rows as a bias does

    def aligned(x, spec):
        present = [c for c in order if c in spec] + [c for c in spec if c not in order]  # then the size-1 k
        moved = make_transpose(x, tuple(spec.index(c) for c in present))
        return make_reshape(moved, tuple(sizes[c] if c in spec else 1 for c in order))
    product = make_map(scalar_symbol(0) * scalar_symbol(1), [aligned(a, ta), aligned(b, tb)], a.dtype)
    summed = tuple(range(len(k))) if outer else tuple(range(len(kept), len(order)))
    result = make_reduce("sum", product, summed) if k else product
    return make_reshape(result, tuple(sizes[c] for c in natural))


def _lower(node: Node):
    if node.op != "einsum":
        return None
    inputs, out = node.attr("spec").split("->")
    terms = inputs.split(",")
    operands = list(node.args)
    if any(0 in x.shape for x in operands):  # an empty result, or sums over nothing: zeros, nothing to multiply
        return make_broadcast(const(0, node.dtype), node.shape)
    if any(x.dtype != node.dtype for x in operands):
        operands = [x if x.dtype == node.dtype else make_map(scalar_symbol(0), [x], node.dtype) for x in operands]
    if len(terms) == 1:
        x, spec = _pre_sum(operands[0], terms[0], set(out))
        return make_transpose(x, tuple(spec.index(c) for c in out))
    pending = list(zip(operands, terms))
    sizes = {c: d for x, spec in pending for c, d in zip(spec, x.shape)}
    while len(pending) > 1:
        i, j, keep = _cheapest_pair(pending, out, sizes)
        (a, ta), (b, tb) = pending[i], pending[j]
        pending = [p for k, p in enumerate(pending) if k not in (i, j)]
        pending.append((lower_pair(a, ta, b, tb, keep, node.dtype), keep))
    return pending[0][0]


def _cheapest_pair(pending, out: str, sizes: dict) -> tuple:
    """(i, j, indices to keep) of the pair to contract next: sharing an index, then smallest result."""
    best = None
    for i in range(len(pending)):
        for j in range(i + 1, len(pending)):
            ta, tb = pending[i][1], pending[j][1]
            if len(pending) == 2:
                keep = out
            else:
                later = set(out).union(*(spec for k, (_, spec) in enumerate(pending) if k not in (i, j)))
                keep = "".join(dict.fromkeys(c for c in ta + tb if c in later))
            size = math.prod(2 ** 20 if isinstance(sizes[c], str) else sizes[c] for c in keep)
            cost = (not set(ta) & set(tb), size)
            if best is None or cost < best[0]:
                best = (cost, i, j, keep)
    return best[1:]


def lower_einsums(outputs) -> list:
    """Replace every einsum with layout ops around bmm nodes."""
    return rewrite(outputs, _lower)
