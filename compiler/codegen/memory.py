"""Memory plan: temporaries share arena slots when their lifetimes do not overlap.

Slots are sized when dimensions are bound (a slot holds the largest of its
buffers), so one plan serves every batch size.
"""
from __future__ import annotations

import heapq


def live_ranges(kernels) -> dict:
    """buffer -> (first kernel writing it, last kernel reading it)."""
    ranges = {}
    for k, kernel in enumerate(kernels):
        for buffer in list(kernel.writes()) + list(kernel.reads()):
            first, last = ranges.get(buffer, (k, k))
            ranges[buffer] = (min(first, k), max(last, k))
    return ranges


def assign_slots(kernels) -> dict:
    """temp buffer -> slot number: in order of first write, the lowest-numbered slot whose
    buffer is no longer live, else a new slot (heaps of busy and free slots: n log n)."""
    ranges = live_ranges(kernels)
    temps = sorted((b for b in ranges if b.role == "temp"), key=lambda b: ranges[b])
    busy, free, assignment, slots = [], [], {}, 0  # busy: (last kernel reading it, slot)
    for buffer in temps:
        first, last = ranges[buffer]
        while busy and busy[0][0] < first:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            slot = heapq.heappop(free)
        else:
            slot, slots = slots, slots + 1
        heapq.heappush(busy, (last, slot))
        assignment[buffer] = slot
    return assignment
