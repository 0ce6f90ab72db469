"""NumPy's own OpenBLAS, made callable from JIT-compiled code.

Large contractions call `cblas_?gemm` instead of a generated loop nest, as
XLA's CPU backend does. NumPy 2.x wheels already ship OpenBLAS (on Linux as
`numpy.libs/libscipy_openblas64_-<hash>.so`, symbols `scipy_cblas_sgemm64_`
with 64-bit integer arguments), so no SciPy and no system BLAS are needed.

`load()` finds that library, makes its symbols visible to LLVM's JIT and
reports which gemm names it exports. It returns None when there is no such
library; code generation then uses its own loops for every size.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
from dataclasses import dataclass

import llvmlite.binding as llvm

__all__ = ["BlasInfo", "find_library", "load", "set_num_threads"]

# CBLAS enum values (32-bit ints in every ABI variant).
ROW_MAJOR = 101
NO_TRANS = 111
TRANS = 112

_LIBRARY_PATTERNS = ("*scipy_openblas*", "*openblas*")
_LIBRARY_SUFFIXES = (".so", ".dylib", ".dll")
# Name variants, most specific first: (prefix, suffix, integers are 64-bit).
_NAME_VARIANTS = (
    ("scipy_", "64_", True),
    ("scipy_", "_64", True),
    ("scipy_", "", False),
    ("", "64_", True),
    ("", "_64", True),
    ("", "", False),
)


@dataclass(frozen=True)
class BlasInfo:
    """What JIT code needs to call the loaded BLAS."""

    path: str
    sgemm: str  # symbol of cblas_sgemm, e.g. "scipy_cblas_sgemm64_"
    dgemm: str  # symbol of cblas_dgemm
    int64: bool  # True when sizes and leading dimensions are 64-bit integers
    set_num_threads: str | None  # symbol of openblas_set_num_threads, if exported

    def gemm(self, dtype: str) -> str:
        """The gemm symbol for 'float32'/'f32' or 'float64'/'f64'."""
        return self.sgemm if dtype in ("float32", "f32") else self.dgemm


def _library_dirs() -> list[str]:
    """Where NumPy wheels keep vendored libraries, for every layout we know of."""
    spec = importlib.util.find_spec("numpy")
    if spec is None or not spec.submodule_search_locations:
        return []
    dirs = []
    for numpy_dir in spec.submodule_search_locations:
        site = os.path.dirname(numpy_dir)
        dirs += [
            os.path.join(site, "numpy.libs"),  # Linux (auditwheel), Windows (delvewheel)
            os.path.join(numpy_dir, ".libs"),  # older Linux wheels
            os.path.join(numpy_dir, ".dylibs"),  # macOS (delocate)
            os.path.join(numpy_dir, "_core"),
        ]
    return [d for d in dirs if os.path.isdir(d)]


def find_library() -> str | None:
    """Path of the OpenBLAS NumPy ships, or None."""
    for directory in _library_dirs():
        for pattern in _LIBRARY_PATTERNS:
            for path in sorted(glob.glob(os.path.join(directory, pattern))):
                name = os.path.basename(path)
                if any(suffix in name for suffix in _LIBRARY_SUFFIXES):
                    return path
    return None


def _exported_names(library: ctypes.CDLL) -> tuple[str, str, bool] | None:
    for prefix, suffix, int64 in _NAME_VARIANTS:
        sgemm, dgemm = (f"{prefix}cblas_{t}gemm{suffix}" for t in "sd")
        if hasattr(library, sgemm) and hasattr(library, dgemm):
            return sgemm, dgemm, int64
    return None


def _thread_setter_name(library: ctypes.CDLL) -> str | None:
    for prefix, suffix, _ in _NAME_VARIANTS:
        name = f"{prefix}openblas_set_num_threads{suffix}"
        if hasattr(library, name):
            return name
    return None


@functools.cache
def _open() -> tuple[BlasInfo, ctypes.CDLL] | None:
    path = find_library()
    if path is None:
        return None
    try:
        library = ctypes.CDLL(path)
    except OSError:
        return None
    names = _exported_names(library)
    if names is None:
        return None
    sgemm, dgemm, int64 = names
    llvm.load_library_permanently(path)
    if not (llvm.address_of_symbol(sgemm) and llvm.address_of_symbol(dgemm)):
        return None
    info = BlasInfo(path, sgemm, dgemm, int64, _thread_setter_name(library))
    return info, library


def load() -> BlasInfo | None:
    """Make NumPy's OpenBLAS resolvable by JIT code (once per process); None if absent."""
    opened = _open()
    return None if opened is None else opened[0]


def set_num_threads(count: int) -> bool:
    """Set OpenBLAS's thread count (shared with NumPy: it is the same library).

    Returns False when there is no BLAS or it exports no setter. Never called
    implicitly; benchmarks use it to compare single-threaded.
    """
    opened = _open()
    if opened is None or opened[0].set_num_threads is None:
        return False
    info, library = opened
    setter = getattr(library, info.set_num_threads)
    setter.argtypes = [ctypes.c_int]
    setter.restype = None
    setter(int(count))
    return True
