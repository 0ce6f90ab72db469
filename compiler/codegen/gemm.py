"""Matrix multiply in generated code: register-tiled loops when small, BLAS when large.

`gemm_function(module, dtype)` defines

    void symprop.gemm.<f32|f64>(i64 M, i64 N, i64 K, T* A, i64 lda, i64 a_trans,
                                T* B, i64 ldb, i64 b_trans, T* C, i64 ldc, i64 accumulate)

computing C[M,N] = op(A) @ op(B) (+ C when `accumulate` != 0), all row-major:
op(A) is A (M x K, row stride lda) or, when `a_trans`, the transpose of A stored
K x M; likewise op(B) (K x N, or stored N x K). Leading dimensions are at
least the stored row length. With `accumulate` == 0, C is never read.
Batched products are a loop around this function in the caller.

Below `BLAS_MIN_WORK` = M*N*K (and always when `runtime.blas.load()` finds no BLAS)
the work runs in LLVM loops written the way BLIS writes them: B is packed, in
blocks of at most `depth` x `columns` elements, into a stack buffer of panels
`lanes * vectors` wide; a micro-tile of `rows` x `vectors` vector accumulators
walks K, broadcasting one element of A per row (A is read in place, either
layout). Row remainders use smaller micro-tiles (powers of two), column
remainders narrower ones and masked loads and stores. No heap, no globals:
the function is reentrant.

Pointers are only element-aligned (NumPy buffers): every load or store of A,
B or C states the element's alignment (LLVM otherwise assumes the vector's).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from runtime import blas

__all__ = ["TileShape", "host_tile_shape", "gemm_function", "tiled_gemm_function", "gemm_externals"]

# M*N*K from which BLAS is called. Single-threaded, our loops match OpenBLAS at
# every size on Zen 4; with its second thread OpenBLAS wins from about 112^3
# (benchmarks/bench_gemm.py).
BLAS_MIN_WORK = 112**3

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
    columns: int  # N block packed at once (a multiple of lanes * vectors)

    @property
    def panel(self) -> int:
        return self.lanes * self.vectors


def host_tile_shape(dtype: str) -> TileShape:
    """Blocking for the host's vector registers (16 x 512-bit or 16 x 256-bit, ...)."""
    features = llvm.get_host_cpu_features()
    _, size = _ELEMENT[_short_name(dtype)]
    if features.get("avx512f"):
        vector_bytes, rows, vectors = 64, 8, 3  # 24 of 32 zmm registers accumulate
    elif features.get("avx"):
        vector_bytes, rows, vectors = 32, 6, 2  # 12 of 16 ymm registers
    else:
        vector_bytes, rows, vectors = 16, 4, 2
    lanes = vector_bytes // size
    depth = 256 if size == 4 else 128
    panel = lanes * vectors
    columns = max(1, _STACK_BUDGET // (depth * size * panel)) * panel
    return TileShape(lanes, rows, vectors, depth, columns)


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


def _compact(function: ir.Function) -> None:
    """Keep a helper out of line and unrolled once: its body is explicit vector code,
    and LLVM's unrolling and re-vectorising tripled compile time for no speed."""
    function.attributes.add("noinline")
    function.attributes.add("optsize")


def _short_name(dtype: str) -> str:
    try:
        return _SHORT[dtype]
    except KeyError:
        raise ValueError(f"gemm: unsupported dtype {dtype!r}; expected float32 or float64") from None


def gemm_function(module: ir.Module, dtype: str) -> ir.Function:
    """The module's `symprop.gemm.<f32|f64>` (defined on first request)."""
    short = _short_name(dtype)
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
    short = _short_name(dtype)
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
    packed = b.alloca(element, size=I64(shape.depth * shape.columns), name="packed_b")
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
    a_trans, b_trans = (b.icmp_signed("!=", flag, I64(0)) for flag in (a_trans, b_trans))
    a_row_step, a_k_step = b.select(a_trans, I64(1), lda), b.select(a_trans, lda, I64(1))
    b_k_step, b_n_step = b.select(b_trans, I64(1), ldb), b.select(b_trans, ldb, I64(1))
    with _loop(b, I64(0), N, I64(shape.columns), "jc") as jc:
        nc = _min(b, I64(shape.columns), b.sub(N, jc))
        with _loop(b, I64(0), K, I64(shape.depth), "pc") as pc:
            kc = _min(b, I64(shape.depth), b.sub(K, pc))
            add_c = b.zext(b.or_(b.icmp_signed("!=", accumulate, I64(0)),
                                 b.icmp_signed("!=", pc, I64(0))), I64)
            b_block = b.gep(B, [b.add(b.mul(pc, b_k_step), b.mul(jc, b_n_step))])
            b.call(pack, [b_block, ldb, b.zext(b_trans, I64), kc, nc, packed])
            a_block = b.gep(A, [b.mul(pc, a_k_step)])
            c_block = b.gep(C, [jc])

            def tile_row(ic, rows: int) -> None:
                """Micro-tiles for rows [ic, ic + rows) across all panels of the block."""
                a_rows = b.gep(a_block, [b.mul(ic, a_row_step)])
                c_rows = b.gep(c_block, [b.mul(ic, ldc)])
                with _loop(b, I64(0), nc, I64(shape.panel), f"jr{rows}") as jr:
                    cols = _min(b, I64(shape.panel), b.sub(nc, jr))
                    args = [kc, a_rows, a_row_step, a_k_step, b.gep(packed, [b.mul(jr, kc)]),
                            b.gep(c_rows, [jr]), ldc, cols, add_c]
                    vectors = b.sdiv(b.add(cols, I64(shape.lanes - 1)), I64(shape.lanes))
                    _switch(b, vectors, range(1, shape.vectors + 1), lambda v: b.call(
                        _micro_tile_function(module, short, shape, rows, v), args))

            _cover_rows(b, M, shape.rows, tile_row)
    b.branch(returning)
    b.position_at_end(returning)
    b.ret_void()
    return function


def _zero_matrix(b: ir.IRBuilder, C, M, N, ldc, element, size) -> None:
    with _loop(b, I64(0), M, I64(1), "zi") as i:
        row = b.gep(C, [b.mul(i, ldc)])
        with _loop(b, I64(0), N, I64(1), "zj") as j:
            b.store(element(0.0), b.gep(row, [j]), align=size)


def _cover_rows(b: ir.IRBuilder, M, rows: int, tile_row) -> None:
    """Call tile_row(start, r) over rows [0, M): r = `rows`, then powers of two.

    The remainder is below twice the largest power of two under `rows`, so
    each smaller tile runs at most once (its binary digits).
    """
    full = b.mul(b.sdiv(M, I64(rows)), I64(rows))
    with _loop(b, I64(0), full, I64(rows), "ic") as ic:
        tile_row(ic, rows)
    remainder = b.sub(M, full)
    smaller = 1 << ((rows - 1).bit_length() - 1) if rows > 1 else 0
    while smaller >= 1:
        with b.if_then(b.icmp_signed("!=", b.and_(remainder, I64(smaller)), I64(0))):
            tile_row(b.sub(M, b.and_(remainder, I64(2 * smaller - 1))), smaller)
        smaller //= 2


def _switch(b: ir.IRBuilder, value, cases, emit) -> None:
    """Run emit(case) for the case equal to `value` (the last case by default)."""
    after = b.append_basic_block("switch.done")
    blocks = [b.append_basic_block(f"case{case}") for case in cases]
    switch = b.switch(value, blocks[-1])
    for case, block in zip(cases, blocks):
        switch.add_case(I64(case), block)
        b.position_at_end(block)
        emit(case)
        b.branch(after)
    b.position_at_end(after)


def _vector_fma(module: ir.Module, vector: ir.VectorType, short: str, lanes: int) -> ir.Function:
    name = f"llvm.fma.v{lanes}{short}"
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(vector, [vector, vector, vector]), name=name)


def _lane_masks(b: ir.IRBuilder, count, lanes: int, vectors: int) -> list:
    """Per vector v, the mask of lanes whose index v * lanes + lane is below `count`."""
    index_vector = ir.VectorType(I64, lanes)
    undefined = ir.Constant(index_vector, ir.Undefined)
    limit = b.shuffle_vector(b.insert_element(undefined, count, I32(0)), undefined,
                             ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))
    return [b.icmp_signed("<", ir.Constant(index_vector, [v * lanes + i for i in range(lanes)]), limit)
            for v in range(vectors)]


def _masked_load_store(module: ir.Module, vector: ir.VectorType, size: int):
    """llvm.masked.load/store in the form with an alignment operand.

    LLVM 22 moved the alignment into a parameter attribute and upgrades this
    form on parsing; older LLVMs need it. Without it, LLVM would assume more.
    """
    ptr = vector.as_pointer()
    vector_name = f"v{vector.count}{vector.element.intrinsic_name}"
    mangled = "p0" if str(ptr) == "ptr" else f"p0{vector_name}"
    mask = ir.VectorType(I1, vector.count)
    functions = []
    for op, fnty in (
        ("load", ir.FunctionType(vector, [ptr, I32, mask, vector])),
        ("store", ir.FunctionType(ir.VoidType(), [vector, ptr, I32, mask])),
    ):
        name = f"llvm.masked.{op}.{vector_name}.{mangled}"
        functions.append(module.globals.get(name) or ir.Function(module, fnty, name=name))
    return functions


def _micro_tile_function(module, short, shape: TileShape, rows: int, vectors: int) -> ir.Function:
    """C[rows, cols] (+)= A[rows, kc] @ panel[kc, cols], accumulators in registers.

    kc >= 1 and cols <= lanes * vectors; the panel's rows are `shape.panel` long.
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
        "kc", "A", "a_row_step", "a_k_step", "panel", "C", "ldc", "cols", "add_c"))
    kc, A, a_row_step, a_k_step, panel, C, ldc, cols, add_c = function.args
    _compact(function)
    for pointer in (A, panel, C):
        pointer.add_attribute("noalias")
    fma = _vector_fma(module, vector, short, lanes)
    b = ir.IRBuilder(function.append_basic_block("entry"))
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
    c_vectors = [[b.bitcast(b.gep(C, [b.add(b.mul(I64(r), ldc), I64(v * lanes))]), vector.as_pointer())
                  for v in range(vectors)] for r in range(rows)]
    adding = b.icmp_signed("!=", add_c, I64(0))
    masked_load, masked_store = _masked_load_store(module, vector, size)

    def store_all(masks) -> None:
        """C (+)= accumulators, under `masks` per vector (None: every lane)."""
        with b.if_else(adding) as (add, overwrite):
            for accumulating, branch in ((True, add), (False, overwrite)):
                with branch:
                    for r, v in itertools.product(range(rows), range(vectors)):
                        value, c_ptr = updated[r][v], c_vectors[r][v]
                        if masks is None:
                            if accumulating:
                                value = b.fadd(b.load(c_ptr, align=size), value)
                            b.store(value, c_ptr, align=size)
                        else:
                            if accumulating:
                                old = b.call(masked_load, [c_ptr, I32(size), masks[v], ir.Constant(vector, None)])
                                value = b.fadd(old, value)
                            b.call(masked_store, [value, c_ptr, I32(size), masks[v]])

    with b.if_else(b.icmp_signed("==", cols, I64(vectors * lanes))) as (whole, partial):
        with whole:
            store_all(None)
        with partial:  # lanes at or past `cols` are neither read nor written
            store_all(_lane_masks(b, cols, lanes, vectors))
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
    lanes, panel_width = shape.lanes, shape.panel
    vector = ir.VectorType(element, lanes)
    ptr = element.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [ptr, I64, I64, I64, I64, ptr])
    function = _new_function(module, name, fnty, ("B", "ldb", "b_trans", "kc", "nc", "packed"))
    B, ldb, b_trans, kc, nc, packed = function.args
    _compact(function)
    for pointer in (B, packed):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    with _loop(b, I64(0), nc, I64(panel_width), "q") as q:
        w = _min(b, I64(panel_width), b.sub(nc, q))
        padded = b.mul(b.sdiv(b.add(w, I64(lanes - 1)), I64(lanes)), I64(lanes))
        panel = b.gep(packed, [b.mul(q, kc)])
        with b.if_else(b.icmp_signed("==", b_trans, I64(0))) as (rows, columns):
            with rows:  # op(B) rows are contiguous: masked vector loads, zeros past w
                masks = _lane_masks(b, w, lanes, shape.vectors)
                load, _ = _masked_load_store(module, vector, size)
                source = b.gep(B, [q])
                with _loop(b, I64(0), kc, I64(1), "p") as p:
                    src = b.gep(source, [b.mul(p, ldb)])
                    dst = b.gep(panel, [b.mul(p, I64(panel_width))])
                    for v in range(shape.vectors):
                        src_v = b.bitcast(b.gep(src, [I64(v * lanes)]), vector.as_pointer())
                        value = b.call(load, [src_v, I32(size), masks[v], ir.Constant(vector, None)])
                        b.store(value, b.bitcast(b.gep(dst, [I64(v * lanes)]), vector.as_pointer()),
                                align=lanes * size)
            with columns:  # op(B) columns are contiguous (B stored N x K): transpose
                with _loop(b, I64(0), w, I64(1), "c") as c:
                    src = b.gep(B, [b.mul(b.add(q, c), ldb)])
                    with _loop(b, I64(0), kc, I64(1), "p") as p:
                        value = b.load(b.gep(src, [p]), align=size)
                        b.store(value, b.gep(panel, [b.add(b.mul(p, I64(panel_width)), c)]), align=size)
                with _loop(b, w, padded, I64(1), "z") as c:
                    with _loop(b, I64(0), kc, I64(1), "zp") as p:
                        b.store(element(0.0), b.gep(panel, [b.add(b.mul(p, I64(panel_width)), c)]),
                                align=size)
    b.ret_void()
    return function
