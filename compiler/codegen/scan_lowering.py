"""A scan as one native loop: its body scheduled once, its kernels called at every step.

The sibling scan nodes of one loop (its final carries and stacked values) are
one ``ScanKernel``. Its body -- the new carries and every stacked value the
graph reads -- is simplified and scheduled as a program of its own, whose
buffers become buffers of the enclosing program:

- a carry whose history is stacked (the backward pass reads it) lives in that
  history: step t reads slice t and writes the new carry into the next slice,
  the last step into the final carry's buffer; any other carry alternates
  between the final buffer and a partner, so no step copies a carry;
- a slice's placeholder reads ``xs + t * slice`` and a stacked value is written
  at ``ys + t * slice``: pointers moved each step, never a copy;
- captured values and constants are read where they are; the body's
  temporaries get arena slots of the enclosing program, live during the loop.

The emitted function fills a table of the body's buffers once, then for each
step moves the sliced pointers and calls the body's entry (which calls the
body's kernels in order, as a program's entry does). The code is the same for
any number of steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy
from llvmlite import ir

from ..primitives.scan import siblings_key, split_args
from .access import Buffer, size_expr
from .gemm_loops import host_tile_shape, packed_b_elements
from .kernels import IR_TYPES, ITEMSIZE, KernelEmitter, buffer_arguments
from .loops import I64, counted_loop, emit_size
from .schedule import Kernel

I8P = ir.IntType(8).as_pointer()


@dataclass(eq=False)
class ScanKernel(Kernel):
    body_schedule: object = None  # the body's Scheduler
    table: list = field(default_factory=list)  # per body buffer: (outer buffer, elements of a slice or None,
    #                                              ("in" | "out", carry) for a carry's placeholder or new value)
    carries: list = field(default_factory=list)  # per carry: (initial value, final state, ping-pong partner or
    #                                               None, history stack or None, elements)
    length: int | str = 0
    reverse: bool = False
    skip_last: list = field(default_factory=list)  # body kernels whose results the last step does not need
    outer_writes: list = field(default_factory=list)
    outer_reads: list = field(default_factory=list)

    def writes(self) -> set:
        return set(self.outer_writes)

    def reads(self):
        return set(self.outer_reads)

    def bodies(self) -> list:
        return []

    def buffer_list(self) -> list:
        """The buffers the loop's function takes, written ones first, each once."""
        writes = sorted(set(self.outer_writes), key=lambda b: b.index)
        return writes + sorted(set(self.outer_reads) - set(writes), key=lambda b: b.index)


def schedule_scan(sched, node, out: Buffer) -> None:
    """Schedule the loop computing `node` into `out` and every sibling of `node` in the graph."""
    from ..passes import simplify
    from .contraction import lower_einsums
    from .schedule import schedule
    body = node.attr("body")
    group = [n for n in sched.order if n.op == "scan" and siblings_key(n) == siblings_key(node)]
    for n in group:
        sched.buffer_of[n] = out if n is node else sched.buffer_of.get(n) or sched.new_buffer(n, "temp")
    arguments = [sched.materialize(_same_elements(a)) for a in node.args]
    inits, xs, captured = split_args(body, arguments)
    stacked = list(dict.fromkeys(n.attr("result")[1] for n in group if n.attr("result")[0] == "stack"))
    state = {n.attr("result")[1]: sched.buffer_of[n] for n in group if n.attr("result")[0] == "carry"}
    state = [state.get(j) or sched.new_buffer(c, "temp") for j, c in enumerate(body.carries)]
    stack_of = {n.attr("result")[1]: sched.buffer_of[n] for n in group if n.attr("result")[0] == "stack"}
    history = {j: stack_of[p] for j, p in enumerate(body.carries) if p in stack_of}
    stacked = [n for n in stacked if n not in body.carries]  # a carry's history is where the loop keeps it
    outputs = lower_einsums(simplify(list(body.new_carries) + stacked))
    inner = schedule(outputs)
    n_c = len(body.carries)
    role = {p: ("carry", j) for j, p in enumerate(body.carries)}
    role.update({p: ("x", i) for i, p in enumerate(body.xs)})
    role.update({p: ("captured", k) for k, p in enumerate(body.captured)})
    node_of = {buffer: n for n, buffer in inner.buffer_of.items()}
    _pack_invariant_operands(inner, lambda buffer: buffer.role == "const" or (
        buffer.role == "input" and role[node_of[buffer]][0] == "captured"))
    kernel = ScanKernel("scan", out, (body.length,), node.dtype, nodes=list(group), root=node,
                        body_schedule=inner, length=body.length, reverse=body.reverse)
    next_state = {j: _lifted(sched, state[j]) for j in range(n_c) if j not in history}  # ping-pong partner
    lifted = []
    for b in inner.buffers:
        if b.role == "input":
            kind, k = role[node_of[b]]
            if kind == "carry":
                entry = (state[k], None, ("in", k))
            elif kind == "x":
                entry = (xs[k], _elements(b.shape), None)
            else:
                entry = (captured[k], None, None)
        elif b.role == "const":
            const = node_of[b]
            entry = (sched.buffer_of.get(const) or _register_const(sched, const), None, None)
        elif b.role == "output":
            i = inner.output_buffers.index(b)
            if i < n_c:
                entry = (state[i], None, ("out", i))
            else:
                entry = (stack_of[stacked[i - n_c]], _elements(b.shape), None)
        elif b.role == "temp":
            entry = (_lifted(sched, b), None, None)
            lifted.append(entry[0])
        else:
            raise AssertionError(f"a scan body has no {b.role} buffers ({b.name})")
        kernel.table.append(entry)
    kernel.carries = [(inits[j], state[j], next_state.get(j), history.get(j), _elements(state[j].shape))
                      for j in range(n_c)]
    read_after = {n.attr("result")[1] for n in group if n.attr("result")[0] == "carry"}
    dead = {inner.output_buffers[j] for j in range(n_c) if j not in read_after and j not in history}
    kernel.skip_last = _dead_at_the_last_step(inner.kernels, dead)
    written = set(state) | set(next_state.values()) | set(stack_of.values()) | set(lifted)
    kernel.outer_writes = sorted(written, key=lambda b: b.index)
    kernel.outer_reads = sorted({buffer for buffer, _, _ in kernel.table if buffer not in written} | set(inits),
                                key=lambda b: b.index)
    sched.kernels.append(kernel)


def _dead_at_the_last_step(kernels: list, dead: set) -> list:
    """Indices of the body kernels the last step can skip: those writing only new carries that
    nothing reads after the loop (`dead`: a gradient with respect to a constant initial state),
    and no kernel of the body reads. Their values would never be read."""
    read = set().union(*(k.reads() for k in kernels))
    return [i for i, k in enumerate(kernels) if k.writes() and k.writes() <= dead and not k.writes() & read]


def _same_elements(node):
    """The node whose buffer holds `node`'s elements in the same row-major order: the loop reads
    its arguments through pointers and slice sizes only, so a reshape needs no copy of its own."""
    while node.op in ("reshape", "stop_gradient"):
        node = node.args[0]
    return node


def _pack_invariant_operands(inner, invariant) -> None:
    """Give each product of the body whose B is the same at every step (a captured value or a
    constant, of static shape) a temporary to hold B packed: the loop packs it once, before the
    first step, and the product skips the packing each step would repeat (a third of a
    (32 x 128) @ (128 x 128) product's time)."""
    for kernel in inner.kernels:
        if kernel.kind != "bmm" or len(kernel.space) != 2 or not invariant(kernel.operands[1].buffer):
            continue
        depth, columns = size_expr(kernel.contract_dim), size_expr(kernel.space[-1])
        if not (depth.is_Integer and columns.is_Integer):
            continue
        elements = packed_b_elements(int(depth), int(columns), host_tile_shape(kernel.dtype))
        kernel.packed_b = Buffer(len(inner.buffers), (elements,), kernel.dtype, "temp", f"packed{len(inner.buffers)}")
        inner.buffers.append(kernel.packed_b)


def _lifted(sched, like: Buffer) -> Buffer:
    """A new temporary of the enclosing program with `like`'s shape and dtype."""
    buffer = Buffer(len(sched.buffers), like.shape, like.dtype, "temp", f"t{len(sched.buffers)}")
    sched.buffers.append(buffer)
    return buffer


def _elements(shape):
    return sympy.Mul(*[size_expr(d) for d in shape])


def _register_const(sched, const) -> Buffer:
    buffer = sched.new_buffer(const, "const", f"c{len(sched.buffers)}")
    sched.buffer_of[const] = buffer
    return buffer


def emit_scan(module: ir.Module, kernel: ScanKernel, name: str, dim_names: list) -> ir.Function:
    """``void name(<buffers>, i64* dims)``: the loop over the steps (see the module docstring)."""
    from .program import _call_kernels, emit_kernel
    inner = kernel.body_schedule
    functions = [emit_kernel(module, k, f"{name}_b{i}", dim_names) for i, k in enumerate(inner.kernels)]
    step = ir.Function(module, ir.FunctionType(ir.VoidType(), [I8P.as_pointer(), I64.as_pointer()]),
                       name=f"{name}_step")
    step.linkage = "internal"
    _call_kernels(step, list(zip(functions, inner.kernels)))
    last_step = step
    if kernel.skip_last:  # the last step without the kernels computing carries nobody reads
        last_step = ir.Function(module, step.function_type, name=f"{name}_last_step")
        last_step.linkage = "internal"
        _call_kernels(last_step, [(f, k) for i, (f, k) in enumerate(zip(functions, inner.kernels))
                                  if i not in kernel.skip_last])
    buffers = kernel.buffer_list()
    function = ir.Function(module, ir.FunctionType(ir.VoidType(), [IR_TYPES[b.dtype].as_pointer() for b in buffers]
                                                   + [I64.as_pointer()]), name=name)
    function.linkage = "internal"
    function.attributes.add("noinline")
    packs = [(KernelEmitter(module, k, f"{name}_b{i}_pack", dim_names).emit_pack_b(), k)
             for i, k in enumerate(inner.kernels) if k.packed_b is not None]
    b = ir.IRBuilder(function.append_basic_block("entry"))
    dims_arg = function.args[-1]
    dims = {d: b.load(b.gep(dims_arg, [I64(k)]), align=8) for k, d in enumerate(dim_names)}
    pointer = {buffer: b.bitcast(arg, I8P) for buffer, arg in zip(buffers, function.args)}
    table = b.alloca(I8P, size=len(inner.buffers), name="table")
    for k, (buffer, elements, dynamic) in enumerate(kernel.table):
        if elements is None and dynamic is None:
            b.store(pointer[buffer], b.gep(table, [I64(k)]))
        else:  # set at each step; null until then (a packing below passes, never reads, it)
            b.store(ir.Constant(I8P, None), b.gep(table, [I64(k)]))
    for pack, k in packs:
        b.call(pack, buffer_arguments(b, table, k) + [dims_arg])
    memcpy = module.declare_intrinsic("llvm.memcpy", [I8P, I8P, I64])

    def copy(source, target, elements, itemsize):
        size = b.mul(emit_size(b, elements, dims), I64(itemsize))
        b.call(memcpy, [target, source, size, ir.Constant(ir.IntType(1), 0)])

    def at(buffer, position, elements):
        return b.gep(pointer[buffer], [b.mul(b.mul(position, emit_size(b, elements, dims)), I64(ITEMSIZE[buffer.dtype]))])

    steps = _opaque(b, emit_size(b, size_expr(kernel.length), dims))
    last = b.sub(steps, I64(1))
    first = last if kernel.reverse else I64(0)
    for init, state, next_state, history, elements in kernel.carries:
        item = ITEMSIZE[state.dtype]
        copy(pointer[init], pointer[state], elements, item)  # the final carry after no step at all
        if history is not None:  # the carry of each step lives in its history slice
            with b.if_then(b.icmp_signed(">", steps, I64(0))):
                copy(pointer[init], at(history, first, elements), elements, item)
        else:  # ping-pong: the last step writes `state`, so step 0 reads the other buffer
            odd = b.icmp_signed("!=", b.srem(last, I64(2)), I64(0))
            copy(pointer[init], b.select(odd, pointer[state], pointer[next_state]), elements, item)
    with counted_loop(b, steps, "t") as t:
        position = b.sub(last, t) if kernel.reverse else t
        following = b.sub(position, I64(1)) if kernel.reverse else b.add(position, I64(1))
        is_last = b.icmp_signed("==", t, last)
        writes_state = b.icmp_signed("==", b.srem(b.sub(last, t), I64(2)), I64(0))
        ends = {}
        for j, (_, state, next_state, history, elements) in enumerate(kernel.carries):
            if history is not None:
                ends[j] = (at(history, position, elements),
                           b.select(is_last, pointer[state], at(history, following, elements)))
            else:
                ends[j] = (b.select(writes_state, pointer[next_state], pointer[state]),
                           b.select(writes_state, pointer[state], pointer[next_state]))
        for k, (buffer, elements, dynamic) in enumerate(kernel.table):
            if dynamic is not None:
                value = ends[dynamic[1]][0 if dynamic[0] == "in" else 1]
            elif elements is not None:
                value = at(buffer, position, elements)
            else:
                continue
            b.store(value, b.gep(table, [I64(k)]))
        if last_step is step:
            b.call(step, [table, dims_arg])
        else:
            with b.if_else(is_last) as (final, other):
                with final:
                    b.call(last_step, [table, dims_arg])
                with other:
                    b.call(step, [table, dims_arg])
    b.ret_void()
    return function


def _opaque(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """`value`, hidden from the optimiser by an empty inline asm: a loop over a constant number of
    steps is not unrolled, so its code is the same for 8 steps and for 1024."""
    return b.asm(ir.FunctionType(I64, [I64]), "", "=r,0", [value], False, name="steps")


def describe_scan(kernel: ScanKernel, names: dict) -> dict:
    """The loop as one line of the cost report: its body's kernels, FLOPs and bytes times the steps."""
    from .program import describe_kernel
    inner = kernel.body_schedule
    inner_names = {b: b.name.partition('$')[2] or b.name for b in inner.buffers}  # carry0, x1, captured0
    parts = [describe_kernel(k, inner_names) for k in inner.kernels]
    steps = size_expr(kernel.length)
    flops = steps * sum((sympy.sympify(p["flops"]) for p in parts), sympy.Integer(0))
    moved = steps * sum((sympy.sympify(p["bytes"]) for p in parts), sympy.Integer(0))
    body = (f"for each of {kernel.length} steps{' (reversed)' if kernel.reverse else ''}: "
            + " | ".join(p["body"] for p in parts))
    return {"kind": "scan", "out": ", ".join(names[b] for b in kernel.outer_writes if b.role != "temp") or
            names[kernel.out], "shape": [kernel.length], "body": body, "flops": str(flops), "bytes": str(moved),
            "nodes": sum(p["nodes"] for p in parts)}
