"""Memory plan: temporaries share arena slots when their lifetimes do not overlap.

Slots are sized when dimensions are bound (a slot holds the largest of its
buffers), so one plan serves every batch size. An elementwise loop may also
write its output over a temporary it reads for the last time (``mark_in_place``):
the two then share a slot, and the data stays in the cache lines just read.
"""
from __future__ import annotations

import heapq

import sympy

from .access import Access, contiguous_strides, linear_form, size_expr


def live_ranges(kernels) -> dict:
    """buffer -> (first kernel writing it, last kernel reading it)."""
    ranges = {}
    for k, kernel in enumerate(kernels):
        for buffer in list(kernel.writes()) + list(kernel.reads()):
            first, last = ranges.get(buffer, (k, k))
            ranges[buffer] = (min(first, k), max(last, k))
    return ranges


def mark_in_place(kernels) -> None:
    """Record in ``kernel.in_place_of`` each output an elementwise loop may write over a temporary
    it reads: one written earlier, read by no later kernel, of the output's dtype and size, and
    read here only at the element the loop stores (every load of an iteration precedes its
    stores, so each element is read before it is overwritten)."""
    ranges = live_ranges(kernels)
    for k, kernel in enumerate(kernels):
        if kernel.kind != "elementwise" or kernel.in_place or kernel.snapshot or kernel.prologue or kernel.epilogue:
            continue
        taken = set()
        for out, _ in kernel.bodies():
            if out.role != "temp" or ranges[out][0] != k:
                continue
            for source in sorted(kernel.reads(), key=lambda b: b.index):
                first, last = ranges[source]
                if (source not in taken and source.role == "temp" and source.dtype == out.dtype
                        and first < k == last and _overwritable(kernel, source, out)):
                    kernel.in_place_of[out] = source
                    taken.add(source)
                    break


def _overwritable(kernel, source, out) -> bool:
    """Whether every read of `source` in `kernel` is a plain load of the element `out` stores."""
    space = tuple(size_expr(d) for d in kernel.space)
    if tuple(size_expr(d) for d in out.shape) != space:
        return False
    if sympy.simplify(sympy.Mul(*[size_expr(d) for d in source.shape]) - sympy.Mul(*space)) != 0:
        return False
    strides = contiguous_strides(kernel.space)
    plain = [leaf for leaf in kernel.leaves.values() if isinstance(leaf, Access) and leaf.buffer is source]
    if len(plain) != sum(1 for leaf in kernel.leaves.values() if isinstance(leaf, Access)
                         and leaf.buffer is source) or not plain:
        return False
    others = [leaf for leaf in kernel.leaves.values() if not isinstance(leaf, Access) and hasattr(leaf, "reads")]
    if any(a.buffer is source for leaf in others for a in leaf.reads()):
        return False
    for access in plain:
        if access.index.valid:
            return False
        coefs, offset = linear_form(access, len(space))
        if sympy.simplify(offset) != 0:
            return False
        for size, coef, stride in zip(space, coefs, strides):
            if size != 1 and sympy.simplify(coef - stride) != 0:
                return False
    return True


def assign_slots(kernels) -> dict:
    """temp buffer -> slot number: in order of first write, the lowest-numbered slot whose
    buffer is no longer live, else a new slot (heaps of busy and free slots: n log n). A buffer
    written in place over another (``in_place_of``) continues that one's slot."""
    ranges = live_ranges(kernels)
    home = {}
    for kernel in kernels:
        for out, source in kernel.in_place_of.items():
            home[out] = home.get(source, source)
    members = {}
    for buffer in ranges:
        if buffer.role == "temp":
            members.setdefault(home.get(buffer, buffer), []).append(buffer)
    spans = {root: (min(ranges[b][0] for b in group), max(ranges[b][1] for b in group))
             for root, group in members.items()}
    busy, free, assignment, slots = [], [], {}, 0  # busy: (last kernel reading it, slot)
    for root in sorted(members, key=spans.get):
        first, last = spans[root]
        while busy and busy[0][0] < first:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            slot = heapq.heappop(free)
        else:
            slot, slots = slots, slots + 1
        heapq.heappush(busy, (last, slot))
        for buffer in members[root]:
            assignment[buffer] = slot
    return assignment
