"""A whole program: every kernel plus one entry function that calls them in order.

``build_program(outputs, prefix)`` returns the LLVM IR text, the plan the
runtime needs (buffers, roles, shapes, dtypes, arena slots, dimension order,
kernel descriptions) and the constant arrays. The entry function is

    void <prefix>_entry(i8** buffers, i64* dims)

so a call is one native call with two pointers. A program of several kernels is split into
one LLVM module per core (``module_parts``), which LLVM optimises and emits side by side;
the IR text holds the modules one after another, separated by ``PART_SEPARATOR``.
"""
from __future__ import annotations

import functools
import os

import sympy
from llvmlite import ir

from runtime.engine import PART_SEPARATOR
from runtime.random_inputs import COUNTER_INPUT
from runtime.thread_pool import PARALLEL_FOR

from ..shapes import symbolic_dims
from ..traversal import topological_order
from .access import Access, IndexedMatrix, size_expr
from .contraction import lower_einsums
from .gemm import gemm_externals
from .kernels import IR_TYPES, ITEMSIZE, KernelEmitter, buffer_arguments, kernel_buffers
from .parallel import call_split, split_context, splits, unchain_products
from .loops import I64, counted_loop
from .memory import assign_slots, mark_in_place
from .random_bits import RandomDraw
from .attention_kernel import describe_attention, emit_attention
from .scan_lowering import describe_scan, emit_scan
from .schedule import schedule

PLAN_VERSION = 1


def _dim_names(sched) -> list:
    names = set()
    for buffer in sched.buffers:
        names.update(symbolic_dims(buffer.shape))
    for kernel in sched.kernels:
        if kernel.kind == "scan":  # the loop's length and its body's dimensions
            names.update(_dim_names(kernel.body_schedule))
        names.update(symbolic_dims(kernel.space))
        names.update(source[1] for source in kernel.leaves.values() if isinstance(source, tuple))
        names.update(d for source in kernel.leaves.values() if isinstance(source, RandomDraw)
                     for d in symbolic_dims(source.shape))  # strides of the element index
    return sorted(names)


def _count(expr) -> str:
    return str(sympy.sympify(expr))


def kernel_phase(kernel, forward: set) -> str:
    """"update" for in-place update loops and snapshots; otherwise by the nodes the kernel
    (and every loop joined into it) computes: "forward" when the forward outputs need them,
    "backward" when not, "forward+backward" for a joined loop doing both."""
    if kernel.in_place or kernel.snapshot:
        return "update"
    roots = [r for r in [kernel.root] + kernel.joined if r is not None]
    if not roots:
        return "forward"
    needed = {r in forward for r in roots}
    return "forward+backward" if len(needed) == 2 else ("forward" if True in needed else "backward")


SMALL_BODY = 2000  # distinct subexpressions up to which sympy's cse describes a kernel


@functools.lru_cache(maxsize=1024)
def _described_bodies(exprs: tuple) -> tuple:
    """(shared, reduced, operation count) of a kernel's bodies, once per distinct tuple of bodies."""
    shared, reduced = _cse(list(exprs))
    ops = sum(sympy.count_ops(e, visual=False) for e in [e for _, e in shared] + list(reduced))
    return tuple(shared), tuple(reduced), ops


def _cse(exprs: list) -> tuple:
    """Common subexpressions named s0, s1, ...: a body that shares a map (``h + f(h)``) prints,
    and counts its operations, once per distinct subexpression, not once per path. (Renaming
    the leaves of the whole tree first would rebuild it, re-evaluating every function of it.)
    sympy's cse also shares parts of sums and products, in time quadratic in the body; past
    SMALL_BODY distinct subexpressions (a joined loop over a long chain) the repeated ones are
    named in linear time instead."""
    if _distinct_subexpressions(exprs, SMALL_BODY) <= SMALL_BODY:
        return sympy.cse(exprs, symbols=sympy.numbered_symbols("s"), optimizations=None, order="none")
    return repeated_subexpressions(exprs)


def _distinct_subexpressions(exprs: list, limit: int) -> int:
    """How many distinct subexpressions `exprs` have (counting stops past `limit`)."""
    seen, stack = set(), list(exprs)
    while stack and len(seen) <= limit:
        e = stack.pop()
        if e not in seen:
            seen.add(e)
            stack.extend(e.args)
    return len(seen)


def repeated_subexpressions(exprs: list) -> tuple:
    """([(s_k, definition)], exprs): each compound subexpression used more than once named
    s0, s1, ... (definitions before their uses), in time linear in the expressions as a DAG
    and without recursion, so a body thousands of operations deep is described too."""
    uses, order, stack = {}, [], [(e, False) for e in reversed(exprs)]
    for e in exprs:
        uses[e] = uses.get(e, 0) + 1
    done = set()
    while stack:  # post-order over the DAG: arguments before their users, each once
        e, expanded = stack.pop()
        if expanded:
            order.append(e)
            continue
        if e in done:
            continue
        done.add(e)
        stack.append((e, True))
        for arg in reversed(e.args):
            uses[arg] = uses.get(arg, 0) + 1
            if arg not in done:
                stack.append((arg, False))
    names = sympy.numbered_symbols("s")
    rebuilt, shared = {}, []
    for e in order:
        if e.args:
            args = [rebuilt[a] for a in e.args]
            value = e if all(a is b for a, b in zip(args, e.args)) else e.func(*args)
        else:
            value = e
        if uses[e] > 1 and e.args and not e.is_Atom:
            symbol = next(names)
            shared.append((symbol, value))
            value = symbol
        rebuilt[e] = value
    return shared, [rebuilt[e] for e in exprs]


def describe_kernel(kernel, names: dict) -> dict:
    """Body text with buffer names, FLOP and byte estimates (expressions in dims), of the kernel's
    loop followed by the loops its function runs before its own (``first``) and after it
    (``then``: a mean's division after a loss's sum, say); the estimates cover them all."""
    described = _describe_loop(kernel, names)
    chained = [(word, _describe_loop(part, names))
               for word, parts in (("first", kernel.prologue), ("then", kernel.epilogue)) for part in parts]
    for word, loop in chained:
        shape = "(" + ", ".join(str(d) for d in loop["shape"]) + ")"
        described["body"] += f" | {word} {loop['kind']}{shape}: {loop['body']}"
    if chained:
        loops = [described] + [loop for _, loop in chained]
        described["flops"] = _count(sum(sympy.sympify(loop["flops"]) for loop in loops))
        described["bytes"] = _count(sum(sympy.sympify(loop["bytes"]) for loop in loops))
    return described


def _describe_loop(kernel, names: dict) -> dict:
    """describe_kernel of one loop (a scan, an attention, a product or a fused loop nest) alone."""
    if kernel.kind == "scan":
        return describe_scan(kernel, names)
    if kernel.kind == "attention":
        return describe_attention(kernel, names)
    size = sympy.Mul(*[size_expr(d) for d in kernel.space])
    touched = sum((sympy.Mul(*[size_expr(d) for d in b.shape]) * ITEMSIZE[b.dtype] for b in kernel_buffers(kernel)),
                  sympy.Integer(0))
    if kernel.kind == "bmm":
        flops = 2 * size * size_expr(kernel.contract_dim)
        a, b = kernel.operands
        body = f"{a.describe(names[a.buffer]) if isinstance(a, IndexedMatrix) else names[a.buffer]} @ {names[b.buffer]}"
    else:
        rename = {s: sympy.Symbol(a.describe(names[a.buffer]) if isinstance(a, Access) else
                                  a[1] if isinstance(a, tuple) else f"[{a}]") for s, a in kernel.leaves.items()}
        reductions = [(out, kind, kept) for kind, out, _, kept in kernel.reductions]
        if kernel.kind != "elementwise":
            reductions, bodies = [(kernel.out, kernel.kind, kernel.kept_axes)], [(kernel.out, kernel.body)]
        else:
            bodies = kernel.bodies() + [(out, body) for _, out, body, _ in kernel.reductions]
        # before renaming: xreplace walks trees, cse a DAG (renaming changes no operation count)
        shared, reduced, ops = _described_bodies(tuple(b for _, b in bodies))
        shared = [(symbol, e.xreplace(rename)) for symbol, e in shared]
        reduced = [e.xreplace(rename) for e in reduced]
        flops = size * (ops + len(reductions))
        stores = len(bodies) - len(reductions)
        parts = [f"{buffer.name} = {e}" for (buffer, _), e in zip(bodies[:stores], reduced)]
        for (out, kind, kept), e in zip(reductions, reduced[stores:]):
            axes = tuple(a for a in range(len(kernel.space)) if a not in kept)
            parts.append(f"{out.name} = {kind} over axes {axes} of {e}")
        body = "".join(f"{symbol} = {e}; " for symbol, e in shared) + "; ".join(parts)
    writes = sorted(kernel.writes(), key=lambda b: b.index) if kernel.kind == "elementwise" else [kernel.out]
    return {"kind": kernel.kind, "out": ", ".join(b.name for b in writes), "shape": list(kernel.space), "body": body,
            "flops": _count(flops), "bytes": _count(touched),
            "nodes": len(kernel.nodes) or 1}


def build_program(outputs, prefix: str, updates=(), epoch: dict | None = None, forward_outputs: int | None = None,
                  declared=(), progress=None, threads: int = 1, eager_updates: bool = False):
    """IR text, plan and constants of a program computing `outputs` and then writing
    each (target leaf, value) of `updates` into the target's buffer in place.

    With `epoch` ({"data": input names, "step": name, "lr": name}), the program also
    gets an epoch function that runs every mini-batch of a data set natively (see
    ``emit_epoch``). Kernels computing what the first `forward_outputs` outputs need
    (default: all) are the forward phase in cost reports; update loops the update phase.
    `declared`: Input/Param leaves of the program as the user declared it; the executable
    checks and accepts them even when simplification removed their use. progress: a
    runtime.progress.Progress, told when scheduling ends and "generate IR" begins. threads: how many
    threads large kernels split across (``parallel.py``); the runtime's pool provides them. eager_updates:
    each update is written as soon as its value is ready (``schedule``); the plan's "update_kernels"
    gives, per update, the index of the last kernel that writes its target."""
    lowered = lower_einsums(list(outputs) + [v for _, v in updates])
    outputs, values = lowered[:len(outputs)], lowered[len(outputs):]
    sched = schedule(outputs, [(t, v) for (t, _), v in zip(updates, values)], eager_updates)
    sched.kernels = unchain_products(sched.kernels, threads)
    mark_in_place(sched.kernels)
    forward = set(topological_order(outputs[:forward_outputs]))
    dim_names = _dim_names(sched)
    if progress is not None:
        progress.stage("generate IR")
    parts = module_parts(sched.kernels, compile_threads())
    modules = [ir.Module(name=prefix)] + [ir.Module(name=f"{prefix}_part{i}") for i in range(1, len(parts))]
    module = modules[0]  # entry points, and the kernels of part 0
    home = {k: i for i, part in enumerate(parts) for k in part}
    functions = []
    for k, kernel in enumerate(sched.kernels):
        function = emit_kernel(modules[home[k]], kernel, f"{prefix}_k{k}", dim_names, threads)
        if home[k]:  # defined in another object: visible to the linker, declared here
            function.linkage = ""
            function = ir.Function(module, function.function_type, name=function.name)
        functions.append(function)
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer().as_pointer(), I64.as_pointer()]),
                        name=f"{prefix}_entry")
    _call_kernels(entry, list(zip(functions, sched.kernels)), dim_names, threads)
    runners = []
    for k, (function, kernel) in enumerate(zip(functions, sched.kernels)):
        runner = ir.Function(module, entry.function_type, name=f"{prefix}_run{k}")
        _call_kernels(runner, [(function, kernel)], dim_names, threads)
        runners.append(runner.name)
    epoch_name = emit_epoch(module, entry, sched, dim_names, epoch) if epoch else None
    slots = assign_slots(sched.kernels)
    names = {b: b.name for b in sched.buffers}
    consts = {}
    for node, buffer in sched.buffer_of.items():
        if buffer.role == "const":
            consts[buffer.index] = node.attr("value").array
    plan = {
        "version": PLAN_VERSION,
        "entry": entry.name,
        "dims": dim_names,
        "buffers": [{"name": b.name, "role": b.role, "shape": list(b.shape), "dtype": b.dtype,
                     "slot": slots.get(b)} for b in sched.buffers],
        "outputs": [b.index for b in sched.output_buffers],
        "arguments": _arguments(sched, declared),
        "updates": [sched.buffer_of[t].index for t, _ in updates],
        "slots": len(set(slots.values())),
        "kernels": [dict(describe_kernel(k, names), phase=kernel_phase(k, forward), splits=splits(k, threads),
                         **({"overwrites": sorted(names[b] for b in k.in_place_of.values())} if k.in_place_of else {}))
                    for k in sched.kernels],
        "externals": gemm_externals(module) + ([PARALLEL_FOR] if PARALLEL_FOR in module.globals else []),
        "threads": threads,
        "epoch": epoch_name,
        "kernel_runners": runners,
        "update_kernels": [max((k for k, kernel in enumerate(sched.kernels)
                                if sched.buffer_of[t] in kernel.writes()), default=-1) for t, _ in updates],
        "part_symbols": [[f"{prefix}_k{k}" for k in part] for part in parts[1:]],
    }
    return PART_SEPARATOR.join(str(m) for m in modules), plan, consts


# how much LLVM work a kernel's function is, relative to a simple loop (the products, and the scans whose
# bodies hold products, share their GEMM routines within a module, so they are kept together)
_WEIGHTS = {"bmm": 6, "scan": 12, "attention": 12}
_USES_GEMM = ("bmm", "scan")
_GEMM_ROUTINES = 12
MIN_KERNELS_TO_SPLIT = 4


def compile_threads() -> int:
    """The cores this process may use (SYMPROP_COMPILE_THREADS overrides): LLVM compiles a program's
    parts side by side on them."""
    configured = os.environ.get("SYMPROP_COMPILE_THREADS", "")
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def module_parts(kernels, threads: int) -> list:
    """Kernel indices per LLVM module, about equal in work: one module per thread (at most 4), one for a
    program of few kernels. Part 0 also holds the entry points. The products go together, as a unit."""
    count = min(threads, 4) if len(kernels) >= MIN_KERNELS_TO_SPLIT else 1
    products = [k for k, kernel in enumerate(kernels) if kernel.kind in _USES_GEMM]
    units = [(sum(_WEIGHTS[kernels[k].kind] for k in products) + _GEMM_ROUTINES, products)] if products else []
    units += [(_WEIGHTS.get(kernel.kind, 1), [k]) for k, kernel in enumerate(kernels) if kernel.kind not in _USES_GEMM]
    parts, loads = [[] for _ in range(count)], [0] * count
    for weight, members in sorted(units, key=lambda unit: -unit[0]):
        lightest = loads.index(min(loads))
        parts[lightest] += members
        loads[lightest] += weight
    parts = [sorted(part) for part in parts]
    return [parts[0]] + [part for part in parts[1:] if part]


def emit_kernel(module: ir.Module, kernel, name: str, dim_names: list, threads: int = 1) -> ir.Function:
    """The function of one kernel: a loop nest, a matrix product, or a scan's loop over its steps
    (split across `threads` when ``parallel.splits`` says so)."""
    if kernel.kind == "scan":
        return emit_scan(module, kernel, name, dim_names)
    if kernel.kind == "attention":
        return emit_attention(module, kernel, name, dim_names)
    return KernelEmitter(module, kernel, name, dim_names, threads).emit()


def _arguments(sched, declared) -> list:
    """Argument specs: every buffer-backed Input/Param, plus declared leaves the code never reads."""
    specs = [{"name": b.name, "role": b.role, "shape": list(b.shape), "dtype": b.dtype, "buffer": b.index}
             for b in sched.buffers if b.role in ("input", "param")]
    known = {s["name"] for s in specs}
    specs += [{"name": leaf.name, "role": leaf.op, "shape": list(leaf.shape), "dtype": leaf.dtype, "buffer": None}
              for leaf in declared if leaf.name not in known]
    return specs


def _call_kernels(function: ir.Function, kernels, dim_names: list = (), threads: int = 1) -> None:
    """Body of an entry point (table, dims): call each (kernel function, kernel) in order; a kernel
    that splits across threads goes through the pool (``parallel.call_split``)."""
    builder = ir.IRBuilder(function.append_basic_block("entry"))
    function.args[0].name, function.args[1].name = "table", "dims"
    table, dims = function.args
    values = None
    for kernel_function, kernel in kernels:
        args = buffer_arguments(builder, table, kernel)
        if not splits(kernel, threads):
            builder.call(kernel_function, args + [dims])
            continue
        if values is None:  # once per entry, before its first splitting kernel
            values = {name: builder.load(builder.gep(dims, [I64(k)]), align=8) for k, name in enumerate(dim_names)}
            context = split_context(builder, table, dims)
        call_split(builder, function.module, kernel_function, kernel, context, dims, values, args, threads)
    builder.ret_void()


def emit_epoch(module: ir.Module, body: ir.Function, sched, dim_names: list, epoch: dict) -> str:
    """``void <prefix>_epoch(i8** table, i64* dims, i8** arrays, i64 rows, i64 batch, i64 step0)``.

    arrays = [perm (i64*), lr per batch (double*), loss per batch (double*), then the
    full data set of each data input]. For every mini-batch b: copy the rows perm[b*batch:
    (b+1)*batch] of each data input into its batch buffer (the last batch may be
    shorter: the batch dimension is set to its row count), set the step count to
    step0 + b + 1 (also the random nodes' counter) and the learning rate to lr[b], run the
    step, record the loss.
    The caller guarantees 0 <= perm[i] < rows and batch buffers of `batch` rows.
    """
    by_name = {b.name: b for b in sched.buffers if b.role in ("input", "param")}
    data = [by_name[name] for name in epoch["data"]]
    batch_dims = {b.shape[0] for b in data}
    if len(batch_dims) != 1 or not isinstance(next(iter(batch_dims)), str):
        raise ValueError(f"epoch: every data input needs the same symbolic first dimension, got {[b.shape for b in data]}")
    batch_dim = batch_dims.pop()
    i8pp = ir.IntType(8).as_pointer().as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i8pp, I64.as_pointer(), i8pp, I64, I64, I64]),
                     name=body.name.replace("_entry", "_epoch"))
    table, dims, arrays, rows, batch, step0 = fn.args
    for arg, name in zip(fn.args, ("table", "dims", "arrays", "rows", "batch", "step0")):
        arg.name = name
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def array(k, ty):
        return b.bitcast(b.load(b.gep(arrays, [I64(k)]), align=8), ty.as_pointer())

    def buffer(index, ty):
        return b.bitcast(b.load(b.gep(table, [I64(index)]), align=8), ty.as_pointer())

    f64 = ir.DoubleType()
    perm, lrs, losses = array(0, I64), array(1, f64), array(2, f64)
    sources = [array(3 + k, IR_TYPES[buf.dtype]) for k, buf in enumerate(data)]
    n_batches = b.sdiv(b.add(rows, b.sub(batch, I64(1))), batch)
    dim_slot = b.gep(dims, [I64(dim_names.index(batch_dim))])
    loss_buffer = sched.output_buffers[0]
    with counted_loop(b, n_batches, "batch") as index:
        start = b.mul(index, batch)
        remaining = b.sub(rows, start)
        count = b.select(b.icmp_signed("<", remaining, batch), remaining, batch)
        b.store(count, dim_slot, align=8)
        for source, buf in zip(sources, data):
            width = 1
            for d in buf.shape[1:]:
                width *= d
            destination = buffer(buf.index, IR_TYPES[buf.dtype])
            with counted_loop(b, count, "row") as row:
                picked = b.load(b.gep(perm, [b.add(start, row)]), align=8)
                with counted_loop(b, I64(width), "col") as col:
                    value = b.load(b.gep(source, [b.add(b.mul(picked, I64(width)), col)]), align=ITEMSIZE[buf.dtype])
                    b.store(value, b.gep(destination, [b.add(b.mul(row, I64(width)), col)]), align=ITEMSIZE[buf.dtype])
        if epoch["step"] in by_name:  # optimizers without step-dependent terms never read it
            step_buffer = by_name[epoch["step"]]
            step_value = b.sitofp(b.add(b.add(step0, index), I64(1)), f64)
            _store_scalar(b, step_value, buffer(step_buffer.index, IR_TYPES[step_buffer.dtype]), step_buffer.dtype)
        counter = by_name.get(COUNTER_INPUT)
        if counter is not None and counter.dtype == "int64" and counter.shape == ():  # random nodes: a new draw per step
            b.store(b.add(b.add(step0, index), I64(1)), buffer(counter.index, I64), align=8)
        if epoch["lr"] in by_name:
            lr_buffer = by_name[epoch["lr"]]
            lr_value = b.load(b.gep(lrs, [index]), align=8)
            _store_scalar(b, lr_value, buffer(lr_buffer.index, IR_TYPES[lr_buffer.dtype]), lr_buffer.dtype)
        b.call(body, [table, dims])
        loss = b.load(buffer(loss_buffer.index, IR_TYPES[loss_buffer.dtype]), align=ITEMSIZE[loss_buffer.dtype])
        if loss.type != f64:
            loss = b.fpext(loss, f64)
        b.store(loss, b.gep(losses, [index]), align=8)
    b.ret_void()
    return fn.name


def _store_scalar(b, value, pointer, dtype):
    if dtype == "float32":
        value = b.fptrunc(value, ir.FloatType())
    b.store(value, pointer, align=ITEMSIZE[dtype])
