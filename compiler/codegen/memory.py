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
from .kernels import ITEMSIZE


SMALL_BYTES = 64 * 1024  # below this, a buffer takes a new slot rather than one 16 times its size


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
    if not _equal(sympy.Mul(*[size_expr(d) for d in source.shape]), sympy.Mul(*space)):
        return False
    strides = contiguous_strides(kernel.space)
    plain = [leaf for leaf in kernel.leaves.values() if isinstance(leaf, Access) and leaf.buffer is source]
    if not plain:
        return False
    others = [leaf for leaf in kernel.leaves.values() if not isinstance(leaf, Access) and hasattr(leaf, "reads")]
    if any(a.buffer is source for leaf in others for a in leaf.reads()):
        return False
    for access in plain:
        if access.index.valid:
            return False
        coefs, offset = linear_form(access, len(space))
        if not _equal(offset, 0):
            return False
        for size, coef, stride in zip(space, coefs, strides):
            if size != 1 and not _equal(coef, stride):
                return False
    return True


def _equal(a, b) -> bool:
    """Equal as polynomials in the dimension symbols (sizes and strides are: expand suffices;
    sympy.simplify's first call alone cost 0.25 s of a compile)."""
    return sympy.expand(a - b) == 0


def assign_slots(kernels) -> dict:
    """temp buffer -> slot number: in order of first write (the larger first), a slot whose buffers
    are no longer live -- the smallest that holds the buffer, else the largest (which grows) --
    else a new slot (also for a small buffer when the only free slots are much larger).
    A buffer written in place over another (``in_place_of``) continues that one's slot."""
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
    needs = {root: max(_typical_bytes(b) for b in group) for root, group in members.items()}
    busy, free, assignment, sizes = [], [], {}, []  # busy: a heap of (last kernel reading it, slot)
    for root in sorted(members, key=lambda r: (spans[r][0], -needs[r])):  # the larger first among equals
        first, last = spans[root]
        while busy and busy[0][0] < first:
            free.append(heapq.heappop(busy)[1])
        need = needs[root]
        holding = [slot for slot in free if sizes[slot] >= need]
        slot = min(holding, key=lambda s: (sizes[s], s)) if holding else \
            max(free, key=lambda s: (sizes[s], -s)) if free else None
        if slot is not None and need < SMALL_BYTES and sizes[slot] > 16 * need:
            slot = None  # a small buffer takes a new small slot rather than a large one a later buffer needs
        if slot is not None:
            free.remove(slot)
            sizes[slot] = max(sizes[slot], need)
        else:
            slot = len(sizes)
            sizes.append(need)
        heapq.heappush(busy, (last, slot))
        for buffer in members[root]:
            assignment[buffer] = slot
    return assignment


def _typical_bytes(buffer) -> float:
    """The buffer's size in bytes with every symbolic dimension at 64: only to choose among free
    slots (a slot is sized for its largest buffer when dimensions are bound)."""
    elements = sympy.Mul(*[size_expr(d) for d in buffer.shape])
    value = elements.subs({symbol: 64 for symbol in elements.free_symbols}) if elements.free_symbols else elements
    return float(value) * ITEMSIZE[buffer.dtype]
