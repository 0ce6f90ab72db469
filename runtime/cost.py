"""Per-kernel cost of a compiled program: FLOPs, bytes moved, arithmetic
intensity and measured time, with totals per phase (forward, backward, update).

FLOP and byte counts are the code generator's estimates (expressions in the
symbolic dimensions, evaluated at the current binding); times are medians of
repeated runs of each kernel alone on the program's live buffers (of single runs,
each after a run of the whole program, for a kernel that writes over its input).
"""
from __future__ import annotations

import ctypes
import statistics
import time
from dataclasses import dataclass

RUNNER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


def evaluate_count(expression: str, dims: dict) -> float:
    """A count like '24*batch + 48' at a binding (only +, * and names appear)."""
    return float(eval(expression, {"__builtins__": {}}, dict(dims)))  # noqa: S307 (generated arithmetic only)


@dataclass
class KernelCost:
    index: int
    kind: str
    phase: str
    out: str
    flops: float
    bytes: float
    seconds: float

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0


class CostReport:
    def __init__(self, rows: list, dims: dict):
        self.rows, self.dims = rows, dims

    def totals(self) -> dict:
        """phase -> {"flops", "bytes", "seconds"} (and "total")."""
        result = {}
        for row in self.rows:
            for phase in (row.phase, "total"):
                entry = result.setdefault(phase, {"flops": 0.0, "bytes": 0.0, "seconds": 0.0})
                entry["flops"] += row.flops
                entry["bytes"] += row.bytes
                entry["seconds"] += row.seconds
        return result

    def __str__(self):
        binding = ", ".join(f"{k}={v}" for k, v in self.dims.items()) or "no symbolic dims"
        lines = [f"cost per kernel ({binding}); time: median of repeated runs of each kernel alone "
                 "(each includes ~0.2 us of call overhead)",
                 f"{'#':>3} {'kind':<11} {'phase':<16} {'output':<18} {'MFLOP':>9} {'KB':>9} {'FLOP/B':>7} {'us':>9} {'GFLOP/s':>8}"]
        for r in self.rows:
            rate = r.flops / r.seconds / 1e9 if r.seconds else 0.0
            lines.append(f"{r.index:>3} {r.kind:<11} {r.phase:<16} {r.out[:18]:<18} {r.flops / 1e6:>9.3f} "
                         f"{r.bytes / 1e3:>9.1f} {r.intensity:>7.2f} {r.seconds * 1e6:>9.2f} {rate:>8.2f}")
        for phase, t in self.totals().items():
            rate = t["flops"] / t["seconds"] / 1e9 if t["seconds"] else 0.0
            lines.append(f"    {phase:<46} {t['flops'] / 1e6:>9.3f} {t['bytes'] / 1e3:>9.1f} {'':>7} "
                         f"{t['seconds'] * 1e6:>9.2f} {rate:>8.2f}")
        return "\n".join(lines)


def _fresh_runs(executable, run, args, count: int) -> float:
    """Median time of a kernel that writes over a buffer it reads (``overwrites``): run again on
    its own output it would compute from other values, so each timed run follows a run of the
    whole program, and one more run leaves every buffer as the program does."""
    samples = []
    for _ in range(count):
        executable._entry(*args)
        start = time.perf_counter()
        run(*args)
        samples.append(time.perf_counter() - start)
    executable._entry(*args)
    return statistics.median(samples)


def measure(executable, addresses: dict, repeat: int = 5, min_seconds: float = 2e-3) -> CostReport:
    """Time every kernel of a bound executable (call it once first)."""
    plan, dims = executable.plan, executable.binding
    if dims is None:
        raise RuntimeError("cost(): run the function once (or pass its arguments) so shapes are bound")
    rows = []
    for k, (kernel, runner) in enumerate(zip(plan["kernels"], plan.get("kernel_runners", []))):
        run = RUNNER_TYPE(addresses[runner])
        args = (executable.table_address, executable.dims_address)
        if kernel.get("overwrites"):
            rows.append(KernelCost(k, kernel["kind"], kernel.get("phase", "forward"), kernel["out"],
                                   evaluate_count(kernel["flops"], dims), evaluate_count(kernel["bytes"], dims),
                                   _fresh_runs(executable, run, args, 5 * repeat)))
            continue
        run(*args)
        count, elapsed = 1, 0.0
        while elapsed < min_seconds / 5 and count < 1 << 20:
            count *= 2
            start = time.perf_counter()
            for _ in range(count):
                run(*args)
            elapsed = time.perf_counter() - start
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(count):
                run(*args)
            samples.append((time.perf_counter() - start) / count)
        rows.append(KernelCost(k, kernel["kind"], kernel.get("phase", "forward"), kernel["out"],
                               evaluate_count(kernel["flops"], dims), evaluate_count(kernel["bytes"], dims),
                               statistics.median(samples)))
    return CostReport(rows, dict(dims))
