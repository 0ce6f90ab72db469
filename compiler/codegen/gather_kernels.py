"""Gathers read inside the reading loop; scatter-adds are kernels of their own.

A ``gather`` never runs alone. A kernel reading it at an iteration point gets a
``GatherLoad`` leaf: the ids element at that point (an integer load through the
ids' layout ops, under the read's validity bounds), then the element of `a`
whose gathered axis is that id. The id enters `a`'s index as one more loop
axis (axis n of an n-axis loop), so `a`'s layout ops (transpose, slice,
broadcast, reshape, pad) map it with the same affine rules as any other
index, and the emitter adds id * coefficient to the linear index. The load of
`a` sits in a branch taken only when 0 <= id < size and every bound holds:
an id out of range reads 0, never outside a buffer (the runtime raises for it
after the call, ``label_ranges``). An embedding is then one loop over the
output: load the row's id, read the row.

A ``scatter_add`` is a ``ScatterKernel``: its output is first the tensor it
adds into (a copy, or a constant fill such as a gradient's zeros), then one
loop over the ids in row-major order loads each id and, when it is in range,
adds the source element (the source's expression is computed in that loop,
fused like any map) at the id's position. One addition after the other in a
fixed order, no atomics: the same bits on every run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy
from llvmlite import ir

from ..graph import Node
from .access import Access, Affine, Index, contiguous_strides, identity_index, linear_form, size_expr
from .gather_access import GatherLoad
from .loops import I64, counted_loop, loop_nest
from .schedule import Kernel, compute_dtype, through_layout
from .storage import LAYOUT_OPS


def stored_read(scheduler, node: Node, index: Index, kernel, space: tuple) -> Access:
    """An Access reading `node` at `index` through layout ops (bounds kept), the value they reach
    stored in a buffer. An in-place update loop reads a snapshot of an update target."""
    view = None
    while node.op in LAYOUT_OPS and node not in scheduler.buffer_of:
        inner = through_layout(node, index)
        if inner is None:  # a general reshape: its stored argument read with the reshape's shape
            view = node.shape
            node = node.args[0]
            break
        node, index = node.args[0], inner
    buffer = scheduler.materialize(node)
    if kernel.in_place and buffer in scheduler.write_targets:
        buffer = scheduler._snapshot(buffer)
    return Access(buffer, view if view is not None else node.shape, index.within(space))


def gather_read(scheduler, node: Node, mapping: Index, kernel) -> sympy.Expr:
    """The scalar a kernel reads from the gather `node` at `mapping`: a GatherLoad leaf, guarded by
    the read's bounds like any computed value."""
    a, ids = node.args
    axis, n = node.attr("axis"), len(kernel.space)
    dims = tuple(Affine.axis(n) if d == axis else Affine() if size == 1 and node.shape[d] != 1 else mapping.dims[d]
                 for d, size in enumerate(a.shape))
    source = stored_read(scheduler, a, Index(dims), kernel, tuple(kernel.space) + (a.shape[axis],))
    ids_read = stored_read(scheduler, ids, mapping, kernel, kernel.space)
    load = GatherLoad(source, ids_read, a.shape[axis], len(mapping.within(kernel.space).valid), n)
    symbol = next((s for s, existing in kernel.leaves.items() if existing == load), None)
    if symbol is None:
        symbol = sympy.Symbol(f"g{len(kernel.leaves)}", real=True)
        kernel.leaves[symbol] = load
    return scheduler._guarded(symbol, mapping, kernel)


# ---- scatter_add ---------------------------------------------------------------------------------

def _fill_value(node: Node):
    """The one value of a constant (through broadcasts and reshapes) with all elements equal, else None."""
    while node.op in ("broadcast", "reshape"):
        node = node.args[0]
    if node.op != "const":
        return None
    array = node.attr("value").array.reshape(-1)
    if array.size == 0 or not (array == array[0]).all():
        return None
    return array[0].item()


def scatter_kernel(scheduler, node: Node, out):
    """The kernel of a scatter_add node into `out`: initial value, ids and source over the ids' space."""
    a, ids, source = node.args
    kernel = ScatterKernel("scatter_add", out, ids.shape, compute_dtype(node.dtype), nodes=[node], root=node)
    kernel.axis, kernel.size = node.attr("axis"), a.shape[node.attr("axis")]
    kernel.body = scheduler.expr(source, identity_index(source.ndim), kernel)
    kernel.ids = stored_read(scheduler, ids, identity_index(ids.ndim), kernel, kernel.space)
    kernel.fill = _fill_value(a)
    if kernel.fill is None:
        kernel.init = Access(scheduler.materialize(a), a.shape, identity_index(a.ndim))
    return kernel


@dataclass
class ScatterKernel(Kernel):
    """A scatter-add: `out` = `init` (or `fill` everywhere), then for each point i of the ids' space,
    in row-major order, out[i with axis := ids[i]] += body(i) where 0 <= ids[i] < size."""

    ids: Access | None = None
    init: Access | None = None
    fill: float | None = 0.0
    axis: int = 0
    size: int = 0

    def reads(self):
        extra = {self.ids.buffer} | ({self.init.buffer} if self.init is not None else set())
        return super().reads() | extra


# ---- emission ------------------------------------------------------------------------------------

def _index_load(emitter, access: Access, indices, conditions) -> ir.Value:
    """The integer at `access` (an i64), loaded only where every condition holds (else 0)."""
    from .kernels import IR_TYPES, ITEMSIZE
    b = emitter.builder
    element = IR_TYPES[access.buffer.dtype]
    if any(d == 0 for d in access.buffer.shape):
        return I64(0)
    linear = emitter.linear_index(linear_form(access, len(emitter.kernel.space)), indices)
    if conditions:
        every = conditions[0]
        for condition in conditions[1:]:
            every = b.and_(every, condition)
        before = b.block
        with b.if_then(every, likely=True):
            loaded = b.load(b.gep(emitter.pointers[access.buffer], [linear]), align=ITEMSIZE[access.buffer.dtype])
            inside = b.block
        value = b.phi(element)
        value.add_incoming(loaded, inside)
        value.add_incoming(ir.Constant(element, 0), before)
    else:
        value = b.load(b.gep(emitter.pointers[access.buffer], [linear]), align=ITEMSIZE[access.buffer.dtype])
    return b.sext(value, I64) if element.width < 64 else value


def _id(emitter, ids: Access, indices, outer: int) -> tuple:
    """(id as i64, conditions of the ids read): the bounds of the ids' own layout ops select their
    fill (a pad of ids reads its pad value as the id); the read's outer bounds only guard the load."""
    b = emitter.builder
    conditions = [emitter._holds(bound, indices) for bound in ids.index.valid]
    value = _index_load(emitter, ids, indices, conditions)
    for bound, condition in reversed(list(zip(ids.index.valid, conditions))[outer:]):
        fill = int(bound.fill) if math.isfinite(bound.fill) else 0
        value = b.select(condition, value, I64(fill))
    return value, conditions[:outer]


def _in_range(emitter, value: ir.Value, size: int) -> ir.Value:
    b = emitter.builder
    return b.and_(b.icmp_signed(">=", value, I64(0)), b.icmp_signed("<", value, I64(size)))


def emit_gather(emitter, load: GatherLoad, indices) -> ir.Value:
    """The value of a GatherLoad leaf at the iteration point `indices` (one per loop axis)."""
    b = emitter.builder
    n = len(emitter.kernel.space)
    value, guards = _id(emitter, load.ids, indices, load.outer)
    inside = _in_range(emitter, value, load.size)
    extended = list(indices) + [value]
    own = [emitter._holds(bound, extended) for bound in load.source.index.valid]
    coefs, offset = linear_form(load.source, n + 1)
    linear = emitter.linear_index((coefs[:n], offset), indices)
    if coefs[n] != 0:
        linear = b.add(linear, b.mul(value, emitter.size(coefs[n])))
    if any(d == 0 for d in load.source.buffer.shape):
        element = ir.Constant(emitter.ty, 0.0)
    else:
        element = emitter._guarded_load(load.source, linear, guards + [inside] + own)
    for bound, condition in reversed(list(zip(load.source.index.valid, own))):
        element = b.select(condition, element, ir.Constant(emitter.ty, bound.fill))
    return b.select(inside, element, ir.Constant(emitter.ty, 0.0))


def emit_scatter_add(emitter) -> None:
    """Fill or copy the output, then add each source element at its id, in row-major order of the ids."""
    from .kernels import IR_TYPES, ITEMSIZE
    kernel, b = emitter.kernel, emitter.builder
    out = kernel.out
    out_ty, align = IR_TYPES[out.dtype], ITEMSIZE[out.dtype]
    pointer = emitter.pointers[out]
    total = emitter.size(sympy.Mul(*[size_expr(d) for d in out.shape]))
    with counted_loop(b, total, "init") as i:
        if kernel.init is None:
            fill = kernel.fill
            value = ir.Constant(out_ty, fill if isinstance(out_ty, (ir.FloatType, ir.DoubleType)) else int(fill))
        else:
            value = b.load(b.gep(emitter.pointers[kernel.init.buffer], [i]), align=ITEMSIZE[kernel.init.buffer.dtype])
        b.store(value, b.gep(pointer, [i]), align=align)
    strides = contiguous_strides(out.shape)
    counts = [emitter.size(size_expr(d)) for d in kernel.space]
    with loop_nest(b, counts, "s") as indices:
        value, _ = _id(emitter, kernel.ids, indices, 0)
        inside = _in_range(emitter, value, kernel.size)
        addend = emitter.body_value(indices)
        with b.if_then(inside):
            target = b.mul(value, emitter.size(strides[kernel.axis]))
            for d, (size, index) in enumerate(zip(out.shape, indices)):
                if d != kernel.axis and not (size == 1 and kernel.space[d] != 1):
                    target = b.add(target, b.mul(index, emitter.size(strides[d])))
            element = b.gep(pointer, [target])
            old = emitter.convert(b.load(element, align=align), out.dtype, emitter.ty)
            b.store(emitter.store_value(b.fadd(old, addend), out.dtype), element, align=align)


def gather_reads_of(kernel) -> set:
    """Buffers a kernel reads at gathered positions or through ids (loop fusion must not join a loop
    reading them to the loop writing them: the element read may not be written yet)."""
    return {access.buffer for leaf in kernel.leaves.values() if isinstance(leaf, GatherLoad) for access in leaf.reads()}


