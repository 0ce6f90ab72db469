"""LLVM IR for one scheduled kernel.

Each kernel is an internal function ``void k(T0* noalias, T1* noalias, ...,
i64* dims)`` taking one pointer per distinct buffer it touches (output first)
and the table of symbolic dimension values. Elementwise kernels loop over
the output; reductions loop over their input and accumulate into the
output; ``bmm`` loops over batch dimensions and calls the GEMM routine.
"""
from __future__ import annotations

import hashlib

import sympy
from llvmlite import ir

from .access import Access, Bound, IndexedMatrix, contiguous_strides, digit_offsets, linear_form, size_expr
from .gather_kernels import GatherLoad, emit_gather, emit_scatter_add
from .gemm import gemm_function
from .gemm_loops import host_tile_shape, pack_b_all_function, tiled_gemm_function
from .loops import I64, emit_size, loop_nest, range_loop
from .parallel import product_parts, splits
from .random_bits import RandomDraw, emit_draw
from .scalar import lower_cse
from .schedule import Kernel

IR_TYPES = {"float32": ir.FloatType(), "float64": ir.DoubleType(), "int32": ir.IntType(32),
            "int64": ir.IntType(64), "bool": ir.IntType(8)}
ITEMSIZE = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1}


def kernel_buffers(kernel: Kernel) -> list:
    """Distinct buffers of a kernel, output first, then reads by buffer index."""
    if kernel.kind == "scan":
        return kernel.buffer_list()
    writes = list(dict.fromkeys(kernel.in_place_of.get(buffer, buffer)  # written over: one pointer for both
                                for part in kernel.parts() for buffer in _part_writes(part)))
    reads = sorted(kernel.reads() - set(writes), key=lambda b: b.index)
    return writes + reads


def buffer_arguments(b: ir.IRBuilder, table, kernel: Kernel) -> list:
    """The kernel's buffer pointers (``kernel_buffers`` order), loaded from a program's table."""
    pointers = []
    for buffer in kernel_buffers(kernel):
        raw = b.load(b.gep(table, [I64(buffer.index)]), align=8)
        pointers.append(b.bitcast(raw, IR_TYPES[buffer.dtype].as_pointer()))
    return pointers


def _part_writes(kernel: Kernel) -> list:
    """What one loop of a kernel's function writes, in order."""
    if kernel.kind != "elementwise":
        return [kernel.out]
    return [buffer for buffer, _ in kernel.bodies()] + [out for _, out, _, _ in kernel.reductions]


def collapse_axes(kernel: Kernel) -> list:
    """Groups of adjacent iteration axes that one flat loop can cover.

    Axes a and a+1 merge when every read advances by the same linear step across
    them as the (contiguous) output does, so a contiguous (64, 10) update is one
    loop of 640 that vectorises instead of 64 loops of 10.
    """
    space = kernel.space
    if not space or any(isinstance(a, (Bound, GatherLoad)) or isinstance(a, Access) and a.checked
                        for a in kernel.leaves.values()):
        return [[a] for a in range(len(space))]
    forms = [contiguous_strides(space)]
    forms += [linear_form(a, len(space))[0] for a in kernel.leaves.values() if isinstance(a, Access)]
    forms += [a.linear_form(len(space))[0] for a in kernel.leaves.values() if isinstance(a, RandomDraw)]
    groups = [[len(space) - 1]]
    for axis in range(len(space) - 2, -1, -1):
        inner = groups[0]
        extent = sympy.Mul(*[size_expr(space[a]) for a in inner])
        if all(sympy.expand(form[axis] - form[inner[-1]] * extent) == 0 for form in forms):
            inner.insert(0, axis)
        else:
            groups.insert(0, [axis])
    return groups


DOUBLE_ACCUMULATOR_LIMIT = 4096
SHORT_ROW = 16  # innermost loops shorter than this stay rolled for the vectoriser (loops.keep_rolled)


def _offset_table(module: ir.Module, offsets: list) -> ir.GlobalVariable:
    """A constant int64 array of the module holding `offsets` (one per distinct table)."""
    name = "symprop.offsets." + hashlib.sha1(repr(offsets).encode()).hexdigest()[:16]
    if name in module.globals:
        return module.globals[name]
    table = ir.GlobalVariable(module, ir.ArrayType(I64, len(offsets)), name=name)
    table.linkage, table.global_constant = "internal", True
    table.initializer = ir.Constant(ir.ArrayType(I64, len(offsets)), offsets)
    table.align = 64
    return table


def identity_of(kind: str) -> float:
    return 0.0 if kind == "sum" else float("-inf")


def ty_size(ty: ir.Type) -> int:
    return 8 if ty == ir.DoubleType() else 4


def combine(b: ir.IRBuilder, kind: str, old: ir.Value, value: ir.Value) -> ir.Value:
    """One step of a sum (reassociable, so it vectorises) or of a NaN-propagating max."""
    if kind == "sum":
        return b.fadd(old, value, flags=("reassoc", "contract"))
    greater = b.fcmp_unordered(">", value, old)  # true when value is NaN too
    keep_nan = b.fcmp_unordered("uno", old, old)
    return b.select(keep_nan, old, b.select(greater, value, old))


class KernelEmitter:
    """The function of one kernel. With threads > 1, a kernel that ``splits`` takes two more
    arguments, the range [lo, hi) of its outermost loop (of its products, for a bmm) to run."""

    def __init__(self, module: ir.Module, kernel: Kernel, name: str, dim_names: list, threads: int = 1):
        self.module, self.kernel, self.threads = module, kernel, threads
        self.buffers = kernel_buffers(kernel)
        split = splits(kernel, threads)
        args = [IR_TYPES[b.dtype].as_pointer() for b in self.buffers] + [I64.as_pointer()] + [I64] * (2 * split)
        self.function = ir.Function(module, ir.FunctionType(ir.VoidType(), args), name=name)
        self.function.linkage = "internal"
        self.function.attributes.add("noinline")
        for arg in self.function.args[:len(self.buffers)]:
            arg.add_attribute("noalias")
        self.builder = ir.IRBuilder(self.function.append_basic_block("entry"))
        self.pointers = {b: arg for b, arg in zip(self.buffers, self.function.args)}
        self.pointers.update({out: self.pointers[source] for out, source in kernel.in_place_of.items()})
        dims_ptr = self.function.args[len(self.buffers)]
        self.share = tuple(self.function.args[len(self.buffers) + 1:]) or None  # (lo, hi) when split
        self.dims = {name: self.builder.load(self.builder.gep(dims_ptr, [I64(k)]), name=f"dim.{name}", align=8)
                     for k, name in enumerate(dim_names)}
        self.ty = IR_TYPES[kernel.dtype]
        self.groups = [[a] for a in range(len(kernel.space))]  # iteration axes looped together

    def size(self, expr) -> ir.Value:
        return emit_size(self.builder, expr, self.dims)

    def emit(self) -> ir.Function:
        """The function: the kernel's loop, after its prologue's loops and before its epilogue's."""
        for part in self.kernel.parts():
            self._emit_part(part)
        self.builder.ret_void()
        return self.function

    def _emit_part(self, kernel: Kernel) -> None:
        self.kernel, self.ty = kernel, IR_TYPES[kernel.dtype]
        self.groups = [[a] for a in range(len(kernel.space))]
        kind = kernel.kind
        if kind == "elementwise":
            self._elementwise()
        elif kind in ("sum", "max"):
            self._reduce()
        elif kind == "bmm":
            self._bmm()
        elif kind == "scatter_add":
            emit_scatter_add(self)
        else:
            raise AssertionError(kind)

    # ---- loads and stores --------------------------------------------------------------------

    def convert(self, value: ir.Value, source: str, target_ty: ir.Type) -> ir.Value:
        b = self.builder
        if source in ("float32", "float64"):
            if value.type == target_ty:
                return value
            return b.fpext(value, target_ty) if source == "float32" else b.fptrunc(value, target_ty)
        if source == "bool":
            return b.uitofp(value, target_ty)
        return b.sitofp(value, target_ty)

    def load(self, access: Access, indices) -> ir.Value:
        """The element `access` reads at the iteration point `indices` (one per loop group).

        A read with conditions loads only where every condition holds (`_guarded_load`), so no
        address outside the buffer is ever read, and selects each failing condition's fill
        instead (the outermost failing condition wins)."""
        b = self.builder
        linear = self.linear_index(linear_form(access, len(self.kernel.space)), indices)
        conditions = [self._holds(bound, indices) for bound in access.index.valid]
        if any(d == 0 for d in access.buffer.shape):  # every read of an empty buffer fails a condition
            value = ir.Constant(self.ty, 0.0)
        elif conditions:
            value = self._guarded_load(access, linear, conditions)
        else:
            pointer = b.gep(self.pointers[access.buffer], [linear])
            value = b.load(pointer, align=ITEMSIZE[access.buffer.dtype])
            value = self.convert(value, access.buffer.dtype, self.ty)
        for bound, condition in reversed(list(zip(access.index.valid, conditions))):
            value = b.select(condition, value, ir.Constant(self.ty, bound.fill))
        return value

    def linear_index(self, form, indices) -> ir.Value:
        """offset + sum(coef * index) of a linear form (per iteration axis) at the point `indices`
        (one per loop group)."""
        b, (coefs, offset) = self.builder, form
        linear = self.size(offset)
        for group, index in zip(self.groups, indices):
            coef = coefs[group[-1]]
            if coef != 0:
                linear = b.add(linear, b.mul(index, self.size(coef)))
        return linear

    def _guarded_load(self, access: Access, linear, conditions) -> ir.Value:
        """The element at `linear` where every condition holds, else 0: the load sits in a branch
        taken only when it is valid, so no address outside the buffer is ever read, and the loop
        vectoriser turns it into a masked vector load of consecutive elements."""
        b = self.builder
        every = conditions[0]
        for condition in conditions[1:]:
            every = b.and_(every, condition)
        element = IR_TYPES[access.buffer.dtype]
        before = b.block
        with b.if_then(every, likely=True):
            pointer = b.gep(self.pointers[access.buffer], [linear])
            loaded = b.load(pointer, align=ITEMSIZE[access.buffer.dtype])
            inside = b.block
        phi = b.phi(element)
        phi.add_incoming(loaded, inside)
        phi.add_incoming(ir.Constant(element, 0), before)
        return self.convert(phi, access.buffer.dtype, self.ty)

    def _holds(self, bound, indices) -> ir.Value:
        """lo <= affine < hi at this iteration point (ungrouped loops: one index per axis)."""
        b = self.builder
        value = I64(bound.index.offset)
        for axis, coef in bound.index.terms:
            value = b.add(value, b.mul(indices[axis], I64(coef)))
        return b.and_(b.icmp_signed(">=", value, I64(bound.lo)), b.icmp_signed("<", value, I64(bound.hi)))

    def store_value(self, value: ir.Value, dtype: str) -> ir.Value:
        """Convert a compute value to the buffer dtype."""
        b, target = self.builder, IR_TYPES[dtype]
        if dtype in ("float32", "float64"):
            if value.type == target:
                return value
            return b.fptrunc(value, target) if dtype == "float32" else b.fpext(value, target)
        if dtype == "bool":
            return b.zext(b.fcmp_unordered("!=", value, ir.Constant(value.type, 0.0)), target)
        return b.fptosi(value, target)

    def out_index(self, indices, shape) -> ir.Value:
        b, linear = self.builder, I64(0)
        strides = contiguous_strides(shape)
        if len(indices) != len(shape):  # collapsed iteration axes
            strides = [strides[group[-1]] for group in self.groups]
        for stride, index in zip(strides, indices):
            linear = b.add(linear, b.mul(index, self.size(stride)))
        return linear

    def body_values(self, indices, bodies) -> list:
        env, blocks = {}, {}
        for symbol, source in self.kernel.leaves.items():
            if isinstance(source, Access):
                env[symbol] = self.load(source, indices)
            elif isinstance(source, RandomDraw):  # drawn here, never loaded
                env[symbol] = emit_draw(self, source, indices, blocks)
            elif isinstance(source, GatherLoad):  # an id loaded, then the element at it
                env[symbol] = emit_gather(self, source, indices)
            elif isinstance(source, Bound):  # 1 where a value computed in the kernel is valid
                env[symbol] = self.builder.uitofp(self._holds(source, indices), self.ty)
            else:
                env[symbol] = self.builder.sitofp(self.dims[source[1]], self.ty)
        return lower_cse(self.builder, bodies, env, self.ty)

    def body_value(self, indices) -> ir.Value:
        return self.body_values(indices, [self.kernel.body])[0]

    # ---- kernel kinds ------------------------------------------------------------------------

    def _elementwise(self):
        """Stored outputs, and hosted reductions accumulated from the same loop."""
        kernel, b = self.kernel, self.builder
        if not kernel.reductions:
            self.groups = collapse_axes(kernel)
        counts = [self.size(sympy.Mul(*[size_expr(kernel.space[a]) for a in group])) for group in self.groups]
        outputs = kernel.bodies()
        last = len(kernel.space) - 1
        # Reductions over the innermost axis add each row in a float register first (a vectorised
        # partial, exact enough for a row), then the row into the accumulator: precise and fast.
        rowwise = [last >= 0 and last not in kept for _, _, _, kept in kernel.reductions]
        accumulators = [self._start_reduction(kind, out, tuple(kernel.space[a] for a in kept), wide=row)
                        for (kind, out, _, kept), row in zip(kernel.reductions, rowwise)]
        partials = [self._register(self.ty) if row else None for row in rowwise]
        outer_share, inner_share = (self.share, None) if len(counts) > 1 else (None, self.share)
        with loop_nest(b, counts[:-1], first=outer_share) as outer:
            for (kind, _, _, _), partial in zip(kernel.reductions, partials):
                if partial is not None:
                    b.store(ir.Constant(self.ty, identity_of(kind)), partial)
            with loop_nest(b, counts[-1:], "inner", first=inner_share, unroll=self._unroll_inner(counts)) as inner:
                indices = list(outer) + list(inner)
                bodies = [body for _, body in outputs] + [body for _, _, body, _ in kernel.reductions]
                values = self.body_values(indices, bodies)
                linear = self.out_index(indices, kernel.space)
                for (buffer, _), value in zip(outputs, values):
                    pointer = b.gep(self.pointers[buffer], [linear])
                    b.store(self.store_value(value, buffer.dtype), pointer, align=ITEMSIZE[buffer.dtype])
                for (kind, _, _, kept), accumulator, partial, value in zip(
                        kernel.reductions, accumulators, partials, values[len(outputs):]):
                    if partial is None:
                        self._accumulate(kind, accumulator, value, [indices[a] for a in kept])
                    else:
                        b.store(combine(b, kind, b.load(partial), value), partial)
            for (kind, _, _, kept), accumulator, partial in zip(kernel.reductions, accumulators, partials):
                if partial is not None:
                    self._accumulate(kind, accumulator, b.load(partial), [outer[a] for a in kept])
        for accumulator in accumulators:
            self._finish_reduction(accumulator)

    def _unroll_inner(self, counts: list) -> bool:
        """Whether LLVM may unroll the innermost loop. Not when it is short (a row of a small image),
        inside another loop, and reads some buffer at stride 2 (pooling) and none at a wider stride:
        unrolled whole, the loop around it would be vectorised instead, reading with gathers, where
        the row itself vectorises with wide loads and a shuffle. Rows that read at wider strides
        (transposes) do better as LLVM decides."""
        if len(counts) < 2 or not isinstance(counts[-1], ir.Constant) or counts[-1].constant >= SHORT_ROW:
            return True
        last = len(self.kernel.space) - 1
        steps = {linear_form(a, last + 1)[0][last] for a in self.kernel.leaves.values() if isinstance(a, Access)}
        return not (steps <= {0, 1, 2} and 2 in steps)

    def _register(self, ty: ir.Type) -> ir.Value:
        """A scalar variable (an entry-block alloca, which LLVM keeps in a register)."""
        with self.builder.goto_entry_block():
            return self.builder.alloca(ty)

    def _start_reduction(self, kind: str, out, out_shape, wide: bool = False) -> tuple:
        """(pointer, element type, output shape, output buffer) a reduction accumulates into, filled
        with 0 or -inf. With `wide` (rows are added outside the innermost loop), a float32 output of
        static size up to DOUBLE_ACCUMULATOR_LIMIT elements (a loss) accumulates in float64 on the
        stack: a sum of a million float32 terms keeps float32 precision. (Inside the innermost loop
        float64 would halve the vector width of the whole loop.)"""
        b = self.builder
        count = sympy.Mul(*[size_expr(d) for d in out_shape])
        if wide and out.dtype == "float32" and count.is_Integer and int(count) <= DOUBLE_ACCUMULATOR_LIMIT:
            ty = ir.DoubleType()
            with b.goto_entry_block():  # an entry-block alloca becomes a register (mem2reg)
                pointer = b.alloca(ty, size=I64(max(int(count), 1)), name="accumulator")
        else:
            ty, pointer = IR_TYPES[out.dtype], self.pointers[out]
        with range_loop(b, *self._output_range(out_shape), I64(1), "init") as i:
            b.store(ir.Constant(ty, identity_of(kind)), b.gep(pointer, [i]), align=ty_size(ty))
        return pointer, ty, out_shape, out

    def _output_range(self, out_shape) -> tuple:
        """[start, stop) of a reduction's output this function computes: all of it, or when split,
        the rows of its first axis (the split loop's axis) in the thread's range."""
        count = sympy.Mul(*[size_expr(d) for d in out_shape])
        if self.share is None:
            return I64(0), self.size(count)
        row = self.size(sympy.Mul(*[size_expr(d) for d in out_shape[1:]]))
        return self.builder.mul(self.share[0], row), self.builder.mul(self.share[1], row)

    def _accumulate(self, kind: str, accumulator: tuple, value, indices) -> None:
        b = self.builder
        pointer, ty, out_shape, _ = accumulator
        if value.type != ty:
            value = b.fpext(value, ty) if ty == ir.DoubleType() else b.fptrunc(value, ty)
        element = b.gep(pointer, [self.out_index(indices, out_shape)])
        b.store(combine(b, kind, b.load(element, align=ty_size(ty)), value), element, align=ty_size(ty))

    def _finish_reduction(self, accumulator: tuple) -> None:
        """Copy a float64 stack accumulator into its float32 output."""
        b = self.builder
        pointer, ty, out_shape, out = accumulator
        if pointer is self.pointers[out]:
            return
        with range_loop(b, *self._output_range(out_shape), I64(1), "finish") as i:
            value = b.fptrunc(b.load(b.gep(pointer, [i]), align=8), IR_TYPES[out.dtype])
            b.store(value, b.gep(self.pointers[out], [i]), align=ITEMSIZE[out.dtype])

    def _reduce(self):
        """A reduction into an integer output (a count of a mask), one output at a time in a
        register. (Float reductions are loops hosting a reduction after loop_fusion.)"""
        kernel, b = self.kernel, self.builder
        if kernel.out.dtype in ("float32", "float64"):
            raise AssertionError("float reductions are emitted as loops (loop_fusion._as_loop)")
        out_shape = tuple(kernel.space[a] for a in kernel.kept_axes)
        kept = kernel.kept_axes
        reduced = [a for a in range(len(kernel.space)) if a not in kept]
        kept_counts = [self.size(size_expr(kernel.space[a])) for a in kept]
        reduced_counts = [self.size(size_expr(kernel.space[a])) for a in reduced]
        accumulator = self._register(self.ty)
        with loop_nest(b, kept_counts, "o") as outer:
            b.store(ir.Constant(self.ty, identity_of(kernel.kind)), accumulator)
            with loop_nest(b, reduced_counts, "r") as inner:
                indices = [None] * len(kernel.space)
                for a, index in zip(kept, outer):
                    indices[a] = index
                for a, index in zip(reduced, inner):
                    indices[a] = index
                b.store(combine(b, kernel.kind, b.load(accumulator), self.body_value(indices)), accumulator)
            pointer = b.gep(self.pointers[kernel.out], [self.out_index(outer, out_shape)])
            b.store(self.store_value(b.load(accumulator), kernel.out.dtype), pointer, align=ITEMSIZE[kernel.out.dtype])

    def _bmm(self):
        """A product per batch point; when split, the thread's share of (product, piece) tasks:
        each product cut into ``product_parts`` pieces of whole register tiles, along its columns
        (its rows when it has more rows than columns). Products along ``summed_axes`` add up into
        one result, in order, within one task: the same bits for any thread count."""
        kernel, b = self.kernel, self.builder
        batch = kernel.space[:-2]
        m, n = self.size(size_expr(kernel.space[-2])), self.size(size_expr(kernel.space[-1]))
        counts = [self.size(size_expr(d)) for d in batch]
        kept = [a for a in range(len(batch)) if a not in kernel.summed_axes]
        kept_counts = [counts[a] for a in kept]
        if self.share is None:
            with loop_nest(b, kept_counts, "b") as indices:
                self._summed_product(indices, counts, I64(0), m, I64(0), n)
            return
        products = I64(1)
        for count in kept_counts:
            products = b.mul(products, count)
        parts = product_parts(b, products, self.threads)
        tile = host_tile_shape(kernel.dtype)
        by_columns = b.icmp_signed(">=", n, m)
        extent = b.select(by_columns, n, m)
        width = b.select(by_columns, I64(tile.panel), I64(tile.rows))
        tiles = b.sdiv(b.add(extent, b.sub(width, I64(1))), width)
        with range_loop(b, *self.share, I64(1), "task") as task:
            which, piece = b.sdiv(task, parts), b.srem(task, parts)
            indices = []
            for count in reversed(kept_counts):  # the batch point of product `which`, row-major
                indices.insert(0, b.srem(which, count))
                which = b.sdiv(which, count)
            bounds = []
            for k in (piece, b.add(piece, I64(1))):
                edge = b.mul(b.sdiv(b.mul(tiles, k), parts), width)
                bounds.append(b.select(b.icmp_signed("<", edge, extent), edge, extent))
            start, length = bounds[0], b.sub(bounds[1], bounds[0])
            self._summed_product(indices, counts, b.select(by_columns, I64(0), start), b.select(by_columns, m, length),
                                 b.select(by_columns, start, I64(0)), b.select(by_columns, length, n))

    def _summed_product(self, kept_indices, counts, row0, rows, col0, cols) -> None:
        """The product at a batch point of the kept axes: with ``summed_axes``, the sum of the products
        along them, each after the first adding into C (none at all: C zeroed by a product of depth 0)."""
        kernel, b = self.kernel, self.builder
        summed = kernel.summed_axes
        if not summed:
            self._product(kept_indices, row0, rows, col0, cols)
            return

        def merged(summed_indices):
            kept_iter, summed_iter = iter(kept_indices), iter(summed_indices)
            return [next(summed_iter) if a in summed else next(kept_iter) for a in range(len(counts))]

        summed_counts = [counts[a] for a in summed]
        total = I64(1)
        for count in summed_counts:
            total = b.mul(total, count)
        with b.if_then(b.icmp_signed("==", total, I64(0))):
            self._product(merged([I64(0)] * len(summed)), row0, rows, col0, cols, depth=I64(0))
        with loop_nest(b, summed_counts, "s") as summed_indices:
            later = I64(0)
            for index in summed_indices:
                later = b.or_(later, index)
            accumulate = b.zext(b.icmp_signed("!=", later, I64(0)), I64)
            self._product(merged(summed_indices), row0, rows, col0, cols, accumulate=accumulate)

    def _c_coefs(self) -> list:
        """Element stride of the output per iteration axis: 0 along the summed batch axes."""
        space, summed = self.kernel.space, self.kernel.summed_axes
        strides = iter(contiguous_strides([d for a, d in enumerate(space) if a not in summed]))
        return [sympy.Integer(0) if a in summed else next(strides) for a in range(len(space))]

    def _product(self, indices, row0, rows, col0, cols, accumulate=None, depth=None) -> None:
        """C[rows from row0, cols from col0] of the product at batch point `indices`, added to C
        where `accumulate` (an i64) is not 0; `depth` overrides K (0: C zeroed)."""
        kernel, b = self.kernel, self.builder
        a_access, b_access = kernel.operands
        space = kernel.space  # batch..., M, N
        batch = space[:-2]
        m, n = self.size(size_expr(space[-2])), self.size(size_expr(space[-1]))
        k = self.size(size_expr(kernel.contract_dim)) if depth is None else depth
        accumulate = I64(0) if accumulate is None else accumulate
        if isinstance(a_access, IndexedMatrix):
            self._indexed_product(indices, row0, rows, col0, cols, k, accumulate)
            return
        a_coefs, a_offset = linear_form(a_access, len(batch) + 2)
        b_coefs, b_offset = linear_form(b_access, len(batch) + 2)
        gemm = gemm_function(self.module, kernel.dtype)
        a_trans, lda = self._leading(a_coefs[-2], a_coefs[-1], k, m)
        b_trans, ldb = self._leading(b_coefs[-2], b_coefs[-1], n, k)
        ldc = n
        c_strides = self._c_coefs()
        offsets = []
        for coefs, offset, corner in ((a_coefs, a_offset, b.mul(row0, self.size(a_coefs[-2]))),
                                      (b_coefs, b_offset, b.mul(col0, self.size(b_coefs[-1]))),
                                      (c_strides, 0, b.add(b.mul(row0, ldc), col0))):
            linear = self.size(offset)
            for coef, index in zip(coefs, indices):
                linear = b.add(linear, b.mul(index, self.size(coef)))
            offsets.append(b.add(linear, corner))
        pa = b.gep(self.pointers[a_access.buffer], [offsets[0]])
        pb = b.gep(self.pointers[b_access.buffer], [offsets[1]])
        pc = b.gep(self.pointers[kernel.out], [offsets[2]])
        if kernel.packed_b is not None:  # packed by `emit_pack_b` before the scan's loop
            assert self.share is None and not batch, "a product whose B is packed once is one unsplit product"
            prepacked = tiled_gemm_function(self.module, kernel.dtype, prepacked=True)
            b.call(prepacked, [rows, cols, k, pa, lda, a_trans, self.pointers[kernel.packed_b], pc, ldc, accumulate])
            return
        b.call(gemm, [rows, cols, k, pa, lda, a_trans, pb, ldb, b_trans, pc, ldc, accumulate])

    def _indexed_product(self, indices, row0, rows, col0, cols, k, accumulate) -> None:
        """_product when A is an IndexedMatrix: the GEMM reads it through its offset tables
        (constants of the module), from row `row0` on."""
        kernel, b = self.kernel, self.builder
        a_access, b_access = kernel.operands
        space = kernel.space
        n = self.size(size_expr(space[-1]))
        b_coefs, b_offset = linear_form(b_access, len(space))
        b_trans, ldb = self._leading(b_coefs[-2], b_coefs[-1], n, self.size(size_expr(kernel.contract_dim)))
        a_linear, b_linear, c_linear = I64(a_access.offset), self.size(b_offset), I64(0)
        for index, a_coef, b_coef, c_coef in zip(indices, a_access.batch, b_coefs, self._c_coefs()):
            a_linear = b.add(a_linear, b.mul(index, I64(a_coef)))
            b_linear = b.add(b_linear, b.mul(index, self.size(b_coef)))
            c_linear = b.add(c_linear, b.mul(index, self.size(c_coef)))
        pb = b.gep(self.pointers[b_access.buffer], [b.add(b_linear, b.mul(col0, self.size(b_coefs[-1])))])
        pc = b.gep(self.pointers[kernel.out], [b.add(c_linear, b.add(b.mul(row0, n), col0))])
        row_table, depth_table = (b.gep(_offset_table(self.module, digit_offsets(digits)), [I64(0), I64(0)])
                                  for digits in (a_access.rows, a_access.depths))
        gemm = tiled_gemm_function(self.module, kernel.dtype, indexed=True)
        b.call(gemm, [rows, cols, k, b.gep(self.pointers[a_access.buffer], [a_linear]), b.gep(row_table, [row0]),
                      depth_table, pb, ldb, b_trans, pc, n, accumulate])

    def emit_pack_b(self) -> ir.Function:
        """The function (same arguments as the product's) that packs the product's B whole into
        ``kernel.packed_b``, once before a scan's loop, so that no step packs it again."""
        kernel, b = self.kernel, self.builder
        _, b_access = kernel.operands
        n, k = self.size(size_expr(kernel.space[-1])), self.size(size_expr(kernel.contract_dim))
        b_coefs, b_offset = linear_form(b_access, 2)
        b_trans, ldb = self._leading(b_coefs[-2], b_coefs[-1], n, k)
        pb = b.gep(self.pointers[b_access.buffer], [self.size(b_offset)])
        b.call(pack_b_all_function(self.module, kernel.dtype), [pb, ldb, b_trans, k, n, self.pointers[kernel.packed_b]])
        b.ret_void()
        return self.function

    def _leading(self, row_coef, col_coef, cols, rows):
        """(transposed flag, leading dimension) of a matrix view rows x cols; the GEMM
        routine takes any leading dimension (0 for a broadcast operand)."""
        if col_coef == 1:
            return I64(0), self.size(row_coef)
        return I64(1), self.size(col_coef)
