"""Counted loops and integer size arithmetic in LLVM IR."""
from __future__ import annotations

import contextlib

import sympy
from llvmlite import ir

I8, I64 = ir.IntType(8), ir.IntType(64)


@contextlib.contextmanager
def range_loop(builder: ir.IRBuilder, start: ir.Value, stop: ir.Value, step: ir.Value, name: str = "i",
               unroll: bool = True):
    """`for (i = start; i < stop; i += step)` (step > 0); yields i. The builder ends after the loop.
    unroll=False: LLVM must not unroll it before vectorising it (``keep_rolled``)."""
    preheader = builder.block
    header = builder.append_basic_block(f"{name}.header")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(header)
    builder.position_at_end(header)
    index = builder.phi(I64, name=name)
    index.add_incoming(start, preheader)
    builder.cbranch(builder.icmp_signed("<", index, stop), body, done)
    builder.position_at_end(body)
    yield index
    index.add_incoming(builder.add(index, step, name=f"{name}.next", flags=("nsw",)), builder.block)
    latch = builder.branch(header)
    if not unroll:
        keep_rolled(builder.module, latch)
    builder.position_at_end(done)


def keep_rolled(module: ir.Module, latch: ir.Instruction) -> None:
    """Mark a loop so that LLVM does not unroll it: a short loop of constant trip count (a 7-wide row)
    would otherwise be unrolled whole, and the loop around it vectorised instead, reading with gathers
    whatever the row reads with a stride. Kept, it is vectorised itself (masked, its stride-2 reads as
    wide loads and a shuffle). The loop ID is a node of its own for each loop (not one of the module's
    shared, uniqued ones) and refers to itself, as LLVM requires."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    loop_id = ir.values.MDValue(module, [disable], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, disable)
    latch.set_metadata("llvm.loop", loop_id)


def counted_loop(builder: ir.IRBuilder, count: ir.Value, name: str = "i"):
    """`for (i = 0; i < count; ++i)`; yields i."""
    return range_loop(builder, I64(0), count, I64(1), name)


@contextlib.contextmanager
def loop_nest(builder: ir.IRBuilder, counts, name: str = "i", first=None, unroll: bool = True):
    """Nested counted loops, outermost first; yields the list of indices. first: (lo, hi), the range
    the outermost loop covers instead of [0, counts[0]) (a thread's share)."""
    with contextlib.ExitStack() as stack:
        indices = [stack.enter_context(range_loop(builder, *(first if k == 0 and first else (I64(0), c)), I64(1),
                                                  f"{name}{k}", unroll)) for k, c in enumerate(counts)]
        yield indices


def emit_size(builder: ir.IRBuilder, expr, dims: dict) -> ir.Value:
    """A sympy integer expression over dimension symbols as an i64 (dims: name -> i64 value)."""
    expr = sympy.sympify(expr)
    if expr.is_Integer:
        return I64(int(expr))
    if expr.is_Symbol:
        return dims[expr.name]
    if expr.is_Pow and expr.exp.is_Integer and expr.exp > 0:  # batch*batch
        base = emit_size(builder, expr.base, dims)
        result = base
        for _ in range(int(expr.exp) - 1):
            result = builder.mul(result, base)
        return result
    if expr.is_Mul or expr.is_Add:
        values = [emit_size(builder, a, dims) for a in expr.args]
        result = values[0]
        for v in values[1:]:
            result = builder.mul(result, v) if expr.is_Mul else builder.add(result, v)
        return result
    raise NotImplementedError(f"size expression {expr}")
