"""Data-parallel step time at 8, 64 and 512 ranks, modelled from a measured single-rank step.

    python benchmarks/scaling_model.py                  # from the inputs measured on this host (MEASURED)
    python benchmarks/scaling_model.py --measure        # measure the inputs now (compiles both workloads)
    python benchmarks/scaling_model.py --alpha 2e-6 --links 10,25,100 --ranks 8,64,512,4096

The model (docs/scaling.md explains it): every rank keeps the measured per-rank batch (weak
scaling: p ranks train on p times the batch per step). A step is the split step measured on one
rank (gradient program, update program, the Python between them) plus a ring allreduce of the flat
gradient buffer of S bytes over links of B bytes/s with a per-message latency alpha:

    allreduce(p) = 2 (p - 1) / p x S / B  +  2 (p - 1) x alpha
    step(p)      = split step + allreduce(p)
    efficiency   = fused single-process step / step(p)

"overlap" hides the allreduce behind the backward pass (the gradient program less the forward
pass): step = split step + max(0, allreduce - backward), an upper bound on what bucketed overlap
gains. "fp16" sends half the bytes (gradient compression to 16 bits, its conversion not counted).
"""
from __future__ import annotations

from common import single_threaded_environment

single_threaded_environment()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

# Measured with --measure on one core of the development host (Intel Xeon, 2 cores shared with
# other jobs; the minimum of 60 interleaved rounds after warm-up, milliseconds), 2026-12-03 14:19 UTC,
# before the update program fused its 1/N scaling (it now takes about 2.0 ms, not 3.2: docs/scaling.md).
MEASURED = {
    "MLP 784-1024-1024-10, batch 256, Adam": {
        "fused": 22.7, "split": 25.363, "gradient": 21.612, "update": 3.203, "forward": 12.007, "flat_bytes": 7454912},
    "CNN (cnn_workload), batch 64, SGD momentum": {
        "fused": 10.663, "split": 10.553, "gradient": 9.108, "update": 0.048, "forward": 4.947, "flat_bytes": 82112},
}


def workloads():
    """name -> (loss, optimizer, one batch of inputs), built with the compiler."""
    import numpy as np

    import cnn_workload as cnn
    import compiler as sp

    rng = np.random.default_rng(0)
    x, logits, _ = sp.mlp(784, [1024, 1024], 10)
    y = sp.Input("y", ("batch",), "int64")
    mlp_batch = {"x": rng.standard_normal((256, 784)).astype(np.float32), "y": rng.integers(0, 10, 256)}
    cnn_x, cnn_y = cnn.data(cnn.BATCH)
    names = list(MEASURED)
    return {names[0]: (sp.cross_entropy(logits, y), sp.optim.Adam(lr=1e-3), mlp_batch),
            names[1]: (cnn.symprop_loss(), sp.optim.SGD(lr=cnn.LR, momentum=cnn.MOMENTUM), {"x": cnn_x, "y": cnn_y})}


def fastest(calls: dict, repeats: int) -> dict:
    """name -> the minimum of `repeats` timed calls in milliseconds, the calls interleaved (round after
    round of each) after three warm-up rounds, so that a busy machine slows them alike and the
    minimum finds the quiet moments."""
    times = {name: [] for name in calls}
    for round_ in range(repeats + 3):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if round_ >= 3:
                times[name].append(time.perf_counter() - started)
    return {name: min(t) * 1e3 for name, t in times.items()}


def measure(repeats: int) -> dict:
    import compiler as sp
    from runtime.distributed import SingleProcess

    measured = {}
    for name, (loss, optimizer, batch) in workloads().items():
        fused = sp.compile_step(loss, optimizer, seed=0)
        split = sp.compile_step(loss, optimizer, seed=0, distributed=SingleProcess())
        forward = fused.function(loss)
        measured[name] = fastest({
            "fused": lambda: fused(**batch),
            "split": lambda: split(**batch),
            "gradient": lambda: split.gradient_program(**batch),
            "update": lambda: split.update_program(),
            "forward": lambda: forward(**batch),
        }, repeats)
        measured[name]["flat_bytes"] = split.layout.nbytes
    return measured


def allreduce_seconds(p: int, nbytes: float, bandwidth: float, alpha: float) -> tuple:
    """(bandwidth term, latency term) of a ring allreduce of `nbytes` over `p` ranks, in seconds."""
    return 2 * (p - 1) / p * nbytes / bandwidth, 2 * (p - 1) * alpha


def table(measured: dict, ranks, links_gbit, alpha: float) -> list:
    rows = []
    for name, m in measured.items():
        split, fused = m["split"] / 1e3, m["fused"] / 1e3
        backward = max(m["gradient"] - m["forward"], 0.0) / 1e3
        for gbit in links_gbit:
            bandwidth = gbit * 1e9 / 8
            for p in ranks:
                band, latency = allreduce_seconds(p, m["flat_bytes"], bandwidth, alpha)
                reduce = band + latency
                step = split + reduce
                overlap = split + max(0.0, reduce - backward)
                fp16 = split + band / 2 + latency
                rows.append({"workload": name, "ranks": p, "gbit": gbit, "bandwidth_ms": band * 1e3,
                             "latency_ms": latency * 1e3, "step_ms": step * 1e3,
                             "efficiency": fused / step, "overlap_efficiency": fused / overlap,
                             "fp16_efficiency": fused / fp16})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="measure the single-rank inputs now")
    parser.add_argument("--repeats", type=int, default=50, help="timed rounds when measuring (the minimum counts)")
    parser.add_argument("--ranks", default="8,64,512", help="comma-separated rank counts")
    parser.add_argument("--links", default="10,100", help="comma-separated link speeds in Gbit/s")
    parser.add_argument("--alpha", type=float, default=5e-6, help="latency per message step, seconds")
    args = parser.parse_args(argv)
    measured = measure(args.repeats) if args.measure else MEASURED
    if not args.measure and not all(m["fused"] for m in measured.values()):
        parser.error("no recorded inputs: run with --measure")
    ranks = [int(r) for r in args.ranks.split(",")]
    links = [float(g) for g in args.links.split(",")]
    print("measured on one rank (ms): fused step | split step | gradient program | update program | forward | "
          "flat buffer")
    for name, m in measured.items():
        print(f"  {name}: {m['fused']:.2f} | {m['split']:.2f} | {m['gradient']:.2f} | {m['update']:.2f} | "
              f"{m['forward']:.2f} | {m['flat_bytes'] / 1e6:.3f} MB")
    print(f"\nring allreduce, alpha = {args.alpha * 1e6:g} us per message step; efficiency = fused step / step(p)\n")
    print("| workload | ranks | link | allreduce ms (bandwidth + latency) | step ms | efficiency | overlap | fp16 |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for row in table(measured, ranks, links, args.alpha):
        print(f"| {row['workload']} | {row['ranks']} | {row['gbit']:g} Gbit/s | "
              f"{row['bandwidth_ms']:.2f} + {row['latency_ms']:.2f} | {row['step_ms']:.2f} | "
              f"{row['efficiency']:.0%} | {row['overlap_efficiency']:.0%} | {row['fp16_efficiency']:.0%} |")
    if args.measure:
        print("\nMEASURED = " + repr({name: {k: round(v, 3) if isinstance(v, float) else v for k, v in m.items()}
                                     for name, m in measured.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
