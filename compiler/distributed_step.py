"""``compile_step(loss, optimizer, distributed=True)``: a training step split for data parallelism.

The single-process step is one program: forward, backward and update. Data
parallelism needs the gradients summed over the ranks between backward and
update, so this compiles two programs:

- the **gradient program** runs forward and backward on the rank's shard and
  writes, in place, ``rows x`` the loss, ``rows x`` every gradient and ``rows x``
  every Buffer's new value (batch norm's running statistics) into views of one
  flat buffer (``runtime.distributed.FlatLayout``): a shard's sums, not means;
- after ``runtime.distributed`` sums the flat buffer over the ranks (one
  in-place Allreduce), the **update program** divides by the global row count
  (a mean over the global batch, as one process computing the loss of the
  whole batch), clips the gradients by global norm if the optimizer does, and
  applies the optimizer update and the Buffers' new values in place.

Both programs are cached on disk like every other; ``runtime.distributed``
runs them without the compiler.
"""
from __future__ import annotations

import functools
from runtime.distributed import (GRADIENT_SUFFIX, INVERSE_ROWS_INPUT, LOSS_SUM_INPUT, ROWS_INPUT, SUM_SUFFIX,
                                 DistributedStep, FlatLayout, world)
from runtime.programs import load_program
from runtime.random_inputs import NAMES as RANDOM_INPUTS
from runtime.progress import Progress

from .autodiff import grad as gradient
from .codegen.program import build_program
from .codegen.parallel import threads_key
from .compile import COMPILE_STAGES, program_key
from .graph import Input, is_buffer
from .label_ranges import index_checks, index_faults, record_faults
from .size_requirements import size_checks
from .modes import buffer_updates
from .optim import Optimizer, update_graph
from .passes import simplify
from .step import _bound_function, _live_arrays
from .traversal import leaves, topological_order


def compile_distributed_step(loss, optimizer: Optimizer, *, params=None, seed: int = 0, schedule=None,
                             comm=None, threads: int = 1, bucket_mb: float | None = None) -> DistributedStep:
    """The gradient and update programs of `loss`, bound to a DistributedStep on `comm` (default:
    MPI.COMM_WORLD), their large kernels split across `threads` per rank. Every rank must call this
    with the same model and optimizer; rank 0 compiles
    first and the others load its programs from the on-disk cache.

    bucket_mb: None sums every gradient in one Allreduce after the backward pass. A number overlaps
    the sum with the backward pass: the gradient program writes each gradient as soon as it is
    ready (the last layer's first), and the gradients are summed in buckets of about `bucket_mb`
    megabytes, each started (a nonblocking Iallreduce) right after the kernel that completes it."""
    if bucket_mb is not None and not (isinstance(bucket_mb, (int, float)) and bucket_mb > 0):
        raise ValueError(f"compile_step: bucket_mb must be a positive number of megabytes or None, got {bucket_mb!r}")
    comm = world() if comm is None else comm
    if params is None:
        params = [leaf for leaf in leaves(loss) if leaf.op == "param" and not is_buffer(leaf)]
    params = list(params)
    updates = buffer_updates(loss)
    dtype = _flat_dtype(params, [b for b, _ in updates])
    layout = FlatLayout(dtype, [(p.name + GRADIENT_SUFFIX, p.shape) for p in params]
                        + [(b.name + SUM_SUFFIX, b.shape) for b, _ in updates])

    # the update program: mean gradients from the summed ones, the optimizer (clipping included), Buffers
    inverse = Input(INVERSE_ROWS_INPUT, (), dtype)  # of the gradients' dtype: the scaling fuses into the update loops
    sums = {name: Input(name, shape, dtype) for name, shape in layout.shapes.items()}
    graph = update_graph(loss, optimizer, params, grads=[sums[p.name + GRADIENT_SUFFIX] * inverse for p in params])
    update_targets = [*graph.params, *graph.state.values(), *(b for b, _ in updates)]
    update_values = [*graph.new_params.values(), *graph.new_state.values(),
                     *(sums[b.name + SUM_SUFFIX] * inverse for b, _ in updates)]

    # the gradient program: rows x (loss, gradients, new Buffers) written into the flat buffer's views
    rows = Input(ROWS_INPUT, (), loss.dtype)
    loss_sum = Input(LOSS_SUM_INPUT, (), dtype)
    grads = gradient(loss, params) if params else []
    gradient_targets = [loss_sum, *(sums[b.name + SUM_SUFFIX] for b, _ in updates),
                        *(sums[p.name + GRADIENT_SUFFIX] for p in params)]
    gradient_values = [_as(loss * rows, dtype), *(_as(v * rows.astype(v.dtype), dtype) for _, v in updates),
                       *(_as(g * rows.astype(g.dtype), dtype) for g in grads)]
    eager = bucket_mb is not None
    if eager:  # the order the backward pass completes them in: the parameter read last, first
        position = {node: k for k, node in enumerate(topological_order([loss]))}
        first = 1 + len(updates)
        order = list(range(first)) + sorted(range(first, len(gradient_targets)),
                                            key=lambda k: -position[params[k - first]])
        gradient_targets = [gradient_targets[k] for k in order]
        gradient_values = [gradient_values[k] for k in order]
    faults = index_faults([loss, *gradient_values])
    checks = index_checks([loss, *gradient_values])
    data_inputs = [leaf for leaf in leaves([loss]) if leaf.op == "input" and leaf.name not in RANDOM_INPUTS]
    _check_batch_axis(data_inputs)
    data = [leaf.name for leaf in data_inputs]

    def compile_both():
        show = comm.rank == 0
        gradient_program = _load("the gradient program", gradient_targets, gradient_values, faults, checks, show,
                                 threads, eager)
        update_program = _load("the update program", update_targets, update_values, [], [], show, threads)
        return gradient_program, update_program

    programs = _rank_0_first(comm, compile_both)
    if eager:  # the flat buffer in completion order, so that every bucket is one contiguous range
        done = dict(zip((t.name for t in gradient_targets), programs[0].plan["update_kernels"]))
        entries = sorted(layout.shapes.items(), key=lambda entry: done[entry[0]])
        layout = FlatLayout(dtype, entries, completed_by=[done[name] for name, _ in entries])
    names = {"data": data, "step": graph.step.name, "lr": graph.lr.name}
    all_leaves = [leaf for leaf in leaves([loss]) if leaf.op == "param"]
    live = _live_arrays([p for p in all_leaves if not is_buffer(p)], {}, seed, "parameter")
    buffers = _live_arrays([b for b in all_leaves if is_buffer(b)], {}, seed, "buffer")
    return DistributedStep(*programs, layout, live, graph.initial_state(), buffers, names,
                           schedule if schedule is not None else optimizer.lr, comm=comm, seed=seed,
                           compile_function=functools.partial(_bound_function, threads=threads),
                           bucket_bytes=None if bucket_mb is None else int(bucket_mb * 2**20))


def _as(node, dtype: str):
    return node if node.dtype == dtype else node.astype(dtype)


def _check_batch_axis(data_inputs) -> None:
    """The ranks split every data input along its first axis, which must be one symbolic batch dimension."""
    first = {leaf.shape[0] if leaf.shape else None for leaf in data_inputs}
    if len(first) != 1 or not isinstance(next(iter(first)), str):
        shapes = ", ".join(f"{leaf.name} {leaf.shape}" for leaf in data_inputs) or "no data inputs"
        raise ValueError(f"compile_step(distributed=...): the ranks split the batch along the first axis of every "
                         f"data input, so each must start with the same symbolic dimension; got {shapes}")


def _flat_dtype(params, buffers) -> str:
    """The one float dtype of every trained parameter and updated Buffer (the flat buffer's)."""
    dtypes = {leaf.dtype for leaf in [*params, *buffers]}
    if len(dtypes) > 1 or not dtypes <= {"float32", "float64"}:
        found = ", ".join(f"{leaf.name} {leaf.dtype}" for leaf in [*params, *buffers])
        raise TypeError(f"compile_step(distributed=...): the gradients are summed in one flat buffer, so every "
                        f"trained parameter and updated buffer must have one dtype, float32 or float64; got {found}")
    return dtypes.pop() if dtypes else "float32"


def _load(what: str, targets: list, values: list, faults: list, checks: list, show: bool, threads: int,
          eager: bool = False):
    """(program, key) writing each value into its target in place (`eager`: as soon as it is ready),
    plus the hidden fault outputs."""
    checked = [node for node, _ in faults]
    key = program_key([*checked, *targets, *values], "distributed " + what, *[repr(f) for _, f in faults],
                      repr(checks), threads_key(threads), "eager" if eager else "")

    def build(prefix):
        progress.stage("simplify")
        simplified = simplify([*checked, *values])
        progress.stage("fuse and generate LLVM IR")
        ir_text, plan, consts = build_program(simplified[:len(checked)], prefix,
                                              updates=list(zip(targets, simplified[len(checked):])),
                                              forward_outputs=len(checked), threads=threads, eager_updates=eager)
        plan["index_checks"] = checks
        plan["size_checks"] = size_checks([*checked, *values])  # dimensions the runtime checks before a step
        if faults:
            record_faults(plan, faults, 0)
        return ir_text, plan, consts

    with Progress(f"compiling {what}", COMPILE_STAGES, enabled=show) as progress:
        return load_program(key, build, progress=progress), key


def _rank_0_first(comm, compile_both):
    """Rank 0 compiles (filling the on-disk cache), then the other ranks: they load what it stored
    (with SYMPROP_CACHE=0 each compiles its own). A failure on rank 0 is raised on every rank."""
    error = None
    if comm.rank == 0:
        try:
            programs = compile_both()
        except Exception as caught:
            error = caught
    failed = comm.bcast(None if error is None else f"{type(error).__name__}: {error}", root=0)
    if error is not None:
        raise error
    if failed is not None:
        raise RuntimeError(f"rank 0 could not compile the training step ({failed})")
    if comm.rank != 0:
        programs = compile_both()
    keys = comm.allgather([key for _, key in programs])
    if any(k != keys[0] for k in keys):
        differ = [rank for rank, k in enumerate(keys) if k != keys[0]]
        raise RuntimeError(f"ranks {differ} compiled a different model or optimizer than rank 0 (program keys "
                           f"differ): every rank must run the same model file and settings")
    return [program for program, _ in programs]

