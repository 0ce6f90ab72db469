"""Generated matrix multiply against numpy.matmul, single-threaded: GFLOP/s and median time.

    python benchmarks/bench_gemm.py [--threads N] [--sizes 64,256,1024]

`ours` is `symprop.gemm` as a compiled program calls it (its loops; with
SYMPROP_BLAS=1 NumPy's OpenBLAS from `BLAS_MIN_WORK` on); `loops` forces the
loop path at every size. Our function is called through ctypes with one argument, the
address of a precomputed argument block, as compiled programs are.
"""

import sys

from common import describe_unset, median_seconds, single_threaded_environment

# OpenBLAS reads these when it loads, i.e. when NumPy is imported: set them first.
_THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
_UNSET = single_threaded_environment(_THREADS)

import argparse  # noqa: E402
import ctypes  # noqa: E402

import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402

from compiler.codegen import gemm  # noqa: E402
from runtime import blas  # noqa: E402
from runtime.engine import Engine  # noqa: E402

I64 = ir.IntType(64)
CASES = [("float32", 64), ("float32", 256), ("float32", 1024), ("float64", 256)]


def compile_gemm(dtype: str, loops_only: bool):
    """An exported `void f(i64 *args)` that unpacks 12 arguments and calls our gemm."""
    module = ir.Module(name="bench_gemm")
    target = gemm.tiled_gemm_function(module, dtype) if loops_only else gemm.gemm_function(module, dtype)
    name = f"bench_gemm_{dtype}_{'loops' if loops_only else 'ours'}"
    wrapper = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64.as_pointer()]), name=name)
    b = ir.IRBuilder(wrapper.append_basic_block())
    args = []
    for i, arg_type in enumerate(target.function_type.args):
        value = b.load(b.gep(wrapper.args[0], [I64(i)]), align=8)
        args.append(b.inttoptr(value, arg_type) if isinstance(arg_type, ir.PointerType) else value)
    b.call(target, args)
    b.ret_void()
    addresses, _ = Engine.instance().compile(str(module), [name], gemm.gemm_externals(module))
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p)(addresses[name])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (NumPy's and ours: one library)")
    parser.add_argument("--sizes", help="comma-separated n for float32 (default: the standard table)")
    options = parser.parse_args()
    cases = [("float32", int(n)) for n in options.sizes.split(",")] if options.sizes else CASES

    info = blas.load()
    if info is not None:
        blas.set_num_threads(options.threads)
    print(f"BLAS: {info.path if info else 'none (loops at every size)'}; threads: {options.threads}")
    print(f"unset for this process: {describe_unset(_UNSET)}")
    uses_blas = info is not None and getattr(gemm, "blas_for_large_products", lambda: True)()
    blas_from = f"BLAS from M*N*K >= {gemm.BLAS_MIN_WORK}" if uses_blas else "loops at every size (SYMPROP_BLAS=1: BLAS)"
    print(f"loop blocking: {gemm.host_tile_shape('float32')}; {blas_from}")
    print()
    header = (f"{'dtype':8} {'n':>5} {'path':5} {'ours ms':>9} {'GFLOP/s':>8} {'loops GF/s':>10} "
              f"{'numpy ms':>9} {'GFLOP/s':>8} {'numpy/ours':>10}")
    print(header)
    print("-" * len(header))
    kernels = {}
    rng = np.random.default_rng(0)
    for dtype, n in cases:
        for loops_only in (False, True):
            if (dtype, loops_only) not in kernels:
                kernels[dtype, loops_only] = compile_gemm(dtype, loops_only)
        a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        c = np.empty((n, n), dtype)
        block = np.array([n, n, n, a.ctypes.data, n, 0, b.ctypes.data, n, 0, c.ctypes.data, n, 0], np.int64)
        address = block.ctypes.data
        ours = median_seconds(lambda: kernels[dtype, False](address))
        np.testing.assert_allclose(c, a @ b, rtol=1e-3, atol=1e-3 * np.sqrt(n))
        loops = median_seconds(lambda: kernels[dtype, True](address))
        reference = median_seconds(lambda: np.matmul(a, b, out=c))
        flop = 2.0 * n**3 / 1e9
        path = "BLAS" if uses_blas and n**3 >= gemm.BLAS_MIN_WORK else "loops"
        print(f"{dtype:8} {n:5d} {path:5} {ours * 1e3:9.4f} {flop / ours:8.1f} {flop / loops:10.1f} "
              f"{reference * 1e3:9.4f} {flop / reference:8.1f} {reference / ours:10.2f}")


if __name__ == "__main__":
    main()
