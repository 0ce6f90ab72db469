"""The model, data and schedule of the two-rank test (``test_distributed.py``), and the script each rank runs.

``mpiexec -n 2 python tests/distributed_training.py OUT [BUCKET_MB]`` trains a float64 MLP
data-parallel: a few steps on uneven shards of a 13-row global batch, then one
shuffled epoch with global batches of 16 (the last one smaller), with Adam
whose gradient-norm clipping is active. Each rank writes its parameters,
optimizer state and losses to OUT/rank<r>.npz; with BUCKET_MB the gradients are
summed in buckets of that size while the backward pass runs. ``train_single`` runs the same
schedule in one process on the concatenated batches.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import compiler as sp  # noqa: E402
from compiler import optim  # noqa: E402

STEPS, STEP_ROWS, EPOCH_ROWS, BATCH = 4, 13, 40, 16
SEED = 3


def model():
    """(loss, optimizer) of a 6-16-3 tanh MLP in float64; clipping at 0.5 is active from the first step."""
    x = sp.Input("x", ("batch", 6), dtype="float64")
    y = sp.Input("y", ("batch",), dtype="int64")
    w1 = sp.Param("w1", (6, 16), dtype="float64")
    b1 = sp.Param("b1", (16,), dtype="float64", init="normal")
    w2 = sp.Param("w2", (16, 3), dtype="float64")
    b2 = sp.Param("b2", (3,), dtype="float64", init="zeros")
    loss = sp.cross_entropy(sp.tanh(x @ w1 + b1) @ w2 + b2, y)
    return loss, optim.Adam(lr=0.05, clip_grad_norm=0.5)


def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(STEPS * STEP_ROWS + EPOCH_ROWS, 6))
    y = rng.integers(0, 3, len(x))
    return x, y


def batches():
    """The global batches of the steps before the epoch, and the epoch's data."""
    x, y = data()
    steps = [(x[i * STEP_ROWS:(i + 1) * STEP_ROWS], y[i * STEP_ROWS:(i + 1) * STEP_ROWS]) for i in range(STEPS)]
    return steps, (x[STEPS * STEP_ROWS:], y[STEPS * STEP_ROWS:])


def run_schedule(step, rank: int = 0, size: int = 1) -> list:
    """The losses of the schedule: STEPS steps on this rank's shard of each global batch, then one epoch."""
    from runtime.distributed import shard
    steps, (x, y) = batches()
    mine = shard(STEP_ROWS, rank, size)
    losses = [step(x=np.ascontiguousarray(bx[mine]), y=np.ascontiguousarray(by[mine])) for bx, by in steps]
    losses.append(step.run_epoch({"x": x, "y": y}, BATCH, seed=11))
    return losses


def train_single():
    """(live parameters, optimizer state, losses) of the same schedule in one process."""
    step = sp.compile_step(*model(), seed=SEED)
    losses = run_schedule(step)
    return dict(step.params), dict(step.state), np.array(losses)


def main(out: str, bucket_mb: str | None = None) -> None:
    step = sp.compile_step(*model(), seed=SEED, distributed=True,
                           bucket_mb=None if bucket_mb is None else float(bucket_mb))
    comm = step.comm
    losses = run_schedule(step, comm.rank, comm.size)
    step.check_consistent()
    arrays = {f"param/{k}": v for k, v in step.params.items()}
    arrays.update({f"state/{k}": v for k, v in step.state.items()})
    np.savez(Path(out) / f"rank{comm.rank}.npz", losses=np.array(losses), size=comm.size,
             buckets=len(step.buckets or ()), **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:3])
