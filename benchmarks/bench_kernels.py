"""Compiled kernels against NumPy (and PyTorch, JAX when installed): median times and ratios.

    python benchmarks/bench_kernels.py [--rounds 15] [--only chain,matmul,call,compile]

One thread everywhere (OPENBLAS_NUM_THREADS=1 and friends are set before
NumPy loads; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset, see
docs/benchmarks.md). Candidates are timed in interleaved rounds and the
median per call is reported, so load from other processes hits all alike.

  chain    8 residual steps h = h + 0.1*tanh(h*w + b) on 4096x256 float32,
           forward, and forward + backward of mean(sigmoid(h)**2) w.r.t. x, w, b
           (target: at least 3x faster than NumPy written by hand)
  matmul   A @ B at n = 64, 256, 1024 float32 through a compiled function, also
           compiled with SYMPROP_BLAS=1 (NumPy's OpenBLAS for large products)
           (target: at least 0.8x NumPy's speed at 1024, faster at 64)
  call     the cost of calling y = x + 1 on a (1,) array (target: under 5 us)
  compile  compile_step(Adam) of a 784-1024-1024-10 MLP in a fresh process,
           cold (empty SYMPROP_CACHE_DIR) and cached (same dir again; target: >= 5x)
"""
from common import describe_unset, single_threaded_environment

_UNSET = single_threaded_environment()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import compiler as sp  # noqa: E402
from common import (compare, environment, gemm_setting, load_average, machine_summary, optional_module,  # noqa: E402
                    print_table)

STEPS, ROWS, COLUMNS = 8, 4096, 256
SIZES = (64, 256, 1024)


# ---- the fused elementwise chain -----------------------------------------------------------------


def chain_graph():
    x = sp.Input("x", (ROWS, COLUMNS))
    w, b = sp.Param("w", (COLUMNS,)), sp.Param("b", (COLUMNS,))
    h = x
    for _ in range(STEPS):
        h = h + 0.1 * sp.tanh(h * w + b)
    loss = sp.mean(sp.sigmoid(h) ** 2)
    return x, w, b, h, loss


class NumpyChain:
    """The chain and its gradient by hand, with preallocated buffers and in-place ufuncs."""

    def __init__(self):
        self.hs = [np.empty((ROWS, COLUMNS), np.float32) for _ in range(STEPS + 1)]
        self.tanhs = [np.empty((ROWS, COLUMNS), np.float32) for _ in range(STEPS)]
        self.g = np.empty((ROWS, COLUMNS), np.float32)
        self.d = np.empty((ROWS, COLUMNS), np.float32)

    def forward(self, x, w, b):
        h = self.hs[-1]
        np.copyto(h, x)
        t = self.d
        for _ in range(STEPS):
            np.multiply(h, w, out=t)
            t += b
            np.tanh(t, out=t)
            t *= np.float32(0.1)
            h += t
        return h

    def forward_backward(self, x, w, b):
        hs, tanhs, g, d = self.hs, self.tanhs, self.g, self.d
        np.copyto(hs[0], x)
        for i in range(STEPS):
            a = tanhs[i]
            np.multiply(hs[i], w, out=a)
            a += b
            np.tanh(a, out=a)
            np.multiply(a, np.float32(0.1), out=hs[i + 1])
            hs[i + 1] += hs[i]
        # loss = mean(s**2), s = sigmoid(h); dloss/dh = 2 s * s (1 - s) / size
        s = g
        np.negative(hs[STEPS], out=s)
        np.exp(s, out=s)
        s += 1
        np.reciprocal(s, out=s)
        loss = np.float32(np.dot(s.ravel(), s.ravel()) / s.size)
        np.subtract(1, s, out=d)
        d *= s
        g *= d
        g *= np.float32(2.0 / g.size)
        gw = np.zeros(COLUMNS, np.float32)
        gb = np.zeros(COLUMNS, np.float32)
        for i in reversed(range(STEPS)):
            a = tanhs[i]
            np.multiply(a, a, out=d)  # d = 0.1 * g * (1 - a**2)
            np.subtract(1, d, out=d)
            d *= g
            d *= np.float32(0.1)
            gb += d.sum(axis=0)
            np.multiply(d, hs[i], out=a)  # a is not needed any more: its buffer takes d * h_i for gw
            gw += a.sum(axis=0)
            d *= w
            g += d
        return loss, g, gw, gb


def torch_chain(torch):
    torch.set_num_threads(1)

    def forward(x, w, b):
        with torch.no_grad():
            h = x
            for _ in range(STEPS):
                h = h + 0.1 * torch.tanh(h * w + b)
            return h

    def forward_backward(x, w, b):
        x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
        h = x
        for _ in range(STEPS):
            h = h + 0.1 * torch.tanh(h * w + b)
        loss = torch.sigmoid(h).pow(2).mean()
        loss.backward()
        return loss.item(), x.grad, w.grad, b.grad

    return forward, forward_backward


def jax_chain(jax):
    jnp = jax.numpy

    def forward(x, w, b):
        h = x
        for _ in range(STEPS):
            h = h + 0.1 * jnp.tanh(h * w + b)
        return h

    def loss(x, w, b):
        return jnp.mean(jax.nn.sigmoid(forward(x, w, b)) ** 2)

    forward_jit = jax.jit(forward)
    grad_jit = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    return (lambda *a: forward_jit(*a).block_until_ready(),
            lambda *a: jax.block_until_ready(grad_jit(*a)))


def bench_chain(rounds: int, frameworks: dict) -> list:
    x, w, b, h, loss = chain_graph()
    gx, gw, gb = sp.grad(loss, [x, w, b])
    forward = sp.compile(h)
    backward = sp.compile([loss, gx, gw, gb])
    rng = np.random.default_rng(0)
    values = {"x": rng.standard_normal((ROWS, COLUMNS)).astype(np.float32),
              "w": rng.standard_normal(COLUMNS).astype(np.float32),
              "b": rng.standard_normal(COLUMNS).astype(np.float32)}
    by_hand = NumpyChain()
    args = (values["x"], values["w"], values["b"])
    np.testing.assert_allclose(forward(**values), by_hand.forward(*args), rtol=1e-4, atol=1e-5)
    for ours, reference in zip(backward(**values), by_hand.forward_backward(*args)):
        np.testing.assert_allclose(ours, reference, rtol=2e-3, atol=1e-4 * np.max(np.abs(reference)))
    print(f"chain: compiled forward {len(forward.kernels())} kernels, forward+backward {len(backward.kernels())} "
          "kernels; results equal NumPy's")

    forward_calls = {"symprop": lambda: forward(**values), "numpy": lambda: by_hand.forward(*args)}
    backward_calls = {"symprop": lambda: backward(**values), "numpy": lambda: by_hand.forward_backward(*args)}
    if "torch" in frameworks:
        torch = frameworks["torch"]
        t_forward, t_backward = torch_chain(torch)
        targs = tuple(torch.from_numpy(a) for a in args)
        forward_calls["torch"] = lambda: t_forward(*targs)
        backward_calls["torch"] = lambda: t_backward(*targs)
    if "jax" in frameworks:
        jax = frameworks["jax"]
        j_forward, j_backward = jax_chain(jax)
        jargs = tuple(jax.numpy.asarray(a) for a in args)
        forward_calls["jax.jit"] = lambda: j_forward(*jargs)
        backward_calls["jax.jit"] = lambda: j_backward(*jargs)
    rows = [("chain forward", compare(forward_calls, rounds)),
            ("chain forward+backward", compare(backward_calls, rounds))]
    chain_cost = {label: fn.cost(**values) for label, fn in (("forward", forward), ("forward+backward", backward))}
    return rows, chain_cost


# ---- matmul ------------------------------------------------------------------------------------


def bench_matmul(rounds: int) -> list:
    rows = []
    rng = np.random.default_rng(1)
    for n in SIZES:
        a_node, b_node = sp.Input("A", (n, n)), sp.Input("B", (n, n))
        fn = sp.compile(a_node @ b_node)
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        np.testing.assert_allclose(fn(A=a, B=b), a @ b, rtol=1e-3, atol=1e-3 * np.sqrt(n))
        with environment(SYMPROP_BLAS="1"):
            fn_blas = sp.compile(a_node @ b_node)
        calls = {"symprop": lambda: fn(A=a, B=b), "symprop BLAS": lambda: fn_blas(A=a, B=b),
                 "numpy": lambda: np.matmul(a, b)}
        # The native call alone, on the pointers of one call through a second executable of the
        # same program (each executable has its own pointer table; `fn` re-points its own).
        alone = sp.compile(a_node @ b_node)
        entry = getattr(alone, "_entry", None)
        if entry is not None:
            kept_output = alone(A=a, B=b)  # the native code writes into it: keep it alive
            calls["symprop native call"] = (lambda entry, table, dims, _: lambda: entry(table, dims))(
                entry, alone.table_address, alone.dims_address, kept_output)
        times = compare(calls, rounds if n < 1024 else max(5, rounds // 2))
        rows.append((f"matmul {n}", times, 2.0 * n**3))
    return rows


# ---- call overhead -------------------------------------------------------------------------------


def bench_call(rounds: int) -> dict:
    """Whole call, call without argument checks, and the bare native entry (for the breakdown)."""
    x = sp.Input("x", (1,))
    fn = sp.compile(x + 1)
    a = np.zeros(1, np.float32)
    assert fn(x=a)[0] == 1
    dims = fn._bind({"x": a})
    calls = {"fn(x=a)": lambda: fn(x=a), "fn.run (no checks)": lambda: fn.run({"x": a}, dims)}
    entry = getattr(fn, "_entry", None)
    if entry is not None:
        table, dims_address = fn.table_address, fn.dims_address
        calls["native entry only"] = lambda: entry(table, dims_address)
    calls["numpy a + 1"] = lambda: a + 1
    return compare(calls, rounds, sample_seconds=0.01)


# ---- compile time ---------------------------------------------------------------------------------

COMPILE_SCRIPT = r"""
import json, time
start = time.perf_counter()
import compiler as sp
imported = time.perf_counter()
x, logits, params = sp.mlp(784, [1024, 1024], 10)
y = sp.Input("y", ("batch",), "int64")
loss = sp.cross_entropy(logits, y)
declared = time.perf_counter()
step = sp.compile_step(loss, sp.optim.Adam(lr=1e-3), seed=0)
compiled = time.perf_counter()
print(json.dumps({"import": imported - start, "declare": declared - imported, "compile_step": compiled - declared}))
"""


def run_compile(cache_dir: str) -> dict:
    env = dict(os.environ, SYMPROP_CACHE_DIR=cache_dir, SYMPROP_CACHE="1")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process"] = time.perf_counter() - start
    return result


def bench_compile(repeats: int) -> dict:
    cold, cached = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="symprop-bench-cache-") as cache_dir:
            cold.append(run_compile(cache_dir))
            cached += [run_compile(cache_dir) for _ in range(2)]
    median = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    return {kind: {key: median(runs, key) for key in runs[0]} for kind, runs in (("cold", cold), ("cached", cached))}


# ---- report -------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per comparison (median over them)")
    parser.add_argument("--only", default="chain,matmul,call,compile", help="comma-separated sections")
    parser.add_argument("--compile-repeats", type=int, default=1, help="fresh cache directories for the compile test")
    parser.add_argument("--no-frameworks", action="store_true", help="compare with NumPy only")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--cost", action="store_true", help="print the per-kernel cost tables of the chain")
    options = parser.parse_args()
    sections = set(options.only.split(","))

    frameworks = {}
    if not options.no_frameworks:
        torch, jax = optional_module("torch"), optional_module("jax")
        if torch is not None:
            frameworks["torch"] = torch
        if jax is not None:
            frameworks["jax"] = jax
    print(machine_summary())
    print(f"threads: 1 (OPENBLAS/OMP/MKL_NUM_THREADS=1, torch.set_num_threads(1), XLA_FLAGS={os.environ['XLA_FLAGS']!r})")
    print(f"unset for this process: {describe_unset(_UNSET)}")
    print(f"GEMM in compiled programs: {gemm_setting()}")
    print(f"compared with: numpy{''.join(', ' + name for name in frameworks)}")

    if "chain" in sections:
        rows, cost = bench_chain(options.rounds, frameworks)
        print_table("fused elementwise chain, 4096x256 float32, 8 steps", rows,
                    ["symprop", "numpy", "torch", "jax.jit"], reference="numpy", markdown=options.markdown)
        for label, times in rows:
            speedup = times["numpy"] / times["symprop"]
            print(f"  {label}: {speedup:.2f}x faster than NumPy (target >= 3x: {verdict(speedup >= 3)})")
        if options.cost:
            for label, report in cost.items():
                print(f"\nper-kernel cost, chain {label}\n{report}")
        else:
            for label, report in cost.items():
                total = report.totals()["total"]
                print(f"  {label}: {len(report.rows)} kernels, sum of kernel times {total['seconds'] * 1e6:,.0f} us, "
                      f"{total['bytes'] / total['seconds'] / 1e9:.1f} GB/s moved (estimate; --cost for the table)")

    if "matmul" in sections:
        rows = bench_matmul(options.rounds)
        print_table("matmul float32, n x n @ n x n (a compiled function; numpy.matmul)",
                    [(label, times) for label, times, _ in rows],
                    ["symprop", "symprop native call", "symprop BLAS", "numpy"],
                    reference="numpy",
                    fastest=False, markdown=options.markdown)
        for label, times, flop in rows:
            ours, theirs = flop / times["symprop"] / 1e9, flop / times["numpy"] / 1e9
            native = times.get("symprop native call")
            kernel = f" ({flop / native / 1e9:.1f} in the native call alone)" if native else ""
            kernel += f", with SYMPROP_BLAS=1 {flop / times['symprop BLAS'] / 1e9:.1f}"
            speed = times["numpy"] / times["symprop"]
            n = int(label.split()[1])
            target = {64: ("faster than NumPy", speed > 1), 1024: (">= 0.8x NumPy", speed >= 0.8)}.get(n)
            goal = f" (target {target[0]}: {verdict(target[1])})" if target else ""
            print(f"  {label}: symprop {ours:.1f} GFLOP/s{kernel}, numpy {theirs:.1f} GFLOP/s, "
                  f"speed {speed:.2f}x NumPy{goal}")

    if "call" in sections:
        times = bench_call(max(options.rounds, 15))
        print_table("calling y = x + 1 on a (1,) float32 array", [(name, {"median": t}) for name, t in times.items()],
                    ["median"], fastest=False, markdown=options.markdown)
        print(f"  call cost {times['fn(x=a)'] * 1e6:.2f} us (target < 5 us: {verdict(times['fn(x=a)'] < 5e-6)})")

    if "compile" in sections:
        result = bench_compile(options.compile_repeats)
        print("\ncompile_step(Adam) of a 784-1024-1024-10 MLP in a fresh process (median seconds)")
        print(f"{'cache':8} {'import':>8} {'declare':>8} {'compile_step':>13} {'process':>8}")
        for kind, r in result.items():
            print(f"{kind:8} {r['import']:8.3f} {r['declare']:8.3f} {r['compile_step']:13.3f} {r['process']:8.3f}")
        ratio = result["cold"]["compile_step"] / result["cached"]["compile_step"]
        whole = result["cold"]["process"] / result["cached"]["process"]
        print(f"  cold / cached: compile_step {ratio:.1f}x (target >= 5x: {verdict(ratio >= 5)}), whole process {whole:.1f}x")

    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
