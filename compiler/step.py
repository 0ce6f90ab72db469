"""``compile_step(loss, optimizer)``: one training step compiled into one native call.

The step program computes the loss, its gradients and every optimizer update
and writes parameters, optimizer state and Buffers (batch norm's running
statistics) in place (``updates`` of the code generator). It also carries a
native epoch loop (``TrainStep.run_epoch``). Inference functions of a step
(``step.function``) compile ``compiler.inference`` of their nodes and read the
live parameters and buffers.
"""
from __future__ import annotations

import functools
import json
import os
import threading

import numpy as np

from runtime.cache import ObjectCache
from runtime.executable import Executable
from runtime.programs import load_program
from runtime.progress import Progress
from runtime.thread_pool import resolve_threads
from runtime.training import TrainStep

from .codegen.program import build_program
from .codegen.parallel import threads_key
from .compile import COMPILE_STAGES, load_compiled, program_key
from .evaluate import evaluate_all
from .graph import Node, is_buffer
from .initializers import initial_values
from .label_ranges import index_checks, index_faults, record_faults
from .size_requirements import size_checks
from .modes import inference, training_mode
from .optim import Optimizer, update_graph
from .passes import simplify
from .show import node_label, format_shape
from .traversal import as_node_list, leaves, topological_order


def compile_step(loss: Node, optimizer: Optimizer, *, params=None, seed: int = 0, share: TrainStep | None = None,
                 schedule=None, debug_nans: bool | None = None, distributed=False,
                 threads: int | None = None, bucket_mb: float | None = None) -> TrainStep:
    """Compile forward, backward and the `optimizer` update of `loss` into a TrainStep.

    params: the Params to train (default: every Param the loss depends on); the others
    are read from the same live buffers. share: another TrainStep whose parameter and
    buffer arrays (matched by name) this step uses too. schedule: a callable 0-based
    step -> lr (default: the optimizer's lr). debug_nans (or SYMPROP_DEBUG_NANS=1): check
    every step. Buffers the loss reads live in ``step.buffers``; those a layer updates
    (``compiler.modes.buffer_updates``) are written in place after each step. seed: the
    parameters' initialisation, the epochs' shuffling and the random nodes (dropout, noise),
    which draw with it and the 1-based step number: a new mask every step, the same run
    from the same seed in any process. distributed: True (MPI.COMM_WORLD) or an mpi4py communicator
    for data-parallel training: a ``runtime.distributed.DistributedStep`` whose gradient and update
    programs are split around one Allreduce (``compiler/distributed_step.py``; no share, no debug_nans);
    with bucket_mb, the gradients are summed in buckets of about that many megabytes, each while the
    backward pass computes the rest (as PyTorch DDP's bucket_cap_mb).
    threads: how many threads the step's large kernels split across (default: the cores this process
    may use, or SYMPROP_THREADS; one per rank when distributed). The same seed trains to the same
    bits with any thread count.
    """
    if distributed is not False and distributed is not None:
        if share is not None or debug_nans:
            raise ValueError("compile_step: distributed training takes neither share nor debug_nans")
        from .distributed_step import compile_distributed_step
        return compile_distributed_step(loss, optimizer, params=params, seed=seed, schedule=schedule,
                                        comm=None if distributed is True else distributed,
                                        threads=resolve_threads(1 if threads is None else threads),
                                        bucket_mb=bucket_mb)
    if bucket_mb is not None:
        raise ValueError("compile_step: bucket_mb applies to distributed training only")
    threads = resolve_threads(threads)
    if debug_nans is None:
        debug_nans = os.environ.get("SYMPROP_DEBUG_NANS", "") not in ("", "0")
    with Progress("compiling the training step", COMPILE_STAGES + 3) as progress:
        # the initial values are drawn beside the compile (NumPy's generators release the GIL)
        initial_arrays = _in_background(lambda: _initial_arrays(loss, share, seed))
        progress.stage("key")
        declared = _declared_key(loss, optimizer, params, threads)
        program, record = _recorded_step(declared, progress) if declared else (None, None)
        if program is None:
            program, record = _built_step(loss, optimizer, params, progress, threads)
            if declared:
                _records[declared] = record
                ObjectCache.default().store(declared, {"step": json.dumps(record).encode()})
        progress.stage("initialise")
        live, buffers = initial_arrays()
        state = {name: np.full(tuple(shape), value, dtype=dtype) if value else np.zeros(tuple(shape), dtype=dtype)
                 for name, shape, dtype, value in record["state"]}  # zeros: pages the first step touches
        progress.stage("runtime")
        step = TrainStep(program, live, state, record["names"], schedule if schedule is not None else optimizer.lr,
                         compile_function=functools.partial(_bound_function, threads=threads), diagnose=_lazy_diagnoser(loss, optimizer, params),
                         debug_nans=debug_nans, seed=seed, buffers=buffers)
    step.compile_seconds = progress.seconds  # where the compile's time went, stage by stage
    return step


_records: dict = {}  # declared key -> record of a step this process compiled (see _built_step)


def _declared_key(loss: Node, optimizer: Optimizer, params, threads: int) -> str | None:
    """A cache key of the step as declared (forward graph, optimizer, trained Params), under which
    the program's own key is recorded: a step compiled before is loaded without differentiating.
    None for an optimizer defined outside compiler.optim, whose update rule its arguments may not
    describe (such a step is differentiated every time)."""
    if not isinstance(loss, Node) or not isinstance(optimizer, Optimizer) \
            or not type(optimizer).__module__.startswith("compiler.optim"):
        return None
    trained = None if params is None else [getattr(p, "name", repr(p)) for p in params]
    return program_key([loss], "declared step", type(optimizer).__qualname__, repr(optimizer), repr(trained),
                       threads_key(threads))


def _recorded_step(declared: str, progress) -> tuple:
    """(program, record) of a step compiled before under the `declared` key (in this process or
    one that shares the cache), or (None, None)."""
    record = _records.get(declared)
    if record is None:
        try:
            record = json.loads(ObjectCache.default().load(declared)["step"])
        except (TypeError, KeyError, ValueError):  # no entry, or one that does not parse: compile
            return None, None
        if not _well_formed(record):
            return None, None
    program = load_program(record["program"], None, progress=progress)
    return (program, record) if program is not None else (None, None)


def _well_formed(record) -> bool:
    """Whether a record read from the cache has the fields and types ``_built_step`` writes."""
    try:
        names, state = record["names"], record["state"]
        return (isinstance(record["program"], str) and isinstance(names["step"], str) and isinstance(names["lr"], str)
                and all(isinstance(n, str) for n in names["data"])
                and all(isinstance(n, str) and all(isinstance(d, int) and d >= 0 for d in shape)
                        and np.dtype(dtype).kind == "f" and isinstance(value, (int, float))
                        for n, shape, dtype, value in state))
    except (TypeError, KeyError, ValueError):
        return False


def _built_step(loss: Node, optimizer: Optimizer, params, progress, threads: int) -> tuple:
    """(program, record): the step differentiated, keyed and loaded from the cache or compiled; the
    record holds what a TrainStep needs besides the program (names, optimizer state)."""
    progress.stage("differentiate")
    graph = update_graph(loss, optimizer, params)
    progress.stage("key")
    targets = [*graph.params, *graph.state.values(), *graph.buffers]
    values = [*graph.new_params.values(), *graph.new_state.values(), *graph.new_buffers.values()]
    data = [leaf.name for leaf in graph.data_inputs]
    # labels computed inside the graph: hidden outputs checked after each step (the update has run by then);
    # a step with them runs its epochs batch by batch in Python, so that every batch is checked
    faults = index_faults([loss, *values])
    checked = [node for node, _ in faults]
    epoch = {"data": data, "step": graph.step.name, "lr": graph.lr.name} if _epoch_capable(graph) and not faults else None
    key = program_key([loss, *checked, *targets, *values], "step", repr(epoch), *[repr(f) for _, f in faults],
                      repr(index_checks([loss, *values])), threads_key(threads))  # the ops the plan's checks name

    def build(prefix):
        progress.stage("simplify")
        simplified = simplify([loss, *checked, *values])
        progress.stage("schedule")
        forward = 1 + len(checked)
        ir_text, plan, consts = build_program(simplified[:forward], prefix,
                                              updates=list(zip(targets, simplified[forward:])),
                                              epoch=epoch, forward_outputs=forward, progress=progress,
                                              threads=threads)
        plan["index_checks"] = index_checks([loss, *values])  # labels the runtime checks before a step
        plan["size_checks"] = size_checks([loss, *values])  # and dimensions (batch_norm: more than one value)
        if faults:
            record_faults(plan, faults, 1)
        return ir_text, plan, consts

    program = load_program(key, build, progress=progress)
    record = {"program": key, "names": {"data": data, "step": graph.step.name, "lr": graph.lr.name},
              "state": [[name, list(spec.shape), spec.dtype, spec.init_value] for name, spec in graph.state_specs.items()]}
    return program, record


def _initial_arrays(loss: Node, share, seed: int) -> tuple:
    """(parameters, buffers) by name: `share`'s arrays where it has them, else fresh initial values."""
    all_leaves = [leaf for leaf in leaves([loss]) if leaf.op == "param"]
    shared_params, shared_buffers = (share.params, share.buffers) if share is not None else ({}, {})
    return (_live_arrays([p for p in all_leaves if not is_buffer(p)], shared_params, seed, "parameter"),
            _live_arrays([b for b in all_leaves if is_buffer(b)], shared_buffers, seed, "buffer"))


def _in_background(work):
    """Start work() on a thread of its own; the returned function waits for its result (or raises
    its exception)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="symprop-initial-values", daemon=True)
    thread.start()

    def wait():
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
    return wait


def _live_arrays(leaf_nodes, shared: dict, seed: int, what: str) -> dict:
    """name -> array for each Param (or Buffer): the array of `shared` (another step's) of that
    name, else a fresh one from its initializer."""
    fresh = initial_values([p for p in leaf_nodes if p.name not in shared], seed)
    live = {}
    for p in leaf_nodes:
        if p.name in shared:
            array = shared[p.name]
            if array.shape != p.shape or array.dtype != np.dtype(p.dtype):
                raise ValueError(f"compile_step: shared {what} {p.name!r} is {array.shape} {array.dtype}, "
                                 f"this graph declares {p.shape} {p.dtype}")
            live[p.name] = array
        else:
            live[p.name] = fresh[p.name]
    return live


def _epoch_capable(graph) -> bool:
    """A native epoch loop needs every data input to share one symbolic first dimension."""
    inputs = graph.data_inputs
    if not inputs:
        return False
    first = {leaf.shape[0] if leaf.shape else None for leaf in inputs}
    if len(first) != 1 or not isinstance(next(iter(first)), str):
        return False
    return all(all(isinstance(d, int) for d in leaf.shape[1:]) for leaf in inputs)


def _bound_function(nodes, live_arrays: dict, threads: int = 1) -> Executable:
    """An inference function of `nodes` that reads the live parameter and buffer arrays: batch norm
    and dropout in inference mode (``compiler.inference``), so calling it changes nothing."""
    outputs = inference(as_node_list(nodes))
    used = {leaf.name for leaf in leaves(outputs) if leaf.op == "param"}
    program, key, seconds = load_compiled(outputs, threads)
    bound = {name: array for name, array in live_arrays.items() if name in used}
    executable = Executable.of(program, key, single=isinstance(nodes, Node), bound=bound)
    executable.compile_seconds = seconds
    return executable


def _lazy_diagnoser(loss: Node, optimizer: Optimizer, params):
    """``_diagnoser`` of the step's graph, differentiated only when a step first needs a diagnosis."""
    made = []

    def diagnose(values: dict) -> str:
        if not made:
            made.append(_diagnoser(update_graph(loss, optimizer, params).outputs))
        return made[0](values)
    return diagnose


def _diagnoser(outputs):
    """Replays a step in the reference evaluator and names the first node that is not finite."""
    outputs = training_mode(outputs)  # what the step computed (not the inference branches)

    def diagnose(values: dict) -> str:
        results = evaluate_all(outputs, values)
        for node in topological_order(outputs):
            array = np.asarray(results[node])
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                return (f"first non-finite value from {node_label(node)} {format_shape(node.shape)} {node.dtype} "
                        f"declared at {node.location}")
        return "the reference evaluator finds no non-finite value (the compiled code differs from it)"
    return diagnose
