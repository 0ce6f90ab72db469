"""A compiled program, callable on NumPy arrays.

Dumb and safe: every argument is checked (name, dtype, shape against the
declared shape and the other arguments' symbolic dimensions, C-contiguity,
alignment) before any pointer reaches machine code. Intermediates live in an
arena allocated once per binding of the symbolic dimensions; a call fills a
persistent pointer table and makes one native call.
"""
from __future__ import annotations

import ctypes
import math
import threading

import numpy as np

from .dimensions import concrete, dim_names
from .random_inputs import RandomInputs

ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
ARENA_ALIGNMENT = 64


def aligned_empty(nbytes: int) -> np.ndarray:
    """A uint8 array of nbytes whose data starts on a 64-byte boundary."""
    raw = np.empty(nbytes + ARENA_ALIGNMENT, dtype=np.uint8)
    start = (-raw.ctypes.data) % ARENA_ALIGNMENT
    return raw[start:start + nbytes]


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


def describe_shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Executable:
    """``fn(**values)``: every Input and Param by name; returns an ndarray or a tuple.

    A program with random nodes also takes ``rng_seed`` and ``rng_counter`` (int64 scalars);
    left out, they are ``fn.random.seed`` (0) and the number of this call (1, 2, ...), so each
    call draws new numbers (``runtime/random_inputs.py``).

    ``fn.key`` is the program's cache key (``runtime.programs.load(key)`` loads it again, in
    any process, without the compiler); ``fn.from_cache`` tells whether its machine code
    came from the on-disk cache rather than a fresh compile.
    """

    @classmethod
    def of(cls, program, key: str | None = None, **options) -> "Executable":
        """The executable of a loaded program (runtime.programs.LoadedProgram)."""
        return cls(program.plan, program.address, program.consts, program.ir_text, addresses=program.addresses,
                   key=key, from_cache=program.from_cache, **options)

    def __init__(self, plan: dict, entry_address: int, consts: dict, ir_text: str = "", single: bool = True,
                 bound: dict | None = None, persistent_outputs: bool = False, addresses: dict | None = None,
                 key: str | None = None, from_cache: bool = False):
        self.plan = plan
        self.key, self.from_cache = key, from_cache
        self._entry = ENTRY_TYPE(entry_address)
        self._ir_text = ir_text
        self._single = single
        self._buffers = plan["buffers"]
        self._table = (ctypes.c_void_p * max(len(self._buffers), 1))()
        self._dims = (ctypes.c_int64 * max(len(plan["dims"]), 1))()
        self._table_address = ctypes.addressof(self._table)
        self._dims_address = ctypes.addressof(self._dims)
        self._keep = {}  # buffer index -> array kept alive while its pointer is in the table
        self._binding = None
        self.lock = threading.Lock()
        self._persistent_outputs = persistent_outputs
        self._addresses = addresses or {}
        self._output_arrays = []
        declared = plan.get("arguments")  # every Input/Param the user declared, used by the code or not
        if declared is None:
            declared = [dict(b, buffer=i) for i, b in enumerate(self._buffers) if b["role"] in ("input", "param")]
        self.arguments = [(spec["buffer"], spec) for spec in declared if bound is None or spec["name"] not in bound]
        shaped = {d for _, b in self.arguments for d in b["shape"] if isinstance(d, str)}
        self._free_dims = [d for d in plan["dims"] if d not in shaped]  # passed by name as ints: fn(batch=4)
        self._argument_names = {b["name"] for _, b in self.arguments} | set(self._free_dims)
        self.random = RandomInputs.of(b["name"] for _, b in self.arguments)  # None: no random numbers drawn
        self._checks = [(index, b["name"], np.dtype(b["dtype"]), tuple(b["shape"]),
                         any(isinstance(d, str) for d in b["shape"]), b) for index, b in self.arguments]
        # hidden outputs of labels computed inside the graph, checked after the call (label_ranges.index_faults)
        faults = plan.get("index_faults") or []
        for fault in faults:
            if not (isinstance(fault, dict) and isinstance(fault.get("buffer"), int)
                    and 0 <= fault["buffer"] < len(self._buffers) and isinstance(fault.get("op"), str)
                    and isinstance(fault.get("low"), int) and isinstance(fault.get("high"), int)):
                raise ValueError("plan: an index fault is malformed")
        self._returned = len(plan["outputs"])  # the user's outputs; the fault outputs follow them
        self._outputs = [(i, self._buffers[i]) for i in [*plan["outputs"], *(f["buffer"] for f in faults)]]
        self._faults = [(self._returned + k, f["op"], f["low"], f["high"],
                         f["name"] if isinstance(f.get("name"), str) else "labels") for k, f in enumerate(faults)]
        argument_names = {b["name"] for _, b in self.arguments}
        self._index_checks = [(c["input"], c["low"], c["high"], c["op"]) for c in plan.get("index_checks", ())
                              if c["input"] in argument_names]
        for index, array in consts.items():
            self._set(int(index), np.ascontiguousarray(array))
        arguments = {b["name"]: i for i, b in enumerate(self._buffers) if b["role"] in ("input", "param")}
        for name, array in (bound or {}).items():
            if name in arguments:  # a bound value the program does not read is ignored
                self._set(arguments[name], array)

    def _set(self, index: int, array: np.ndarray):
        self._keep[index] = array
        self._table[index] = data_address(array)

    # ---- checking ---------------------------------------------------------------------------

    def _bind(self, values: dict) -> dict:
        """Check every argument (fast path; the slow path words the error) and bind dimensions."""
        checks = self._checks
        if len(values) != len(checks) + len(self._free_dims):
            self._argument_error(values)
        dims = {}
        for name in self._free_dims:
            dims[name] = free_dimension(name, values.get(name, values), values)
        for _, name, dtype, shape, symbolic, spec in checks:
            array = values.get(name, values)
            if array is values:
                self._argument_error(values)
            if array.__class__ is not np.ndarray or (array.dtype is not dtype and array.dtype != dtype):
                check_array(spec, array, {})
            if symbolic:
                actual = array.shape
                if len(actual) != len(shape):
                    check_array(spec, array, {})
                for axis, expected in enumerate(shape):
                    if expected.__class__ is str:
                        if dims.setdefault(expected, actual[axis]) != actual[axis] or actual[axis] == 0:
                            check_array(spec, array, dims, self._dimension_sources(values))
                    elif expected != actual[axis]:
                        check_array(spec, array, {})
            elif array.shape != shape:
                check_array(spec, array, {})
            flags = array.flags
            if not (flags.c_contiguous and flags.aligned):
                check_array(spec, array, {})
        return dims

    def _argument_error(self, values: dict):
        missing = [b["name"] for _, b in self.arguments if b["name"] not in values]
        for name in self._free_dims:
            free_dimension(name, values.get(name, values), values)
        extra = [name for name in values if name not in self._argument_names]
        if missing:
            expected = ", ".join(f"{b['name']}{describe_shape(b['shape'])} {b['dtype']}" for _, b in self.arguments)
            instead = f" (got unexpected {', '.join(map(repr, extra))} instead)" if extra else ""
            raise TypeError(f"missing argument{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
                            f"{instead}; expected: {expected}")
        raise TypeError(f"unexpected argument{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; "
                        f"expected only {', '.join(repr(n) for n in sorted(self._argument_names))}")

    def _dimension_sources(self, values: dict) -> dict:
        """Symbolic dimension -> the argument that bound it first (for error messages)."""
        sources = {name: f"{name}={values[name]!r}" for name in self._free_dims if name in values}
        for _, name, _, shape, _, _ in self._checks:
            array = values.get(name)
            if isinstance(array, np.ndarray) and array.ndim == len(shape):
                for expected, actual in zip(shape, array.shape):
                    if isinstance(expected, str):
                        sources.setdefault(expected, f"argument {name!r} of shape {describe_shape(array.shape)}")
        return sources

    # ---- running ----------------------------------------------------------------------------

    def _rebind(self, dims: dict, sources=None):
        """Allocate the arena (and persistent outputs) for `dims`, then switch to it.

        Everything is allocated before anything is changed: a MemoryError (or a size that
        does not fit in int64) leaves the dims array, the arena and the pointer table as
        they were, bound to the previous dimensions. `sources()` names what set each dim."""
        check_sizes(self.plan, dims, sources)
        slot_bytes = [0] * self.plan["slots"]
        for buffer in self._buffers:
            if buffer["slot"] is not None:
                slot_bytes[buffer["slot"]] = max(slot_bytes[buffer["slot"]], nbytes(buffer, dims))
        arena = [aligned_empty(max(n, 1)) for n in slot_bytes]
        output_layout = [(index, concrete(spec["shape"], dims), np.dtype(spec["dtype"])) for index, spec in self._outputs]
        output_arrays = [np.empty(shape, dtype=dtype) for _, shape, dtype in output_layout] if self._persistent_outputs else []
        pointed = [array if array.size else aligned_empty(1) for array in output_arrays]
        # commit: nothing below allocates
        for k, name in enumerate(self.plan["dims"]):
            self._dims[k] = dims[name]
        for index, buffer in enumerate(self._buffers):
            if buffer["slot"] is not None:
                self._set(index, arena[buffer["slot"]])
        self._output_layout = output_layout
        if self._persistent_outputs:
            self._output_arrays = output_arrays
            for (index, _), array in zip(self._outputs, pointed):
                self._set(index, array)
        self._binding = dims

    def check(self, values: dict) -> dict:
        """Check every argument (names, dtypes, shapes, layout, label ranges); returns the dims."""
        dims = self._bind(values)
        if self._index_checks:
            check_indices(self._index_checks, values)
        return dims

    def __call__(self, **values):
        if self.random is not None:  # the seed (fn.random.seed) and the call's counter, unless given
            values = self.random.fill(values)
        dims = self.check(values)
        with self.lock:  # one call at a time: calls share the pointer table and the arena
            return self.run(values, dims)

    def run(self, values: dict, dims: dict, check_faults: bool = True):
        """Run on already checked arguments (see ``_bind``).

        Labels computed inside the graph are checked by the program itself; an out-of-range one
        raises IndexError after the call (unless `check_faults` is false: the caller then calls
        ``check_faults``, as a training step does once its step count is advanced)."""
        if dims != self._binding:
            self._rebind(dims, lambda: self._dimension_sources(values))
        table = self._table
        for index, name, *_ in self._checks:
            if index is not None:  # declared, but simplification removed every read of it
                table[index] = data_address(values[name])
        if self._persistent_outputs:
            results = self._output_arrays
        else:
            results = []
            for index, shape, dtype in self._output_layout:
                array = np.empty(shape, dtype)
                table[index] = data_address(array) if array.size else self._table_address
                results.append(array)
        self._entry(self._table_address, self._dims_address)
        if self._faults and check_faults:
            self.check_faults(results)
        return results[0] if self._single else tuple(results[:self._returned])

    def check_faults(self, results: list | None = None, note: str = "") -> None:
        """IndexError naming the op, a bad value and the range if the last call (its `results`, by
        default the persistent outputs) found a computed label out of range; `note` ends the message."""
        results = self._output_arrays if results is None else results
        for position, op, low, high, name in self._faults:
            value = results[position].item()
            if not low <= value < high:  # NaN too
                raise IndexError(f"{op}: {name} value {value} is out of range (expected {low} <= {name} < {high}); "
                                 f"the {name} were computed inside the graph{note}")

    # ---- native loops that drive the program themselves -----------------------------------------

    @property
    def table_address(self) -> int:
        return self._table_address

    @property
    def dims_address(self) -> int:
        return self._dims_address

    def prepare(self, dims: dict, arrays: dict) -> None:
        """Bind `dims` and point the named arguments at `arrays` (already checked by the caller)."""
        if dims != self._binding:
            self._rebind(dims, lambda: {name: "batch_size" for name in dims})
        by_name = {spec["name"]: index for index, spec in self.arguments}
        for name, array in arrays.items():
            self._set(by_name[name], array)

    def restore_dims(self) -> None:
        """Write the bound dimension values back (a native loop may have changed them)."""
        for k, name in enumerate(self.plan["dims"]):
            self._dims[k] = self._binding[name]

    # ---- inspection -----------------------------------------------------------------------------

    def check_indices(self, values: dict) -> None:
        """Raise IndexError if an argument used as a class label or index is out of its range."""
        check_indices(self._index_checks, values)

    @property
    def binding(self) -> dict | None:
        """The symbolic dimension values of the last call (None before the first)."""
        return self._binding

    def cost(self, **values):
        """Per-kernel FLOPs, bytes, intensity and measured time on the arguments of one call.

        The kernels are timed on this call's buffers: the arguments and the outputs stay
        alive (referenced here) until every kernel has been measured.
        """
        from .cost import measure
        if self.random is not None:
            values = self.random.fill(values)
        dims = self.check(values)
        with self.lock:
            outputs = self.run(values, dims)
            report = measure(self, self._addresses)
        del outputs
        return report

    def kernels(self) -> list:
        """The fused kernels in execution order: kind, output, shape, body, FLOP and byte estimates."""
        return [dict(k) for k in self.plan["kernels"]]

    def llvm_ir(self, optimized: bool = False) -> str:
        if not optimized:
            return self._ir_text
        from .engine import Engine
        return str(Engine.instance().optimize(self._ir_text))

    def asm(self) -> str:
        from .engine import Engine
        engine = Engine.instance()
        return engine.emit_assembly(engine.optimize(self._ir_text))

    def __repr__(self):
        names = ", ".join(b["name"] for _, b in self.arguments)
        return f"<symprop Executable ({names}) -> {self._returned} output(s), {len(self.plan['kernels'])} kernels>"


def nbytes(buffer: dict, dims: dict) -> int:
    return math.prod(concrete(buffer["shape"], dims)) * np.dtype(buffer["dtype"]).itemsize


INT64_MAX = 2**63 - 1


def check_sizes(plan: dict, dims: dict, sources=None) -> None:
    """ValueError unless every buffer's size in bytes and every kernel's iteration count fit in int64
    (the native code indexes with int64: a larger size would wrap and run on the wrong size)."""
    def fail(what: str, shape, size: int):
        named = (sources() if sources is not None else {}) or {}
        culprits = dim_names(shape)
        by = ", ".join(f"{d!r} = {dims[d]} (set by {named.get(d, 'an argument')})" for d in dict.fromkeys(culprits))
        raise ValueError(f"dimension{'s' * (len(set(culprits)) > 1)} {by} too large: {what} of shape "
                         f"{describe_shape(concrete(shape, dims))} would need {size} "
                         f"{'bytes' if what.startswith('buffer') else 'iterations'}, more than int64 holds")

    for buffer in plan["buffers"]:
        if any(isinstance(d, str) for d in buffer["shape"]):
            size = nbytes(buffer, dims)
            if size > INT64_MAX:
                fail(f"buffer {buffer['name']!r}", buffer["shape"], size)
    for kernel in plan["kernels"]:
        shape = kernel.get("shape") or []
        if all(name in dims for name in dim_names(shape)) and any(isinstance(d, str) for d in shape):
            size = math.prod(concrete(shape, dims))
            if size > INT64_MAX:
                fail(f"kernel {kernel.get('out', '')!r}", shape, size)


_UNSIGNED = {np.dtype(signed).char: np.dtype(unsigned) for signed, unsigned in
             (("int8", "uint8"), ("int16", "uint16"), ("int32", "uint32"), ("int64", "uint64"))}
_largest = np.maximum.reduce


def check_indices(checks: list, values: dict) -> None:
    """IndexError naming the argument, the first bad value and the range, for each (name, low, high, op)."""
    for name, low, high, op in checks:
        array = values[name]
        if not array.size:
            continue
        unsigned = _UNSIGNED.get(array.dtype.char) if low == 0 else None
        if unsigned is not None:  # one pass: negative labels are huge as unsigned
            inside = _largest(array.view(unsigned), axis=None) < high
        else:
            inside = int(array.min()) >= low and int(array.max()) < high
        if not inside:
            bad = np.flatnonzero((array.reshape(-1) < low) | (array.reshape(-1) >= high))[0]
            where = np.unravel_index(bad, array.shape)
            raise IndexError(f"argument {name!r}: value {int(array.reshape(-1)[bad])} at index "
                             f"{tuple(int(i) for i in where)} is out of range for {op} "
                             f"(expected {low} <= {name} < {high})")


def free_dimension(name: str, value, values: dict) -> int:
    """The value of a symbolic dimension passed by name (``fn(batch=4)``)."""
    if value is values:
        raise TypeError(f"missing dimension {name!r}: no argument has it, pass {name}=<int>")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"dimension {name!r} must be an int >= 1, got {value!r}")
    if value > INT64_MAX:
        raise ValueError(f"dimension {name!r} must fit in int64 (at most {INT64_MAX}), got {value!r}")
    return int(value)


def check_array(spec: dict, value, dims: dict, sources: dict | None = None) -> None:
    """Raise TypeError/ValueError naming the argument unless `value` fits `spec`; binds dims.

    `sources` names what bound each dimension in `dims`, for the message of a mismatch."""
    name, shape, dtype = spec["name"], spec["shape"], spec["dtype"]
    if isinstance(value, np.generic) and len(shape) != 0:
        raise ValueError(f"argument {name!r} must have shape {describe_shape(shape)}, got a NumPy scalar of shape ()")
    if not isinstance(value, np.ndarray):
        raise TypeError(f"argument {name!r} must be a numpy.ndarray of dtype {dtype} and shape {describe_shape(shape)}, "
                        f"got {type(value).__name__}")
    if value.dtype != np.dtype(dtype):
        raise TypeError(f"argument {name!r} must have dtype {dtype}, got {value.dtype} "
                        f"(convert with .astype({dtype!r}))")
    if value.ndim != len(shape):
        raise ValueError(f"argument {name!r} must have shape {describe_shape(shape)} ({len(shape)} dims), "
                         f"got {describe_shape(value.shape)}")
    for expected, actual in zip(shape, value.shape):
        if isinstance(expected, str):
            bound = dims.setdefault(expected, actual)
            if bound != actual:
                source = (sources or {}).get(expected, "another argument")
                raise ValueError(f"argument {name!r} has shape {describe_shape(value.shape)}, so {expected!r} = {actual}, "
                                 f"but {source} set {expected!r} = {bound}")
            if actual == 0:
                raise ValueError(f"argument {name!r} has shape {describe_shape(value.shape)}: dimension {expected!r} "
                                 f"must be at least 1")
        elif expected != actual:
            raise ValueError(f"argument {name!r} must have shape {describe_shape(shape)}, got {describe_shape(value.shape)}")
    if not value.flags.c_contiguous:
        raise ValueError(f"argument {name!r} must be C-contiguous with strides {contiguous_strides(value)}, got strides "
                         f"{value.strides} (a transposed or strided view; use numpy.ascontiguousarray)")
    if not value.flags.aligned:
        raise ValueError(f"argument {name!r} must be aligned to its {value.itemsize}-byte elements, got data at address "
                         f"{value.ctypes.data:#x} (copy it with numpy.array)")


def contiguous_strides(value: np.ndarray) -> tuple:
    strides, step = [], value.itemsize
    for size in reversed(value.shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))
