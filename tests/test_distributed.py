"""Data-parallel training on MPI: two ranks started on this machine with ``mpiexec -n 2``.

The two-rank tests need mpi4py and an MPI library (``pip install -e ".[mpi]"``) and are skipped
without them. Tolerance against one process: float64, rtol 1e-9 and atol 1e-12. The two runs
differ only in summation order (a shard's rows summed, then the two shards, against all rows in
one sum), about 1e-16 relative per step, which Adam's divisions and a few steps amplify by at
most a few orders of magnitude.
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
from runtime.distributed import ALIGNMENT, LOSS_SUM_INPUT, ROWS_ENTRY, FlatLayout, rank_seed, shard

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
    np.testing.assert_allclose(ranks[0]["losses"], losses, rtol=1e-9, atol=1e-12)
    for name, value in {**{f"param/{k}": v for k, v in params.items()},
                        **{f"state/{k}": v for k, v in state.items()}}.items():
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-9, atol=1e-12, err_msg=name)
    initial = job.sp.compile_step(*job.model(), seed=job.SEED).params
    assert not np.allclose(ranks[0]["param/w1"], initial["w1"])  # it trained


@needs_mpi
def test_symprop_train_distributed_on_two_ranks_reaches_the_single_process_accuracy():
    result = run_ranks(2, "-m", "compiler.cli", "train", "--distributed", "--quiet", "examples/digits_mlp.toml")
    accuracies = re.findall(r"test accuracy ([\d.]+)%", result.stdout)
    assert len(accuracies) == 1, result.stdout  # rank 0 reports, rank 1 is silent
    assert "2 ranks" in result.stdout
    assert float(accuracies[0]) >= 94.0  # one process: about 96 %


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
