"""Shared by the benchmark scripts: a single-threaded environment, medians of repeated runs, tables.

Import this module and call `single_threaded_environment()` before NumPy (or
PyTorch, JAX) is imported: OpenBLAS, OpenMP and XLA read their thread settings
when they load.
"""
from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import platform
import statistics
import time

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SYMPROP_THREADS")
# The environment may pin OpenBLAS to its AVX2 kernels (see docs/benchmarks.md): unset for a fair comparison.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def single_threaded_environment(threads: int = 1) -> list[str]:
    """Set every library's thread count to `threads` and unset OpenBLAS overrides.

    Returns the names of the overrides that were set (and are now unset) so the
    script can say so.
    """
    unset = [name for name in OPENBLAS_OVERRIDES if os.environ.pop(name, None) is not None]
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_SINGLE_THREAD).strip()
    return unset


@contextlib.contextmanager
def environment(**variables):
    """Set environment variables for the duration of a block (e.g. a compile under SYMPROP_BLAS=1)."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def gemm_setting() -> str:
    """Which GEMM compiled programs use, as the environment decides it."""
    if os.environ.get("SYMPROP_BLAS", "0") not in ("", "0"):
        return "SYMPROP_BLAS=1: large products call NumPy's OpenBLAS"
    return "symprop's own loops for every product (SYMPROP_BLAS unset)"


def describe_unset(unset: list[str]) -> str:
    return ", ".join(unset) if unset else f"nothing ({', '.join(OPENBLAS_OVERRIDES)} were not set)"


def optional_module(name: str):
    """The module, or None when it is not installed (benchmarks then drop its column)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def jitted_step(jax, update, params, state):
    """step(x, y) -> loss (a float) of a jitted ``update(params, state, x, y) -> (loss, params, state)``,
    which donates the old parameters and state: how every jax.jit baseline trains."""
    update_jit = jax.jit(update, donate_argnums=(0, 1))
    holder = {"params": params, "state": state}

    def step(x, y):
        loss, holder["params"], holder["state"] = update_jit(holder["params"], holder["state"], x, y)
        return float(loss)

    return step


def optax_adam_step(jax, optax, loss_fn, params, lr: float, betas: tuple, eps: float):
    """step(x, y) -> loss of optax.adam minimising ``loss_fn(params, x, y)``, jitted (``jitted_step``)."""
    transform = optax.adam(lr, b1=betas[0], b2=betas[1], eps=eps)

    def update(p, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, state = transform.update(grads, state, p)
        return loss, optax.apply_updates(p, updates), state

    return jitted_step(jax, update, params, transform.init(params))


# ---- timing ---------------------------------------------------------------------------------------


def median_seconds(call, budget: float = 0.5, min_reps: int = 5) -> float:
    """Median wall time of `call()` over repeated runs for about `budget` seconds (one warm-up call)."""
    call()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def calls_per_sample(call, min_seconds: float) -> int:
    """How many back-to-back calls take at least `min_seconds` (a power of two)."""
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            call()
        if time.perf_counter() - start >= min_seconds or count >= 1 << 20:
            return count
        count *= 2


def compare(calls: dict, rounds: int = 15, sample_seconds: float = 0.02) -> dict:
    """{name: median seconds per call}, measuring the candidates in interleaved rounds.

    On a shared machine the load drifts; interleaving gives every candidate the
    same conditions, and the median over rounds drops the rounds that another
    process disturbed. Each sample times enough back-to-back calls to last
    about `sample_seconds`.
    """
    return {name: statistics.median(values) for name, values in compare_rounds(calls, rounds, sample_seconds).items()}


def compare_rounds(calls: dict, rounds: int = 15, sample_seconds: float = 0.02) -> dict:
    """{name: [seconds per call in each round]}: the samples behind `compare`."""
    counts = {}
    for name, call in calls.items():
        call()  # warm-up (first-call compilation, allocations)
        counts[name] = calls_per_sample(call, sample_seconds)
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            count = counts[name]
            start = time.perf_counter()
            for _ in range(count):
                call()
            samples[name].append((time.perf_counter() - start) / count)
    return samples


# ---- reporting -------------------------------------------------------------------------------------


def format_time(seconds: float) -> str:
    """Microseconds with sensible digits: 3.21, 45.6, 1,234."""
    us = seconds * 1e6
    if us < 10:
        return f"{us:.2f}"
    if us < 100:
        return f"{us:.1f}"
    return f"{us:,.0f}"


def print_table(title: str, rows: list, columns: list, reference: str | None = None, fastest: bool = True,
                markdown: bool = False) -> None:
    """Median times in microseconds, one row per workload, one column per implementation.

    rows: [(label, {column: seconds or None})]. After the times, for every row,
    the ratio of each time to `reference`'s (time / reference: < 1 is faster)
    and to the row's fastest. Missing columns (not installed) are dropped.
    """
    present = [c for c in columns if any(values.get(c) is not None for _, values in rows)]
    print(f"\n{title}")
    cells = [[label] + [format_time(values[c]) if values.get(c) is not None else "-" for c in present]
             for label, values in rows]
    header = ["workload (us)"] + present
    _print_grid(header, cells, markdown)
    if reference in present:
        ratio_cells = [[label] + [_ratio(values.get(c), values.get(reference)) for c in present] for label, values in rows]
        print(f"time / {reference} (below 1: faster than {reference})")
        _print_grid(["workload"] + present, ratio_cells, markdown)
    if fastest:
        ratio_cells = []
        for label, values in rows:
            best = min(v for c, v in values.items() if c in present and v is not None)
            ratio_cells.append([label] + [_ratio(values.get(c), best) for c in present])
        print("time / fastest in the row")
        _print_grid(["workload"] + present, ratio_cells, markdown)


def _ratio(value, reference) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def _print_grid(header: list, cells: list, markdown: bool) -> None:
    widths = [max(len(str(row[i])) for row in [header] + cells) for i in range(len(header))]
    if markdown:
        print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
        print("|" + "|".join("-" * (w + 1) + ":" if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|")
        for row in cells:
            print("| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                    for i, (c, w) in enumerate(zip(row, widths))) + " |")
        return
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def machine_summary() -> str:
    """CPU, affinity, load average, date and library versions: what a reader needs to compare runs."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        cpu += f" (LLVM: {llvm.get_host_cpu_name()})"
    except Exception:  # noqa: BLE001 (the summary is informative only)
        pass
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    versions = []
    for name in ("numpy", "llvmlite", "torch", "jax", "pytensor"):
        module = optional_module(name) if name in ("numpy", "llvmlite") else _installed_version(name)
        if isinstance(module, str):
            versions.append(f"{name} {module}")
        elif module is not None:
            versions.append(f"{name} {module.__version__}")
    return (f"date: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
            f"cpu: {cpu}; {os.cpu_count()} logical cores; this process may run on {affinity}\n"
            f"load average: {load_average()}\n"
            f"python {platform.python_version()}; " + ", ".join(versions))


def _installed_version(name: str):
    """The distribution version without importing the package (importing torch or jax is slow)."""
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
