"""A training step at a batch size that changes on every call, against the same step at a repeated size.

    python benchmarks/bench_batch_sizes.py [--rounds 15] [--models small,large,cnn] [--core N]

For each model, median microseconds of one step at batch B:

  repeated     every call at B (the arena is bound to B once);
  alternating  calls alternate B - 1 and B, and only the calls at B are timed: each one binds
               new dimensions, after a smaller batch;
  new sizes    every call at a size never used before, descending from B (an RL workload with a
               different episode length per call), timed against a step repeated at those sizes.

Target (issue 14, item 4): a step at a new, smaller batch size costs what a step at a repeated
size does (within 10 %). The arena grows to the largest batch seen and is reused, so rebinding
is a few multiplications and a write of the dims (``runtime/workspace.py``).

The process pins itself to one core (``--core``, default the first it may run on) and runs one
thread (common.py). Calls are measured in interleaved rounds; each sample is one call.
"""
from common import single_threaded_environment

single_threaded_environment()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import cnn_workload as cnn  # noqa: E402
import compiler as sp  # noqa: E402
from common import format_time, machine_summary  # noqa: E402

MODELS = {"small": ((64, 128, 10), 64), "large": ((784, 1024, 1024, 10), 256), "cnn": (None, cnn.BATCH)}


def mlp_step(widths):
    x, logits, _ = sp.mlp(widths[0], list(widths[1:-1]), widths[-1])
    y = sp.Input("y", ("batch",), "int64")
    return sp.compile_step(sp.cross_entropy(logits, y), sp.optim.Adam(lr=1e-3), seed=0)


def workload(name: str):
    """(step, {size: (x, y)} for every size from 1 to B, B)."""
    widths, batch = MODELS[name]
    if widths is None:
        step = cnn.symprop_step()
        x, y = cnn.data(batch)
    else:
        step = mlp_step(widths)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, widths[0])).astype(np.float32)
        y = rng.integers(0, widths[-1], batch).astype(np.int64)
    batches = {n: (np.ascontiguousarray(x[:n]), np.ascontiguousarray(y[:n])) for n in range(1, batch + 1)}
    return step, batches, batch


def timed(step, batch) -> float:
    """Seconds of one step on `batch`, read once just before (so every kind of call finds its inputs
    in the cache: a new size must not pay for data that a repeated size has already touched)."""
    x, y = batch
    np.add.reduce(x, axis=None), np.add.reduce(y, axis=None)
    start = time.perf_counter()
    step(x=x, y=y)
    return time.perf_counter() - start


def measure(step, batches, size: int, rounds: int, calls: int) -> dict:
    """{"repeated", "alternating", "new sizes", "repeated at those sizes"}: per-call seconds, medians."""
    samples = {"repeated": [], "alternating": [], "new sizes": [], "repeated at those sizes": []}
    fresh = list(range(size - 1, 0, -1))  # sizes not yet seen in this round, largest first
    for _ in range(rounds):
        timed(step, batches[size])  # the arena is sized for the largest batch
        for _ in range(calls):
            samples["repeated"].append(timed(step, batches[size]))
        for _ in range(calls):
            timed(step, batches[size - 1])
            samples["alternating"].append(timed(step, batches[size]))
        new = fresh[:calls]
        fresh = fresh[calls:] or list(range(size - 1, 0, -1))
        for n in new:  # each size once: every call binds new dimensions
            samples["new sizes"].append(timed(step, batches[n]))
        for n in new:  # the same sizes, each repeated: the second call of each is timed
            timed(step, batches[n])
            samples["repeated at those sizes"].append(timed(step, batches[n]))
    return {name: statistics.median(values) for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20, help="calls per kind per round")
    parser.add_argument("--models", default="small,large,cnn")
    parser.add_argument("--core", type=int, default=None, help="the core to pin to (default: the first allowed)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        core = args.core if args.core is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
    print(machine_summary())
    print(f"median us per step, {args.rounds} interleaved rounds of {args.calls} calls per kind")
    print(f"{'model':<28} {'B':>4} {'repeated':>9} {'alternating':>12} {'ratio':>6} {'new sizes':>10} "
          f"{'same, repeated':>15} {'ratio':>6}")
    for name in args.models.split(","):
        step, batches, size = workload(name)
        times = measure(step, batches, size, args.rounds, args.calls)
        label = f"{name} {'-'.join(map(str, MODELS[name][0])) if MODELS[name][0] else cnn.LABEL.split(' batch')[0]}"
        print(f"{label[:28]:<28} {size:>4} {format_time(times['repeated']):>9} {format_time(times['alternating']):>12} "
              f"{times['alternating'] / times['repeated']:>5.2f}x {format_time(times['new sizes']):>10} "
              f"{format_time(times['repeated at those sizes']):>15} "
              f"{times['new sizes'] / times['repeated at those sizes']:>5.2f}x")


if __name__ == "__main__":
    main()
