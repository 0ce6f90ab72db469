"""Matrix multiply in generated code: register-tiled loops when small, BLAS when large.

`gemm_function(module, dtype)` defines

    void symprop.gemm.<f32|f64>(i64 M, i64 N, i64 K, T* A, i64 lda, i64 a_trans,
                                T* B, i64 ldb, i64 b_trans, T* C, i64 ldc, i64 accumulate)

computing C[M,N] = op(A) @ op(B) (+ C when `accumulate` != 0), all row-major:
op(A) is A (M x K, row stride lda) or, when `a_trans`, the transpose of A stored
K x M; likewise op(B) (K x N, or stored N x K). Leading dimensions are at
least the stored row length. With `accumulate` == 0, C is never read.

Below `BLAS_MIN_FLOPS` (and always when `runtime.blas.load()` finds no BLAS)
the work runs in LLVM loops written the way BLIS writes them: B is packed, in
blocks of at most `depth` x `width` elements, into a stack buffer of panels
`lanes * vectors` wide; a micro-tile of `rows` x `vectors` vector accumulators
walks K, broadcasting one element of A per row. Row remainders use smaller
micro-tiles (powers of two), column remainders narrower ones, and a partial
vector goes through a small stack tile. No heap, no globals: reentrant.

Pointers are only element-aligned (NumPy buffers): every load or store of A,
B or C states the element's alignment (LLVM otherwise assumes the vector's).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from runtime import blas

__all__ = ["TileShape", "host_tile_shape", "gemm_function", "tiled_gemm_function", "gemm_externals"]

# 2*M*N*K at which calling BLAS beats our loops (measured: benchmarks/bench_gemm.py).
BLAS_MIN_FLOPS = 2 * 96**3

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
_ELEMENT = {"f32": (ir.FloatType(), 4), "f64": (ir.DoubleType(), 8)}
_SHORT = {"float32": "f32", "float64": "f64", "f32": "f32", "f64": "f64"}
_STACK_BUDGET = 96 * 1024  # bytes of packed B on the stack


@dataclass(frozen=True)
class TileShape:
    """Register and cache blocking of the loop path."""

    lanes: int  # elements per vector register
    rows: int  # rows of C per micro-tile
    vectors: int  # vectors per micro-tile row
    depth: int  # K block packed at once
    width: int  # N block packed at once (a multiple of lanes * vectors)

    @property
    def panel(self) -> int:
        return self.lanes * self.vectors


def host_tile_shape(dtype: str) -> TileShape:
    """Blocking for the host's vector registers (16 x 512-bit or 16 x 256-bit, ...)."""
    features = llvm.get_host_cpu_features()
    _, size = _ELEMENT[_SHORT[dtype]]
    if features.get("avx512f"):
        vector_bytes, rows, vectors = 64, 8, 3  # 24 of 32 zmm registers accumulate
    elif features.get("avx"):
        vector_bytes, rows, vectors = 32, 6, 2  # 12 of 16 ymm registers
    else:
        vector_bytes, rows, vectors = 16, 4, 2
    lanes = vector_bytes // size
    depth = 256 if size == 4 else 128
    panel = lanes * vectors
    width = max(1, _STACK_BUDGET // (depth * size * panel)) * panel
    return TileShape(lanes, rows, vectors, depth, width)


def _signature(element: ir.Type) -> ir.FunctionType:
    ptr = element.as_pointer()
    return ir.FunctionType(ir.VoidType(), [I64, I64, I64, ptr, I64, I64, ptr, I64, I64, ptr, I64, I64])


_ARG_NAMES = ("M", "N", "K", "A", "lda", "a_trans", "B", "ldb", "b_trans", "C", "ldc", "accumulate")


def _new_function(module: ir.Module, name: str, fnty: ir.FunctionType, arg_names) -> ir.Function:
    function = ir.Function(module, fnty, name=name)
    function.linkage = "internal"
    for arg, arg_name in zip(function.args, arg_names):
        arg.name = arg_name
    return function


def gemm_function(module: ir.Module, dtype: str) -> ir.Function:
    """The module's `symprop.gemm.<f32|f64>` (defined on first request)."""
    short = _SHORT[dtype]
    name = f"symprop.gemm.{short}"
    if name in module.globals:
        return module.globals[name]
    element, _ = _ELEMENT[short]
    tiled = tiled_gemm_function(module, short)
    info = blas.load()
    function = _new_function(module, name, _signature(element), _ARG_NAMES)
    b = ir.IRBuilder(function.append_basic_block("entry"))
    args = function.args
    if info is None:
        b.call(tiled, args)
        b.ret_void()
        return function
    M, N, K, lda, ldb, ldc = (args[i] for i in (0, 1, 2, 4, 7, 10))
    flops = b.mul(b.mul(b.mul(M, N), K), I64(2))
    use_blas = b.icmp_signed(">=", flops, I64(BLAS_MIN_FLOPS))
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
    element, _ = _ELEMENT[short]
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


# ---------------------------------------------------------------- loop path

@contextlib.contextmanager
def _loop(b: ir.IRBuilder, start, stop, step, name: str):
    """`for i in range(start, stop, step)` (step > 0); yields i."""
    preheader = b.block
    header = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    done = b.append_basic_block(f"{name}.done")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start, preheader)
    b.cbranch(b.icmp_signed("<", index, stop), body, done)
    b.position_at_end(body)
    yield index
    index.add_incoming(b.add(index, step), b.block)
    b.branch(header)
    b.position_at_end(done)


def _min(b: ir.IRBuilder, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def tiled_gemm_function(module: ir.Module, dtype: str, shape: TileShape | None = None) -> ir.Function:
    """The loop-only gemm, `symprop.gemm_tiled.<f32|f64>`: same signature, any size."""
    short = _SHORT[dtype]
    shape = shape or host_tile_shape(short)
    name = f"symprop.gemm_tiled.{short}.{shape.rows}x{shape.panel}"
    if name in module.globals:
        return module.globals[name]
    element, size = _ELEMENT[short]
    function = _new_function(module, name, _signature(element), _ARG_NAMES)
    M, N, K, A, lda, a_trans, B, ldb, b_trans, C, ldc, accumulate = function.args
    for pointer in (A, B, C):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    packed = b.alloca(element, size=I64(shape.depth * shape.width), name="packed_b")
    packed.align = max(64, size)
    returning = function.append_basic_block("return")
    nonempty = b.and_(b.icmp_signed(">", M, I64(0)), b.icmp_signed(">", N, I64(0)))
    with b.if_then(b.not_(nonempty)):
        b.branch(returning)
    with b.if_then(b.icmp_signed("<=", K, I64(0))):
        with b.if_then(b.icmp_signed("==", accumulate, I64(0))):
            _zero_matrix(b, C, M, N, ldc, element, size)
        b.branch(returning)

    pack = _pack_b_function(module, short, shape)
    a_row_step = b.select(b.icmp_signed("!=", a_trans, I64(0)), I64(1), lda)
    a_k_step = b.select(b.icmp_signed("!=", a_trans, I64(0)), lda, I64(1))
    b_k_step = b.select(b.icmp_signed("!=", b_trans, I64(0)), I64(1), ldb)
    b_n_step = b.select(b.icmp_signed("!=", b_trans, I64(0)), ldb, I64(1))
    with _loop(b, I64(0), N, I64(shape.width), "jc") as jc:
        nc = _min(b, I64(shape.width), b.sub(N, jc))
        with _loop(b, I64(0), K, I64(shape.depth), "pc") as pc:
            kc = _min(b, I64(shape.depth), b.sub(K, pc))
            add_c = b.zext(b.or_(b.icmp_signed("!=", accumulate, I64(0)),
                                 b.icmp_signed("!=", pc, I64(0))), I64)
            b_block = b.gep(B, [b.add(b.mul(pc, b_k_step), b.mul(jc, b_n_step))])
            b.call(pack, [b_block, ldb, b_trans, kc, nc, packed])
            a_block = b.gep(A, [b.mul(pc, a_k_step)])
            c_block = b.gep(C, [jc])
            row_block = _RowBlock(module, short, shape, b, kc, nc, a_block, a_row_step, a_k_step,
                                  packed, c_block, ldc, add_c)
            row_block.emit_all(M)
    b.branch(returning)
    b.position_at_end(returning)
    b.ret_void()
    return function


def _zero_matrix(b: ir.IRBuilder, C, M, N, ldc, element, size) -> None:
    with _loop(b, I64(0), M, I64(1), "zi") as i:
        row = b.gep(C, [b.mul(i, ldc)])
        with _loop(b, I64(0), N, I64(1), "zj") as j:
            b.store(element(0.0), b.gep(row, [j]), align=size)


class _RowBlock:
    """Emits the micro-tile calls covering M rows of one packed block of B."""

    def __init__(self, module, short, shape, b, kc, nc, a_block, a_row_step, a_k_step,
                 packed, c_block, ldc, add_c):
        self.module, self.short, self.shape, self.b = module, short, shape, b
        self.kc, self.nc, self.a_block, self.a_row_step = kc, nc, a_block, a_row_step
        self.a_k_step, self.packed, self.c_block, self.ldc, self.add_c = (
            a_k_step, packed, c_block, ldc, add_c)

    def emit_all(self, M) -> None:
        b, rows = self.b, self.shape.rows
        full_rows = b.mul(b.sdiv(M, I64(rows)), I64(rows))
        with _loop(b, I64(0), full_rows, I64(rows), "ic") as ic:
            self.emit_rows(ic, rows)
        remainder = b.sub(M, full_rows)
        # Binary decomposition of the remainder: it is below twice the largest
        # power of two under `rows`, so each smaller tile is used at most once.
        smaller = 1 << ((rows - 1).bit_length() - 1) if rows > 1 else 0
        while smaller >= 1:
            with b.if_then(b.icmp_signed("!=", b.and_(remainder, I64(smaller)), I64(0))):
                start = b.sub(M, b.and_(remainder, I64(2 * smaller - 1)))
                self.emit_rows(start, smaller)
            smaller //= 2

    def emit_rows(self, ic, rows: int) -> None:
        """Micro-tiles for rows [ic, ic + rows) across all panels of the block."""
        b, shape = self.b, self.shape
        a_rows = b.gep(self.a_block, [b.mul(ic, self.a_row_step)])
        c_rows = b.gep(self.c_block, [b.mul(ic, self.ldc)])
        with _loop(b, I64(0), self.nc, I64(shape.panel), f"jr{rows}") as jr:
            width = _min(b, I64(shape.panel), b.sub(self.nc, jr))
            vectors = b.sdiv(b.add(width, I64(shape.lanes - 1)), I64(shape.lanes))
            panel = b.gep(self.packed, [b.mul(jr, self.kc)])
            c_tile = b.gep(c_rows, [jr])
            args = [self.kc, a_rows, self.a_row_step, self.a_k_step, panel, c_tile, self.ldc,
                    width, self.add_c]
            after = b.append_basic_block(f"jr{rows}.next")
            cases = [b.append_basic_block(f"jr{rows}.v{v}") for v in range(1, shape.vectors + 1)]
            switch = b.switch(vectors, cases[-1])
            for v, block in enumerate(cases, start=1):
                switch.add_case(I64(v), block)
                b.position_at_end(block)
                b.call(_micro_tile_function(self.module, self.short, shape, rows, v), args)
                b.branch(after)
            b.position_at_end(after)


def _vector_fma(module: ir.Module, vector: ir.VectorType, short: str, lanes: int) -> ir.Function:
    name = f"llvm.fma.v{lanes}{short}"
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(vector, [vector, vector, vector]), name=name)


def _micro_tile_function(module, short, shape: TileShape, rows: int, vectors: int) -> ir.Function:
    """C[rows, width] (+)= A[rows, kc] @ panel[kc, width], accumulators in registers.

    `width` <= lanes * vectors; the panel has rows of `shape.panel` elements.
    """
    name = f"symprop.gemm_tile.{short}.{rows}x{vectors}x{shape.lanes}.{shape.panel}"
    if name in module.globals:
        return module.globals[name]
    element, size = _ELEMENT[short]
    lanes = shape.lanes
    vector = ir.VectorType(element, lanes)
    ptr = element.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [I64, ptr, I64, I64, ptr, ptr, I64, I64, I64])
    function = _new_function(module, name, fnty, (
        "kc", "A", "a_row_step", "a_k_step", "panel", "C", "ldc", "width", "add_c"))
    kc, A, a_row_step, a_k_step, panel, C, ldc, width, add_c = function.args
    for pointer in (A, panel, C):
        pointer.add_attribute("noalias")
    fma = _vector_fma(module, vector, short, lanes)
    b = ir.IRBuilder(function.append_basic_block("entry"))
    tile = b.alloca(element, size=I64(rows * vectors * lanes), name="tile")
    tile.align = max(64, size)
    a_rows = [b.gep(A, [b.mul(I64(r), a_row_step)]) for r in range(rows)]
    entry = b.block
    loop = b.append_basic_block("k")
    done = b.append_basic_block("k.done")
    b.branch(loop)
    b.position_at_end(loop)
    p = b.phi(I64, name="p")
    p.add_incoming(I64(0), entry)
    accumulators = []
    for r in range(rows):
        row = []
        for v in range(vectors):
            phi = b.phi(vector, name=f"acc{r}_{v}")
            phi.add_incoming(ir.Constant(vector, None), entry)
            row.append(phi)
        accumulators.append(row)
    panel_row = b.gep(panel, [b.mul(p, I64(shape.panel))])
    vector_align = lanes * size
    b_vectors = [b.load(b.bitcast(b.gep(panel_row, [I64(v * lanes)]), vector.as_pointer()),
                        align=vector_align) for v in range(vectors)]
    a_offset = b.mul(p, a_k_step)
    zeros = ir.Constant(ir.VectorType(I32, lanes), [0] * lanes)
    updated = []
    for r in range(rows):
        a = b.load(b.gep(a_rows[r], [a_offset]), align=size)
        broadcast = b.shuffle_vector(b.insert_element(ir.Constant(vector, ir.Undefined), a, I32(0)),
                                     ir.Constant(vector, ir.Undefined), zeros)
        updated.append([b.call(fma, [broadcast, b_vectors[v], accumulators[r][v]])
                        for v in range(vectors)])
    p_next = b.add(p, I64(1))
    p.add_incoming(p_next, loop)
    for r in range(rows):
        for v in range(vectors):
            accumulators[r][v].add_incoming(updated[r][v], loop)
    b.cbranch(b.icmp_signed("<", p_next, kc), loop, done)

    b.position_at_end(done)
    adding = b.icmp_signed("!=", add_c, I64(0))
    with b.if_else(b.icmp_signed("==", width, I64(vectors * lanes))) as (whole, partial):
        with whole:  # straight to C, one element-aligned vector at a time
            c_vectors = [[b.bitcast(b.gep(C, [b.add(b.mul(I64(r), ldc), I64(v * lanes))]),
                                    vector.as_pointer()) for v in range(vectors)] for r in range(rows)]
            with b.if_else(adding) as (add, overwrite):
                with add:
                    for r in range(rows):
                        for v in range(vectors):
                            old = b.load(c_vectors[r][v], align=size)
                            b.store(b.fadd(old, updated[r][v]), c_vectors[r][v], align=size)
                with overwrite:
                    for r in range(rows):
                        for v in range(vectors):
                            b.store(updated[r][v], c_vectors[r][v], align=size)
        with partial:  # through the stack tile, then element by element
            for r in range(rows):
                for v in range(vectors):
                    slot = b.gep(tile, [I64((r * vectors + v) * lanes)])
                    b.store(updated[r][v], b.bitcast(slot, vector.as_pointer()), align=vector_align)
            with _loop(b, I64(0), I64(rows), I64(1), "r") as r:
                c_row = b.gep(C, [b.mul(r, ldc)])
                tile_row = b.gep(tile, [b.mul(r, I64(vectors * lanes))])
                with _loop(b, I64(0), width, I64(1), "c") as c:
                    value = b.load(b.gep(tile_row, [c]), align=size)
                    c_ptr = b.gep(c_row, [c])
                    with b.if_else(adding) as (add, overwrite):
                        with add:
                            b.store(b.fadd(b.load(c_ptr, align=size), value), c_ptr, align=size)
                        with overwrite:
                            b.store(value, c_ptr, align=size)
    b.ret_void()
    return function


def _pack_b_function(module, short, shape: TileShape) -> ir.Function:
    """Copy op(B)[kc, nc] into panels of `shape.panel` columns, each kc rows deep.

    Columns past nc up to the next whole vector are zeroed, so the lanes the
    micro-tile computes but never stores hold no stale NaN or denormal.
    """
    name = f"symprop.gemm_pack_b.{short}.{shape.panel}"
    if name in module.globals:
        return module.globals[name]
    element, size = _ELEMENT[short]
    lanes, width = shape.lanes, shape.panel
    vector = ir.VectorType(element, lanes)
    ptr = element.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [ptr, I64, I64, I64, I64, ptr])
    function = _new_function(module, name, fnty, ("B", "ldb", "b_trans", "kc", "nc", "packed"))
    B, ldb, b_trans, kc, nc, packed = function.args
    for pointer in (B, packed):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    with _loop(b, I64(0), nc, I64(width), "q") as q:
        w = _min(b, I64(width), b.sub(nc, q))
        padded = b.mul(b.sdiv(b.add(w, I64(lanes - 1)), I64(lanes)), I64(lanes))
        panel = b.gep(packed, [b.mul(q, kc)])
        with b.if_else(b.icmp_signed("==", b_trans, I64(0))) as (rows, columns):
            with rows:  # op(B) rows are contiguous: copy row by row
                source = b.gep(B, [q])
                with _loop(b, I64(0), kc, I64(1), "p") as p:
                    src = b.gep(source, [b.mul(p, ldb)])
                    dst = b.gep(panel, [b.mul(p, I64(width))])
                    with b.if_else(b.icmp_signed("==", w, I64(width))) as (whole, partial):
                        with whole:
                            for v in range(shape.vectors):
                                value = b.load(b.bitcast(b.gep(src, [I64(v * lanes)]),
                                                         vector.as_pointer()), align=size)
                                b.store(value, b.bitcast(b.gep(dst, [I64(v * lanes)]),
                                                         vector.as_pointer()), align=lanes * size)
                        with partial:
                            with _loop(b, I64(0), w, I64(1), "c") as c:
                                b.store(b.load(b.gep(src, [c]), align=size), b.gep(dst, [c]), align=size)
                            with _loop(b, w, padded, I64(1), "z") as c:
                                b.store(element(0.0), b.gep(dst, [c]), align=size)
            with columns:  # op(B) columns are contiguous (B stored N x K): transpose
                with _loop(b, I64(0), w, I64(1), "c") as c:
                    src = b.gep(B, [b.mul(b.add(q, c), ldb)])
                    with _loop(b, I64(0), kc, I64(1), "p") as p:
                        value = b.load(b.gep(src, [p]), align=size)
                        b.store(value, b.gep(panel, [b.add(b.mul(p, I64(width)), c)]), align=size)
                with _loop(b, w, padded, I64(1), "z") as c:
                    with _loop(b, I64(0), kc, I64(1), "zp") as p:
                        b.store(element(0.0), b.gep(panel, [b.add(b.mul(p, I64(width)), c)]),
                                align=size)
    b.ret_void()
    return function
