"""Compile time: where it goes, the first call against JAX's, and a cached compile in a fresh process.

    python benchmarks/bench_compile.py [--models uat,small,residual,large,cnn,rnn,lstm] [--repeats 3]
                                       [--jax-python PATH]

Every measurement runs in a fresh Python process (one thread), so nothing is warm that a user's
first run would not have warm; the imports of symprop and JAX are timed apart and not counted.

  cold     symprop with an empty compile cache: declaration, compile_step (differentiation,
           simplification, scheduling, LLVM IR, LLVM optimisation, machine code) and the first step
  cached   the same in a new process whose compile cache holds the program: what every run after
           the first costs (``compile_step`` then differentiates, hashes the program and loads its
           machine code)
  jax      jax.jit's first call: declaration, tracing, XLA compilation and the first step
           (no persistent compilation cache, JAX's default)

The first table splits the cold compile into the stages ``step.compile_seconds`` records; the second
puts the first calls side by side. Targets (issue 14): symprop's first call at most JAX's first call
on every workload; a cached compile in a fresh process at most 50 ms on every workload. Medians of
--repeats processes each. Workloads: bench_train.py's (small, large, cnn, rnn, lstm) and
small_workloads.py's (uat, residual); the MLPs are mlp_workload.py's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ("uat", "small", "residual", "large", "cnn", "rnn", "lstm")
STAGES = ("declare", "differentiate", "initialise", "key", "cache", "simplify", "schedule", "generate IR",
          "LLVM optimise", "machine code", "load", "runtime")
CACHED_TARGET = 0.050


# ---- one measurement, in a child process ------------------------------------------------------------


def child(implementation: str, name: str) -> dict:
    """Import, declare and build the workload's step, then call it once; seconds of each part."""
    from common import single_threaded_environment
    single_threaded_environment()
    started = time.perf_counter()
    import numpy as np
    if implementation == "jax":
        import jax
        from common import optional_module
        optax = optional_module("optax")
    import compiler as sp
    imported = time.perf_counter()
    declare, build, arrays = _workload(name, implementation)
    if implementation == "jax":
        weights = declare()
        declared = time.perf_counter()
        step, _ = build(jax, optax, weights)
        x, y = (jax.numpy.asarray(a) for a in arrays())
        built = time.perf_counter()
        loss = step(x, y)
        seconds = {}
    else:
        loss_node, optimizer = declare()
        declared = time.perf_counter()
        step = sp.compile_step(loss_node, optimizer, seed=0)
        built = time.perf_counter()
        x, y = arrays()
        loss = step(x=x, y=y)
        seconds = step.compile_seconds
    first_step = time.perf_counter() - built
    np.asarray(loss)
    return {"import": imported - started, "declare": declared - imported, "build": built - declared,
            "first step": first_step, "first call": time.perf_counter() - imported, "stages": seconds,
            "loss": float(loss)}


def _workload(name: str, implementation: str):
    """(declare, build, arrays): symprop's declare gives (loss, optimizer) and its step is compile_step;
    JAX's declare gives the initial weights (NumPy; not timed as JAX work) and build its step."""
    sys.path.insert(0, HERE)
    if name in ("uat", "residual"):
        import small_workloads as w
        arrays = lambda: w.data(name, w.BATCH[name])  # noqa: E731
        if implementation == "jax":
            return lambda: _initial_weights(w.symprop_loss(name)), lambda j, o, p: w.jax_step(j, o, name, p), arrays
        return lambda: (w.symprop_loss(name), w.symprop_optimizer(name)), None, arrays
    if name in ("rnn", "lstm"):
        import rnn_workload as w
        arrays = lambda: (w.time_major(w.data(w.BATCH)[0]) if implementation == "jax" else w.data(w.BATCH)[0],  # noqa: E731
                          w.data(w.BATCH)[1])
        if implementation == "jax":
            return lambda: _initial_weights(w.symprop_loss(name)), lambda j, o, p: w.jax_step(j, o, name, p), arrays
        return lambda: (w.symprop_loss(name), w.symprop_optimizer()), None, arrays
    if name == "cnn":
        import cnn_workload as w
        arrays = lambda: w.data(w.BATCH)  # noqa: E731
        if implementation == "jax":
            return lambda: _initial_weights(w.symprop_loss()), lambda j, o, p: w.jax_step(j, o, p), arrays
        return lambda: (w.symprop_loss(), w.symprop_optimizer()), None, arrays
    import mlp_workload as w
    widths, batch = w.SIZES[name]
    arrays = lambda: w.data(widths, batch, batch)  # noqa: E731
    if implementation == "jax":
        return (lambda: list(_initial_weights(w.symprop_loss(widths)).values()),
                lambda j, o, p: w.jax_step(j, p), arrays)
    return lambda: (w.symprop_loss(widths), w.symprop_optimizer()), None, arrays


def _initial_weights(loss) -> dict:
    """symprop's seeded initial values of the loss's Params, by name (the weights every implementation
    starts from)."""
    from compiler.initializers import initial_values
    from compiler.traversal import leaves
    return initial_values([leaf for leaf in leaves([loss]) if leaf.op == "param"], 0)


# ---- the parent: processes, medians, tables --------------------------------------------------------------


def run_child(python: str, implementation: str, name: str, cache_dir: str) -> dict:
    env = dict(os.environ, SYMPROP_CACHE_DIR=cache_dir, SYMPROP_CACHE="1", PYTHONPATH=HERE + os.pathsep
               + os.path.dirname(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([python, os.path.abspath(__file__), "--child", implementation, name], env=env,
                         capture_output=True, text=True, cwd=os.path.dirname(HERE))
    if out.returncode != 0:
        raise RuntimeError(f"{implementation} {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(name: str, repeats: int, jax_python: str | None) -> dict:
    """Medians over `repeats` fresh cache directories: cold, cached (twice per directory) and jax."""
    runs = {"cold": [], "cached": [], "jax": []}
    for _ in range(repeats):
        cache_dir = tempfile.mkdtemp(prefix="symprop-bench-compile-")
        try:
            runs["cold"].append(run_child(sys.executable, "symprop", name, cache_dir))
            runs["cached"] += [run_child(sys.executable, "symprop", name, cache_dir) for _ in range(2)]
            if jax_python:
                runs["jax"].append(run_child(jax_python, "jax", name, cache_dir))
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return {kind: _median(kind_runs) for kind, kind_runs in runs.items() if kind_runs}


def _median(runs: list) -> dict:
    result = {key: statistics.median(r[key] for r in runs) for key in runs[0] if key not in ("stages", "loss")}
    stages = {s for r in runs for s in r["stages"]}
    result["stages"] = {s: statistics.median(r["stages"].get(s, 0.0) for r in runs) for s in stages}
    result["loss"] = runs[0]["loss"]
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.0f}" if seconds >= 0.0095 else f"{seconds * 1e3:.1f}"


def print_stages(results: dict, markdown: bool) -> None:
    names = list(results)
    rows = []
    for stage in STAGES:
        values = [results[n]["cold"]["declare"] if stage == "declare" else results[n]["cold"]["stages"].get(stage)
                  for n in names]
        if any(values):
            rows.append([stage] + [ms(v) if v else "" for v in values])
    rows.append(["compile_step"] + [ms(results[n]["cold"]["build"]) for n in names])
    rows.append(["first step"] + [ms(results[n]["cold"]["first step"]) for n in names])
    _table("Cold compile (empty cache), ms per stage", ["stage"] + names, rows, markdown)


def print_first_calls(results: dict, markdown: bool) -> None:
    rows = []
    for name, r in results.items():
        jax = r.get("jax")
        ratio = f"{r['cold']['first call'] / jax['first call']:.2f}x" if jax else "-"
        cached = r["cached"]["build"]
        rows.append([name, ms(r["cold"]["first call"]), ms(jax["first call"]) if jax else "-", ratio,
                     "met" if jax and r["cold"]["first call"] <= jax["first call"] else ("NOT met" if jax else "-"),
                     ms(cached), ms(r["cached"]["first call"]), "met" if cached <= CACHED_TARGET else "NOT met",
                     ms(r["cold"]["import"]) + (f" / {ms(jax['import'])}" if jax else "")])
    _table("First call (declaration + compile + first step), ms; cached: compile_step with the program in the "
           "cache (and the whole first call)",
           ["workload", "symprop cold", "jax.jit", "ratio", "<= jax", "cached compile_step", "cached first call",
            "<= 50 ms", "import symprop / jax"], rows, markdown)


def _table(title: str, header: list, rows: list, markdown: bool) -> None:
    print(f"\n{title}")
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    for row in [header] + rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


def find_jax_python(option: str | None) -> str | None:
    """The interpreter that runs the JAX side: --jax-python, else this one when it has jax."""
    if option:
        return option
    probe = subprocess.run([sys.executable, "-c", "import jax"], capture_output=True)
    return sys.executable if probe.returncode == 0 else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(WORKLOADS), help=f"comma-separated: {', '.join(WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes (and cache directories) per median")
    parser.add_argument("--jax-python", help="a Python with jax (and optax) and symprop's dependencies")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--child", nargs=2, metavar=("IMPLEMENTATION", "WORKLOAD"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(*options.child)))
        return
    models = options.models.split(",")
    unknown = [m for m in models if m not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; expected {', '.join(WORKLOADS)}")
    from common import machine_summary
    print(machine_summary())
    jax_python = find_jax_python(options.jax_python)
    print(f"jax: {jax_python or 'not installed (pass --jax-python): no JAX column'}")
    results = {}
    for name in models:
        results[name] = measure(name, options.repeats, jax_python)
        print(f"  {name}: cold {ms(results[name]['cold']['first call'])} ms, cached compile_step "
              f"{ms(results[name]['cached']['build'])} ms", flush=True)
    print_stages(results, options.markdown)
    print_first_calls(results, options.markdown)


if __name__ == "__main__":
    main()
