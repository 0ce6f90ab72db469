"""One training step (forward, backward, update) of two MLPs, a CNN, an RNN and an LSTM, side by side: median us.

    python benchmarks/bench_train.py [--rounds 15] [--models small,large,cnn,rnn,lstm,uat,residual] [--markdown]
                                     [--cost [MODELS]]

  small   64-128-10, batch 64, softmax cross-entropy, Adam(lr=1e-3)
  large   784-1024-1024-10, batch 256, softmax cross-entropy, Adam(lr=1e-3)
  cnn     batch 64 of 1x28x28: conv 16 3x3 pad 1, ReLU, max-pool 2, conv 32 3x3 pad 1, ReLU,
          max-pool 2, dense 1568->10, softmax cross-entropy, SGD(lr=0.01, momentum=0.9)
          (cnn_workload.py)
  rnn     tanh RNN, T=32, batch 32, 32 inputs, hidden 128, the last step's hidden state -> dense 128->10,
          softmax cross-entropy, Adam(lr=1e-3); symprop through one compiler.scan (rnn_workload.py)
  lstm    an LSTM of the same sizes (rnn_workload.py)
  uat     1-64-1 tanh regression of sin(3x), batch 256, mean squared error, SGD(lr=0.05) (small_workloads.py)
  residual  8-layer tanh residual MLP, width 64, batch 64, softmax cross-entropy, Adam(lr=1e-3)
          (small_workloads.py)

Implementations: symprop's compiled step (one call per step, and per step
inside one `run_epoch` call), a hand-written NumPy forward/backward/update and,
when installed, PyTorch eager (torch.optim), jax.jit (optax if installed,
otherwise the same update in jax.numpy) and, for the MLPs, PyTensor. All start
from the same weights (symprop's seeded initialisation, copied) and train on
the same batch; the losses of the first two steps are printed for each.
Everything runs on one thread (see common.py). Targets (issue 4): the small
MLP faster than every other implementation and at least 3x faster than NumPy;
the large one within 1.2x of the fastest. Issue 10: the CNN step at most 0.4x
the time of PyTorch eager, every convolution kernel at over half the GFLOP/s
of the GEMM (`--cost cnn` prints both). Issue 11: the RNN trained through
`scan` at most 0.5x the time of the fastest other implementation, the LSTM
beside PyTorch eager (torch.nn.RNN / torch.nn.LSTM), and symprop's first call
(declaration, a cold compile_step, the first step) at most JAX's first call
(tracing, jit compilation, the first step); both are printed for rnn and lstm.
Issue 14 (small models): the 1-64-1 step (uat) at most 0.25x the time of the
fastest anchor (NumPy, PyTorch eager, jax.jit), the small MLP at most 0.35x.
"""
from common import describe_unset, single_threaded_environment

_UNSET = single_threaded_environment()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402

import cnn_workload as cnn  # noqa: E402
import compiler as sp  # noqa: E402
import mlp_workload as mlp  # noqa: E402
import rnn_workload as rnn  # noqa: E402
import small_workloads as tiny  # noqa: E402
from common import (compare_rounds, environment, gemm_setting, load_average, machine_summary,  # noqa: E402
                    optional_module, print_table)

# small, large: mlp_workload.py; cnn: cnn_workload.py; rnn, lstm: rnn_workload.py; uat, residual: small_workloads.py
MODELS = {**mlp.SIZES, "cnn": None, "rnn": None, "lstm": None, "uat": None, "residual": None}
ANCHORS = ("numpy", "torch", "jax.jit")  # issue 14's targets are against the fastest of these
EPOCH_BATCHES = 16  # batches per run_epoch call when timing the native epoch loop
SAMPLE_SECONDS = float(os.environ.get("SYMPROP_BENCH_SAMPLE", "0.02"))  # seconds of calls per timed sample
COLUMNS = ["symprop", "symprop epoch", "symprop BLAS", "numpy", "torch", "jax.jit", "pytensor"]


# ---- one workload ----------------------------------------------------------------------------------


@dataclass
class Workload:
    """A model's symprop step and the other implementations' steps, ready to time on the same batch."""
    name: str
    label: str
    step: object  # symprop's TrainStep
    batch: int
    x_all: np.ndarray  # EPOCH_BATCHES batches for run_epoch; the first is the timed batch
    y_all: np.ndarray
    steps: dict = field(default_factory=dict)  # implementation -> fn(x, y) -> loss
    inputs: dict = field(default_factory=dict)  # implementation -> (x, y) in its own array type
    notes: list = field(default_factory=list)
    setup: dict = field(default_factory=dict)  # implementation -> seconds to build its step (timed: rnn, lstm)
    first_call: dict = field(default_factory=dict)  # implementation -> setup + its first step, seconds

    @property
    def x(self):
        return self.x_all[:self.batch]

    @property
    def y(self):
        return self.y_all[:self.batch]


def large_products(widths, batch) -> bool:
    """Whether some product of this model is large enough for SYMPROP_BLAS=1 to change its code."""
    from compiler.codegen.gemm import BLAS_MIN_WORK
    return any(batch * n_in * n_out >= BLAS_MIN_WORK for n_in, n_out in zip(widths, widths[1:]))


def compiled(name: str, build):
    """build() and a note of how long it took: symprop's compile_step, or the load from its cache."""
    start = time.perf_counter()
    built = build()
    return built, f"{name}: symprop compile_step {time.perf_counter() - start:.2f} s (cold, or loaded from the cache)"


def prepare_mlp(name: str, frameworks: dict) -> Workload:
    widths, batch = MODELS[name]
    (step, names), compile_note = compiled(name, lambda: mlp.symprop_step(widths))
    weights = [step.params[n].copy() for n in names]
    x_all, y_all = mlp.data(widths, batch, batch * EPOCH_BATCHES)
    work = Workload(name, f"{'-'.join(map(str, widths))} batch {batch}", step, batch, x_all, y_all,
                    notes=[compile_note])
    x, y = work.x.copy(), work.y.copy()
    if large_products(widths, batch):
        with environment(SYMPROP_BLAS="1"):
            blas_step, _ = mlp.symprop_step(widths)
        for n, w in zip(names, weights):
            np.copyto(blas_step.params[n], w)
        work.steps["symprop BLAS"] = lambda x, y: blas_step(x=x, y=y)
        work.inputs["symprop BLAS"] = (x, y)
    work.steps["numpy"], work.inputs["numpy"] = mlp.NumpyMLP(weights), (x, y)
    if "torch" in frameworks:
        torch = frameworks["torch"]
        work.steps["torch"] = mlp.torch_step(torch, weights)
        work.inputs["torch"] = (torch.from_numpy(x), torch.from_numpy(y))
    if "jax" in frameworks:
        jax = frameworks["jax"]
        work.steps["jax.jit"], kind = mlp.jax_step(jax, weights)
        work.inputs["jax.jit"] = (jax.numpy.asarray(x), jax.numpy.asarray(y))
        work.notes.append(f"jax.jit (MLPs): {kind}")
    if "pytensor" in frameworks:
        work.steps["pytensor"], work.inputs["pytensor"] = mlp.pytensor_step(frameworks["pytensor"], weights), (x, y)
    return work


def prepare_cnn(frameworks: dict) -> Workload:
    step, compile_note = compiled("cnn", cnn.symprop_step)
    weights = {name: step.params[name].copy() for name in cnn.PARAMS}
    x_all, y_all = cnn.data(cnn.BATCH * EPOCH_BATCHES)
    work = Workload("cnn", cnn.LABEL, step, cnn.BATCH, x_all, y_all, notes=[compile_note])
    x, y = work.x.copy(), work.y.copy()
    work.steps["numpy"], work.inputs["numpy"] = cnn.NumpyCNN(weights), (x, y)
    if "torch" in frameworks:
        torch = frameworks["torch"]
        work.steps["torch"] = cnn.torch_step(torch, weights)
        work.inputs["torch"] = (torch.from_numpy(x), torch.from_numpy(y))
    if "jax" in frameworks:
        jax = frameworks["jax"]
        work.steps["jax.jit"], kind = cnn.jax_step(jax, optional_module("optax"), weights)
        work.inputs["jax.jit"] = (jax.numpy.asarray(x), jax.numpy.asarray(y))
        work.notes.append(f"jax.jit (CNN): {kind}")
    return work


def prepare_small(name: str, frameworks: dict) -> Workload:
    """The 1-64-1 regression or the residual MLP (small_workloads.py), every implementation from
    symprop's initial weights."""
    step, compile_note = compiled(name, lambda: tiny.symprop_step(name))
    weights = {k: v.copy() for k, v in step.params.items()}
    batch = tiny.BATCH[name]
    x_all, y_all = tiny.data(name, batch * EPOCH_BATCHES)
    note = f"{compile_note}, {len(step.kernels())} kernels"
    work = Workload(name, tiny.LABELS[name], step, batch, x_all, y_all, notes=[note])
    x, y = work.x.copy(), work.y.copy()
    work.steps["numpy"], work.inputs["numpy"] = tiny.NumpySmall(name, weights), (x, y)
    if "torch" in frameworks:
        torch = frameworks["torch"]
        work.steps["torch"] = tiny.torch_step(torch, name, weights)
        work.inputs["torch"] = (torch.from_numpy(x), torch.from_numpy(y))
    if "jax" in frameworks:
        jax = frameworks["jax"]
        work.steps["jax.jit"], kind = tiny.jax_step(jax, optional_module("optax"), name, weights)
        work.inputs["jax.jit"] = (jax.numpy.asarray(x), jax.numpy.asarray(y))
        work.notes.append(f"jax.jit ({name}): {kind}")
    return work


def prepare_recurrent(cell: str, frameworks: dict) -> Workload:
    """The RNN or LSTM (rnn_workload.py); each implementation's build is timed, symprop's compile cold
    (SYMPROP_CACHE=0: neither read from nor written to the on-disk cache)."""
    start = time.perf_counter()
    with environment(SYMPROP_CACHE="0"):
        step = rnn.symprop_step(cell)
    setup = {"symprop": time.perf_counter() - start}
    weights = {name: step.params[name].copy() for name in rnn.params(cell)}
    x_all, y_all = rnn.data(rnn.BATCH * EPOCH_BATCHES)
    note = f"{cell}: symprop compile_step {setup['symprop']:.2f} s (cold), {len(step.kernels())} kernels"
    work = Workload(cell, rnn.LABELS[cell], step, rnn.BATCH, x_all, y_all, setup=setup, notes=[note])
    x, y = rnn.time_major(work.x), work.y.copy()
    work.steps["numpy"], work.inputs["numpy"] = rnn.NumpyRNN(cell, weights), (x, y)
    if "torch" in frameworks:
        torch = frameworks["torch"]
        start = time.perf_counter()
        work.steps["torch"] = rnn.torch_step(torch, cell, weights)
        work.setup["torch"] = time.perf_counter() - start
        work.inputs["torch"] = (torch.from_numpy(x), torch.from_numpy(y))
    if "jax" in frameworks:
        jax = frameworks["jax"]
        start = time.perf_counter()
        work.steps["jax.jit"], kind = rnn.jax_step(jax, optional_module("optax"), cell, weights)
        work.setup["jax.jit"] = time.perf_counter() - start
        work.inputs["jax.jit"] = (jax.numpy.asarray(x), jax.numpy.asarray(y))
        work.notes.append(f"jax.jit ({cell}): lax.scan, {kind}")
    return work


def measure(work: Workload, rounds: int):
    """Check the first two losses agree, then time one step of every implementation in interleaved rounds."""
    step, x, y = work.step, work.x.copy(), work.y.copy()

    def first_two(name, call):
        start = time.perf_counter()
        first = call()
        if name in work.setup:
            work.first_call[name] = work.setup[name] + time.perf_counter() - start
        return [first, call()]

    losses = {"symprop": first_two("symprop", lambda: step(x=x, y=y))}
    for name, fn in work.steps.items():
        losses[name] = first_two(name, lambda: fn(*work.inputs[name]))
    print(f"\n{work.label}: loss at step 1 and step 2 (same weights, same batch)")
    reference = losses["symprop"]
    for name, (first, second) in losses.items():
        agree = np.allclose([first, second], reference, rtol=1e-4)
        print(f"  {name:12} {first:.7f}  {second:.7f}  {'agrees' if agree else 'DIFFERS from symprop'}")

    calls = {"symprop": lambda: step(x=x, y=y)}
    epoch_inputs = {"x": work.x_all, "y": work.y_all}
    calls["symprop epoch"] = lambda: step.run_epoch(epoch_inputs, work.batch, shuffle=False)
    for name, fn in work.steps.items():
        calls[name] = (lambda fn, args: lambda: fn(*args))(fn, work.inputs[name])
    samples = compare_rounds(calls, rounds, SAMPLE_SECONDS)
    samples["symprop epoch"] = [t / EPOCH_BATCHES for t in samples["symprop epoch"]]
    times = {name: statistics.median(values) for name, values in samples.items()}
    fastest_round = {name: min(values) for name, values in samples.items()}
    return times, fastest_round, fastest_cost(lambda: step.cost(x=x, y=y))


# ---- verdicts and kernel costs ---------------------------------------------------------------------


def fastest_cost(report, repeats: int = 3):
    """Several cost reports merged, each kernel at its fastest: a kernel timed alone for a few
    milliseconds is easily preempted on a busy machine, and preemption only ever adds time."""
    reports = [report() for _ in range(repeats)]
    rows = [min(versions, key=lambda r: r.seconds) for versions in zip(*(r.rows for r in reports))]
    return type(reports[0])(rows, reports[0].dims)



def print_verdict(name: str, label: str, times: dict, fastest_round: dict, first_call: dict) -> None:
    """Each model's target (issues 4, 10, 11 and 14) against the fastest other implementation; for the
    recurrent models also the first call (build + first step) of each implementation timed."""
    others = {k: v for k, v in times.items() if not k.startswith("symprop")}
    if "symprop BLAS" in times:
        print(f"  {label}: with SYMPROP_BLAS=1 the step takes {times['symprop BLAS'] / times['symprop']:.2f}x "
              "the time of the default")
    best_name = min(others, key=others.get)
    ratio = times["symprop"] / others[best_name]
    if name in ISSUE_14_TARGETS:
        print_anchor_verdict(label, ISSUE_14_TARGETS[name], times, fastest_round)
    if name == "small":
        faster = all(times["symprop"] < v for v in others.values())
        speedup = times["numpy"] / times["symprop"]
        print(f"  {label}: step call {'faster' if faster else 'NOT faster'} than every other "
              f"(best other: {best_name} {times[best_name] * 1e6:.1f} us); {speedup:.2f}x faster than NumPy "
              f"(targets: faster than all, >= 3x NumPy: {'met' if faster and speedup >= 3 else 'NOT met'})")
    elif name == "cnn":
        against_torch = (f"{times['symprop'] / times['torch']:.2f}x the time of PyTorch eager "
                         f"(target <= 0.4x: {'met' if times['symprop'] <= 0.4 * times['torch'] else 'NOT met'})"
                         if "torch" in times else "PyTorch not installed: no verdict on the 0.4x target")
        print(f"  {label}: step call {ratio:.2f}x the time of the fastest other ({best_name}), per step in "
              f"run_epoch {times['symprop epoch'] / others[best_name]:.2f}x; {against_torch}")
        if "torch" in times:
            print(f"  {label}: fastest rounds: step call {fastest_round['symprop'] / fastest_round['torch']:.2f}x, "
                  f"per step in run_epoch {fastest_round['symprop epoch'] / fastest_round['torch']:.2f}x "
                  "the time of PyTorch eager")
    elif name == "rnn":  # on a busy machine medians and fastest rounds can disagree: the target needs both
        epoch = times["symprop epoch"] / others[best_name]
        fastest = fastest_round["symprop"] / min(fastest_round[k] for k in others)
        print(f"  {label}: step call {ratio:.2f}x the time of the fastest other ({best_name} "
              f"{times[best_name] * 1e6:,.0f} us), per step in run_epoch {epoch:.2f}x; fastest rounds {fastest:.2f}x "
              f"(target <= 0.5x in both: {'met' if max(ratio, fastest) <= 0.5 else 'NOT met'})")
    elif name == "lstm":
        against_torch = (f"{times['symprop'] / times['torch']:.2f}x the time of PyTorch eager (fastest rounds "
                         f"{fastest_round['symprop'] / fastest_round['torch']:.2f}x)"
                         if "torch" in times else "PyTorch not installed")
        print(f"  {label}: step call {against_torch}; {ratio:.2f}x the fastest other ({best_name}), per step in "
              f"run_epoch {times['symprop epoch'] / others[best_name]:.2f}x")
    elif name == "large":
        print(f"  {label}: step call {ratio:.2f}x the time of the fastest other ({best_name}), per step in "
              f"run_epoch {times['symprop epoch'] / others[best_name]:.2f}x "
              f"(target <= 1.2x: {'met' if ratio <= 1.2 else 'NOT met'})")
    elif name not in ISSUE_14_TARGETS:  # the residual MLP: no target of its own
        print(f"  {label}: step call {ratio:.2f}x the time of the fastest other ({best_name}), per step in "
              f"run_epoch {times['symprop epoch'] / others[best_name]:.2f}x")
    if first_call:
        line = ", ".join(f"{k} {v:.2f} s" for k, v in first_call.items())
        verdict = ""
        if "jax.jit" in first_call:
            met = first_call["symprop"] <= first_call["jax.jit"]
            verdict = (f"; symprop / JAX {first_call['symprop'] / first_call['jax.jit']:.2f}x "
                       f"(target <= 1x: {'met' if met else 'NOT met'})")
        print(f"  {label}: first call (build + first step): {line}{verdict}")


ISSUE_14_TARGETS = {"uat": 0.25, "small": 0.35}  # step time at most this fraction of the fastest anchor's


def print_anchor_verdict(label: str, target: float, times: dict, fastest_round: dict) -> None:
    """Issue 14: the step call against the fastest anchor (NumPy, PyTorch eager, jax.jit), medians
    and fastest rounds, and per step inside run_epoch."""
    anchors = [k for k in ANCHORS if k in times]
    best = min(anchors, key=times.get)
    ratio = times["symprop"] / times[best]
    fastest = fastest_round["symprop"] / min(fastest_round[k] for k in anchors)
    epoch = times["symprop epoch"] / times[best]
    print(f"  {label}: step call {times['symprop'] * 1e6:.1f} us = {ratio:.2f}x the fastest anchor ({best} "
          f"{times[best] * 1e6:.1f} us; anchors: {', '.join(anchors)}), fastest rounds {fastest:.2f}x, per step in "
          f"run_epoch {epoch:.2f}x (issue 14 target <= {target}x: {'met' if ratio <= target else 'NOT met'})")


def print_time_split(label: str, fastest_round: dict, cost) -> None:
    """The step call against the sum of its kernels timed alone (both their fastest): what running them
    in one call adds -- Python, argument checks, and caches that a kernel repeated alone keeps warm."""
    kernels = cost.totals()["total"]["seconds"]
    matmul = sum(r.seconds for r in cost.rows if r.kind == "bmm")
    matmul_flops = sum(r.flops for r in cost.rows if r.kind == "bmm")
    loops = [r for r in cost.rows if r.kind == "scan"]
    scans = "".join(f", {r.phase} scan {r.seconds * 1e6:,.1f} us at {r.flops / r.seconds / 1e9:.0f} GFLOP/s"
                    for r in loops)
    step = fastest_round["symprop"]
    products = f"matrix products {matmul * 1e6:,.1f} us at {matmul_flops / matmul / 1e9:.0f} GFLOP/s" if matmul \
        else "no matrix product"
    print(f"  {label}: step call (fastest round) {step * 1e6:,.1f} us = kernels alone {kernels * 1e6:,.1f} us "
          f"({products}{scans}) "
          f"{'+' if step >= kernels else '-'} {abs(step - kernels) * 1e6:,.1f} us "
          "(Python, argument checks, caches the kernels alone keep warm)")


def print_flop_floor(label: str, times: dict, cost) -> None:
    """The least time this core allows the step: its FLOPs at the best GEMM rate measured here (symprop's
    kernel or NumPy's, square 512), and what that floor is against the fastest other implementation.
    Whether a ratio target is reachable on a host is a property of the host: this line says which."""
    flops = sum(r.flops for r in cost.rows)
    peak = max(gemm_rates(512, 512, 512)) * 1e9
    floor = flops / peak
    others = {k: v for k, v in times.items() if not k.startswith("symprop")}
    best = min(others, key=others.get)
    print(f"  {label}: {flops / 1e6:.1f} MFLOP per step; at this core's GEMM rate ({peak / 1e9:.0f} GFLOP/s, "
          f"square 512) no implementation takes less than {floor * 1e6:,.0f} us: {floor / others[best]:.2f}x "
          f"{best}; symprop's median is {times['symprop'] / floor:.2f}x that floor")


def print_products_against_gemm(step, cost) -> None:
    """Every matrix product of the CNN's step (convolutions included) next to a plain GEMM of the same
    M, N, K, compiled by symprop and in NumPy: how close the convolution lowering comes to the GEMM kernel."""
    kernels = step.kernels()
    print("\nmatrix products of the CNN step, each next to a plain GEMM of the same size (symprop's kernel alone, "
          "numpy.matmul); issue 10: every convolution kernel at > 50 % of the GEMM's GFLOP/s")
    print(f"  {'product':<22} {'phase':<9} {'GEMM M x N x K':<18} {'us':>8} {'GFLOP/s':>8} {'GEMM':>8} "
          f"{'/ GEMM':>7} {'numpy':>8}")
    for row in cost.rows:
        if row.kind != "bmm":
            continue
        name, (m, n, k) = cnn.describe_product(kernels[row.index], row.flops, cost.dims)
        rate = row.flops / row.seconds / 1e9
        gemm, numpy_gemm = gemm_rates(m, n, k)
        print(f"  {name:<22} {row.phase:<9} {f'{m} x {n} x {k}':<18} {row.seconds * 1e6:>8.1f} {rate:>8.1f} "
              f"{gemm:>8.1f} {rate / gemm:>7.2f} {numpy_gemm:>8.1f}")
    square, numpy_square = gemm_rates(512, 512, 512)
    print(f"  for scale, a square 512 x 512 x 512 GEMM: symprop {square:.1f} GFLOP/s, numpy {numpy_square:.1f}")


_GEMM_RATES = {}


def fastest_seconds(call, repeats: int = 15) -> float:
    """The fastest of `repeats` timed calls (after one warm-up): the same estimate as fastest_cost's."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_rates(m: int, n: int, k: int) -> tuple:
    """GFLOP/s of (m, k) @ (k, n) float32, fastest runs: symprop's GEMM kernel alone (compiled once per
    size) and numpy.matmul."""
    if (m, n, k) not in _GEMM_RATES:
        a, b = sp.Input("a", (m, k)), sp.Input("b", (k, n))
        rng = np.random.default_rng(0)
        values = {"a": rng.standard_normal((m, k), np.float32), "b": rng.standard_normal((k, n), np.float32)}
        product = sp.compile(a @ b)
        report = fastest_cost(lambda: product.cost(**values))
        row = next(r for r in report.rows if r.kind == "bmm")
        numpy_seconds = fastest_seconds(lambda: np.matmul(values["a"], values["b"]))
        _GEMM_RATES[m, n, k] = (row.flops / row.seconds / 1e9, 2.0 * m * n * k / numpy_seconds / 1e9)
    return _GEMM_RATES[m, n, k]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (median over them)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--no-frameworks", action="store_true", help="compare with NumPy only")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--cost", nargs="?", const="all", default="small",
                        help="models whose per-kernel cost table is printed (alone: every model run)")
    options = parser.parse_args()
    models = options.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}; expected {', '.join(MODELS)}")
    cost_models = models if options.cost == "all" else options.cost.split(",")

    frameworks = {}
    if not options.no_frameworks:
        for name in ("torch", "jax", "pytensor"):
            module = optional_module(name)
            if module is not None:
                frameworks[name] = module
    if "jax" in frameworks:  # start JAX's CPU backend now: its first-call times then hold tracing and compiling only
        frameworks["jax"].numpy.zeros(1).block_until_ready()
    print(machine_summary())
    print(f"threads: 1 (OPENBLAS/OMP/MKL_NUM_THREADS=1, torch.set_num_threads(1), XLA_FLAGS={os.environ['XLA_FLAGS']!r})")
    print(f"unset for this process: {describe_unset(_UNSET)}")
    print(f"GEMM in compiled programs: {gemm_setting()}; 'symprop BLAS' column: compiled with SYMPROP_BLAS=1")
    print(f"compared with: numpy{''.join(', ' + name for name in frameworks)}")

    rows, best_rows, measured, all_notes = [], [], [], []
    for name in models:
        if name == "cnn":
            work = prepare_cnn(frameworks)
        elif name in rnn.GATES:
            work = prepare_recurrent(name, frameworks)
        elif name in tiny.LABELS:
            work = prepare_small(name, frameworks)
        else:
            work = prepare_mlp(name, frameworks)
        times, fastest_round, cost = measure(work, options.rounds)
        rows.append((work.label, times))
        best_rows.append((work.label, fastest_round))
        measured.append((work, times, fastest_round, cost))
        all_notes += [n for n in work.notes if n not in all_notes]

    print_table("one training step (forward, backward, optimizer update: Adam, but SGD with momentum 0.9 "
                "for the CNN), median us; 'symprop epoch' = per step inside run_epoch",
                rows, COLUMNS, reference="numpy", markdown=options.markdown)
    print_table("the same, fastest round instead of the median (closer to an idle core when the machine is busy)",
                best_rows, COLUMNS, reference="numpy", markdown=options.markdown)
    for note in all_notes:
        print(f"  {note}")
    for work, times, fastest_round, _ in measured:
        print_verdict(work.name, work.label, times, fastest_round, work.first_call)
    for work, times, fastest_round, cost in measured:
        if work.name in cost_models:
            print(f"\nsymprop step.cost(), {work.label} (each kernel: the fastest of 3 reports)\n{cost}")
            if work.name == "cnn":
                print_products_against_gemm(work.step, cost)
        print_time_split(work.label, fastest_round, cost)
        if work.name == "rnn":
            print_flop_floor(work.label, times, cost)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
