"""The loop path of matrix multiply: register-tiled LLVM loops for any size and layout.

`tiled_gemm_function(module, dtype)` defines `symprop.gemm_tiled.<f32|f64>...`
with the signature and meaning of `symprop.gemm` (see gemm.py). It is written
the way BLIS writes gemm: B is packed, in blocks of at most `depth` x
`columns` elements, into a stack buffer of panels `lanes * vectors` wide
(transposed in registers when B is stored N x K); a micro-tile of `rows` x
`vectors` vector accumulators walks K, broadcasting one element of A per row
(A is read in place, either layout). Row remainders use smaller micro-tiles
(powers of two), column remainders narrower ones and masked loads and stores.
`prepacked=True` gives the variant that reads B packed whole beforehand by
`pack_b_all_function` (a scan packs a captured weight once, not every step).
`indexed=True` gives the variant that reads A through two offset tables,
A[m, k] = A[row_offsets[m] + k_offsets[k]]: a convolution's im2col matrix read
straight from the padded input, never stored (an implicit GEMM).
No heap, no globals: the function is reentrant. Any leading dimension works,
0 included (every row the same: a broadcast operand).

Pointers are only element-aligned (NumPy buffers): every load or store of A,
B or C states the element's alignment (LLVM otherwise assumes the vector's).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from .loops import range_loop

__all__ = [
    "TileShape", "host_tile_shape", "tile_shape_for", "tiled_gemm_function", "pack_b_all_function",
    "packed_b_elements", "prepacked_signature", "PREPACKED_ARGUMENTS", "indexed_signature", "INDEXED_ARGUMENTS",
    "gemm_signature", "GEMM_ARGUMENTS", "ELEMENT_TYPES", "short_dtype", "new_internal_function",
]

I1, I32, I64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)

# LLVM element type and size in bytes.
ELEMENT_TYPES = {"f32": (ir.FloatType(), 4), "f64": (ir.DoubleType(), 8)}
_SHORT = {"float32": "f32", "float64": "f64", "f32": "f32", "f64": "f64"}
_STACK_BUDGET = 96 * 1024  # bytes of packed B on the stack


@dataclass(frozen=True)
class TileShape:
    """Register and cache blocking of the loop path."""

    lanes: int  # elements per vector register (a power of two)
    rows: int  # rows of C per micro-tile
    vectors: int  # vectors per micro-tile row
    depth: int  # K block packed at once
    columns: int  # N block packed at once (a multiple of lanes * vectors)

    @property
    def panel(self) -> int:
        return self.lanes * self.vectors


def host_tile_shape(dtype: str) -> TileShape:
    """Blocking for this machine's vector registers."""
    return tile_shape_for(llvm.get_host_cpu_features(), dtype)


def tile_shape_for(features, dtype: str) -> TileShape:
    """Blocking for a CPU with `features` (name -> bool, as llvmlite reports them)."""
    _, size = ELEMENT_TYPES[short_dtype(dtype)]
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


def gemm_signature(element: ir.Type) -> ir.FunctionType:
    """void (M, N, K, A, lda, a_trans, B, ldb, b_trans, C, ldc, accumulate)."""
    ptr = element.as_pointer()
    return ir.FunctionType(ir.VoidType(), [I64, I64, I64, ptr, I64, I64, ptr, I64, I64, ptr, I64, I64])


GEMM_ARGUMENTS = ("M", "N", "K", "A", "lda", "a_trans", "B", "ldb", "b_trans", "C", "ldc", "accumulate")


def new_internal_function(module: ir.Module, name: str, fnty: ir.FunctionType, arg_names) -> ir.Function:
    """An internal (module-private) function with named arguments."""
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


def short_dtype(dtype: str) -> str:
    """'f32' or 'f64' for a float dtype name, else ValueError."""
    try:
        return _SHORT[dtype]
    except KeyError:
        raise ValueError(f"gemm: unsupported dtype {dtype!r}; expected float32 or float64") from None


def _min(b: ir.IRBuilder, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def tiled_gemm_function(module: ir.Module, dtype: str, shape: TileShape | None = None,
                        prepacked: bool = False, indexed: bool = False) -> ir.Function:
    """The loop-only gemm, `symprop.gemm_tiled.<f32|f64>`: same signature, any size.

    With `prepacked`, `symprop.gemm_prepacked.<f32|f64>` takes op(B) already packed by
    `pack_b_all_function` -- (M, N, K, A, lda, a_trans, P, C, ldc, accumulate) -- and packs
    nothing: a loop that multiplies by the same B at every step packs it once.
    With `indexed`, `symprop.gemm_indexed.<f32|f64>` reads A[m, k] at A + row_offsets[m] +
    k_offsets[k] (int64 tables of M and K entries) -- (M, N, K, A, row_offsets, k_offsets, B,
    ldb, b_trans, C, ldc, accumulate) -- so a matrix that is a gather of a smaller one (the
    windows of a convolution's input) is never stored.
    """
    assert not (prepacked and indexed), "a gemm variant is prepacked or indexed, not both"
    short = short_dtype(dtype)
    shape = shape or host_tile_shape(short)
    blocking = f"{shape.rows}x{shape.vectors}x{shape.lanes}.{shape.depth}x{shape.columns}"
    variant = "prepacked" if prepacked else "indexed" if indexed else "tiled"
    name = f"symprop.gemm_{variant}.{short}.{blocking}"
    if name in module.globals:
        return module.globals[name]
    element, size = ELEMENT_TYPES[short]
    signature, names = (prepacked_signature(element), PREPACKED_ARGUMENTS) if prepacked \
        else (indexed_signature(element), INDEXED_ARGUMENTS) if indexed \
        else (gemm_signature(element), GEMM_ARGUMENTS)
    function = new_internal_function(module, name, signature, names)
    args = dict(zip(names, function.args))
    M, N, K, A, C, ldc, accumulate = (args[k] for k in ("M", "N", "K", "A", "C", "ldc", "accumulate"))
    for pointer in (A, args.get("P") or args["B"], C):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    if not prepacked:
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

    if not indexed:
        a_trans = b.icmp_signed("!=", args["a_trans"], I64(0))
        lda = args["lda"]
        a_row_step, a_k_step = b.select(a_trans, I64(1), lda), b.select(a_trans, lda, I64(1))
    with range_loop(b, I64(0), N, I64(shape.columns), "jc") as jc:
        nc = _min(b, I64(shape.columns), b.sub(N, jc))
        with range_loop(b, I64(0), K, I64(shape.depth), "pc") as pc:
            kc = _min(b, I64(shape.depth), b.sub(K, pc))
            add_c = b.zext(b.or_(b.icmp_signed("!=", accumulate, I64(0)),
                                 b.icmp_signed("!=", pc, I64(0))), I64)
            if prepacked:
                panels = b.gep(args["P"], [_packed_block_offset(b, shape, K, jc, pc, nc)])
            else:
                panels = packed
                _pack_block(b, module, short, shape, args["B"], args["ldb"], args["b_trans"], jc, pc, kc, nc, packed)
            if indexed:  # the block's depth offsets; A's rows are found through row_offsets
                a_block, k_block = A, b.gep(args["k_offsets"], [pc])
            else:
                a_block = b.gep(A, [b.mul(pc, a_k_step)])
            c_block = b.gep(C, [jc])

            def tile_row(ic, rows: int) -> None:
                """Micro-tiles for rows [ic, ic + rows) across all panels of the block."""
                if indexed:
                    a_args = [a_block, b.gep(args["row_offsets"], [ic]), k_block]
                else:
                    a_args = [b.gep(a_block, [b.mul(ic, a_row_step)]), a_row_step, a_k_step]
                c_rows = b.gep(c_block, [b.mul(ic, ldc)])
                with range_loop(b, I64(0), nc, I64(shape.panel), f"jr{rows}") as jr:
                    cols = _min(b, I64(shape.panel), b.sub(nc, jr))
                    tile_args = [kc, *a_args, b.gep(panels, [b.mul(jr, kc)]), b.gep(c_rows, [jr]), ldc, cols, add_c]
                    vectors = b.sdiv(b.add(cols, I64(shape.lanes - 1)), I64(shape.lanes))
                    _switch(b, vectors, range(1, shape.vectors + 1), lambda v: b.call(
                        _micro_tile_function(module, short, shape, rows, v, indexed), tile_args))

            _cover_rows(b, M, shape.rows, tile_row)
    b.branch(returning)
    b.position_at_end(returning)
    b.ret_void()
    return function


def prepacked_signature(element: ir.Type) -> ir.FunctionType:
    """void (M, N, K, A, lda, a_trans, P, C, ldc, accumulate): P holds op(B) packed."""
    ptr = element.as_pointer()
    return ir.FunctionType(ir.VoidType(), [I64, I64, I64, ptr, I64, I64, ptr, ptr, I64, I64])


PREPACKED_ARGUMENTS = ("M", "N", "K", "A", "lda", "a_trans", "P", "C", "ldc", "accumulate")


def indexed_signature(element: ir.Type) -> ir.FunctionType:
    """void (M, N, K, A, row_offsets, k_offsets, B, ldb, b_trans, C, ldc, accumulate): int64 tables."""
    ptr, offsets = element.as_pointer(), I64.as_pointer()
    return ir.FunctionType(ir.VoidType(), [I64, I64, I64, ptr, offsets, offsets, ptr, I64, I64, ptr, I64, I64])


INDEXED_ARGUMENTS = ("M", "N", "K", "A", "row_offsets", "k_offsets", "B", "ldb", "b_trans", "C", "ldc", "accumulate")


def packed_b_elements(depth: int, columns: int, shape: TileShape) -> int:
    """Elements of op(B) (depth x columns) packed whole: every row's columns rounded up to a panel."""
    return depth * -(-columns // shape.panel) * shape.panel


def _packed_block_offset(b: ir.IRBuilder, shape: TileShape, K, jc, pc, nc):
    """Where block (jc, pc) of op(B) starts in the whole packing: the column blocks before it take
    K rows of `shape.columns` (a whole number of panels) each, and the depth blocks before it in its
    column block `shape.depth` rows of nc rounded up to a panel."""
    padded = b.mul(b.sdiv(b.add(nc, I64(shape.panel - 1)), I64(shape.panel)), I64(shape.panel))
    return b.add(b.mul(jc, K), b.mul(pc, padded))


def _pack_block(b, module, short, shape, B, ldb, b_trans, jc, pc, kc, nc, packed) -> None:
    """Pack block (jc, pc) of op(B), kc x nc, into `packed`."""
    transposed = b.icmp_signed("!=", b_trans, I64(0))
    b_k_step, b_n_step = b.select(transposed, I64(1), ldb), b.select(transposed, ldb, I64(1))
    b_block = b.gep(B, [b.add(b.mul(pc, b_k_step), b.mul(jc, b_n_step))])
    b.call(_pack_b_function(module, short, shape), [b_block, ldb, b.zext(transposed, I64), kc, nc, packed])


def pack_b_all_function(module: ir.Module, dtype: str, shape: TileShape | None = None) -> ir.Function:
    """``void symprop.gemm_pack_all.<f32|f64>(B, ldb, b_trans, K, N, P)``: op(B), K x N, packed
    whole into P (``packed_b_elements(K, N)`` elements), as ``gemm_prepacked`` reads it."""
    short = short_dtype(dtype)
    shape = shape or host_tile_shape(short)
    name = f"symprop.gemm_pack_all.{short}.{shape.vectors}x{shape.lanes}.{shape.depth}x{shape.columns}"
    if name in module.globals:
        return module.globals[name]
    element, _ = ELEMENT_TYPES[short]
    ptr = element.as_pointer()
    function = new_internal_function(module, name, ir.FunctionType(ir.VoidType(), [ptr, I64, I64, I64, I64, ptr]),
                                     ("B", "ldb", "b_trans", "K", "N", "P"))
    B, ldb, b_trans, K, N, P = function.args
    b = ir.IRBuilder(function.append_basic_block("entry"))
    with range_loop(b, I64(0), N, I64(shape.columns), "jc") as jc:
        nc = _min(b, I64(shape.columns), b.sub(N, jc))
        with range_loop(b, I64(0), K, I64(shape.depth), "pc") as pc:
            kc = _min(b, I64(shape.depth), b.sub(K, pc))
            target = b.gep(P, [_packed_block_offset(b, shape, K, jc, pc, nc)])
            _pack_block(b, module, short, shape, B, ldb, b_trans, jc, pc, kc, nc, target)
    b.ret_void()
    return function


def _zero_matrix(b: ir.IRBuilder, C, M, N, ldc, element, size) -> None:
    with range_loop(b, I64(0), M, I64(1), "zi") as i:
        row = b.gep(C, [b.mul(i, ldc)])
        with range_loop(b, I64(0), N, I64(1), "zj") as j:
            b.store(element(0.0), b.gep(row, [j]), align=size)


def _cover_rows(b: ir.IRBuilder, M, rows: int, tile_row) -> None:
    """Call tile_row(start, r) over rows [0, M): r = `rows`, then powers of two.

    The remainder is below twice the largest power of two under `rows`, so
    each smaller tile runs at most once (its binary digits).
    """
    full = b.mul(b.sdiv(M, I64(rows)), I64(rows))
    with range_loop(b, I64(0), full, I64(rows), "ic") as ic:
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


def _micro_tile_function(module, short, shape: TileShape, rows: int, vectors: int,
                         indexed: bool = False) -> ir.Function:
    """C[rows, cols] (+)= A[rows, kc] @ panel[kc, cols], accumulators in registers.

    kc >= 1 and cols <= lanes * vectors; the panel's rows are `shape.panel` long. A's element
    (r, p) is at A + r * a_row_step + p * a_k_step, or, `indexed`, at A + row_offsets[r] +
    k_offsets[p] (one more load per step of p, shared by the rows).
    """
    name = f"symprop.gemm_tile{'_indexed' if indexed else ''}.{short}.{rows}x{vectors}x{shape.lanes}.{shape.vectors}"
    if name in module.globals:
        return module.globals[name]
    element, size = ELEMENT_TYPES[short]
    lanes = shape.lanes
    vector = ir.VectorType(element, lanes)
    ptr = element.as_pointer()
    a_types, a_names = ([I64.as_pointer(), I64.as_pointer()], ("row_offsets", "k_offsets")) if indexed \
        else ([I64, I64], ("a_row_step", "a_k_step"))
    fnty = ir.FunctionType(ir.VoidType(), [I64, ptr, *a_types, ptr, ptr, I64, I64, I64])
    function = new_internal_function(module, name, fnty, ("kc", "A", *a_names, "panel", "C", "ldc", "cols", "add_c"))
    kc, A, a_row, a_k, panel, C, ldc, cols, add_c = function.args
    _compact(function)
    for pointer in (A, panel, C):
        pointer.add_attribute("noalias")
    fma = _vector_fma(module, vector, short, lanes)
    b = ir.IRBuilder(function.append_basic_block("entry"))
    if indexed:
        a_rows = [b.gep(A, [b.load(b.gep(a_row, [I64(r)]), align=8)]) for r in range(rows)]
    else:
        a_rows = [b.gep(A, [b.mul(I64(r), a_row)]) for r in range(rows)]
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
    a_offset = b.load(b.gep(a_k, [p]), align=8) if indexed else b.mul(p, a_k)
    splat = ir.Constant(ir.VectorType(I32, lanes), [0] * lanes)
    updated = []
    for r in range(rows):
        a = b.load(b.gep(a_rows[r], [a_offset]), align=size)
        broadcast = b.shuffle_vector(b.insert_element(ir.Constant(vector, ir.Undefined), a, I32(0)),
                                     ir.Constant(vector, ir.Undefined), splat)
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
    zero = ir.Constant(vector, None)
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
                                old = b.call(masked_load, [c_ptr, I32(size), masks[v], zero])
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
    name = f"symprop.gemm_pack_b.{short}.{shape.vectors}x{shape.lanes}"
    if name in module.globals:
        return module.globals[name]
    element, size = ELEMENT_TYPES[short]
    lanes, panel_width = shape.lanes, shape.panel
    vector = ir.VectorType(element, lanes)
    ptr = element.as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [ptr, I64, I64, I64, I64, ptr])
    function = new_internal_function(module, name, fnty, ("B", "ldb", "b_trans", "kc", "nc", "packed"))
    B, ldb, b_trans, kc, nc, packed = function.args
    _compact(function)
    for pointer in (B, packed):
        pointer.add_attribute("noalias")
    b = ir.IRBuilder(function.append_basic_block("entry"))
    with range_loop(b, I64(0), nc, I64(panel_width), "q") as q:
        w = _min(b, I64(panel_width), b.sub(nc, q))
        panel = b.gep(packed, [b.mul(q, kc)])
        with b.if_else(b.icmp_signed("==", b_trans, I64(0))) as (rows, columns):
            with rows:  # op(B) rows are contiguous: masked vector loads, zeros past w
                masks = _lane_masks(b, w, lanes, shape.vectors)
                load, _ = _masked_load_store(module, vector, size)
                source = b.gep(B, [q])
                with range_loop(b, I64(0), kc, I64(1), "p") as p:
                    src = b.gep(source, [b.mul(p, ldb)])
                    dst = b.gep(panel, [b.mul(p, I64(panel_width))])
                    for v in range(shape.vectors):
                        src_v = b.bitcast(b.gep(src, [I64(v * lanes)]), vector.as_pointer())
                        value = b.call(load, [src_v, I32(size), masks[v], ir.Constant(vector, None)])
                        b.store(value, b.bitcast(b.gep(dst, [I64(v * lanes)]), vector.as_pointer()),
                                align=lanes * size)
            with columns:  # B stored N x K: transpose lanes x lanes blocks in registers
                _pack_transposed(b, module, vector, size, B, ldb, q, w, kc, panel, panel_width)
    b.ret_void()
    return function


def _pack_transposed(b, module, vector, size, B, ldb, q, w, kc, panel, panel_width) -> None:
    """panel[p, c] = B[q + c, p] for c < w, zero for w <= c < w rounded up to lanes."""
    lanes = vector.count
    masked_load, _ = _masked_load_store(module, vector, size)
    zero = ir.Constant(vector, None)
    with range_loop(b, I64(0), w, I64(lanes), "cb") as cb:
        sources = [b.gep(B, [b.mul(b.add(q, b.add(cb, I64(i))), ldb)]) for i in range(lanes)]
        valid = [b.icmp_signed("<", b.add(cb, I64(i)), w) for i in range(lanes)]
        with range_loop(b, I64(0), kc, I64(lanes), "pb") as pb:
            in_depth = _lane_masks(b, b.sub(kc, pb), lanes, 1)[0]
            none = ir.Constant(in_depth.type, None)
            rows = [b.call(masked_load, [b.bitcast(b.gep(source, [pb]), vector.as_pointer()), I32(size),
                                         b.select(ok, in_depth, none), zero])
                    for source, ok in zip(sources, valid)]
            destination = b.gep(panel, [b.add(b.mul(pb, I64(panel_width)), cb)])
            for j, row in enumerate(_transpose(b, rows)):
                target = b.bitcast(b.gep(destination, [I64(j * panel_width)]), vector.as_pointer())
                with b.if_then(b.icmp_signed("<", b.add(pb, I64(j)), kc), likely=True):
                    b.store(row, target, align=lanes * size)


def _transpose(b: ir.IRBuilder, rows: list) -> list:
    """Transpose a lanes x lanes block held as `lanes` vectors (lanes a power of two).

    Each stage swaps one bit between the row and the column index, with one
    two-vector shuffle per row: log2(lanes) stages in all.
    """
    lanes = len(rows)
    half = lanes // 2
    while half >= 1:
        swapped = list(rows)
        for r in range(lanes):
            low, high = (r, r + half) if not r & half else (r - half, r)
            mask = [(lanes if c & half else 0) + ((c & ~half) | (r & half)) for c in range(lanes)]
            swapped[r] = b.shuffle_vector(rows[low], rows[high], ir.Constant(ir.VectorType(I32, lanes), mask))
        rows = swapped
        half //= 2
    return rows
