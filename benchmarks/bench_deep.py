"""Graph and compile time grow linearly with depth: an unrolled chain of 1k, 5k and 20k ops.

    python benchmarks/bench_deep.py [--lengths 1000 5000 20000] [--repeats 3]

The chain cycles through an affine tanh map, a matmul, a column roll (slice and
concat) and a transpose added back (tests/test_deep_graphs.py runs the same
chain), ending in a sum of squares; its gradient is taken with respect to the
three parameters. Per length it prints the seconds to declare, differentiate,
simplify, and schedule and generate LLVM IR (``build_program``: fusion, memory
plan, kernels), each also per 1,000 ops, so linear growth reads as a constant
column. Runs at Python's default recursion limit (asserted). Lengths under
5,000 report the median of --repeats runs, longer ones a single run. Every run
uses fresh leaf names, so no node is shared with an earlier run.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import compiler as C  # noqa: E402
from compiler.codegen.program import build_program  # noqa: E402
from compiler.passes import simplify  # noqa: E402
from compiler.traversal import topological_order  # noqa: E402
from test_deep_graphs import mixed_chain  # noqa: E402

STAGES = ("declare", "grad", "simplify", "compile")


def run(length: int) -> tuple:
    """(seconds per stage, nodes of the differentiated graph)."""
    start = time.perf_counter()
    loss, params, _ = mixed_chain(length)
    declared = time.perf_counter()
    outputs = [loss] + C.grad(loss, params)
    differentiated = time.perf_counter()
    simplified = simplify(outputs)
    simplified_at = time.perf_counter()
    build_program(simplified, "deep")
    done = time.perf_counter()
    times = (declared - start, differentiated - declared, simplified_at - differentiated, done - simplified_at)
    return times, len(topological_order(outputs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per length under 5,000 ops (median)")
    args = parser.parse_args()
    assert sys.getrecursionlimit() == 1000, "measure at the default recursion limit"
    run(50)  # the process's first graph pays for imports and sympy's caches
    rows = []
    for length in args.lengths:
        runs = [run(length) for _ in range(args.repeats if length < 5000 else 1)]
        times = [statistics.median(r[0][k] for r in runs) for k in range(len(STAGES))]
        rows.append((length, runs[0][1], times))
        per_k = "  ".join(f"{t / length * 1000:7.3f}" for t in times)
        print(f"{length:>7} ops {runs[0][1]:>8} nodes  " + "  ".join(f"{t:8.2f}" for t in times)
              + f"  {sum(times):8.2f}  |  {per_k}", flush=True)
    print()
    print(f"{'ops':>7} {'nodes':>9}        " + "  ".join(f"{s:>8}" for s in STAGES) + f"  {'total':>8}"
          + "  |  seconds per 1,000 ops: " + "  ".join(f"{s:>7}" for s in STAGES))
    for length, nodes, times in rows:
        print(f"{length:>7} {nodes:>9}        " + "  ".join(f"{t:8.2f}" for t in times) + f"  {sum(times):8.2f}"
              + "  |                          " + "  ".join(f"{t / length * 1000:7.3f}" for t in times))
    first_length, _, first = rows[0]
    for length, _, times in rows[1:]:
        ratio = (sum(times) / length) / (sum(first) / first_length)
        print(f"time per op at {length} / at {first_length}: {ratio:.2f} (1.00 is linear)")


if __name__ == "__main__":
    main()
