"""``compile(outputs)``: a graph to a runtime.Executable, through the on-disk cache.

The cache key covers the declared program (its text form and constants) and
the code generator's own source, so a changed compiler never reuses stale code.
On a hit no pass and no code generation runs.
"""
from __future__ import annotations

import functools
import hashlib
import os

from runtime.executable import Executable
from runtime.programs import load_program
from runtime.progress import NoProgress, Progress
from runtime.thread_pool import resolve_threads

from .codegen.parallel import threads_key
from .graph import Node
from .label_ranges import index_checks, index_faults, record_faults
from .size_requirements import size_checks
from .passes import simplify
from .primitives.random import canonical_streams
from .passes.training_mode import training_mode
from .show import show
from .traversal import as_node_list, leaves, with_bodies


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """Hash of the compiler's source: part of every cache key."""
    root = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    digest.update(name.encode() + f.read())
    return digest.hexdigest()


def program_key(outputs, *extra: str) -> str:
    from .codegen.gemm import blas_for_large_products
    digest = hashlib.sha256(compiler_fingerprint().encode())
    digest.update(f"blas={blas_for_large_products()}".encode())
    digest.update(show(canonical_streams(outputs)).encode())  # the same model built twice: one key
    for node in with_bodies(outputs):  # a scan body's constants too
        if node.op == "const":
            digest.update(node.attr("value").array.tobytes())
    for part in extra:
        digest.update(part.encode())
    return digest.hexdigest()


COMPILE_STAGES = 8  # key, cache, simplify, schedule, generate IR, LLVM optimise, machine code, load


def build(outputs, prefix: str, progress=None, faults=None, threads: int = 1):
    """IR, plan and constants of `outputs`; `faults` (``index_faults(outputs)``, computed if None)
    become hidden extra outputs that the runtime checks after the call (plan["index_faults"]).
    threads: how many threads large kernels split across."""
    from .codegen.program import build_program
    progress = progress or NoProgress()
    outputs = list(outputs)
    faults = index_faults(outputs) if faults is None else faults
    progress.stage("simplify")
    simplified = simplify(outputs + [node for node, _ in faults])
    progress.stage("schedule")
    # the leaves a training-mode run reads: a Buffer read only in inference mode is no argument
    ir_text, plan, consts = build_program(simplified, prefix, declared=leaves(training_mode(outputs)),
                                          progress=progress, threads=threads)
    plan["index_checks"] = index_checks(outputs)  # labels the runtime checks before running
    plan["size_checks"] = size_checks(outputs)  # and dimensions (batch_norm: more than one value per channel)
    if faults:  # computed labels: checked by the program, raised after the call
        record_faults(plan, faults, len(outputs))
    return ir_text, plan, consts


def load_compiled(outputs: list, threads: int = 1) -> tuple:
    """(loaded program, cache key, seconds per compile stage) of a list of output nodes: from this
    process, the disk cache, or built (large kernels split across `threads`)."""
    with Progress("compiling", COMPILE_STAGES) as progress:
        progress.stage("key")
        leaves(outputs)  # one name, one leaf
        faults = index_faults(outputs)
        key = program_key(outputs + [node for node, _ in faults], *[repr(f) for _, f in faults],
                          repr(index_checks(outputs)), threads_key(threads))  # the ops the plan's checks name
        program = load_program(key, lambda prefix: build(outputs, prefix, progress, faults, threads), progress=progress)
    return program, key, progress.seconds


def compile(outputs, threads: int | None = None) -> Executable:
    """Compile a node or a list of nodes; call the result with every Input and Param by name.
    threads: how many threads large kernels split across (default: the cores this process may use,
    or SYMPROP_THREADS; the same bits for any count). ``f.compile_seconds`` says where the
    compile's time went, stage by stage."""
    program, key, seconds = load_compiled(as_node_list(outputs), resolve_threads(threads))
    executable = Executable.of(program, key, single=isinstance(outputs, Node))
    executable.compile_seconds = seconds
    return executable
