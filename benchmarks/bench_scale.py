"""Step time with 1 and N threads, and with 1 and N MPI ranks, side by side with PyTorch on N threads.

    python benchmarks/bench_scale.py [--rounds 30] [--workloads mlp,cnn] [--threads 2] [--ranks 2] [--bucket-mb 1]

Workloads: the 784-1024-1024-10 MLP (batch 256, Adam) and the CNN of cnn_workload.py (batch 64,
SGD with momentum). "1 thread" and "N threads" are the fused step (compile_step(..., threads=...))
on the whole batch in this process; "N ranks" is ``mpiexec -n N`` of this script, every rank one
thread running compile_step(..., distributed=True) on its share of the batch (the step time is
rank 0's: gradient program, Allreduce, update program), and with --bucket-mb the same with the sum
overlapped (buckets of that many MB, each an Iallreduce started during the backward pass, the
gradient program run kernel by kernel); "PyTorch N threads" is eager PyTorch with
torch.set_num_threads(N) on the same weights (the column is left out when torch is not installed).
The 1- and N-thread steps alternate call by call. Times are medians over rounds; speed-up is against 1 thread, efficiency is speed-up / N, and the
last column is PyTorch's time over symprop's with N threads (above 1: symprop is faster).
"""
from __future__ import annotations

from common import optional_module, single_threaded_environment

single_threaded_environment()  # one thread everywhere unless a column asks for more

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def workload(name: str):
    """(loss, optimizer, the global batch) of a workload."""
    import numpy as np

    import cnn_workload as cnn
    import compiler as sp
    if name == "mlp":
        rng = np.random.default_rng(0)
        _, logits, _ = sp.mlp(784, [1024, 1024], 10)
        y = sp.Input("y", ("batch",), "int64")
        batch = {"x": rng.standard_normal((256, 784)).astype(np.float32), "y": rng.integers(0, 10, 256)}
        return sp.cross_entropy(logits, y), sp.optim.Adam(lr=1e-3), batch
    x, y = cnn.data(cnn.BATCH)
    return cnn.symprop_loss(), sp.optim.SGD(lr=cnn.LR, momentum=cnn.MOMENTUM), {"x": x, "y": y}


def median_ms(call, rounds: int, barrier=None) -> float:
    """Median milliseconds of `rounds` calls after three warm-up calls (`barrier` before each)."""
    times = []
    for round_ in range(rounds + 3):
        if barrier is not None:
            barrier()
        started = time.perf_counter()
        call()
        if round_ >= 3:
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def one_process(name: str, rounds: int, threads: int) -> tuple:
    """(median ms of the fused step on 1 thread, on `threads` threads, the initial parameters):
    the two steps alternate call by call, so a change in the machine's speed during the run
    (other tenants, clock) falls on both alike."""
    import compiler as sp
    loss, optimizer, batch = workload(name)
    steps = [sp.compile_step(loss, optimizer, seed=0, threads=n) for n in (1, threads)]
    weights = {name: array.copy() for name, array in steps[0].params.items()}
    times = [[], []]
    for round_ in range(rounds + 3):
        for step, samples in zip(steps, times):
            started = time.perf_counter()
            step(**batch)
            if round_ >= 3:
                samples.append(time.perf_counter() - started)
    single, threaded = (statistics.median(samples) * 1e3 for samples in times)
    return single, threaded, weights


def pytorch(name: str, rounds: int, threads: int, weights: dict) -> float | None:
    """Median ms of eager PyTorch's step on `threads` threads (None without torch)."""
    torch = optional_module("torch")
    if torch is None:
        return None
    import cnn_workload as cnn
    import mlp_workload as mlp
    _, _, batch = workload(name)
    x, y = torch.from_numpy(batch["x"]), torch.from_numpy(np.asarray(batch["y"], dtype=np.int64))
    if name == "mlp":
        step = mlp.torch_step(torch, [weights[f"mlp_{i}_{kind}"] for i in range(3) for kind in ("w", "b")], threads)
    else:
        step = cnn.torch_step(torch, {key: weights[key] for key in cnn.PARAMS}, threads)
    return median_ms(lambda: step(x, y), rounds)


def rank_worker(name: str, rounds: int, bucket_mb: float | None) -> None:
    """Run under mpiexec: each rank trains on its shard; rank 0 prints the step time as JSON."""
    import numpy as np

    import compiler as sp
    from runtime.distributed import shard
    loss, optimizer, batch = workload(name)
    step = sp.compile_step(loss, optimizer, seed=0, distributed=True, threads=1, bucket_mb=bucket_mb)
    comm = step.comm
    rows = len(next(iter(batch.values())))
    mine = shard(rows, comm.rank, comm.size)
    local = {k: np.ascontiguousarray(v[mine]) for k, v in batch.items()}
    milliseconds = median_ms(lambda: step(**local), rounds, barrier=comm.Barrier)
    if comm.rank == 0:
        print(json.dumps({"ms": milliseconds, "flat_bytes": step.layout.nbytes}))


def ranks(name: str, n: int, rounds: int, bucket_mb: float | None = None) -> float:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit('bench_scale: no mpiexec (pip install -e ".[mpi]")')
    result = subprocess.run([mpiexec, "-n", str(n), sys.executable, __file__, "--rank-worker", name,
                             "--rounds", str(rounds), *(["--bucket-mb", str(bucket_mb)] if bucket_mb else [])],
                            capture_output=True, text=True, cwd=HERE,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    if result.returncode != 0:
        raise SystemExit(f"bench_scale: {n} ranks failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["ms"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--threads", type=int, default=2, help="the thread count beside one thread")
    parser.add_argument("--ranks", type=int, default=2, help="the rank count beside one process")
    parser.add_argument("--bucket-mb", type=float, help="also time the ranks summing in buckets of this many MB "
                                                           "while the backward pass runs")
    parser.add_argument("--rank-worker", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rank_worker:
        rank_worker(args.rank_worker, args.rounds, args.bucket_mb)
        return 0
    t, r, bucket = args.threads, args.ranks, args.bucket_mb
    overlapped_header = f" {r} ranks, {bucket:g} MB buckets (ms) | speed-up |" if bucket else ""
    print(f"| workload | 1 thread (ms) | {t} threads (ms) | speed-up | efficiency | {r} ranks (ms) | speed-up "
          f"| efficiency |{overlapped_header} PyTorch {t} threads (ms) | PyTorch / symprop {t} threads |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|" + ("--:|--:|" if bucket else "") + "--:|--:|")
    for name in args.workloads.split(","):
        single, threaded, weights = one_process(name, args.rounds, t)
        ranked = ranks(name, r, args.rounds)
        overlapped_cells = ""
        if bucket:
            overlapped = ranks(name, r, args.rounds, bucket)
            overlapped_cells = f" {overlapped:.2f} | {single / overlapped:.2f}x |"
        torch_ms = pytorch(name, args.rounds, t, weights)
        torch_cells = (f"{torch_ms:.2f} | {torch_ms / threaded:.2f}x" if torch_ms is not None
                       else "not installed | -")
        print(f"| {name} | {single:.2f} | {threaded:.2f} | {single / threaded:.2f}x | {single / threaded / t:.0%} "
              f"| {ranked:.2f} | {single / ranked:.2f}x | {single / ranked / r:.0%} |{overlapped_cells} {torch_cells} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
