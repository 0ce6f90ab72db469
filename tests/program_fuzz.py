"""Random tensor programs, each built twice: as a symprop graph and as plain NumPy.

A program is a list of 2-8 steps over 1-3 float64 Inputs of small static shapes. Every
step is an ``Op`` that carries, side by side, its symprop builder (``sym``),
its NumPy transcription (``ref``), the Python text of the symprop call
(``code``, so a failing program prints as a runnable reproduction) and, for
the ops that are not smooth (max, maximum, where), a ``decide`` function that
returns the branch each element takes and the distance to the nearest tie.

``check_program`` is the differential test: compiled forward values against
``compiler.evaluate`` and against the NumPy transcription, compiled gradients
of a weighted sum of the outputs against ``evaluate`` of the same gradient
graph, and ``evaluate``'s gradient against central differences of the NumPy
transcription. Its random choices come through a ``Chooser``: hypothesis's
``draw`` in the tests (so failures shrink), ``random.Random`` in the explorer
(``python tests/program_fuzz.py COUNT`` prints every failing program).

Op families that the compiler does not offer yet (``ops.pad``, ``ops.flip``,
``ops.roll``, slices with steps; beyond those, the layout composites tile,
repeat, diagonal, tril/triu and repeated einsum indices) are detected once at
import; ``EXCLUDED`` names them and the import prints them.
"""
from __future__ import annotations

import sys
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

import compiler as C
from compiler import GraphError, Input, ops

from fuzz_programs import (  # noqa: F401  (re-exported: the tests import the program pieces from here)
    ALLOW_EMPTY, ATOL, EXP_BOUND, FD_STEP, FD_TOL, INPUT_RANGE, MAX_BOUND, MAX_DIM, MAX_RANK, MAX_SIZE, RTOL, TIE,
    Chooser, DrawChooser, Op, Program, RandomChooser, Step, Value, broadcastable, fits, index_text,
    random_factorization, tie_distance)
from fuzz_contractions import EINSUM_DIAGONAL, fam_einsum, fam_matmul
from fuzz_layouts import (fam_broadcast, fam_concat, fam_diagonal, fam_flip, fam_index, fam_pad, fam_repeat,
                          fam_reshape, fam_roll, fam_stack, fam_strided, fam_tile, fam_transpose, fam_triangle)
from fuzz_maps import fam_binary, fam_unary, fam_where
from fuzz_reductions import fam_product, fam_reduce, fam_scan, fam_softmax, fam_variance
from fuzz_windows import fam_window
from fuzz_gathers import fam_gather
from fuzz_loops import fam_loop

# ---- which op families exist ----------------------------------------------------------------------

def _step_slices_work() -> bool:
    probe = Input("probe", (5,), "float64")
    try:
        shapes = [probe[::2].shape, probe[::-1].shape, probe[3:0:-2].shape]
    except (GraphError, TypeError, ValueError):
        return False
    return shapes == [(3,), (5,), (2,)]


AVAILABLE = {
    "pad": hasattr(ops, "pad"),
    "flip": hasattr(ops, "flip"),
    "roll": hasattr(ops, "roll"),
    "strided_slice": _step_slices_work(),
    # layout composites, beyond the required families: used when the compiler has them
    "tile": hasattr(ops, "tile"),
    "repeat": hasattr(ops, "repeat"),
    "diagonal": hasattr(ops, "diagonal"),
    "triangle": hasattr(ops, "tril") and hasattr(ops, "triu"),
    "einsum_diagonal": EINSUM_DIAGONAL,
    # composites of reductions, maps and layout ops
    "softmax": all(hasattr(ops, n) for n in ("softmax", "log_softmax", "logsumexp")),
    "scan": hasattr(ops, "cumsum") and hasattr(ops, "cumprod"),
    "product": hasattr(ops, "prod"),
    "variance": hasattr(ops, "var"),
    # windows: the window primitive, convolution, pooling, flatten
    "window": all(hasattr(ops, n) for n in ("conv1d", "conv2d", "max_pool2d", "avg_pool2d", "flatten")),
    # gathers and scatter-adds at constant ids
    "gather": all(hasattr(ops, n) for n in ("take", "take_along_axis", "index_add", "scatter_add")),
}
EXCLUDED = sorted(name for name, present in AVAILABLE.items() if not present)
if EXCLUDED:
    _message = ("program_fuzz: op families not available in compiler.ops yet, excluded from the random "
                f"programs: {', '.join(EXCLUDED)}")
    print(_message, file=sys.stderr)
    warnings.warn(_message, stacklevel=1)


# ---- op families: each returns (Op, argument indices, bound) or None when it does not apply --------
#
# layouts (fuzz_layouts), maps (fuzz_maps), reductions (fuzz_reductions), contractions
# (fuzz_contractions) and windows (fuzz_windows); the weights say how often each is drawn.

FAMILIES = {  # name -> (builder, weight)
    "index": (fam_index, 3), "strided_slice": (fam_strided, 3), "pad": (fam_pad, 2), "flip": (fam_flip, 1),
    "roll": (fam_roll, 1), "broadcast": (fam_broadcast, 2), "reshape": (fam_reshape, 2),
    "transpose": (fam_transpose, 2), "concat": (fam_concat, 3), "stack": (fam_stack, 2),
    "unary": (fam_unary, 3), "binary": (fam_binary, 3), "where": (fam_where, 1), "reduce": (fam_reduce, 3),
    "matmul": (fam_matmul, 2), "einsum": (fam_einsum, 2),
    "tile": (fam_tile, 1), "repeat": (fam_repeat, 1), "diagonal": (fam_diagonal, 1), "triangle": (fam_triangle, 1),
    "softmax": (fam_softmax, 1), "scan": (fam_scan, 1), "product": (fam_product, 1), "variance": (fam_variance, 1),
    "window": (fam_window, 3), "gather": (fam_gather, 2), "loop": (fam_loop, 2),
}
ACTIVE = [name for name in FAMILIES if AVAILABLE.get(name, True)]
WEIGHTED = [name for name in ACTIVE for _ in range(FAMILIES[name][1])]


def random_program(ch: Chooser, families=None, steps=(2, 8)) -> Program:
    """2-8 steps (or `steps`) over 1-3 Inputs; a chain (each step reads the last value) or a DAG; 1-3 outputs."""
    pool = WEIGHTED if families is None else [f for f in WEIGHTED if f in families]
    prog = Program()
    for i in range(ch.integer(1, 3)):
        shape = tuple(ch.integer(1, MAX_DIM) for _ in range(ch.integer(1, 3)))
        prog.values.append(Value(f"x{i}", shape, INPUT_RANGE, None))
    chain = ch.boolean(0.4)
    n_steps = ch.integer(*steps)
    while len(prog.steps) < n_steps:
        last = len(prog.values) - 1
        x = last if chain or ch.boolean(0.5) else ch.integer(0, last)
        made = None
        for _ in range(10):
            family = ch.choice(pool)
            made = FAMILIES[family][0](ch, prog, x)
            if made is not None and made[2] <= MAX_BOUND:
                break
            made = None
        if made is None:  # nothing applied: a map always does
            family, made = "unary", fam_unary(ch, prog, x)
        op, args, bound = made
        shape = np.shape(op.ref(*[np.zeros(prog.values[a].shape) for a in args]))
        prog.values.append(Value(f"v{len(prog.steps)}", shape, float(bound), len(prog.steps)))
        prog.steps.append(Step(op, tuple(args), len(prog.values) - 1, family))
    computed = [i for i, v in enumerate(prog.values) if v.step is not None]
    used = {a for s in prog.steps for a in s.args}
    sinks = [i for i in computed[:-1] if i not in used]        # dead unless they are outputs
    shared = [i for i in computed[:-1] if i in used]          # an output that later steps also read
    extra = ch.subset(sinks, 0.8) + ch.subset(shared, 0.15)
    prog.outputs = [computed[-1]] + [extra[i] for i in ch.permutation(len(extra))][:2]
    return prog


# ---- the differential check -------------------------------------------------------------------------

def assert_close(actual, expected, what: str, rtol: float, atol: float, source: str):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape}, expected {expected.shape}\n{source}")
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol,
                               err_msg=f"{what}\n--- program ---\n{source}\n")


def magnitude(*arrays) -> float:
    return max([1.0] + [float(np.max(np.abs(a))) for a in arrays if np.size(a)])


def central_differences(prog: Program, arrays: dict, weights: list, decisions: list) -> tuple[dict, dict]:
    """d loss / d input for every input by central differences of the NumPy transcription, and a
    mask per input of the elements whose perturbations take the same branches as the point itself."""
    def loss(values, record=None):
        outs = prog.run(values, record)
        return sum(float(np.sum(outs[i] * w)) for i, w in zip(prog.outputs, weights))

    grads, valid = {}, {}
    for v in prog.inputs:
        base = arrays[v.name]
        g, ok = np.zeros(base.shape), np.ones(base.shape, bool)
        for idx in np.ndindex(base.shape):
            sides = []
            for sign in (1, -1):
                moved = dict(arrays)
                moved[v.name] = base.copy()
                moved[v.name][idx] += sign * FD_STEP
                record = []
                sides.append(loss(moved, record))
                ok[idx] &= all(np.array_equal(r[0], d[0]) for r, d in zip(record, decisions))
            g[idx] = (sides[0] - sides[1]) / (2 * FD_STEP)
        grads[v.name], valid[v.name] = g, ok
    return grads, valid


@dataclass
class Report:
    finite_differences: bool = False


def check_program(prog: Program, seed: int, differences: bool = True) -> Report:
    """Compiled forward values and gradients against evaluate and NumPy; evaluate's gradients against
    central differences. Raises AssertionError naming the program on any mismatch."""
    source = prog.source()
    rng = np.random.default_rng(seed)
    arrays = {v.name: rng.uniform(-INPUT_RANGE, INPUT_RANGE, v.shape) for v in prog.inputs}
    out_values = [prog.values[i] for i in prog.outputs]
    weights = [rng.uniform(-1.0, 1.0, v.shape) for v in out_values]

    nodes = prog.build()
    inputs = [nodes[i] for i, v in enumerate(prog.values) if v.step is None]
    outputs = [nodes[i] for i in prog.outputs]
    weight_inputs = [Input(f"w{k}", v.shape, "float64") for k, v in enumerate(out_values)]
    loss = None
    for out, w in zip(outputs, weight_inputs):
        term = ops.sum(out * w)
        loss = term if loss is None else loss + term
    grads = C.grad(loss, inputs)

    values = dict(arrays, **{f"w{k}": w for k, w in enumerate(weights)})
    decisions = []
    reference = prog.run(arrays, decisions)
    expected = [reference[i] for i in prog.outputs]
    atol = ATOL * max(magnitude(*expected), *[v.bound for v in out_values])

    evaluated = C.evaluate(outputs + grads, values)
    for k, (got, want) in enumerate(zip(evaluated, expected)):
        assert_close(got, want, f"evaluate, output {k} ({prog.values[prog.outputs[k]].name}) vs NumPy",
                     RTOL, atol, source)

    fn = C.compile(outputs + grads)
    names = {b["name"] for _, b in fn.arguments}
    # A first call on NaNs leaves NaN in every buffer it writes: a kernel of the second call that
    # reads a buffer before writing it (or outside what was written) sees NaN, not plausible numbers.
    fn(**{k: np.full_like(a, np.nan) for k, a in values.items() if k in names})
    compiled = [np.array(a, copy=True) for a in fn(**{k: a for k, a in values.items() if k in names})]
    for k, want in enumerate(expected):
        name = prog.values[prog.outputs[k]].name
        assert_close(compiled[k], want, f"compiled output {k} ({name}) vs NumPy", RTOL, atol, source)
        assert_close(compiled[k], evaluated[k], f"compiled output {k} ({name}) vs evaluate", RTOL, atol, source)

    n = len(outputs)
    grad_atol = ATOL * magnitude(*evaluated[n:])
    for v, got, want in zip(prog.inputs, compiled[n:], evaluated[n:]):
        assert_close(got, want, f"compiled gradient for {v.name} vs evaluate", RTOL, grad_atol, source)

    report = Report()
    finite = all(np.all(np.isfinite(e)) for e in expected)  # a mean over an empty axis is NaN
    if differences and finite and all(d[1] > TIE for d in decisions):
        report.finite_differences = True
        fd, valid = central_differences(prog, arrays, weights, decisions)
        loss_scale = sum(float(np.sum(np.abs(e * w))) for e, w in zip(expected, weights))  # rounding of the sum
        for v, want in zip(prog.inputs, evaluated[n:]):
            ok = valid[v.name]
            fd_atol = FD_TOL * max(magnitude(want), loss_scale * 1e-3)
            assert_close(np.where(ok, want, 0.0), np.where(ok, fd[v.name], 0.0),
                         f"evaluate's gradient for {v.name} vs central differences of NumPy", FD_TOL, fd_atol, source)
    return report


def explore(count: int, seed: int = 0, families=None, steps=(2, 8)):
    """Run `count` random programs; print each failing one with its error. Returns the failures."""
    failures, with_differences, counts = [], 0, {}
    for i in range(count):
        ch = RandomChooser(seed * 1_000_003 + i)
        try:
            prog = random_program(ch, families, steps)
        except Exception as error:  # a generator bug: report it like a failure
            failures.append((i, None, f"generator: {type(error).__name__}: {error}"))
            print(f"==== program {i}: generator error ====\n{traceback.format_exc()}", flush=True)
            continue
        try:
            report = check_program(prog, i)
            with_differences += report.finite_differences
            for s in prog.steps:
                counts[s.op.family] = counts.get(s.op.family, 0) + 1
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            failures.append((i, prog, text))
            print(f"==== program {i} ====\n{text[:3000]}\n", flush=True)
    print(f"{len(failures)} of {count} programs failed; {with_differences} passing ones checked against "
          f"finite differences; steps per op family: {dict(sorted(counts.items()))}")
    return failures


if __name__ == "__main__":  # python tests/program_fuzz.py [COUNT [SEED [MAX_STEPS [FAMILY,...]]]]
    arguments = [int(a) for a in sys.argv[1:4]]
    count, seed, max_steps = arguments + [100, 0, 8][len(arguments):]
    explore(count, seed, sys.argv[4].split(",") if len(sys.argv) > 4 else None, steps=(2, max_steps))
