"""Loading compiled programs: from this process, from the on-disk cache, or freshly built.

A program is stored as named blobs: the object code, the plan (JSON), the
constant arrays (npz) and the LLVM IR text (for inspection). Each is loaded
into the process's one JIT at most once.
"""
from __future__ import annotations

import io
import json
import threading

import numpy as np

from .cache import ObjectCache
from .engine import Engine
from .executable import Executable

_loaded: dict = {}
_lock = threading.Lock()


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


def load_program(key: str, build, cache: ObjectCache | None = None, progress=None) -> LoadedProgram:
    """The program for `key`; `build(prefix) -> (ir_text, plan, consts)` runs only on a miss.

    progress: a runtime.progress.Progress told about the LLVM stages (build reports its own)."""
    with _lock:
        program = _loaded.get(key)
        if program is not None:
            return program
        engine = Engine.instance()
        cache = ObjectCache.default() if cache is None else cache
        entries = cache.load(key)
        if entries is not None and {"object", "plan", "consts", "ir"} <= set(entries):
            plan = json.loads(entries["plan"])
            addresses = engine.add_object(entries["object"], entry_symbols(plan), plan["externals"])
            program = LoadedProgram(plan, addresses, _unpack_consts(entries["consts"]),
                                    entries["ir"].decode(), True)
        else:
            ir_text, plan, consts = build(symbol_prefix(key))
            if progress is not None:
                progress.stage(f"LLVM: optimise and emit machine code for {len(plan['kernels'])} kernels")
            addresses, obj = engine.compile(ir_text, entry_symbols(plan), plan["externals"])
            cache.store(key, {"object": obj, "plan": json.dumps(plan).encode(), "consts": _pack_consts(consts),
                              "ir": ir_text.encode()})
            program = LoadedProgram(plan, addresses, consts, ir_text, False)
        _loaded[key] = program
        return program


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
