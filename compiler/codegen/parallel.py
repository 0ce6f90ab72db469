"""Which kernels a program splits across threads, and the entry-side call that splits them.

A kernel runs on several threads when it is large and its iterations write disjoint outputs:

- a fused loop nest (elementwise, or hosting reductions that all keep its outermost axis) splits
  its outermost loop (after axis collapsing: often the whole flat loop) into contiguous ranges;
- a matrix product splits its batch of products, and when there are fewer products than threads,
  each product's columns (or rows, when it has more rows than columns) in whole register tiles.

Every output element is computed by the same instructions in the same order whatever the split,
so a program gives the same bits with 1 and N threads. Scans, attention, scatter-adds and
kernels of several chained loops stay on one thread (``unchain_products`` unchains the products
and the update phase's large loops first).

Small kernels stay on one thread: splitting costs about a microsecond (more when a worker has
parked), so a loop splits from PARALLEL_MIN_ELEMENTS iteration points and a product from
PARALLEL_MIN_PRODUCT multiply-adds, decided per call from the bound dimensions
(SYMPROP_SPLIT_ALL=1 lowers both to zero, for tests).
"""
from __future__ import annotations

import dataclasses
import os

import sympy
from llvmlite import ir

from runtime.thread_pool import PARALLEL_FOR, TASK

from .access import size_expr
from .loops import I64, emit_size

PARALLEL_MIN_ELEMENTS = 1 << 15
PARALLEL_MIN_PRODUCT = 1 << 18


def split_everything() -> bool:
    """SYMPROP_SPLIT_ALL=1: split every kernel that can split, however small (for tests: the
    fuzzers compile their small programs this way to check the split code)."""
    return os.environ.get("SYMPROP_SPLIT_ALL", "0") not in ("", "0")


def threads_key(threads: int) -> str:
    """The part of a cache key that says how a program splits across threads."""
    return f"threads={threads}" + (" split all" if threads > 1 and split_everything() else "")


def splits(kernel, threads: int) -> bool:
    """Whether `kernel`'s function takes a [lo, hi) range that threads share."""
    if threads <= 1 or kernel.prologue or kernel.epilogue or not kernel.space:
        return False
    if kernel.kind == "bmm":
        return True
    if kernel.kind != "elementwise":
        return False
    # Only the outermost axis: the loops inside stay exactly as on one thread. (Splitting an inner
    # axis -- a bias gradient's columns -- changes its trip count, and with it how LLVM reassociates
    # the sum over the outer loop: other bits. It measured no faster either.)
    return all(0 in kept for _, _, _, kept in kernel.reductions)


def _large(kernel) -> bool:
    """A loop that may split when unchained: symbolic, or of PARALLEL_MIN_ELEMENTS points (any
    size but one point under SYMPROP_SPLIT_ALL)."""
    count = sympy.Mul(*[size_expr(d) for d in kernel.space])
    return not count.is_Integer or int(count) >= (2 if split_everything() else PARALLEL_MIN_ELEMENTS)


def unchain_products(kernels: list, threads: int) -> list:
    """With threads > 1, a product's chained tiny loops (``loop_fusion.chain_kernels``) become kernels
    of their own beside it, so that the product splits (a function of several loops does not); so
    do the large loops of the update phase (one chain of every parameter's update loop: from
    PARALLEL_MIN_ELEMENTS points, or symbolic), while its small loops stay chained together.
    Update loops run in any order: each reads only its own targets (anything else reads a
    snapshot taken before the updates)."""
    if threads <= 1:
        return kernels
    unchained = []
    for kernel in kernels:
        if kernel.kind == "bmm" and (kernel.prologue or kernel.epilogue):
            alone = dataclasses.replace(kernel, prologue=[], epilogue=[])
            unchained += [*kernel.prologue, alone, *kernel.epilogue]
        elif kernel.in_place and kernel.epilogue and not kernel.prologue and any(map(_large, kernel.parts())):
            parts = [dataclasses.replace(kernel, epilogue=[]), *kernel.epilogue]
            small = [part for part in parts if not _large(part)]
            unchained += [part for part in parts if _large(part)]
            if small:
                unchained.append(dataclasses.replace(small[0], epilogue=small[1:]))
        else:
            unchained.append(kernel)
    return unchained


def product_parts(b: ir.IRBuilder, products, threads: int):
    """Pieces each product of a bmm is cut into: 1 when there are at least `threads` products."""
    return b.select(b.icmp_signed(">=", products, I64(threads)), I64(1), I64(threads))


def extent_and_work(b: ir.IRBuilder, kernel, dims: dict, threads: int) -> tuple:
    """(tasks, work, threshold) of a splitting kernel at the bound dimensions: the range its function
    takes, and its size with the threshold from which it splits."""
    from .kernels import collapse_axes
    space = kernel.space

    def size(expr):
        return emit_size(b, expr, dims)

    if kernel.kind == "bmm":
        products = size(sympy.Mul(*[size_expr(d) for a, d in enumerate(space[:-2]) if a not in kernel.summed_axes]))
        summed = sympy.Mul(*[size_expr(space[a]) for a in kernel.summed_axes])
        work = b.mul(products, size(summed * sympy.Mul(*[size_expr(d) for d in space[-2:]]) * size_expr(kernel.contract_dim)))
        return b.mul(products, product_parts(b, products, threads)), work, PARALLEL_MIN_PRODUCT
    groups = collapse_axes(kernel) if not kernel.reductions else [[a] for a in range(len(space))]
    tasks = size(sympy.Mul(*[size_expr(space[a]) for a in groups[0]]))
    work = size(sympy.Mul(*[size_expr(d) for d in space]))
    return tasks, work, PARALLEL_MIN_ELEMENTS


def task_function(module: ir.Module, kernel_function: ir.Function, kernel) -> ir.Function:
    """``void <kernel>_task(i8* context, i64 lo, i64 hi)``: context = {i8** table, i64* dims}; loads the
    kernel's buffer pointers from the table and runs its range [lo, hi)."""
    from .kernels import buffer_arguments
    name = f"{kernel_function.name}_task"
    if name in module.globals:  # the entry and the kernel's runner share it
        return module.globals[name]
    task = ir.Function(module, TASK, name=name)
    task.linkage = "internal"
    context, lo, hi = task.args
    b = ir.IRBuilder(task.append_basic_block("entry"))
    slots = b.bitcast(context, ir.IntType(8).as_pointer().as_pointer())
    table = b.bitcast(b.load(slots, align=8), ir.IntType(8).as_pointer().as_pointer())
    dims = b.bitcast(b.load(b.gep(slots, [I64(1)]), align=8), I64.as_pointer())
    b.call(kernel_function, buffer_arguments(b, table, kernel) + [dims, lo, hi])
    b.ret_void()
    return task


def split_context(b: ir.IRBuilder, table, dims_pointer):
    """The context every task of an entry function gets: {i8** table, i64* dims}, on its stack."""
    i8p = ir.IntType(8).as_pointer()
    with b.goto_entry_block():
        context = b.alloca(i8p, size=I64(2), name="context")
    b.store(b.bitcast(table, i8p), context)
    b.store(b.bitcast(dims_pointer, i8p), b.gep(context, [I64(1)]))
    return b.bitcast(context, i8p)


def call_split(b: ir.IRBuilder, module: ir.Module, kernel_function: ir.Function, kernel, context, dims_pointer,
               dims: dict, arguments: list, threads: int) -> None:
    """Run a splitting kernel: across the pool when its work reaches the threshold, else here.
    context: the entry's ``split_context``; dims: the bound dimensions by name, loaded."""
    tasks, work, threshold = extent_and_work(b, kernel, dims, threads)
    threshold = 0 if split_everything() else threshold
    with b.if_else(b.icmp_signed(">=", work, I64(threshold))) as (shared, alone):
        with shared:
            pool = module.globals.get(PARALLEL_FOR) or ir.Function(
                module, ir.FunctionType(ir.VoidType(), [TASK.as_pointer(), context.type, I64, I64]), name=PARALLEL_FOR)
            b.call(pool, [task_function(module, kernel_function, kernel), context, tasks, I64(threads)])
        with alone:
            b.call(kernel_function, arguments + [dims_pointer, I64(0), tasks])
