"""Where one call of a compiled program keeps its temporaries: a workspace.

A workspace is a pointer table, the array of symbolic dimension values and an
arena (one 64-byte aligned block per arena slot of the plan). The arena grows
to the largest binding of the dimensions it has seen and is then reused: a
call at a smaller size only writes the new dimension values, so changing the
batch size on every call (variable-length episodes) allocates nothing and
keeps no per-size data. Calls on different workspaces share nothing they
write, so they may run at the same time (``Executable`` keeps one per
concurrent caller).

``SizeRules`` turns a plan's symbolic shapes into monomials (bytes = c x
batch x T ...), computed once, so sizing a binding is a few multiplications
per slot rather than a walk over every buffer and kernel.
"""
from __future__ import annotations

import ctypes
import math

import numpy as np

from .dimensions import concrete, dim_parts

ARENA_ALIGNMENT = 64
INT64_MAX = 2**63 - 1


def _data_address_reader():
    """A fast reader of an ndarray's data pointer.

    ``arr.ctypes.data`` costs ~1.5-3 us. The data pointer is the first field after
    the object header of NumPy's array struct (``PyArray_DATA``), so reading it from
    the object's address is ~10x cheaper; used only when verified on this interpreter.
    """
    probe = np.arange(3.0)
    pointer = ctypes.c_void_p.from_address
    offset = object.__basicsize__
    try:
        if pointer(id(probe) + offset).value == probe.ctypes.data:
            return lambda array: pointer(id(array) + offset).value
    except (ValueError, OSError):
        pass
    return lambda array: array.ctypes.data


data_address = _data_address_reader()


def aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 array of nbytes whose data starts on a 64-byte boundary (every arena block is one)."""
    raw = np.empty(nbytes + ARENA_ALIGNMENT, dtype=np.uint8)
    start = (-raw.ctypes.data) % ARENA_ALIGNMENT
    return raw[start:start + nbytes]


def monomial(shape, scale: int = 1) -> tuple:
    """(coefficient, dimension names) with size = coefficient x the product of those dims."""
    coefficient, names = scale, []
    for d in shape:
        if isinstance(d, str):
            factor, parts = dim_parts(d)
            coefficient *= factor
            names.extend(parts)
        else:
            coefficient *= d
    return coefficient, tuple(sorted(names))


class SizeRules:
    """A plan's sizes as functions of the dims: bytes per arena slot, the int64 limit check.

    Each size is a monomial; the distinct products of dims (usually just ``batch``) are
    computed once per binding, then every slot's size is a coefficient times one of them."""

    def __init__(self, plan: dict):
        products = {}  # dimension names -> position in the products of a binding
        slots = [{} for _ in range(plan["slots"])]
        self.slot_buffers = [[] for _ in range(plan["slots"])]  # slot -> the buffers living in it
        limits = {}
        for index, buffer in enumerate(plan["buffers"]):
            c, names = monomial(buffer["shape"], np.dtype(buffer["dtype"]).itemsize)
            k = products.setdefault(names, len(products))
            if buffer["slot"] is not None:
                slot = slots[buffer["slot"]]
                slot[k] = max(slot.get(k, 0), c)
                self.slot_buffers[buffer["slot"]].append(index)
            if names:
                limits[k] = max(limits.get(k, 0), c)
        for kernel in plan["kernels"]:
            shape = kernel.get("shape") or []
            if any(isinstance(d, str) for d in shape):
                c, names = monomial(shape)
                k = products.setdefault(names, len(products))
                limits[k] = max(limits.get(k, 0), c)
        self.products = list(products)
        self.n_slots = len(slots)
        self.slot_terms = [(slot, c, k) for slot, terms in enumerate(slots) for k, c in terms.items()]
        self.limits = list(limits.items())

    def slot_bytes(self, dims: dict) -> list | None:
        """Bytes each slot needs at `dims`; None if a buffer's bytes or a kernel's iteration count
        would not fit in int64 (terms over dims not bound here are left out of that check: they
        belong to loops bound elsewhere)."""
        values = []
        for names in self.products:
            value = 1
            for name in names:
                if name not in dims:
                    value = None
                    break
                value *= dims[name]
            values.append(value)
        for k, c in self.limits:
            if values[k] is not None and c * values[k] > INT64_MAX:
                return None
        needs = [0] * self.n_slots
        for slot, c, k in self.slot_terms:
            if values[k] is None:
                raise KeyError(f"no value for a dimension of {' * '.join(self.products[k])}")
            need = c * values[k]
            if need > needs[slot]:
                needs[slot] = need
        return needs


class Workspace:
    """One caller's pointer table, dims array, arena and (optionally) persistent outputs.

    ``bind(dims)`` sizes it for a binding: slots grow (a fresh block, allocated before
    anything changes, so a MemoryError leaves the workspace as it was) and never shrink.
    """

    def __init__(self, rules: SizeRules, n_buffers: int, dim_names: list, static: dict, outputs: list,
                 persistent_outputs: bool):
        self._rules = rules
        self.table = (ctypes.c_void_p * max(n_buffers, 1))()
        self.dims = (ctypes.c_int64 * max(len(dim_names), 1))()
        self.table_address = ctypes.addressof(self.table)
        self.dims_address = ctypes.addressof(self.dims)
        self._dim_names = dim_names
        self.keep = {}  # buffer index -> array kept alive while its pointer is in the table
        for index, array in static.items():
            self.set(index, array)
        self.binding = None
        self._covered = None  # a binding the arena was sized for
        self._arena = [None] * rules.n_slots
        self._capacity = [-1] * rules.n_slots  # bytes per slot; -1: not allocated yet
        self._outputs = [(index, spec["shape"], np.dtype(spec["dtype"])) for index, spec in outputs]
        self._outputs_sized = not any(isinstance(d, str) for _, shape, _ in self._outputs for d in shape)
        self._persistent = persistent_outputs
        self._output_blocks = [None] * len(outputs)  # persistent outputs: a block each, grown like a slot
        self.output_layout = []  # [(buffer index, shape, dtype)] at the binding
        self.output_arrays = []  # persistent outputs: views of their blocks at the binding

    def set(self, index: int, array: np.ndarray) -> None:
        self.keep[index] = array
        self.table[index] = data_address(array)

    def covers(self, dims: dict) -> bool:
        """Whether the arena fits `dims` without sizing it: every dim at most its value in a binding
        the arena was sized for (every size grows with every dim)."""
        covered = self._covered
        if covered is None or len(dims) != len(covered):
            return False
        for name, value in dims.items():
            if value > covered.get(name, 0):
                return False
        return True

    def bind(self, dims: dict, needs: list | None) -> None:
        """Size the arena (`needs`: bytes per slot, ``SizeRules.slot_bytes``; None when it
        ``covers(dims)``) and the persistent outputs for `dims`, and write the dims array."""
        grown = [] if needs is None else [(slot, aligned_empty(max(need, 1))) for slot, need in enumerate(needs)
                                          if need > self._capacity[slot]]
        resize_outputs = self.binding is None or not self._outputs_sized  # outputs of fixed shape: sized once
        layout = ([(index, concrete(shape, dims), dtype) for index, shape, dtype in self._outputs]
                  if resize_outputs else [])
        blocks = []
        if self._persistent and resize_outputs:
            for k, (_, shape, dtype) in enumerate(layout):
                size = max(math.prod(shape) * dtype.itemsize, 1)
                block = self._output_blocks[k]
                blocks.append(block if block is not None and block.size >= size else aligned_empty(size))
        # commit: nothing below allocates a block
        for slot, block in grown:
            self._arena[slot], self._capacity[slot] = block, block.size
            for index in self._rules.slot_buffers[slot]:
                self.set(index, block)
        if self._persistent and resize_outputs:
            arrays = []
            for k, ((index, shape, dtype), block) in enumerate(zip(layout, blocks)):
                if block is not self._output_blocks[k]:
                    self._output_blocks[k] = block
                    self.set(index, block)
                arrays.append(np.ndarray(shape, dtype, buffer=block))
            self.output_arrays = arrays
        if resize_outputs:
            self.output_layout = layout
        if needs is not None:
            self._covered = dims
        self.write_dims(dims)
        self.binding = dims

    def write_dims(self, dims: dict) -> None:
        for k, name in enumerate(self._dim_names):
            self.dims[k] = dims[name]

    @property
    def arena_bytes(self) -> int:
        """Bytes the arena holds now (its slots at the largest binding seen)."""
        return sum(max(c, 0) for c in self._capacity)
