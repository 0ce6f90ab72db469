"""Matrix multiply in generated code: register-tiled loops when small, BLAS when large.

`gemm_function(module, dtype)` defines

    void symprop.gemm.<f32|f64>(i64 M, i64 N, i64 K, T* A, i64 lda, i64 a_trans,
                                T* B, i64 ldb, i64 b_trans, T* C, i64 ldc, i64 accumulate)

computing C[M,N] = op(A) @ op(B) (+ C when `accumulate` != 0), all row-major:
op(A) is A (M x K, row stride lda) or, when `a_trans`, the transpose of A stored
K x M (row stride lda); likewise op(B) (K x N, or stored N x K). Any sizes >= 0
and leading dimensions >= 0 (0: every row the same). With `accumulate` == 0,
C is never read. Batched products are a loop around this function in the caller.

By default every product runs in the loops of gemm_loops.py: single-threaded
they match or beat OpenBLAS at every size measured, and they never wait for
another thread. With SYMPROP_BLAS=1, from `BLAS_MIN_WORK` = M*N*K on, it calls
`cblas_?gemm` of NumPy's OpenBLAS (`runtime.blas`), as XLA's CPU backend does,
when leading dimensions suit BLAS: faster on idle cores through OpenBLAS's
threads, but those threads stall for whole scheduler slices (~16 ms per call
measured) when the cores are busy.
Callers pass `gemm_externals(module)` to the engine so that the BLAS symbol is
checked before the code is loaded.
"""

from __future__ import annotations

import os

from llvmlite import ir

from runtime import blas

from .gemm_loops import (
    ELEMENT_TYPES,
    GEMM_ARGUMENTS,
    TileShape,
    gemm_signature,
    host_tile_shape,
    new_internal_function,
    short_dtype,
    tile_shape_for,
    tiled_gemm_function,
)

__all__ = ["BLAS_MIN_WORK", "TileShape", "host_tile_shape", "tile_shape_for", "gemm_function",
           "tiled_gemm_function", "gemm_externals"]

# M*N*K from which BLAS is called (benchmarks/bench_gemm.py, Zen 4, 2 cores).
# Single-threaded our loops match or beat OpenBLAS at every size up to 1024^3;
# OpenBLAS's gain is its threads: 1.4-1.5x from about 160^3 on idle cores, but
# a loss under contention, so it takes over only where that gain is large.
BLAS_MIN_WORK = 192**3

I32, I64 = ir.IntType(32), ir.IntType(64)


def blas_for_large_products() -> bool:
    """Whether large products call NumPy's OpenBLAS (SYMPROP_BLAS=1; part of every cache key)."""
    return os.environ.get("SYMPROP_BLAS", "0") not in ("", "0")


def gemm_function(module: ir.Module, dtype: str) -> ir.Function:
    """The module's `symprop.gemm.<f32|f64>` (defined on first request)."""
    short = short_dtype(dtype)
    name = f"symprop.gemm.{short}"
    if name in module.globals:
        return module.globals[name]
    element, _ = ELEMENT_TYPES[short]
    tiled = tiled_gemm_function(module, short)
    info = blas.load() if blas_for_large_products() else None
    function = new_internal_function(module, name, gemm_signature(element), GEMM_ARGUMENTS)
    b = ir.IRBuilder(function.append_basic_block("entry"))
    args = function.args
    if info is None:
        b.call(tiled, args)
        b.ret_void()
        return function
    M, N, K, _, lda, a_trans, _, ldb, b_trans, _, ldc, _ = args
    use_blas = b.icmp_signed(">=", b.mul(b.mul(M, N), K), I64(BLAS_MIN_WORK))
    # BLAS rejects leading dimensions below the row length; our loops take any.
    for ld, trans, if_plain, if_trans in ((lda, a_trans, K, M), (ldb, b_trans, N, K)):
        row = b.select(b.icmp_signed("!=", trans, I64(0)), if_trans, if_plain)
        use_blas = b.and_(use_blas, b.icmp_signed(">=", ld, row))
    use_blas = b.and_(use_blas, b.icmp_signed(">=", ldc, N))
    if not info.int64:  # 32-bit BLAS: only sizes that fit
        for value in (M, N, K, lda, ldb, ldc):
            use_blas = b.and_(use_blas, b.icmp_signed("<=", value, I64(2**31 - 1)))
    with b.if_else(use_blas) as (then, otherwise):
        with then:
            _call_blas(b, module, info, short, args)
        with otherwise:
            b.call(tiled, args)
    b.ret_void()
    return function


def _call_blas(b: ir.IRBuilder, module: ir.Module, info: blas.BlasInfo, short: str, args) -> None:
    element, _ = ELEMENT_TYPES[short]
    size_type = I64 if info.int64 else I32
    ptr = element.as_pointer()
    fnty = ir.FunctionType(
        ir.VoidType(),
        [I32, I32, I32, size_type, size_type, size_type, element, ptr, size_type,
         ptr, size_type, element, ptr, size_type],
    )
    symbol = info.gemm(short)
    cblas_gemm = module.globals.get(symbol) or ir.Function(module, fnty, name=symbol)
    M, N, K, A, lda, a_trans, B, ldb, b_trans, C, ldc, accumulate = args

    def size(value):
        return value if info.int64 else b.trunc(value, I32)

    def transpose_flag(flag):
        return b.select(b.icmp_signed("!=", flag, I64(0)), I32(blas.TRANS), I32(blas.NO_TRANS))

    beta = b.select(b.icmp_signed("!=", accumulate, I64(0)), element(1.0), element(0.0))
    b.call(cblas_gemm, [
        I32(blas.ROW_MAJOR), transpose_flag(a_trans), transpose_flag(b_trans),
        size(M), size(N), size(K), element(1.0), A, size(lda), B, size(ldb), beta, C, size(ldc),
    ])


def gemm_externals(module: ir.Module) -> list[str]:
    """BLAS symbols the module's gemm functions call (the JIT must resolve them)."""
    info = blas.load()
    if info is None:
        return []
    return [name for name in (info.sgemm, info.dgemm)
            if name in module.globals and module.globals[name].is_declaration]
