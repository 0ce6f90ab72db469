"""A whole program: every kernel plus one entry function that calls them in order.

``build_program(outputs, prefix)`` returns the LLVM IR text, the plan the
runtime needs (buffers, roles, shapes, dtypes, arena slots, dimension order,
kernel descriptions) and the constant arrays. The entry function is

    void <prefix>_entry(i8** buffers, i64* dims)

so a call is one native call with two pointers.
"""
from __future__ import annotations

import sympy
from llvmlite import ir

from ..shapes import symbolic_dims
from .access import Access, size_expr
from .contraction import lower_einsums
from .gemm import gemm_externals
from .kernels import IR_TYPES, ITEMSIZE, KernelEmitter, kernel_buffers
from .loops import I64
from .memory import assign_slots
from .schedule import schedule

PLAN_VERSION = 1


def _dim_names(sched) -> list:
    names = set()
    for buffer in sched.buffers:
        names.update(symbolic_dims(buffer.shape))
    for kernel in sched.kernels:
        names.update(symbolic_dims(kernel.space))
        names.update(source[1] for source in kernel.leaves.values() if isinstance(source, tuple))
    return sorted(names)


def _count(expr) -> str:
    return str(sympy.sympify(expr))


def describe_kernel(kernel, names: dict) -> dict:
    """Body text with buffer names, FLOP and byte estimates (expressions in dims)."""
    size = sympy.Mul(*[size_expr(d) for d in kernel.space])
    touched = sum((sympy.Mul(*[size_expr(d) for d in b.shape]) * ITEMSIZE[b.dtype] for b in kernel_buffers(kernel)),
                  sympy.Integer(0))
    if kernel.kind == "bmm":
        flops = 2 * size * size_expr(kernel.contract_dim)
        body = f"{names[kernel.operands[0].buffer]} @ {names[kernel.operands[1].buffer]}"
    else:
        flops = size * max(sympy.count_ops(kernel.body, visual=False), 1 if kernel.kind != "elementwise" else 0)
        rename = {s: sympy.Symbol(names[a.buffer] if isinstance(a, Access) else a[1]) for s, a in kernel.leaves.items()}
        body = str(kernel.body.xreplace(rename))
        if kernel.kind != "elementwise":
            body = f"{kernel.kind} over axes {tuple(a for a in range(len(kernel.space)) if a not in kernel.kept_axes)} of {body}"
    return {"kind": kernel.kind, "out": kernel.out.name, "shape": list(kernel.space), "body": body,
            "flops": _count(flops), "bytes": _count(touched),
            "nodes": len(kernel.nodes) or 1}


def build_program(outputs, prefix: str):
    outputs = lower_einsums(outputs)
    sched = schedule(outputs)
    dim_names = _dim_names(sched)
    module = ir.Module(name=prefix)
    functions = [KernelEmitter(module, kernel, f"{prefix}_k{k}", dim_names).emit()
                 for k, kernel in enumerate(sched.kernels)]
    entry = ir.Function(module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer().as_pointer(), I64.as_pointer()]),
                        name=f"{prefix}_entry")
    builder = ir.IRBuilder(entry.append_basic_block("entry"))
    table, dims = entry.args
    for function, kernel in zip(functions, sched.kernels):
        args = []
        for buffer in kernel_buffers(kernel):
            raw = builder.load(builder.gep(table, [I64(buffer.index)]), align=8)
            args.append(builder.bitcast(raw, IR_TYPES[buffer.dtype].as_pointer()))
        builder.call(function, args + [dims])
    builder.ret_void()
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
        "slots": len(set(slots.values())),
        "kernels": [describe_kernel(k, names) for k in sched.kernels],
        "externals": gemm_externals(module),
    }
    return str(module), plan, consts
