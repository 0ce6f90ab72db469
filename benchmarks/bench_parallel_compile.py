"""Two independent models compiled one after the other, and in two threads at once: wall seconds.

    python benchmarks/bench_parallel_compile.py [--repeats 3] [--models cnn,large]

Each measurement runs in a fresh interpreter with the on-disk cache disabled (SYMPROP_CACHE=0),
after a warm-up compile of a tiny model (imports, the JIT, sympy's caches), so both modes
compile from scratch. Per model it prints the time in the compiler's Python (declare, grad,
simplify, fusion, IR text) and in LLVM (optimise, emit, load: ``Engine.compile``), and for
the pair: serial (the sum), parallel (two threads, wall) and the ideal (the slower model).

What can overlap: sympy and the code generator are Python and hold the GIL, so two
threads' Python phases take turns. LLVM releases the GIL; llvmlite takes one process-wide
lock around each LLVM call, but parsing, optimising and emitting run outside it, each module
in an LLVMContext of its own (``runtime/engine.py``); only adding the object to the JIT is
serialised. So one thread's LLVM work runs beside the other's Python or LLVM work. The
speed-up in wall time needs two idle cores; the cores the process kept busy on average (CPU /
wall seconds) are printed too, since on a loaded machine threads share what other processes
leave.
"""
from common import single_threaded_environment

single_threaded_environment()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402

from common import load_average, machine_summary  # noqa: E402

CHILD = textwrap.dedent("""
    import json, sys, threading, time
    sys.path.insert(0, {benchmarks!r})
    import numpy as np
    import compiler as sp
    import cnn_workload as cnn
    from runtime.engine import Engine

    llvm_seconds = {{}}
    compile_ir = Engine.compile

    def timed_compile(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return compile_ir(self, *args, **kwargs)
        finally:
            name = threading.current_thread().name
            llvm_seconds[name] = llvm_seconds.get(name, 0.0) + time.perf_counter() - start

    Engine.compile = timed_compile

    def mlp(widths):
        x, logits, _ = sp.mlp(widths[0], list(widths[1:-1]), widths[-1])
        y = sp.Input("y", ("batch",), "int64")
        return sp.compile_step(sp.cross_entropy(logits, y), sp.optim.Adam(lr=1e-3), seed=0)

    MODELS = {{"cnn": lambda: cnn.symprop_step(), "large": lambda: mlp((784, 1024, 1024, 10)),
              "small": lambda: mlp((64, 128, 10)), "deep": lambda: mlp((64,) + (96,) * 8 + (10,))}}

    mlp((3, 4, 2))  # warm-up: imports, the JIT, sympy's caches
    mode, names = sys.argv[1], sys.argv[2].split(",")
    seconds = {{}}

    def run(name):
        start = time.perf_counter()
        MODELS[name]()
        seconds[name] = time.perf_counter() - start

    start, cpu, overlap = time.perf_counter(), time.process_time(), None
    if mode == "serial":
        for name in names:
            threading.current_thread().name = name
            run(name)
    else:
        threads = [threading.Thread(target=run, args=(name,), name=name) for name in names]
        for t in threads:
            t.start()
        clocks = [time.pthread_getcpuclockid(t.ident) for t in threads]
        last, both, any_ = [time.clock_gettime(c) for c in clocks], 0, 0
        while all(t.is_alive() for t in threads):  # every 10 ms: which threads ran on a CPU meanwhile
            time.sleep(0.01)
            try:
                now = [time.clock_gettime(c) for c in clocks]
            except OSError:  # a thread has just ended
                break
            ran = [b - a > 0.0005 for a, b in zip(last, now)]
            last, both, any_ = now, both + all(ran), any_ + any(ran)
        for t in threads:
            t.join()
        overlap = both / max(any_, 1)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({{"wall": wall, "cpu": cpu, "seconds": seconds, "llvm": llvm_seconds, "overlap": overlap}}))
""")


def child(mode: str, models: str) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "SYMPROP_CACHE": "0"}
    result = subprocess.run([sys.executable, "-c", CHILD.format(benchmarks=here), mode, models],
                            capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="cnn,large")
    args = parser.parse_args()
    print(machine_summary())
    names = args.models.split(",")
    serial, parallel = [], []
    for _ in range(args.repeats):  # interleaved: both modes see the same load
        serial.append(child("serial", args.models))
        parallel.append(child("parallel", args.models))
    print(f"\nmedians of {args.repeats} runs, seconds (fresh process each, cache off)")
    for name in names:
        alone = statistics.median(r["seconds"][name] for r in serial)
        llvm = statistics.median(r["llvm"].get(name, 0.0) for r in serial)
        together = statistics.median(r["seconds"][name] for r in parallel)
        print(f"  {name:<8} alone {alone:6.2f} (Python {alone - llvm:5.2f}, LLVM {llvm:5.2f});"
              f"  in a thread beside the other {together:6.2f}")
    total = statistics.median(r["wall"] for r in serial)
    wall = statistics.median(r["wall"] for r in parallel)
    slowest = statistics.median(max(r["seconds"].values()) for r in serial)
    overlap = statistics.median(r["overlap"] for r in parallel)
    print(f"  serial {total:.2f}, parallel threads {wall:.2f} ({total / wall:.2f}x faster), "
          f"the slower model alone {slowest:.2f} (parallel / slower: {wall / slowest:.2f}x)")
    for mode, runs in (("serial", serial), ("parallel", parallel)):
        used = statistics.median(r["cpu"] / r["wall"] for r in runs)
        print(f"  {mode:<8} cores busy on average (process CPU seconds / wall seconds): {used:.2f}")
    print(f"  while both threads were compiling, of the 10 ms intervals in which either ran on a CPU, "
          f"{overlap:.0%} had both running at once")
    print(f"  load average now: {load_average()} on {os.cpu_count()} logical cores (a loaded machine shares them)")


if __name__ == "__main__":
    main()
