"""The process-wide LLVM JIT: optimise IR for the host CPU, emit objects, load them.

One MCJIT serves the whole process (`Engine.instance()`). Compiled code is
loaded as object files, the same bytes the on-disk cache stores, so a program
built now and a program loaded from the cache take one path.

Symbol names share one namespace per process: every program must prefix its
symbols with a hash of itself (the engine refuses to define a name twice).

Facts this module relies on (llvmlite 0.50 / LLVM 22):
- `create_mcjit_compiler` takes ownership of its target machine; reusing that
  machine elsewhere gave non-vectorised code, then a crash. So the MCJIT gets
  its own machine and every optimisation or emission builds a fresh one.
- MCJIT hands out addresses even for code calling an unresolved external
  symbol; calling it crashes. Externals are checked before an object is added.
- Adding bytes that are not an object file crashes the process, and so does a
  truncated or inconsistent one (a section or relocation pointing past the
  end): `check_elf_object` checks every offset, size and index RuntimeDyld
  follows before the bytes reach it.

Threads: llvmlite serialises every LLVM call on one process-wide lock. Adding
objects to the MCJIT (the one shared structure) stays serialised, on that lock
and the engine's own. Parsing, verifying, optimising and emitting a module are
the expensive, independent parts: each `optimize` gets a private LLVMContext
and a fresh target machine, touches nothing another thread can reach, and
calls those four LLVM functions without llvmlite's lock (`_unlocked`), so two
threads compile two programs in parallel (LLVM supports concurrent work in
distinct contexts). The GIL is released inside each of those calls.
"""

from __future__ import annotations

import ctypes
import functools
import struct
import sys
import threading

import numpy as np

import llvmlite
import llvmlite.binding as llvm

__all__ = [
    "Engine",
    "InvalidIRError",
    "UnresolvedSymbolError",
    "DuplicateSymbolError",
    "InvalidObjectError",
    "check_elf_object",
    "host_identity",
    "declared_externals",
]

_OBJECT_MAGIC = {
    "ELF": (b"\x7fELF",),
    "MachO": (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe"),
}


class InvalidIRError(ValueError):
    """LLVM IR text that does not parse or does not verify."""


class UnresolvedSymbolError(RuntimeError):
    """An external symbol the code needs is not defined in this process."""


class InvalidObjectError(ValueError):
    """Bytes that are not a whole, well-formed relocatable object for this host."""


class DuplicateSymbolError(RuntimeError):
    """A symbol name already defined by an earlier object (missing program prefix?)."""


_llvm_ready = False
_llvm_ready_lock = threading.Lock()

# LLVM command-line options set once per process, before any compilation (they are global to LLVM).
# Masked interleaved accesses: a loop whose short trip count the vectoriser folds into a masked vector
# (a 14-wide row of a pooled image, say) reads `x[2*i]` and `x[2*i+1]` as masked wide loads and a
# shuffle instead of gathers. On Zen 4, where gathers are slow, that took the anchor CNN's first
# pooling loop from 450 to 200 us; masked loads touch no element outside their mask.
LLVM_OPTIONS = ("-enable-masked-interleaved-mem-accesses",)


def _initialize_llvm() -> None:
    """Register the host target (`llvm.initialize()` raises since llvmlite 0.45)."""
    global _llvm_ready
    with _llvm_ready_lock:
        if not _llvm_ready:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            llvm.initialize_native_asmparser()
            for option in LLVM_OPTIONS:
                llvm.set_option("symprop", option)
            _llvm_ready = True


@functools.cache
def _host_cpu() -> tuple[str, str]:
    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


@functools.cache
def host_identity() -> str:
    """What machine code depends on: llvmlite and LLVM versions, CPU name and features.

    Cheap (no JIT is built), so cache keys can use it without compiling anything.
    """
    cpu_name, cpu_features = _host_cpu()
    llvm_version = ".".join(map(str, llvm.llvm_version_info))
    return (
        f"llvmlite={llvmlite.__version__};llvm={llvm_version};"
        f"triple={llvm.get_process_triple()};cpu={cpu_name};features={cpu_features};"
        f"options={' '.join(LLVM_OPTIONS)}"
    )


def _unlocked(name: str):
    """llvmlite's C function `name` called without llvmlite's process-wide lock (the locked one if this
    llvmlite wraps its functions differently). Only for calls on objects private to the calling thread."""
    function = getattr(llvm.ffi.lib, name)
    return getattr(function, "_cfn", function)


def _parse_private(ir_text: str) -> llvm.ModuleRef:
    """A module parsed into a fresh LLVMContext of its own (the module keeps the context alive)."""
    context = llvm.create_context()
    with llvm.ffi.OutputString() as error:
        module = llvm.ModuleRef(_unlocked("LLVMPY_ParseAssembly")(context, ir_text.encode(), error), context)
        if error:
            module.close()
            raise RuntimeError(f"LLVM IR parsing error\n{error}")
    with llvm.ffi.OutputString() as error:
        if _unlocked("LLVMPY_VerifyModule")(module, error):
            raise _VerifyError(str(error))
    return module


class _VerifyError(RuntimeError):
    pass


def _emit_private(tm: llvm.TargetMachine, module: llvm.ModuleRef, use_object: bool) -> bytes:
    """What `tm.emit_object(module)` (or `emit_assembly`) returns, with LLVM's work outside llvmlite's lock."""
    with llvm.ffi.OutputString() as error:
        buffer = _unlocked("LLVMPY_TargetMachineEmitToMemory")(tm, module, int(use_object), error)
        if not buffer:
            raise RuntimeError(str(error))
    try:
        return ctypes.string_at(llvm.ffi.lib.LLVMPY_GetBufferStart(buffer), llvm.ffi.lib.LLVMPY_GetBufferSize(buffer))
    finally:
        llvm.ffi.lib.LLVMPY_DisposeMemoryBuffer(buffer)


class Engine:
    """Compiles LLVM IR for the host CPU and loads machine code into this process."""

    _instance: Engine | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def instance(cls) -> Engine:
        """The process-wide engine, created on first use."""
        if cls._instance is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def __init__(self) -> None:
        _initialize_llvm()
        self.cpu_name, self.cpu_features = _host_cpu()
        self.llvm_version = ".".join(map(str, llvm.llvm_version_info))
        self.identity = host_identity()
        self._lock = threading.RLock()
        # The MCJIT owns this target machine: nothing else may ever use it.
        self._mcjit = llvm.create_mcjit_compiler(llvm.parse_assembly(""), self.target_machine())
        self._loaded_objects: list[tuple[bytes, llvm.ObjectFileRef]] = []
        self._symbols: dict[str, int] = {}
        self.blas_error: Exception | None = _load_blas()

    def target_machine(self) -> llvm.TargetMachine:
        """A fresh O3 target machine for the host CPU and its features."""
        target = llvm.Target.from_default_triple()
        return target.create_target_machine(
            cpu=self.cpu_name, features=self.cpu_features, opt=3, jit=True
        )

    def optimize(self, ir_text: str) -> llvm.ModuleRef:
        """Parse, verify and optimise IR at O3 (loop and SLP vectorisation) for the host.

        Returns the module (in an LLVMContext of its own): `str(module)` is the optimised IR.
        Threads optimise in parallel (see the module's docstring).
        """
        try:
            module = _parse_private(ir_text)
        except _VerifyError as error:
            raise InvalidIRError(f"LLVM IR does not verify:\n{error}") from None
        except RuntimeError as error:
            raise InvalidIRError(f"LLVM IR does not parse:\n{error}") from None
        tm = self.target_machine()
        module.triple = tm.triple
        module.data_layout = str(tm.target_data)
        tuning = llvm.create_pipeline_tuning_options(speed_level=3)
        tuning.loop_vectorization = True
        tuning.slp_vectorization = True
        passes = llvm.create_pass_builder(tm, tuning)
        _unlocked("LLVMPY_RunNewModulePassManager")(passes.getModulePassManager(), module, passes)
        return module

    def emit_object(self, module: llvm.ModuleRef) -> bytes:
        """Machine code for a module from ``optimize``, as an object file."""
        return _emit_private(self.target_machine(), module, True)

    def emit_assembly(self, module: llvm.ModuleRef) -> str:
        """Host assembly for a module from ``optimize``, for inspection."""
        return _emit_private(self.target_machine(), module, False).decode()

    def add_object(
        self, obj: bytes, symbols: list[str], externals: list[str] = ()
    ) -> dict[str, int]:
        """Load an object file and return the address of each requested symbol.

        `externals` names every symbol the object needs from the process (libm,
        BLAS, ...): each must resolve before the object is added, or
        `UnresolvedSymbolError` is raised. The object stays loaded for the life
        of the process.
        """
        obj = bytes(obj)
        self.check_object_format(obj)
        with self._lock:
            missing = [name for name in externals if not self._resolves(name)]
            if missing:
                hint = f" (BLAS did not load: {self.blas_error})" if self.blas_error else ""
                raise UnresolvedSymbolError(
                    f"external symbol {missing[0]!r} is not defined in this process"
                    f"{hint}; unresolved: {missing}"
                )
            taken = [name for name in symbols if self._defined(name)]
            if taken:
                raise DuplicateSymbolError(
                    f"symbol {taken[0]!r} is already defined in this process; "
                    "prefix symbol names with a hash of their program"
                )
            object_file = llvm.ObjectFileRef.from_data(obj)
            self._mcjit.add_object_file(object_file)
            self._loaded_objects.append((obj, object_file))
            self._mcjit.finalize_object()
            addresses = {name: self._mcjit.get_function_address(name) for name in symbols}
            self._symbols.update((name, a) for name, a in addresses.items() if a)
        absent = [name for name, address in addresses.items() if not address]
        if absent:
            raise RuntimeError(f"symbol {absent[0]!r} is not defined by the object; absent: {absent}")
        return addresses

    def compile(
        self, ir_text: str, symbols: list[str], externals: list[str] = (), progress=None, detail: str | None = None,
        part_symbols: list[list[str]] = (),
    ) -> tuple[dict[str, int], list[bytes]]:
        """Optimise, emit and load IR; returns (symbol addresses, object bytes per part).

        `ir_text` may hold several modules separated by PART_SEPARATOR: module 0 defines `symbols`,
        module i > 0 defines part_symbols[i - 1], which module 0 declares. They are optimised and
        emitted in parallel threads, and loaded parts first. Functions and globals a module declares
        but does not define are checked as externals along with `externals`. progress: a
        runtime.progress.Progress told of each stage ("LLVM optimise", "machine code", "load";
        `detail` shown with the first).
        """
        texts = split_parts(ir_text)
        if len(texts) != len(part_symbols) + 1:
            raise ValueError(f"Engine.compile: {len(texts)} modules for {len(part_symbols) + 1} symbol lists")
        stage = progress.stage if progress is not None else (lambda name, detail=None: None)
        stage("LLVM optimise", detail)
        modules = _in_parallel(self.optimize, texts)
        stage("machine code")
        objects = _in_parallel(self.emit_object, modules)
        stage("load")
        needed = [list(dict.fromkeys([*externals, *declared_externals(module)])) for module in modules]
        return self.add_objects(objects, symbols, needed, part_symbols), objects

    def add_objects(self, objects: list[bytes], symbols: list[str], externals: list[list[str]],
                    part_symbols=()) -> dict:
        """Load a program's objects: the parts (object i > 0 defining part_symbols[i - 1]) before
        the first, which defines `symbols` and calls theirs; externals[i]: the process symbols
        object i needs. Returns the address of each of `symbols`."""
        for obj, defined, needed in zip(objects[1:], part_symbols, externals[1:], strict=True):
            self.add_object(obj, defined, needed)
        return self.add_object(objects[0], symbols, externals[0])

    def _resolves(self, name: str) -> bool:
        return bool(llvm.address_of_symbol(name)) or name in self._symbols

    def _defined(self, name: str) -> bool:
        return name in self._symbols or bool(self._mcjit.get_function_address(name))

    @staticmethod
    def check_object_format(obj: bytes) -> None:
        """Raise InvalidObjectError unless `obj` is a well-formed object file of this platform."""
        magics = _OBJECT_MAGIC.get(llvm.get_object_format())
        if magics is not None and not obj.startswith(magics):
            raise InvalidObjectError(
                f"not a {llvm.get_object_format()} object file "
                f"({len(obj)} bytes starting {obj[:8]!r}); refusing to load it"
            )
        if llvm.get_object_format() == "ELF":
            check_elf_object(obj)


PART_SEPARATOR = "\n; ---- symprop: next module ----\n"


def split_parts(ir_text: str) -> list[str]:
    """The modules of a program's IR text (``PART_SEPARATOR`` between them)."""
    return ir_text.split(PART_SEPARATOR)


def _in_parallel(work, items: list) -> list:
    """[work(item) ...], one thread per item beyond the first (LLVM runs outside the GIL and
    outside llvmlite's lock: see ``_unlocked``)."""
    if len(items) == 1:
        return [work(items[0])]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=len(items) - 1) as pool:
        rest = pool.map(work, items[1:])
        first = work(items[0])
        return [first, *rest]


def declared_externals(module: llvm.ModuleRef) -> list[str]:
    """Names a module uses but does not define (LLVM intrinsics excluded)."""
    names = [f.name for f in module.functions if f.is_declaration]
    names += [g.name for g in module.global_variables if g.is_declaration]
    return [name for name in names if not name.startswith("llvm.")]


def _load_blas() -> Exception | None:
    """Make numpy's OpenBLAS symbols resolvable for JIT code, when available."""
    try:
        from . import blas
    except ModuleNotFoundError as error:
        if error.name in ("runtime.blas", "runtime"):
            return error
        raise
    try:
        found = blas.load()
    except Exception as error:  # no BLAS: only kernels that call it fail, by name
        return error
    return None if found is not None else RuntimeError("NumPy ships no OpenBLAS library here")


# ---- ELF structure, checked before RuntimeDyld reads it ---------------------------------------------

_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_SECTION = np.dtype([("name", "<u4"), ("type", "<u4"), ("flags", "<u8"), ("addr", "<u8"), ("offset", "<u8"),
                     ("size", "<u8"), ("link", "<u4"), ("info", "<u4"), ("addralign", "<u8"), ("entsize", "<u8")])
_SYMBOL = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"),
                    ("size", "<u8")])
_RELA = np.dtype([("offset", "<u8"), ("info", "<u8"), ("addend", "<i8")])
_REL = np.dtype([("offset", "<u8"), ("info", "<u8")])
_SHT_SYMTAB, _SHT_STRTAB, _SHT_RELA, _SHT_NOBITS, _SHT_REL = 2, 3, 4, 8, 9
_SHN_LORESERVE = 0xFF00


def check_elf_object(obj: bytes) -> None:
    """Raise InvalidObjectError unless `obj` is a complete 64-bit little-endian relocatable ELF
    object whose sections, symbols and relocations all lie inside it and refer to what exists."""
    def fail(reason):
        raise InvalidObjectError(f"not a well-formed object file ({len(obj)} bytes): {reason}; refusing to load it")

    if sys.byteorder != "little" or struct.calcsize("P") != 8:
        return  # the layouts below are the 64-bit little-endian ones; other hosts rely on the cache's MAC
    if len(obj) < _ELF_HEADER.size:
        fail("shorter than the ELF header")
    (ident, e_type, _, _, _, phoff, shoff, _, ehsize, phentsize, phnum, shentsize, shnum,
     shstrndx) = _ELF_HEADER.unpack_from(obj)
    if ident[4] != 2 or ident[5] != 1:
        fail("not 64-bit little-endian")
    if e_type != 1:
        fail(f"ELF type {e_type}, expected a relocatable object (1)")
    if ehsize != _ELF_HEADER.size or shentsize != _SECTION.itemsize or shnum == 0:
        fail("unexpected header or section header sizes")
    if phnum and phoff + phnum * phentsize > len(obj):
        fail("program headers run past the end")
    if shoff + shnum * shentsize > len(obj) or shstrndx >= shnum:
        fail("the section header table runs past the end")
    sections = np.frombuffer(obj, _SECTION, shnum, shoff)
    stored = sections["type"] != _SHT_NOBITS
    if np.any(stored & (sections["offset"] + sections["size"] > len(obj))) or np.any(sections["offset"] > len(obj)):
        fail("a section runs past the end")
    if np.any(sections["link"] >= shnum):
        fail("a section links to a section that does not exist")
    align = sections["addralign"]
    if np.any((align & (align - 1)) != 0) or np.any(align > 1 << 16):
        fail("a section alignment is not a small power of two")
    if np.any(sections["name"] >= max(int(sections["size"][shstrndx]), 1)):
        fail("a section name lies outside the section name table")

    def strings(index):
        section = sections[index]
        if section["type"] != _SHT_STRTAB:
            fail(f"section {index} is not a string table")
        size = int(section["size"])
        if size and obj[int(section["offset"]) + size - 1] != 0:
            fail(f"string table {index} is not terminated")
        return size

    strings(shstrndx)
    symbol_counts = {}
    for index in np.flatnonzero(sections["type"] == _SHT_SYMTAB):
        section = sections[index]
        if section["entsize"] != _SYMBOL.itemsize or section["size"] % _SYMBOL.itemsize:
            fail(f"symbol table {index} has entries of {section['entsize']} bytes")
        names_size = strings(int(section["link"]))
        symbols = np.frombuffer(obj, _SYMBOL, int(section["size"]) // _SYMBOL.itemsize, int(section["offset"]))
        if np.any(symbols["name"] >= max(names_size, 1)):
            fail("a symbol name lies outside its string table")
        in_section = (symbols["shndx"] > 0) & (symbols["shndx"] < _SHN_LORESERVE)
        if np.any(in_section & (symbols["shndx"] >= shnum)):
            fail("a symbol is defined in a section that does not exist")
        owners = symbols["shndx"][in_section].astype(np.int64)
        if np.any(symbols["value"][in_section] > sections["size"][owners]):
            fail("a symbol lies past the end of its section")
        symbol_counts[int(index)] = len(symbols)
    for kind, layout in ((_SHT_RELA, _RELA), (_SHT_REL, _REL)):
        for index in np.flatnonzero(sections["type"] == kind):
            section = sections[index]
            if section["entsize"] != layout.itemsize or section["size"] % layout.itemsize:
                fail(f"relocation section {index} has entries of {section['entsize']} bytes")
            link, target = int(section["link"]), int(section["info"])
            if link not in symbol_counts or not 0 < target < shnum:
                fail(f"relocation section {index} refers to no symbol table or no section")
            relocations = np.frombuffer(obj, layout, int(section["size"]) // layout.itemsize, int(section["offset"]))
            if np.any((relocations["info"] >> np.uint64(32)) >= symbol_counts[link]):
                fail("a relocation refers to a symbol that does not exist")
            if np.any(relocations["offset"] + np.uint64(4) > sections["size"][target]):  # rel32 at the very end
                fail("a relocation patches bytes past the end of its section")
