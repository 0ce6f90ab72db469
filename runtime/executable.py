"""A compiled program, callable on NumPy arrays.

Dumb and safe: every argument is checked (name, dtype, shape against the
declared shape and the other arguments' symbolic dimensions, C-contiguity,
alignment) before any pointer reaches machine code. Intermediates live in a
workspace's arena (``runtime/workspace.py``), which grows to the largest
binding of the symbolic dimensions and is reused; a call fills the workspace's
persistent pointer table and makes one native call.

Threads: a call runs on the executable's own workspace when no other call
holds it, otherwise on a spare one (created on demand and reused), so
concurrent calls never share a temporary and run in parallel (the native call
releases the GIL). Training steps serialise on ``lock`` instead: they update
their parameters in place.
"""
from __future__ import annotations

import ctypes
import math
import threading

import numpy as np

from .dimensions import concrete, dim_names, dim_value
from .random_inputs import RandomInputs
from .workspace import INT64_MAX, SizeRules, Workspace, data_address

ENTRY_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


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
        self.compile_seconds: dict = {}  # stage -> seconds of the compile that made it (set by the compiler)
        self._entry = ENTRY_TYPE(entry_address)
        self._ir_text = ir_text
        self._single = single
        self._buffers = plan["buffers"]
        self.lock = threading.Lock()  # held by a call on the executable's own workspace (and by a TrainStep)
        self._persistent_outputs = persistent_outputs
        self._addresses = addresses or {}
        self._runners = None  # per-kernel entry points (``run_kernels``), made on first use
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
        self._index_checks = [(c["input"], c["low"], c["high"], c["op"], c.get("ignored"))
                              for c in plan.get("index_checks", ()) if c["input"] in argument_names]
        self._size_checks = plan.get("size_checks") or []
        static = {int(index): np.ascontiguousarray(array) for index, array in consts.items()}
        arguments = {b["name"]: i for i, b in enumerate(self._buffers) if b["role"] in ("input", "param")}
        for name, array in (bound or {}).items():
            if name in arguments:  # a bound value the program does not read is ignored
                static[arguments[name]] = array
        self._static = static  # buffer index -> constant or bound array: the same in every workspace
        self._sizes = SizeRules(plan)
        self._workspace = self._new_workspace()  # calls holding `lock`, training steps, epochs, cost()
        self._spares = []  # workspaces of concurrent calls, reused (list.pop and append are atomic)

    def _new_workspace(self) -> Workspace:
        return Workspace(self._sizes, len(self._buffers), self.plan["dims"], self._static, self._outputs,
                         self._persistent_outputs)

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

    def _rebind(self, workspace: Workspace, dims: dict, sources=None):
        """Size `workspace` for `dims`: its arena grows if `dims` needs more than any binding before.

        Everything is allocated before anything is changed: a MemoryError (or a size that
        does not fit in int64) leaves the dims array, the arena and the pointer table as
        they were, bound to the previous dimensions. `sources()` names what set each dim."""
        needs = None
        if not workspace.covers(dims):
            needs = self._sizes.slot_bytes(dims)
            if needs is None:
                check_sizes(self.plan, dims, sources)  # raises, naming the buffer or kernel
        workspace.bind(dims, needs)

    @property
    def threads(self) -> int:
        """Threads the program's large kernels split across (``compile(..., threads=)``)."""
        return self.plan.get("threads", 1)

    @property
    def arena_bytes(self) -> int:
        """Bytes of temporaries the executable's own workspace holds (the largest binding seen)."""
        return self._workspace.arena_bytes

    def check(self, values: dict) -> dict:
        """Check every argument (names, dtypes, shapes, layout, label ranges); returns the dims."""
        dims = self._bind(values)
        if self._size_checks:
            check_size_minimums(self._size_checks, dims)
        if self._index_checks:
            check_indices(self._index_checks, values)
        return dims

    def check_sizes_for(self, dims: dict) -> None:
        """ValueError if a size the program needs at least (``size_checks``) is smaller under `dims`."""
        check_size_minimums(self._size_checks, dims)

    def __call__(self, **values):
        if self.random is not None:  # the seed (fn.random.seed) and the call's counter, unless given
            values = self.random.fill(values)
        dims = self.check(values)
        if self.lock.acquire(blocking=False):  # the usual case: no other call is running
            try:
                return self._run(self._workspace, values, dims, True)
            finally:
                self.lock.release()
        try:  # another thread is calling: run beside it on a workspace of our own
            workspace = self._spares.pop()
        except IndexError:
            workspace = self._new_workspace()
        try:
            return self._run(workspace, values, dims, True)
        finally:
            self._spares.append(workspace)

    def run(self, values: dict, dims: dict, check_faults: bool = True):
        """Run on already checked arguments (see ``_bind``), on the executable's own workspace;
        the caller holds ``lock``.

        Labels computed inside the graph are checked by the program itself; an out-of-range one
        raises IndexError after the call (unless `check_faults` is false: the caller then calls
        ``check_faults``, as a training step does once its step count is advanced)."""
        return self._run(self._workspace, values, dims, check_faults)

    def run_kernels(self, values: dict, dims: dict, after) -> None:
        """``run`` kernel by kernel (the plan's kernel runners), calling ``after(k)`` once kernel k has
        run: a data-parallel step starts summing the gradients a kernel completed while the next
        kernels run. Persistent outputs only (the caller reads them); faults are the caller's to check."""
        if self._runners is None:
            self._runners = [ENTRY_TYPE(self._addresses[name]) for name in self.plan["kernel_runners"]]
        workspace = self._workspace
        self._fill_table(workspace, values, dims)
        for k, runner in enumerate(self._runners):
            runner(workspace.table_address, workspace.dims_address)
            after(k)

    def _fill_table(self, workspace: Workspace, values: dict, dims: dict) -> None:
        """Bind `dims` (sizing the arena) and point the table at the arguments."""
        if dims != workspace.binding:
            self._rebind(workspace, dims, lambda: self._dimension_sources(values))
        table = workspace.table
        for index, name, *_ in self._checks:
            if index is not None:  # declared, but simplification removed every read of it
                table[index] = data_address(values[name])

    def _run(self, workspace: Workspace, values: dict, dims: dict, check_faults: bool):
        self._fill_table(workspace, values, dims)
        table = workspace.table
        if self._persistent_outputs:
            results = workspace.output_arrays
        else:
            results = []
            for index, shape, dtype in workspace.output_layout:
                array = np.empty(shape, dtype)
                table[index] = data_address(array) if array.size else workspace.table_address
                results.append(array)
        self._entry(workspace.table_address, workspace.dims_address)
        if self._faults and check_faults:
            self.check_faults(results)
        return results[0] if self._single else tuple(results[:self._returned])

    def check_faults(self, results: list | None = None, note: str = "") -> None:
        """IndexError naming the op, a bad value and the range if the last call (its `results`, by
        default the persistent outputs) found a computed label out of range; `note` ends the message."""
        results = self._workspace.output_arrays if results is None else results
        for position, op, low, high, name in self._faults:
            value = results[position].item()
            if not low <= value < high:  # NaN too
                raise IndexError(f"{op}: {name} value {value} is out of range (expected {low} <= {name} < {high}); "
                                 f"the {name} were computed inside the graph{note}")

    # ---- native loops that drive the program themselves -----------------------------------------

    @property
    def table_address(self) -> int:
        return self._workspace.table_address

    @property
    def dims_address(self) -> int:
        return self._workspace.dims_address

    def prepare(self, dims: dict, arrays: dict) -> None:
        """Bind `dims` and point the named arguments at `arrays` (already checked by the caller)."""
        workspace = self._workspace
        if dims != workspace.binding:
            self._rebind(workspace, dims, lambda: {name: "batch_size" for name in dims})
        by_name = {spec["name"]: index for index, spec in self.arguments}
        for name, array in arrays.items():
            workspace.set(by_name[name], array)

    def restore_dims(self) -> None:
        """Write the bound dimension values back (a native loop may have changed them)."""
        self._workspace.write_dims(self._workspace.binding)

    # ---- inspection -----------------------------------------------------------------------------

    def check_indices(self, values: dict) -> None:
        """Raise IndexError if an argument used as a class label or index is out of its range."""
        check_indices(self._index_checks, values)

    @property
    def binding(self) -> dict | None:
        """The symbolic dimension values of the last call (None before the first)."""
        return self._workspace.binding

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
        from .engine import PART_SEPARATOR, Engine, split_parts
        return PART_SEPARATOR.join(str(Engine.instance().optimize(text)) for text in split_parts(self._ir_text))

    def asm(self) -> str:
        from .engine import PART_SEPARATOR, Engine, split_parts
        engine = Engine.instance()
        return PART_SEPARATOR.join(engine.emit_assembly(engine.optimize(text)) for text in split_parts(self._ir_text))

    def __repr__(self):
        names = ", ".join(b["name"] for _, b in self.arguments)
        return f"<symprop Executable ({names}) -> {self._returned} output(s), {len(self.plan['kernels'])} kernels>"


def nbytes(buffer: dict, dims: dict) -> int:
    return math.prod(concrete(buffer["shape"], dims)) * np.dtype(buffer["dtype"]).itemsize


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


def check_size_minimums(checks: list, dims: dict) -> None:
    """ValueError naming the op, the size and the dimensions, for each size below its minimum (a batch norm
    in training given one value per channel), before any kernel runs."""
    for check in checks:
        size = math.prod(dim_value(d, dims) for d in check["shape"])
        if size < check["minimum"]:
            binding = ", ".join(f"{name}={dims[name]}" for name in dim_names(check["shape"]))
            raise ValueError(f"{check['op']}: {check['what']} is {size} with {binding}; it must be at least "
                             f"{check['minimum']} (shape {tuple(check['shape'])})")


def check_indices(checks: list, values: dict) -> None:
    """IndexError naming the argument, the first bad value and the range, for each (name, low, high, op,
    ignored): a value `ignored` (cross_entropy's ignore_index), when not None, is allowed too."""
    for name, low, high, op, ignored in checks:
        array = values[name]
        if not array.size:
            continue
        unsigned = _UNSIGNED.get(array.dtype.char) if low == 0 else None
        if unsigned is not None:  # one pass: negative labels are huge as unsigned
            inside = _largest(array.view(unsigned), axis=None) < high
        else:
            inside = int(array.min()) >= low and int(array.max()) < high
        if not inside:
            flat = array.reshape(-1)
            outside = ((flat < low) | (flat >= high)) & (flat != ignored if ignored is not None else True)
            if not outside.any():
                continue
            bad = np.flatnonzero(outside)[0]
            where = np.unravel_index(bad, array.shape)
            allowed = f"{low} <= {name} < {high}" + (f" or {name} == {ignored}" if ignored is not None else "")
            raise IndexError(f"argument {name!r}: value {int(flat[bad])} at index "
                             f"{tuple(int(i) for i in where)} is out of range for {op} (expected {allowed})")


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
