"""Step time with 1 and 2 MPI ranks (each rank one thread, the global batch fixed), side by side.

    python benchmarks/bench_scale.py [--rounds 30] [--workloads mlp,cnn]

Workloads: the 784-1024-1024-10 MLP (batch 256, Adam) and the CNN of cnn_workload.py (batch 64,
SGD with momentum). "1 process" is the fused step (compile_step) on the whole batch; "N ranks" is
``mpiexec -n N`` of this script, every rank running compile_step(..., distributed=True) on its
half of the batch (the step time is rank 0's: gradient program, Allreduce, update program).
Times are the minimum over rounds (the machine may be shared). Columns for threads (issue 13,
item 1) belong beside these: a configuration is (ranks, threads).
"""
from __future__ import annotations

from common import single_threaded_environment

single_threaded_environment()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

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


def fastest(call, rounds: int, barrier=None) -> float:
    """Minimum milliseconds of `rounds` calls after three warm-up calls (`barrier` before each)."""
    times = []
    for round_ in range(rounds + 3):
        if barrier is not None:
            barrier()
        started = time.perf_counter()
        call()
        if round_ >= 3:
            times.append(time.perf_counter() - started)
    return min(times) * 1e3


def one_process(name: str, rounds: int) -> float:
    import compiler as sp
    loss, optimizer, batch = workload(name)
    step = sp.compile_step(loss, optimizer, seed=0)
    return fastest(lambda: step(**batch), rounds)


def rank_worker(name: str, rounds: int) -> None:
    """Run under mpiexec: each rank trains on its shard; rank 0 prints the step time as JSON."""
    import numpy as np

    import compiler as sp
    from runtime.distributed import shard
    loss, optimizer, batch = workload(name)
    step = sp.compile_step(loss, optimizer, seed=0, distributed=True)
    comm = step.comm
    rows = len(next(iter(batch.values())))
    mine = shard(rows, comm.rank, comm.size)
    local = {k: np.ascontiguousarray(v[mine]) for k, v in batch.items()}
    milliseconds = fastest(lambda: step(**local), rounds, barrier=comm.Barrier)
    if comm.rank == 0:
        print(json.dumps({"ms": milliseconds, "flat_bytes": step.layout.nbytes}))


def ranks(name: str, n: int, rounds: int) -> float:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit('bench_scale: no mpiexec (pip install -e ".[mpi]")')
    result = subprocess.run([mpiexec, "-n", str(n), sys.executable, __file__, "--rank-worker", name,
                             "--rounds", str(rounds)], capture_output=True, text=True, cwd=HERE,
                            env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    if result.returncode != 0:
        raise SystemExit(f"bench_scale: {n} ranks failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["ms"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--workloads", default="mlp,cnn")
    parser.add_argument("--ranks", type=int, default=2, help="the rank count beside one process")
    parser.add_argument("--rank-worker", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rank_worker:
        rank_worker(args.rank_worker, args.rounds)
        return 0
    print(f"| workload | 1 process (ms) | {args.ranks} ranks (ms) | speed-up | efficiency |")
    print("|---|--:|--:|--:|--:|")
    for name in args.workloads.split(","):
        single, parallel = one_process(name, args.rounds), ranks(name, args.ranks, args.rounds)
        speedup = single / parallel
        print(f"| {name} | {single:.2f} | {parallel:.2f} | {speedup:.2f}x | {speedup / args.ranks:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
