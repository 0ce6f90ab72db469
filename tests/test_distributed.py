"""Data-parallel training on MPI: two ranks started on this machine with ``mpiexec -n 2``.

The two-rank tests need mpi4py and an MPI library (``pip install -e ".[mpi]"``) and are skipped
without them. Tolerance against one process: float64, rtol 1e-10 and atol 1e-13. The two runs
differ only in summation order (a shard's rows summed, then the two shards, against all rows in
one sum): 3e-16 at most in absolute terms after the test's 7 steps, 1e-13 relative on the
smallest elements of Adam's moments -- the tolerance leaves a margin of 300x.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from child_python import ROOT, run_python
from runtime.distributed import ALIGNMENT, LOSS_SUM_INPUT, ROWS_ENTRY, FlatLayout, SingleProcess, rank_seed, shard

HAVE_MPI = importlib.util.find_spec("mpi4py") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason='mpi4py is not installed (pip install -e ".[mpi]")')


def mpiexec() -> str:
    """The mpiexec beside this interpreter (the mpich wheel puts it there), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    assert found, 'mpi4py is installed but no mpiexec was found: pip install -e ".[mpi]" installs the mpich wheel'
    return found


def run_ranks(n: int, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    result = subprocess.run([mpiexec(), "-n", str(n), sys.executable, *args], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@needs_mpi
def test_two_ranks_hold_identical_parameters_equal_to_one_process(tmp_path):
    import distributed_training as job
    run_ranks(2, str(Path(job.__file__)), str(tmp_path))
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    assert int(ranks[0]["size"]) == 2
    names = [name for name in ranks[0].files if name.startswith(("param/", "state/"))]
    assert len(names) == 4 + 8  # four parameters, Adam's two moments of each
    for name in names + ["losses"]:  # both ranks: the same bits
        assert ranks[0][name].tobytes() == ranks[1][name].tobytes(), name
    params, state, losses = job.train_single()
    np.testing.assert_allclose(ranks[0]["losses"], losses, rtol=1e-10, atol=1e-13)
    for name, value in {**{f"param/{k}": v for k, v in params.items()},
                        **{f"state/{k}": v for k, v in state.items()}}.items():
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-10, atol=1e-13, err_msg=name)
    initial = job.sp.compile_step(*job.model(), seed=job.SEED).params
    assert not np.allclose(ranks[0]["param/w1"], initial["w1"])  # it trained


@needs_mpi
def test_two_ranks_summing_buckets_during_the_backward_pass_train_to_the_same_bits(tmp_path):
    """Overlap: every gradient in a bucket of its own (64 bytes), each Iallreduce started right after
    the kernel that writes it; the ranks agree bit for bit and with the one-message sum."""
    import distributed_training as job
    overlapped, plain = tmp_path / "overlapped", tmp_path / "plain"
    overlapped.mkdir(), plain.mkdir()
    run_ranks(2, str(Path(job.__file__)), str(overlapped), "0.00006")
    run_ranks(2, str(Path(job.__file__)), str(plain))
    ranks = [np.load(overlapped / f"rank{r}.npz") for r in range(2)]
    reference = np.load(plain / "rank0.npz")
    assert int(ranks[0]["buckets"]) == 5 and int(reference["buckets"]) == 0  # w2, b2, w1, b1; loss and rows
    for name in [n for n in ranks[0].files if n.startswith(("param/", "state/"))] + ["losses"]:
        assert ranks[0][name].tobytes() == ranks[1][name].tobytes() == reference[name].tobytes(), name


@needs_mpi
def test_symprop_train_distributed_on_two_ranks_reaches_the_single_process_accuracy():
    result = run_ranks(2, "-m", "compiler.cli", "train", "--distributed", "--quiet", "examples/digits_mlp.toml")
    accuracies = re.findall(r"test accuracy ([\d.]+)%", result.stdout)
    assert len(accuracies) == 1, result.stdout  # rank 0 reports, rank 1 is silent
    assert "2 ranks" in result.stdout
    assert float(accuracies[0]) >= 94.0  # one process: about 96 %
    overlapped = run_ranks(2, "-m", "compiler.cli", "train", "--distributed", "--bucket-mb", "0.01", "--quiet",
                           "examples/digits_mlp.toml")
    assert re.findall(r"test accuracy ([\d.]+)%", overlapped.stdout) == accuracies  # the same sums, bit for bit


def test_bucket_mb_flag_needs_distributed_and_a_positive_size(capsys):
    from compiler.cli import main
    model = str(ROOT / "examples" / "digits_mlp.toml")
    assert main(["train", "--bucket-mb", "1", "--quiet", model]) == 2
    assert "--bucket-mb applies with --distributed only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--distributed", "--bucket-mb", "0", model])
    assert "expected a positive number" in capsys.readouterr().err


DISAGREEING_RANKS = """
import compiler as sp
from compiler import optim
from runtime.distributed import world
rank = world().rank
x = sp.Input("x", ("batch", 3), dtype="float64")
w = sp.Param("w", (3, 2 + rank), dtype="float64")  # rank 1 declares another model
try:
    sp.compile_step(sp.mean(x @ w), optim.SGD(lr=0.1), distributed=True)
except RuntimeError as error:
    print(f"rank {rank}: {error}")
"""


@needs_mpi
def test_ranks_compiling_different_models_fail_together():
    result = run_ranks(2, "-c", DISAGREEING_RANKS)
    for rank in (0, 1):
        assert f"rank {rank}: ranks [1] compiled a different model or optimizer than rank 0" in result.stdout


def test_distributed_without_mpi4py_says_how_to_install():
    result = run_python("""
        import sys
        sys.modules["mpi4py"] = None  # as if it were not installed
        from compiler.cli import main
        sys.exit(main(["train", "--distributed", "--quiet"]))
    """)
    assert result.returncode == 2, result.stderr
    assert 'pip install -e ".[mpi]"' in result.stderr and "mpi4py" in result.stderr
    assert "Traceback" not in result.stderr


def test_flat_layout_views_are_aligned_and_disjoint():
    layout = FlatLayout("float32", [("a", (3, 5)), ("b", ()), ("c", (17,))])
    flat = layout.allocate()
    views = layout.views(flat)
    assert set(views) == {"a", "b", "c", LOSS_SUM_INPUT, ROWS_ENTRY}
    assert views["a"].shape == (3, 5) and views["b"].shape == () and views["c"].shape == (17,)
    for name, view in views.items():
        assert view.ctypes.data % ALIGNMENT == 0, name
        assert np.shares_memory(view, flat)
        view[...] = 1
    assert flat.sum() == 15 + 1 + 17 + 2  # no two views overlap; the padding stays zero
    assert flat.flags.c_contiguous and layout.nbytes == flat.nbytes


def test_shards_cover_a_batch_and_seeds_differ_per_rank():
    for rows in (1, 2, 13, 16):
        for size in (1, 2, 3, 8):
            parts = [shard(rows, r, size) for r in range(size)]
            assert parts[0].start == 0 and parts[-1].stop == rows
            assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    assert rank_seed(5, 0) == 5
    seeds = {rank_seed(5, r) for r in range(512)}
    assert len(seeds) == 512 and all(-2**63 <= s < 2**63 for s in seeds)


# ---- the split step in one process (runtime.distributed.SingleProcess: no MPI needed) ------------------


def test_split_step_on_one_rank_equals_the_fused_step():
    import distributed_training as job
    step = job.sp.compile_step(*job.model(), seed=job.SEED, distributed=SingleProcess())
    losses = job.run_schedule(step)
    params, state, expected = job.train_single()
    np.testing.assert_allclose(losses, expected, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(step.params[name], params[name], rtol=1e-12, atol=1e-14, err_msg=name)
    for name in state:
        np.testing.assert_allclose(step.state[name], state[name], rtol=1e-12, atol=1e-14, err_msg=name)
    assert step.step_count == job.STEPS + -(-job.EPOCH_ROWS // job.BATCH)
    assert len(step.kernels()) == len(step.gradient_program.kernels()) + len(step.update_program.kernels())


def test_overlapped_split_step_writes_each_gradient_when_ready_and_equals_the_plain_split():
    """bucket_mb: the gradient program writes the last layer's gradients before the first layer's
    backward product, and run kernel by kernel it gives the plain split step's bits."""
    import distributed_training as job
    plain = job.sp.compile_step(*job.model(), seed=job.SEED, distributed=SingleProcess())
    overlapped = job.sp.compile_step(*job.model(), seed=job.SEED, distributed=SingleProcess(), bucket_mb=1e-4)
    plan = overlapped.gradient_program.plan
    written = dict(zip([a["name"] for a in plan["arguments"] if a["name"].endswith("__gradient_sum")],
                       [None] * 4))
    kernels = plan["kernels"]
    last_product = max(k for k, kernel in enumerate(kernels) if kernel["kind"] == "bmm")
    for k, kernel in enumerate(kernels):
        for name in written:
            if name in kernel["out"].split(", "):
                written[name] = k
    assert written["w2__gradient_sum"] < last_product < written["w1__gradient_sum"], (written, last_product)
    assert len(overlapped.buckets) >= 3 and overlapped.buckets[-1][2] is None
    assert [b[0] for b in overlapped.buckets[1:]] == [b[1] for b in overlapped.buckets[:-1]]  # contiguous
    assert plain.buckets is None
    assert job.run_schedule(plain) == job.run_schedule(overlapped)
    for name in plain.params:
        assert plain.params[name].tobytes() == overlapped.params[name].tobytes(), name


def test_bucket_mb_is_positive_and_for_distributed_steps_only():
    import distributed_training as job
    with pytest.raises(ValueError, match="bucket_mb must be a positive"):
        job.sp.compile_step(*job.model(), distributed=SingleProcess(), bucket_mb=0)
    with pytest.raises(ValueError, match="distributed training only"):
        job.sp.compile_step(*job.model(), bucket_mb=1.0)


def test_split_step_updates_buffers_and_draws_dropout_as_the_fused_step():
    """Batch norm's running statistics go through the flat buffer (rows x new value, then / rows) and
    rank 0 draws the fused step's dropout masks."""
    import compiler as sp
    from compiler import optim

    def build():
        x = sp.Input("x", ("batch", 5), dtype="float64")
        y = sp.Input("y", ("batch",), dtype="int64")
        w = sp.Param("w", (5, 4), dtype="float64")
        gamma = sp.Param("g", (4,), dtype="float64", init="ones")
        beta = sp.Param("b", (4,), dtype="float64", init="zeros")
        mean = sp.Buffer("m", (4,), dtype="float64", init="zeros")
        var = sp.Buffer("v", (4,), dtype="float64", init="ones")
        h = sp.dropout(sp.relu(sp.batch_norm(x @ w, gamma, beta, mean, var)), p=0.3)
        return sp.cross_entropy(h, y), optim.SGD(lr=0.1, momentum=0.9)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.integers(0, 4, 12)
    fused = sp.compile_step(*build(), seed=2)
    split = sp.compile_step(*build(), seed=2, distributed=SingleProcess())
    for _ in range(3):
        np.testing.assert_allclose(split(x=x, y=y), fused(x=x, y=y), rtol=1e-12)
    for arrays, expected in ((split.params, fused.params), (split.buffers, fused.buffers)):
        for name in expected:
            np.testing.assert_allclose(arrays[name], expected[name], rtol=1e-12, atol=1e-14, err_msg=name)
    assert not np.allclose(split.buffers["m"], 0)


def test_split_step_saves_loads_and_checks_consistency(tmp_path):
    import distributed_training as job
    step = job.sp.compile_step(*job.model(), seed=job.SEED, distributed=SingleProcess())
    job.run_schedule(step)
    step.save(tmp_path / "a.npz")
    saved = {name: array.copy() for name, array in step.params.items()}
    digest = step.digest()
    job.run_schedule(step)
    assert step.digest() != digest
    step.load(tmp_path / "a.npz")
    assert step.digest() == digest and all(np.array_equal(step.params[k], v) for k, v in saved.items())
    step.check_consistent()
    fused = job.sp.compile_step(*job.model(), seed=job.SEED)
    fused.load(tmp_path / "a.npz")  # the same file format as TrainStep.save
    assert fused.step_count == step.step_count
    with pytest.raises(ValueError, match="checkpoint"):
        np.savez(tmp_path / "bad.npz", nothing=np.zeros(1))
        step.load(tmp_path / "bad.npz")


def test_split_step_needs_one_float_dtype_a_batch_axis_and_a_row_somewhere():
    import compiler as sp
    from compiler import optim
    x = sp.Input("x", ("batch", 3), dtype="float64")
    w = sp.Param("w", (3, 2), dtype="float64")
    v = sp.Param("v", (2,), dtype="float32")
    with pytest.raises(TypeError, match="one dtype"):
        sp.compile_step(sp.sum(x @ w + v.astype("float64")), optim.SGD(lr=0.1), distributed=SingleProcess())
    t = sp.Input("t", ("T", "batch", 3), dtype="float64")
    with pytest.raises(ValueError, match="first axis"):
        sp.compile_step(sp.mean(x @ w) + sp.mean(t @ w), optim.SGD(lr=0.1), distributed=SingleProcess())
    step = sp.compile_step(sp.mean(x @ w), optim.SGD(lr=0.1), distributed=SingleProcess())
    with pytest.raises(ValueError, match="every shard was empty"):
        step(x=np.zeros((0, 3)))
