"""Loading compiled programs: from this process, from the on-disk cache, or freshly built.

A program is stored as named blobs: the object code, the plan (JSON), the
constant arrays (npz) and the LLVM IR text (for inspection). Each is loaded
into the process's one JIT at most once.

Threads: a program is built once, by the first thread asking for its key (the
others wait for that key only); programs of different keys are built at the
same time. Nothing here holds a lock across a build: simplification, code
generation and LLVM's optimisation run in parallel, and only adding the object
to the process's JIT is serialised (``Engine.add_object``).
"""
from __future__ import annotations

import io
import json
import threading
import warnings

import numpy as np

from .cache import ObjectCache
from .engine import Engine, InvalidObjectError
from .executable import Executable
from .progress import NoProgress
from .thread_pool import ensure_workers

_loaded: dict = {}  # key -> LoadedProgram, for the life of the process
_building: dict = {}  # key -> the lock its first caller holds while loading or building it
_building_lock = threading.Lock()  # guards _building only (never held across a build)
_renamed: dict = {}  # key -> the symbol prefix its build takes: a bad cache entry's object defined the usual one


class LoadedProgram:
    def __init__(self, plan: dict, addresses: dict, consts: dict, ir_text: str, from_cache: bool):
        self.plan, self.addresses, self.consts, self.ir_text = plan, addresses, consts, ir_text
        self.from_cache = from_cache

    @property
    def address(self) -> int:
        return self.addresses[self.plan["entry"]]


def entry_symbols(plan: dict) -> list:
    return [plan["entry"]] + ([plan["epoch"]] if plan.get("epoch") else []) + list(plan.get("kernel_runners", []))


def symbol_prefix(key: str) -> str:
    return f"sp_{key[:24]}"


def _pack_consts(consts: dict) -> bytes:
    stream = io.BytesIO()
    np.savez(stream, **{str(k): v for k, v in consts.items()})
    return stream.getvalue()


def _unpack_consts(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return {int(k): data[k] for k in data.files}


def load_program(key: str, build, cache: ObjectCache | None = None, progress=None) -> LoadedProgram | None:
    """The program for `key`; `build(prefix) -> (ir_text, plan, consts)` runs only on a miss
    (with `build` None, a miss returns None: a program only this process or the cache has).

    A cache entry that authenticates but does not parse, does not describe a
    well-formed program, or does not link is a miss: it is removed and the program built.
    progress: a runtime.progress.Progress told about the LLVM stages (build reports its own)."""
    program = _loaded.get(key)
    if program is not None:
        return program
    with _building_lock:
        lock = _building.setdefault(key, threading.Lock())
    with lock:  # one build per key; another key's build runs beside this one
        program = _loaded.get(key)
        if program is None:
            program = _load_or_build(key, build, cache, progress)
            if program is None:
                return None
            _loaded[key] = program
            with _building_lock:  # after a failed build the lock stays: a retry waits for a retry
                _building.pop(key, None)
    return program


def _load_or_build(key: str, build, cache: ObjectCache | None, progress) -> LoadedProgram | None:
    """From the on-disk cache, or built (`build` and LLVM run here, holding only this key's lock)."""
    engine = Engine.instance()
    cache = ObjectCache.default() if cache is None else cache
    progress = progress if progress is not None else NoProgress()
    progress.stage("cache")
    entries = cache.load(key)
    program = None
    if entries is not None:
        progress.stage("load")
        program, linked = _from_cache(engine, entries)
        if program is None:
            cache.discard(key)
            if linked:  # its symbols may be defined now: the rebuilt program takes other names
                _renamed[key] = f"{symbol_prefix(key)}_{len(_loaded)}x{id(entries) & 0xFFFF:x}"
    if program is None and build is not None:
        ir_text, plan, consts = build(_renamed.get(key, symbol_prefix(key)))
        ensure_workers(plan.get("threads", 1))
        parts = plan.get("part_symbols", [])
        addresses, objects = engine.compile(ir_text, entry_symbols(plan), plan["externals"], progress,
                                            f"({len(plan['kernels'])} kernels in {len(parts) + 1} modules)", parts)
        progress.stage("cache")
        cache.store(key, {**_object_entries(objects), "plan": json.dumps(plan).encode(),
                          "consts": _pack_consts(consts), "ir": ir_text.encode()})
        program = LoadedProgram(plan, addresses, consts, ir_text, False)
    return program


def _from_cache(engine: Engine, entries: dict) -> tuple:
    """(the program, or None when the entry is unusable; whether the object reached the JIT)."""
    if not {"object", "plan", "consts", "ir"} <= set(entries):
        return None, False
    try:
        plan = json.loads(entries["plan"])
        consts = _unpack_consts(entries["consts"])
        check_plan(plan, consts)
        ir_text = entries["ir"].decode()
    except Exception as error:  # json, zip and npz readers raise many kinds: each means a miss
        _discard_warning(f"its plan or constants do not parse ({error})")
        return None, False
    parts = plan.get("part_symbols", [])
    objects = [entries.get("object" if i == 0 else f"object.{i}") for i in range(len(parts) + 1)]
    try:
        if not all(isinstance(obj, bytes) for obj in objects):
            raise InvalidObjectError(f"it lacks some of its {len(objects)} objects")
        for obj in objects:  # every object checked before any reaches the JIT
            engine.check_object_format(obj)
    except InvalidObjectError as error:
        _discard_warning(str(error))
        return None, False
    ensure_workers(plan.get("threads", 1))
    try:
        addresses = engine.add_objects(objects, entry_symbols(plan), [plan["externals"]] * len(objects), parts)
    except (RuntimeError, ValueError) as error:  # unresolved or duplicate symbols, an absent entry point
        _discard_warning(f"it does not link ({error})")
        return None, True
    return LoadedProgram(plan, addresses, consts, ir_text, True), True


def _object_entries(objects: list) -> dict:
    """Cache entries of a program's objects: "object" (the entry points), then "object.1", ..."""
    return {"object" if i == 0 else f"object.{i}": obj for i, obj in enumerate(objects)}


def _discard_warning(reason: str) -> None:
    warnings.warn(f"symprop cache: discarding an entry: {reason}; compiling instead", RuntimeWarning, stacklevel=4)


DTYPES = {"float32", "float64", "int32", "int64", "bool", "uint8", "int8", "int16", "uint16", "uint32", "uint64",
          "float16"}


def is_symbolic_dim(dim: str, dims: set) -> bool:
    """A dimension name in `dims`, or a product of them and integers ("batch*16")."""
    return all(part.isdigit() or part in dims for part in dim.split("*"))


def check_plan(plan, consts: dict) -> None:
    """Raise ValueError unless `plan` has every field the runtime reads, of the right types and in range."""
    def require(condition, what):
        if not condition:
            raise ValueError(f"plan: {what}")

    def names(value):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    require(isinstance(plan, dict), "not an object")
    require(isinstance(plan.get("entry"), str), "no entry symbol")
    require(names(plan.get("dims")), "dims is not a list of names")
    require(names(plan.get("externals")) and names(plan.get("kernel_runners", [])), "symbols are not names")
    require(plan.get("epoch") is None or isinstance(plan["epoch"], str), "epoch is not a symbol")
    threads = plan.get("threads", 1)
    require(isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= 4096, "threads is not a count")
    require(isinstance(plan.get("part_symbols", []), list) and all(names(part) and part
                                                                   for part in plan.get("part_symbols", [])),
            "part_symbols is not a list of symbol lists")
    slots = plan.get("slots")
    require(isinstance(slots, int) and slots >= 0, "slots is not a count")
    buffers = plan.get("buffers")
    require(isinstance(buffers, list), "buffers is not a list")
    dims = set(plan["dims"])
    for buffer in buffers:
        require(isinstance(buffer, dict) and isinstance(buffer.get("name"), str) and isinstance(buffer.get("role"), str),
                "a buffer has no name or role")
        require(buffer.get("dtype") in DTYPES, f"buffer {buffer['name']!r} has an unknown dtype")
        shape = buffer.get("shape")
        require(isinstance(shape, list) and all((isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                                                or (isinstance(d, str) and is_symbolic_dim(d, dims)) for d in shape),
                f"buffer {buffer['name']!r} has a bad shape")
        slot = buffer.get("slot")
        require(slot is None or (isinstance(slot, int) and 0 <= slot < slots), f"buffer {buffer['name']!r} has a bad slot")
    outputs = plan.get("outputs")
    require(isinstance(outputs, list) and all(isinstance(i, int) and 0 <= i < len(buffers) for i in outputs),
            "outputs are not buffer indices")
    for spec in plan.get("arguments") or []:
        require(isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec.get("dtype") in DTYPES
                and isinstance(spec.get("shape"), list)
                and (spec.get("buffer") is None or (isinstance(spec["buffer"], int) and 0 <= spec["buffer"] < len(buffers))),
                "an argument is malformed")
    require(isinstance(plan.get("kernels"), list) and all(isinstance(k, dict) for k in plan["kernels"]),
            "kernels is not a list")
    for check in plan.get("index_checks") or []:
        require(isinstance(check, dict) and isinstance(check.get("input"), str) and isinstance(check.get("low"), int)
                and isinstance(check.get("high"), int) and isinstance(check.get("op"), str)
                and isinstance(check.get("ignored"), (int, type(None))), "an index check is malformed")
    for check in plan.get("size_checks") or []:
        require(isinstance(check, dict) and isinstance(check.get("shape"), list)
                and all(isinstance(d, (int, str)) for d in check["shape"]) and isinstance(check.get("minimum"), int)
                and isinstance(check.get("op"), str) and isinstance(check.get("what"), str),
                "a size check is malformed")
    for fault in plan.get("index_faults") or []:
        require(isinstance(fault, dict) and isinstance(fault.get("buffer"), int) and 0 <= fault["buffer"] < len(buffers)
                and isinstance(fault.get("low"), int) and isinstance(fault.get("high"), int)
                and isinstance(fault.get("op"), str), "an index fault check is malformed")
    for index, array in consts.items():
        require(0 <= index < len(buffers), "a constant names no buffer")
        buffer = buffers[index]
        require(array.dtype == np.dtype(buffer["dtype"]) and list(array.shape) == buffer["shape"],
                f"constant {buffer['name']!r} does not match its buffer")


class ProgramNotCached(LookupError):
    """No program under this key in this process or in the on-disk cache."""


def load(key: str, single: bool | None = None, cache: ObjectCache | None = None) -> Executable:
    """A program compiled earlier (``fn.key``), loaded without the compiler: from this process or the
    on-disk cache, as a deployment loads it. `single`: return one array rather than a tuple
    (default: when the program has one output). Raises ProgramNotCached on a miss."""
    cache = ObjectCache.default() if cache is None else cache

    def not_cached(prefix):
        raise ProgramNotCached(f"no compiled program {key} in this process or in {cache.directory}"
                               f"{'' if cache.enabled else ' (disabled by SYMPROP_CACHE=0)'}; "
                               "compile it once with compiler.compile")

    program = load_program(key, not_cached, cache)
    if single is None:
        single = len(program.plan["outputs"]) == 1
    return Executable.of(program, key, single=single)
