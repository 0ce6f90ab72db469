"""Generated matrix multiply against numpy.matmul: every layout, odd sizes, strided views."""

import ctypes
import itertools
import random
import uuid

import llvmlite.binding as llvm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import ir

from compiler.codegen import gemm
from runtime import blas
from runtime.engine import Engine

DTYPES = ("float32", "float64")
SIZES = (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 100)
LAYOUTS = list(itertools.product((0, 1), (0, 1), (0, 1)))  # a_trans, b_trans, accumulate
_I64, _PTR = ctypes.c_int64, ctypes.c_void_p
_SIGNATURE = ctypes.CFUNCTYPE(None, _I64, _I64, _I64, _PTR, _I64, _I64, _PTR, _I64, _I64, _PTR, _I64, _I64)

# Loop-path blockings besides the host's: AVX2-like registers with tiny cache
# blocks (so small matrices cross every K and N block boundary), and odd shapes.
SMALL_BLOCKS = gemm.TileShape(lanes=8, rows=6, vectors=2, depth=16, columns=32)
ODD_BLOCKS = gemm.TileShape(lanes=4, rows=5, vectors=3, depth=7, columns=12)


@pytest.fixture(autouse=True)
def blas_enabled(monkeypatch):
    """These tests cover the BLAS dispatch too, which is opt-in (SYMPROP_BLAS=1)."""
    monkeypatch.setenv("SYMPROP_BLAS", "1")


def test_loops_only_by_default(monkeypatch):
    monkeypatch.delenv("SYMPROP_BLAS")
    module = ir.Module()
    gemm.gemm_function(module, "float32")
    assert gemm.gemm_externals(module) == [] and "cblas" not in str(module)


def _compile(dtype, define):
    """JIT an exported wrapper around the function `define(module)` returns."""
    module = ir.Module(name="test_gemm")
    target = define(module)
    wrapper = ir.Function(module, target.function_type, name=f"test_gemm_{uuid.uuid4().hex}")
    builder = ir.IRBuilder(wrapper.append_basic_block())
    builder.call(target, wrapper.args)
    builder.ret_void()
    addresses, _ = Engine.instance().compile(str(module), [wrapper.name], gemm.gemm_externals(module))
    return _SIGNATURE(addresses[wrapper.name])


def _packed_once(module, dtype, shape=None):
    """The gemm signature over the prepacked path: B packed whole by ``pack_b_all_function`` into a
    stack buffer of exactly ``packed_b_elements`` (K x N rounded up to panels), then multiplied."""
    from compiler.codegen import gemm_loops
    shape = shape or gemm.host_tile_shape(dtype)
    element, _ = gemm_loops.ELEMENT_TYPES[gemm_loops.short_dtype(dtype)]
    function = ir.Function(module, gemm.gemm_signature(element), name=f"packed_once_{uuid.uuid4().hex}")
    M, N, K, A, lda, a_trans, B, ldb, b_trans, C, ldc, accumulate = function.args
    b = ir.IRBuilder(function.append_basic_block())
    i64 = ir.IntType(64)
    panels = b.sdiv(b.add(N, i64(shape.panel - 1)), i64(shape.panel))
    packed = b.alloca(element, size=b.mul(K, b.mul(panels, i64(shape.panel))))
    packed.align = 64  # the micro-tile loads whole vectors of a panel aligned
    b.call(gemm_loops.pack_b_all_function(module, dtype, shape), [B, ldb, b_trans, K, N, packed])
    b.call(gemm_loops.tiled_gemm_function(module, dtype, shape, prepacked=True),
           [M, N, K, A, lda, a_trans, packed, C, ldc, accumulate])
    b.ret_void()
    return function


def _indexed(module, dtype, shape=None):
    """The gemm signature over the indexed path: A's offset tables built from lda and a_trans
    (row m at m x its row step, depth k at k x its depth step) on the stack, then multiplied."""
    from compiler.codegen import gemm_loops
    element, _ = gemm_loops.ELEMENT_TYPES[gemm_loops.short_dtype(dtype)]
    function = ir.Function(module, gemm.gemm_signature(element), name=f"indexed_{uuid.uuid4().hex}")
    M, N, K, A, lda, a_trans, B, ldb, b_trans, C, ldc, accumulate = function.args
    b = ir.IRBuilder(function.append_basic_block())
    i64 = ir.IntType(64)
    transposed = b.icmp_signed("!=", a_trans, i64(0))
    tables = []
    for count, step in ((M, b.select(transposed, i64(1), lda)), (K, b.select(transposed, lda, i64(1)))):
        table = b.alloca(i64, size=b.add(count, i64(1)))
        with gemm_loops.range_loop(b, i64(0), count, i64(1), "t") as i:
            b.store(b.mul(i, step), b.gep(table, [i]))
        tables.append(table)
    b.call(gemm_loops.tiled_gemm_function(module, dtype, shape, indexed=True),
           [M, N, K, A, *tables, B, ldb, b_trans, C, ldc, accumulate])
    b.ret_void()
    return function


_VARIANTS = {
    "indexed": lambda dtype: lambda m: _indexed(m, dtype),
    "indexed_odd": lambda dtype: lambda m: _indexed(m, dtype, ODD_BLOCKS),
    "packed_once": lambda dtype: lambda m: _packed_once(m, dtype),
    "packed_once_odd": lambda dtype: lambda m: _packed_once(m, dtype, ODD_BLOCKS),
    "dispatch": lambda dtype: lambda m: gemm.gemm_function(m, dtype),
    "tiled": lambda dtype: lambda m: gemm.tiled_gemm_function(m, dtype),
    "small_blocks": lambda dtype: lambda m: gemm.tiled_gemm_function(m, dtype, SMALL_BLOCKS),
    "odd_blocks": lambda dtype: lambda m: gemm.tiled_gemm_function(m, dtype, ODD_BLOCKS),
}
_compiled = {}


def kernel(variant, dtype):
    key = (variant, dtype)
    if key not in _compiled:
        _compiled[key] = _compile(dtype, _VARIANTS[variant](dtype))
    return _compiled[key]


def _view(rng, rows, cols, dtype, pad, offset):
    """A rows x cols view with row stride cols + pad, starting `offset` elements in
    (so it is only element-aligned), inside a NaN-filled buffer."""
    stride = cols + pad
    base = np.full(offset + max(rows, 1) * stride + 1, np.nan, dtype=dtype)
    view = base[offset:offset + rows * stride].reshape(rows, stride)[:, :cols]
    view[...] = rng.standard_normal((rows, cols))
    return view, base


def run_case(fn, dtype, M, N, K, a_trans, b_trans, accumulate, pad=0, offset=0, seed=0):
    rng = np.random.default_rng(seed)
    A, _ = _view(rng, *((K, M) if a_trans else (M, K)), dtype, pad, offset)
    B, _ = _view(rng, *((N, K) if b_trans else (K, N)), dtype, pad + 1, offset)
    C, c_base = _view(rng, M, N, dtype, pad + 2, offset)
    if not accumulate:
        C[...] = np.nan  # must never be read
    c_before = C.copy()
    op_a, op_b = (A.T if a_trans else A), (B.T if b_trans else B)
    want = op_a.astype(np.float64) @ op_b.astype(np.float64)
    bound = np.abs(op_a).astype(np.float64) @ np.abs(op_b).astype(np.float64)
    if accumulate:
        want += c_before
        bound += np.abs(c_before)

    def lead(x):
        return x.strides[0] // x.itemsize

    fn(M, N, K, A.ctypes.data, lead(A), a_trans, B.ctypes.data, lead(B), b_trans,
       C.ctypes.data, lead(C), accumulate)

    eps = np.finfo(dtype).eps
    tolerance = 4 * eps * (K + 2) * bound + np.finfo(dtype).tiny
    error = np.abs(C - want)
    assert np.all(error <= tolerance), (
        f"M={M} N={N} K={K} a_trans={a_trans} b_trans={b_trans} accumulate={accumulate}: "
        f"max error {error.max()} (worst relative to bound {np.max(error / tolerance)})")
    row = lead(C)
    padding = c_base[offset:offset + M * row].reshape(M, row)[:, N:] if M else c_base[:0]
    assert np.isnan(padding).all(), "wrote outside C"
    assert np.isnan(c_base[:offset]).all() and np.isnan(c_base[offset + M * row:]).all()


def _sampled_shapes(count, seed):
    rng = random.Random(seed)
    shapes = [(0, 5, 3), (4, 0, 3), (4, 5, 0), (1, 1, 1), (1, 100, 65), (100, 1, 33), (17, 31, 1)]
    shapes += [tuple(rng.choice(SIZES) for _ in range(3)) for _ in range(count)]
    return shapes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", ["dispatch", "small_blocks", "odd_blocks", "packed_once", "packed_once_odd",
                                     "indexed", "indexed_odd"])
@pytest.mark.parametrize("a_trans,b_trans,accumulate", LAYOUTS)
def test_shape_table(variant, dtype, a_trans, b_trans, accumulate):
    fn = kernel(variant, dtype)
    for seed, (M, N, K) in enumerate(_sampled_shapes(12, seed=hash((a_trans, b_trans, accumulate)) % 1000)):
        run_case(fn, dtype, M, N, K, a_trans, b_trans, accumulate, seed=seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a_trans,b_trans,accumulate", LAYOUTS)
def test_large_calls_blas_and_matches(dtype, a_trans, b_trans, accumulate):
    run_case(kernel("dispatch", dtype), dtype, 300, 200, 257, a_trans, b_trans, accumulate, pad=3, offset=1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loop_path_at_large_sizes(dtype):
    """The loops alone (the path used when no BLAS loads) across several cache blocks."""
    fn = kernel("tiled", dtype)
    for a_trans, b_trans, accumulate in LAYOUTS[::3]:
        run_case(fn, dtype, 131, 301, 600, a_trans, b_trans, accumulate, pad=1, offset=1)


@pytest.mark.parametrize("variant", ["dispatch", "tiled", "packed_once", "indexed"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_views_and_misaligned_pointers(variant, dtype):
    fn = kernel(variant, dtype)
    for (M, N, K), (a_trans, b_trans, accumulate) in zip(
            [(9, 33, 17), (64, 65, 31), (3, 100, 2), (33, 17, 64)], LAYOUTS[::2]):
        run_case(fn, dtype, M, N, K, a_trans, b_trans, accumulate, pad=5, offset=1)


@pytest.mark.parametrize("shape", [(5, 19, 23), (300, 200, 257)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_leading_dimension_zero_repeats_rows(dtype, shape):
    """lda = ldb = 0 (a broadcast operand) is valid; BLAS refuses it, so loops run."""
    M, N, K = shape
    rng = np.random.default_rng(1)
    a_row, b_row = rng.standard_normal(K).astype(dtype), rng.standard_normal(N).astype(dtype)
    C = np.empty((M, N), dtype)
    kernel("dispatch", dtype)(M, N, K, a_row.ctypes.data, 0, 0, b_row.ctypes.data, 0, 0,
                              C.ctypes.data, N, 0)
    want = np.broadcast_to(a_row, (M, K)).astype(np.float64) @ np.broadcast_to(b_row, (K, N))
    np.testing.assert_allclose(C, want, rtol=4 * np.finfo(dtype).eps * (K + 2),
                               atol=4 * np.finfo(dtype).eps * (K + 2) * np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_depth_zeroes_or_keeps_c(dtype):
    fn = kernel("dispatch", dtype)
    C = np.full((3, 4), 7.0, dtype)
    empty = np.zeros((3, 0), dtype)
    fn(3, 4, 0, empty.ctypes.data, 0, 0, empty.ctypes.data, 4, 0, C.ctypes.data, 4, 1)
    assert (C == 7.0).all()
    fn(3, 4, 0, empty.ctypes.data, 0, 0, empty.ctypes.data, 4, 0, C.ctypes.data, 4, 0)
    assert (C == 0.0).all()


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    variant=st.sampled_from(["dispatch", "tiled", "small_blocks", "packed_once_odd", "indexed_odd"]),
    M=st.integers(0, 70), N=st.integers(0, 70), K=st.integers(0, 70),
    a_trans=st.integers(0, 1), b_trans=st.integers(0, 1), accumulate=st.integers(0, 1),
    pad=st.integers(0, 3), offset=st.integers(0, 1),
)
def test_random_shapes(dtype, variant, M, N, K, a_trans, b_trans, accumulate, pad, offset):
    run_case(kernel(variant, dtype), dtype, M, N, K, a_trans, b_trans, accumulate, pad, offset)


_INDEXED_SIGNATURE = ctypes.CFUNCTYPE(None, _I64, _I64, _I64, _PTR, _PTR, _PTR, _PTR, _I64, _I64, _PTR, _I64, _I64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [None, ODD_BLOCKS])
def test_indexed_reads_a_gathered_matrix(dtype, shape):
    """A[m, k] = source[rows[m] + depths[k]] with rows and depths in any order, repeats included:
    the windows of a padded image (im2col) among them, never stored."""
    from compiler.codegen import gemm_loops
    module = ir.Module(name="test_gemm_indexed")
    target = gemm_loops.tiled_gemm_function(module, dtype, shape, indexed=True)
    wrapper = ir.Function(module, target.function_type, name=f"test_gemm_{uuid.uuid4().hex}")
    builder = ir.IRBuilder(wrapper.append_basic_block())
    builder.call(target, wrapper.args)
    builder.ret_void()
    addresses, _ = Engine.instance().compile(str(module), [wrapper.name], [])
    fn = _INDEXED_SIGNATURE(addresses[wrapper.name])
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 9, 10)).astype(dtype)  # channels x padded rows x padded columns
    positions = [(r, c) for r in range(7) for c in range(8)]  # 3x3 windows, stride 1
    taps = [(ch, i, j) for ch in range(3) for i in range(3) for j in range(3)]
    cases = [(np.array([r * 10 + c for r, c in positions]), np.array([ch * 90 + i * 10 + j for ch, i, j in taps]))]
    cases.append((rng.integers(0, image.size - 40, 37), rng.integers(0, 40, 29)))  # any order, repeats
    for rows, depths in cases:
        want_a = image.reshape(-1)[rows[:, None] + depths[None, :]].astype(np.float64)
        for N in (1, 5, 48, 70):
            B = rng.standard_normal((len(depths), N)).astype(dtype)
            C = np.full((len(rows), N), np.nan, dtype)
            row_table, depth_table = rows.astype(np.int64), depths.astype(np.int64)
            fn(len(rows), N, len(depths), image.ctypes.data, row_table.ctypes.data, depth_table.ctypes.data,
               B.ctypes.data, N, 0, C.ctypes.data, N, 0)
            want = want_a @ B
            bound = np.abs(want_a) @ np.abs(B)
            assert np.all(np.abs(C - want) <= 4 * np.finfo(dtype).eps * (len(depths) + 2) * bound), (rows[:3], N)


_AVX2_ENGINES = []  # MCJITs must outlive the functions they hold


def _compile_for_cpu(cpu, define):
    """JIT for another CPU model than the host's (its code must run here)."""
    module = ir.Module(name="test_gemm_cpu")
    target = define(module)
    wrapper = ir.Function(module, target.function_type, name="gemm_for_cpu")
    builder = ir.IRBuilder(wrapper.append_basic_block())
    builder.call(target, wrapper.args)
    builder.ret_void()

    def machine():
        return llvm.Target.from_default_triple().create_target_machine(cpu=cpu, features="", opt=3, jit=True)

    parsed = llvm.parse_assembly(str(module))
    parsed.verify()
    passes = llvm.create_pass_builder(machine(), llvm.create_pipeline_tuning_options(speed_level=3))
    passes.getModulePassManager().run(parsed, passes)
    assembly = machine().emit_assembly(parsed)
    engine = llvm.create_mcjit_compiler(parsed, machine())
    engine.finalize_object()
    _AVX2_ENGINES.append(engine)
    return _SIGNATURE(engine.get_function_address(wrapper.name)), assembly


@pytest.mark.skipif(not llvm.get_host_cpu_features().get("avx2"), reason="host cannot run AVX2 code")
@pytest.mark.parametrize("dtype", DTYPES)
def test_avx2_code_on_any_avx2_host(dtype):
    """The blocking and code an AVX2-only CI host gets: ymm only, correct."""
    Engine.instance()  # native target registered
    shape = gemm.tile_shape_for({"avx": True, "avx2": True, "fma": True}, dtype)
    fn, assembly = _compile_for_cpu("haswell", lambda m: gemm.tiled_gemm_function(m, dtype, shape))
    assert "ymm" in assembly and "zmm" not in assembly
    for M, N, K in [(1, 1, 1), (7, 9, 5), (13, 17, 33), (64, 65, 31), (6, 16, 300)]:
        for a_trans, b_trans, accumulate in LAYOUTS:
            run_case(fn, dtype, M, N, K, a_trans, b_trans, accumulate, pad=1, offset=1)


def test_function_is_defined_once_per_module():
    module = ir.Module()
    assert gemm.gemm_function(module, "float32") is gemm.gemm_function(module, "f32")
    assert gemm.gemm_function(module, "float64") is not gemm.gemm_function(module, "float32")
    assert gemm.gemm_function(module, "float32").name == "symprop.gemm.f32"
    with pytest.raises(ValueError, match="int32"):
        gemm.gemm_function(module, "int32")


def test_loop_path_only_when_no_blas(monkeypatch):
    monkeypatch.setattr(gemm.blas, "load", lambda: None)
    module = ir.Module()
    gemm.gemm_function(module, "float32")
    assert gemm.gemm_externals(module) == []
    assert "cblas" not in str(module)


# ------------------------------------------------------------ runtime.blas

def test_blas_loads_numpy_openblas():
    info = blas.load()
    if info is None:
        pytest.skip("this NumPy ships no OpenBLAS")
    assert blas.load() is info
    library = ctypes.CDLL(info.path)
    for name in (info.sgemm, info.dgemm):
        assert hasattr(library, name)
        assert llvm.address_of_symbol(name)
    assert info.gemm("float32") == info.sgemm and info.gemm("f64") == info.dgemm
    assert info.int64 == ("64" in info.sgemm)


def test_blas_large_externals_are_declared():
    info = blas.load()
    if info is None:
        pytest.skip("this NumPy ships no OpenBLAS")
    module = ir.Module()
    gemm.gemm_function(module, "float32")
    assert gemm.gemm_externals(module) == [info.sgemm]


def test_blas_absent_is_none(monkeypatch):
    monkeypatch.setattr(blas, "_library_dirs", lambda: [])
    blas._open.cache_clear()
    try:
        assert blas.find_library() is None
        assert blas.load() is None
        assert blas.set_num_threads(1) is False
    finally:
        blas._open.cache_clear()
    monkeypatch.undo()
    assert (blas.load() is None) == (blas.find_library() is None)
