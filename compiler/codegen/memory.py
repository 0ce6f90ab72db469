"""Memory plan: temporaries share arena slots when their lifetimes do not overlap.

Slots are sized when dimensions are bound (a slot holds the largest of its
buffers), so one plan serves every batch size.
"""
from __future__ import annotations


def live_ranges(kernels) -> dict:
    """buffer -> (first kernel writing it, last kernel reading it)."""
    ranges = {}
    for k, kernel in enumerate(kernels):
        for buffer in list(kernel.writes()) + list(kernel.reads()):
            first, last = ranges.get(buffer, (k, k))
            ranges[buffer] = (min(first, k), max(last, k))
    return ranges


def assign_slots(kernels) -> dict:
    """temp buffer -> slot number, greedily reusing the slot freed earliest."""
    ranges = live_ranges(kernels)
    temps = sorted((b for b in ranges if b.role == "temp"), key=lambda b: ranges[b])
    slot_free_after, assignment = [], {}
    for buffer in temps:
        first, last = ranges[buffer]
        for slot, free_after in enumerate(slot_free_after):
            if free_after < first:
                break
        else:
            slot = len(slot_free_after)
            slot_free_after.append(-1)
        slot_free_after[slot] = last
        assignment[buffer] = slot
    return assignment
