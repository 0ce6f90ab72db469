"""From a graph to an ordered list of fused kernels over buffers.

Fusion rules:
- a map used once is computed inside the kernel that uses it (a chain of maps
  is one loop whose body is one sympy expression; a map feeding a reduction is
  computed inside the reduction's loop);
- layout ops never run by themselves: they become index arithmetic in the
  kernels that read them (``access``), except a reshape of something that is
  not a contiguous buffer, which materialises its source first;
- a map used several times, all by maps of one loop at the same index (no
  broadcast between them), is computed once inside that loop: its sympy
  expression is shared and cse'd (``storage.shared_map_homes``), so a residual chain
  ``h = h + f(h)`` is one loop too;
- a node gets a buffer of its own when it is a leaf, a program output, a
  reduction, a matrix product, a concatenation, or any other map used more than
  once (unless it is so cheap that each user recomputes it: ``storage.recomputable``);
- in-place updates are grouped into loops by ``update_layouts``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from .. import scalar_functions as sf
from ..dtypes import is_float
from ..graph import Node
from ..shapes import product_dim, size_factors
from ..traversal import topological_order, users
from ..primitives import PRIMITIVES
from ..primitives.random import LANES, value_of_uniforms
from .access import (Access, Affine, Buffer, Index, IndexedMatrix, concat_piece, identity_index, linear_form,
                     size_expr, through_broadcast)
from .random_bits import RandomDraw
from .gather_access import GatherLoad
from .storage import LAYOUT_OPS, chain_breaks, read_repeatedly, recomputable, shared_map_homes
from .update_layouts import layout_index, update_loops, writes_element_read



def through_layout(node: Node, index: Index):
    """The index into node.args[0] that reading `node` at `index` means (None: store it first)."""
    return PRIMITIVES[node.op].index(node, index)


@dataclass
class Kernel:
    """One loop nest: elementwise, a reduction (sum/max) or a batched matrix product."""

    kind: str  # "elementwise", "sum", "max", "bmm"
    out: Buffer
    space: tuple  # iteration shape
    dtype: str  # compute dtype
    body: sympy.Expr | None = None
    leaves: dict = field(default_factory=dict)  # Symbol -> Access | ("dim", name)
    kept_axes: tuple = ()  # reductions: iteration axes that index the output
    operands: tuple = ()  # bmm: (Access, Access) over (batch..., M, K) and (batch..., K, N)
    contract_dim: int | str = 1  # bmm: K
    extra_outputs: list = field(default_factory=list)  # elementwise: more (Buffer, body) written in the same loop
    in_place: bool = False  # an update loop: runs after every other kernel
    snapshot: bool = False  # a copy of an update target taken before the updates
    nodes: list = field(default_factory=list)  # graph nodes computed here
    root: Node | None = None  # the node whose loop this is (shared maps join it)
    shared: dict = field(default_factory=dict)  # (shared map, mapping) -> its expression, built once
    reductions: list = field(default_factory=list)  # elementwise: (kind, Buffer, body, kept axes) in the same loop
    stores_out: bool = True  # False once joined loops made `out` unread (loop_fusion.py)
    joined: list = field(default_factory=list)  # roots of the loops joined into this one
    prologue: list = field(default_factory=list)  # kernels run before this one's loop, in its function
    epilogue: list = field(default_factory=list)  # kernels run after it (loop_fusion.chain_kernels)
    packed_b: Buffer | None = None  # bmm in a scan's body: its B, the same at every step, packed once here
    summed_axes: tuple = ()  # bmm: batch axes whose products add up into one result (a weight's gradient summed
                             # over the samples), each accumulated into `out` rather than stored apart and summed
    in_place_of: dict = field(default_factory=dict)  # output -> the temporary it overwrites (memory.mark_in_place)

    def parts(self) -> list:
        """The kernels this one's function runs, in order (itself among them)."""
        return self.prologue + [self] + self.epilogue

    def writes(self) -> set:
        own = {buffer for buffer, _ in self.bodies()} | {out for _, out, _, _ in self.reductions}
        return own.union(*(part.writes() for part in self.prologue + self.epilogue))

    def bodies(self) -> list:
        """(buffer, body) of every stored output."""
        return ([(self.out, self.body)] if self.stores_out else []) + list(self.extra_outputs)

    def reads(self):
        accesses = list(self.operands) + [a for a in self.leaves.values() if isinstance(a, Access)]
        accesses += [a for draw in self.leaves.values() if isinstance(draw, RandomDraw) for a in draw.reads()]
        accesses += [a for load in self.leaves.values() if isinstance(load, GatherLoad) for a in load.reads()]
        packed = {self.packed_b} if self.packed_b is not None else set()
        return packed | {a.buffer for a in accesses}.union(*(part.reads() for part in self.prologue + self.epilogue))


def compute_dtype(dtype: str) -> str:
    return dtype if is_float(dtype) else "float64"


def draws_inline(node: Node, dtype: str) -> bool:
    """Whether a loop computing in `dtype` draws the random `node` itself: in the node's dtype, or a
    float32 uniform in float64 (exact, so a comparison of the draw in a bool map draws in its loop)."""
    return node.dtype == dtype or (node.attr("distribution"), node.dtype, dtype) == ("uniform", "float32", "float64")


def effective_uses(order) -> dict:
    """How many kernels would read each node (layout ops pass their users' count through)."""
    uses = {n: 0 for n in order}
    for node in reversed(order):
        weight = uses[node] if node.op in LAYOUT_OPS else 1
        for arg in dict.fromkeys(node.args):
            uses[arg] += max(weight, 1) if node.op in LAYOUT_OPS else 1
    return uses


class Scheduler:
    """Builds the kernel list; see the module docstring for the rules."""

    def __init__(self, outputs, updates=(), eager_updates: bool = False):
        self.outputs = list(outputs)
        self.updates = list(updates)  # (target leaf, new value): written in place, after everything else
        self.eager_updates = eager_updates  # or each as soon as its value is ready (``_schedule_updates``)
        self.order = topological_order(self.outputs + [v for _, v in self.updates] + [t for t, _ in self.updates])
        self.write_targets: set = set()
        self.snapshots: dict = {}
        self.uses = effective_uses(self.order)
        self.home = shared_map_homes(self.order, self.outputs)
        self.chain_breaks = chain_breaks(self.order, set(self.outputs))
        self.buffers: list[Buffer] = []
        self.kernels: list[Kernel] = []
        self.buffer_of: dict = {}
        self.output_buffers: list[Buffer] = []
        self.first_output: dict = {}  # node -> index of the first output it is
        self.computed_outputs: dict = {}  # output index -> its buffer, computed before the outputs' turn
        self._users: dict | None = None  # node -> the nodes reading it (built on first need)

    def new_buffer(self, node: Node, role: str, name: str | None = None) -> Buffer:
        buffer = Buffer(len(self.buffers), node.shape, node.dtype, role, name or f"t{len(self.buffers)}")
        self.buffers.append(buffer)
        return buffer

    def run(self):
        for node in self.order:
            if node.op in ("input", "param"):
                self.buffer_of[node] = self.new_buffer(node, node.op, node.name)
            elif node.op == "const" and node.attr("value").array.size > 1:
                self.buffer_of[node] = self.new_buffer(node, "const", f"c{len(self.buffers)}")
        for i, node in enumerate(self.outputs):
            if not node.is_leaf:
                self.first_output.setdefault(node, i)
        for node in self.order:  # arguments first: building any kernel recurses at most CHAIN_LIMIT nodes deep
            if node in self.chain_breaks:
                self.materialize(node)
        for i, node in enumerate(self.outputs):
            if i in self.computed_outputs:
                self.output_buffers.append(self.computed_outputs[i])
                continue
            out = self.new_buffer(node, "output", f"out{i}")
            self.output_buffers.append(out)
            if node in self.buffer_of or node.is_leaf:
                self._elementwise(node, out, copy=True)
            else:
                self._compute(node, out)
        self._schedule_updates()
        return self

    def _schedule_updates(self):
        """In-place updates: one multi-output loop per element layout and dtype, after every other kernel.

        Targets are contiguous, so targets of one element count whose shapes differ only by
        size-1 axes or by a reshape ((1, 64), (64,) and (64, 1); (64, 10) and (640,)) are
        written by one loop over their common layout (``update_loops``). Such a loop reads
        each element of its own targets before writing it. Anything else that reads a
        target (another group's loop, a transposed read) reads a snapshot taken before any
        update runs.
        """
        self.write_targets = {self.buffer_of[t] for t, _ in self.updates}
        for target, value in self.updates:
            if target.op not in ("param", "input") or value.shape != target.shape:
                raise ValueError(f"update of {target!r} must be a value of shape {target.shape}, got {value.shape}")
        if self.eager_updates and not {t for t, _ in self.updates} & set(
                topological_order(self.outputs + [v for _, v in self.updates])):
            for target, value in self.updates:  # in the caller's order, each right after what it needs
                kernel = Kernel("elementwise", self.buffer_of[target], target.shape, compute_dtype(target.dtype),
                                in_place=True)
                kernel.body = self.expr(value, identity_index(target.ndim), kernel, root=True)
                self.kernels.append(kernel)
            return
        deferred = []
        for space, dtype, items in update_loops(self.updates):
            kernel = Kernel("elementwise", self.buffer_of[items[0][0]], space, compute_dtype(dtype), in_place=True)
            kernel.extra_outputs = [(self.buffer_of[t], None) for t, _ in items[1:]]
            bodies = [self.expr(v, layout_index(t.shape, space), kernel, root=True) for t, v in items]
            kernel.body = bodies[0]
            kernel.extra_outputs = [(buffer, body) for (buffer, _), body in zip(kernel.extra_outputs, bodies[1:])]
            deferred.append(kernel)
        self.kernels.extend(deferred)

    def _snapshot(self, buffer: Buffer) -> Buffer:
        """A copy of an update target taken before any update runs."""
        copy = self.snapshots.get(buffer)
        if copy is None:
            copy = Buffer(len(self.buffers), buffer.shape, buffer.dtype, "temp", f"t{len(self.buffers)}")
            self.buffers.append(copy)
            kernel = Kernel("elementwise", copy, buffer.shape, compute_dtype(buffer.dtype), snapshot=True)
            kernel.body = self._load(Access(buffer, buffer.shape, identity_index(len(buffer.shape))), kernel)
            self.kernels.append(kernel)
            self.snapshots[buffer] = copy
        return copy

    # ---- materialisation --------------------------------------------------------------------

    def materialize(self, node: Node) -> Buffer:
        """The buffer holding `node`, computing it first if need be: into its output buffer when the
        node is an output (so no copy follows), else into a new temporary."""
        buffer = self.buffer_of.get(node)
        if buffer is None:
            i = self.first_output.get(node)
            if i is None:
                buffer = self.new_buffer(node, "temp")
            else:
                buffer = self.computed_outputs[i] = self.new_buffer(node, "output", f"out{i}")
            self._compute(node, buffer)
        return buffer

    def _compute(self, node: Node, out: Buffer):
        self.buffer_of.setdefault(node, out)
        if node.op in ("sum", "max"):
            self._reduce(node, out)
        elif node.op == "bmm":
            self._bmm(node, out)
        elif node.op == "scatter_add":
            from .gather_kernels import scatter_kernel
            self.kernels.append(scatter_kernel(self, node, out))
        elif node.op == "scan":
            from .scan_lowering import schedule_scan
            schedule_scan(self, node, out)
        elif node.op == "attention":
            from .attention_kernel import attention_kernel
            self.kernels.append(attention_kernel(self, node, out))
        else:
            self._elementwise(node, out)

    def _elementwise(self, node: Node, out: Buffer, copy: bool = False):
        kernel = Kernel("elementwise", out, node.shape, compute_dtype(node.dtype), root=None if copy else node)
        if node.op == "concat":
            kernel.body = self._concat(node, identity_index(node.ndim), kernel)
        else:
            kernel.body = self.expr(node, identity_index(node.ndim), kernel, root=not copy)
        self.kernels.append(kernel)

    def _reduce(self, node: Node, out: Buffer):
        source, axes = node.args[0], node.attr("axes")
        if node.op == "sum" and self._sums_products(source, axes):
            self._bmm(source, out, summed_axes=tuple(sorted(axes)))
            return
        kernel = Kernel(node.op, out, source.shape, compute_dtype(node.dtype),
                        kept_axes=tuple(a for a in range(source.ndim) if a not in axes), nodes=[node], root=node)
        kernel.body = self.expr(source, identity_index(source.ndim), kernel)
        self.kernels.append(kernel)

    def _sums_products(self, source: Node, axes) -> bool:
        """Whether a sum over `axes` of `source` is a batch of products read by nothing else, summed
        over batch axes only: the products then accumulate into the sum's buffer (``summed_axes``)."""
        return (source.op == "bmm" and source not in self.buffer_of and source not in self.first_output
                and self.uses[source] == 1 and all(a < source.ndim - 2 for a in axes))

    def _bmm(self, node: Node, out: Buffer, summed_axes: tuple = ()):
        kernel = Kernel("bmm", out, node.shape, node.dtype, nodes=[node], contract_dim=node.args[0].shape[-1], root=node,
                        summed_axes=summed_axes)
        operands = []
        for position, arg in enumerate(node.args):
            access = self._indexed_matrix(arg) if position == 0 else None
            if access is None:
                access = self.plain_access(arg, identity_index(arg.ndim))
            if access is None or (isinstance(access, Access) and not _matrix_compatible(access, arg.ndim)):
                access = Access(self.materialize(arg), arg.shape, identity_index(arg.ndim))
            operands.append(access)
        kernel.operands = tuple(operands)
        self.kernels.append(kernel)

    def plain_access(self, node: Node, mapping: Index):
        """An Access reading `node` through layout ops only (no maps, no bounds checks), or None.
        `mapping` indexes `node` over an iteration space of node's own shape."""
        space, source = node.shape, None
        while node.op in LAYOUT_OPS and node not in self.buffer_of:
            inner = through_layout(node, mapping)
            if inner is None:  # a general reshape: read its stored source with node's shape
                merged = self._merged_reshape(node, mapping, space) if node.op == "reshape" else None
                if merged is not None:
                    return merged
                source = node.args[0]
                break
            node, mapping = node.args[0], inner
        if source is None and not (node in self.buffer_of or node.op in ("sum", "max", "bmm", "concat", "map",
                                                                          "input", "param", "attention")):
            return None
        mapping = mapping.within(space)
        if mapping.valid:
            return None
        return Access(self.materialize(source if source is not None else node), node.shape, mapping)

    def _merged_reshape(self, node: Node, mapping: Index, space: tuple):
        """An Access reading a reshape that merges axes straight from where its argument is read,
        when each merged run of the argument's axes steps through memory with one stride (a
        history (T, batch, H) transposed and read as (H, T*batch) by a product); None otherwise
        (the argument is then stored with the reshape's shape)."""
        source = node.args[0]
        groups = _merge_groups(source.shape, node.shape)
        if groups is None or mapping.within(space).valid:
            return None
        inner = self.plain_access(source, identity_index(source.ndim))
        if inner is None:
            return None
        coefs, offset = linear_form(inner, source.ndim)
        if not sympy.sympify(offset).is_Integer:
            return None
        flat = Affine((), int(offset))
        for j, group in enumerate(groups):
            group = [a for a in group if source.shape[a] != 1]
            if not group:
                continue
            for a, b in zip(group, group[1:]):
                if sympy.expand(coefs[a] - coefs[b] * size_expr(source.shape[b])) != 0:
                    return None
            stride = sympy.sympify(coefs[group[-1]])
            if not stride.is_Integer:
                return None
            flat = flat.plus(mapping.dims[j].scaled(int(stride)))
        return Access(inner.buffer, (product_dim(*size_factors(inner.buffer.shape)),), Index((flat,)))

    def _indexed_matrix(self, operand: Node):
        """A product's A that merges the axes of a windowed view (a convolution's im2col matrix)
        read through offset tables from the array under the windows (``IndexedMatrix``), which is
        stored padded if a pad lies between: 1/taps of the matrix's size. None when the operand
        is not such a view, a table would exceed TABLE_LIMIT entries, or anything but products'
        A operands reads the merging reshape (it is stored then anyway)."""
        space, mapping, node = operand.shape, identity_index(operand.ndim), operand
        while node.op in LAYOUT_OPS and node not in self.buffer_of:
            inner = through_layout(node, mapping)
            if inner is None:
                break
            node, mapping = node.args[0], inner
        if node.op != "reshape" or node in self.buffer_of or mapping.within(space).valid:
            return None
        reshape, source = node, node.args[0]
        groups = _merge_groups(source.shape, reshape.shape)
        m, k = len(space) - 2, len(space) - 1
        if (groups is None or not all(isinstance(space[a], int) and 0 < space[a] <= TABLE_LIMIT for a in (m, k))
                or not self._read_as_product_rows(reshape)):
            return None
        matrix_axes = {}  # m or k -> the reshape axis it reads
        for j, affine in enumerate(mapping.dims):
            for axis, coef in affine.terms:
                if axis in (m, k):
                    if affine != Affine.axis(axis) or axis in matrix_axes:
                        return None
                    matrix_axes[axis] = j
        if len(matrix_axes) != 2:
            return None
        inner = self.plain_access(source, identity_index(source.ndim))
        if inner is None:  # bounds (a pad) or an unstored map under the windows: store that, padded
            bottom = source
            while bottom.op in LAYOUT_OPS and bottom.op != "pad" and bottom not in self.buffer_of:
                bottom = bottom.args[0]
            self.materialize(bottom)
            inner = self.plain_access(source, identity_index(source.ndim))
            if inner is None:
                return None
        coefs, offset = linear_form(inner, source.ndim)
        if not all(sympy.sympify(c).is_Integer for c in [*coefs, offset]):
            return None
        digits = [tuple((source.shape[a], int(coefs[a])) for a in group if source.shape[a] != 1) for group in groups]
        if all(_one_stride(digits[j]) for j in matrix_axes.values()):
            return None  # a plain strided read (``_merged_reshape``) needs no tables
        batch, offset = [0] * (len(space) - 2), int(offset)
        for j, affine in enumerate(mapping.dims):
            if j in matrix_axes.values():
                continue
            if not _one_stride(digits[j]):
                return None  # a batch axis must step through memory with one stride
            stride = digits[j][-1][1] if digits[j] else 0
            offset += affine.offset * stride
            for axis, coef in affine.terms:
                batch[axis] += coef * stride
        return IndexedMatrix(inner.buffer, space, tuple(batch), offset, digits[matrix_axes[m]], digits[matrix_axes[k]])

    def _read_as_product_rows(self, node: Node) -> bool:
        """Whether every read of `node` is, through layout ops, the A operand of a product."""
        if self._users is None:
            self._users = users(self.order)
        readers = self._users.get(node, [])
        return bool(readers) and node not in self.first_output and all(
            (user.op == "bmm" and user.args[0] is node and user.args[1] is not node)
            or (user.op in LAYOUT_OPS and self._read_as_product_rows(user)) for user in readers)

    # ---- expressions ------------------------------------------------------------------------------

    def _inlines(self, node: Node, mapping, kernel: Kernel, root: bool) -> bool:
        if root:
            return node.op == "map"
        if node.op != "map" or node in self.buffer_of:
            return False
        if not (node.dtype == kernel.dtype or node.dtype == "bool"):
            return False
        if kernel.root is not None and self.home.get(node) is kernel.root and mapping == identity_index(node.ndim):
            return True
        if recomputable(node):
            return True
        return self.uses[node] <= 1 and not read_repeatedly(node, mapping, kernel.space)

    def expr(self, node: Node, mapping: Index, kernel: Kernel, root: bool = False) -> sympy.Expr:
        """Scalar expression of `node` at the iteration point described by `mapping`.

        A value computed in the kernel (a number, a dimension, an inlined map) under validity
        bounds is guarded by them: where a bound fails it is the bound's fill, as a load is."""
        if node.op == "const" and node.attr("value").array.size == 1:
            return self._guarded(_number(node.attr("value").array.reshape(()).item()), mapping, kernel)
        if node.op == "dim":
            symbol = sympy.Symbol(f"d_{node.name}", real=True)
            kernel.leaves[symbol] = ("dim", node.name)
            return self._guarded(symbol, mapping, kernel)
        if node.op == "gather" and (root or node not in self.buffer_of):  # an id loaded, then the element
            from .gather_kernels import gather_read
            if root:
                kernel.nodes.append(node)
            return gather_read(self, node, mapping, kernel)
        if node.op == "random" and draws_inline(node, kernel.dtype):
            return self._guarded(self._random(node, mapping, kernel), mapping, kernel)
        if self._inlines(node, mapping, kernel, root):
            if (node, mapping) in kernel.shared and not root:
                return kernel.shared[(node, mapping)]
            kernel.nodes.append(node)
            body = node.attr("body")
            values = {sympy.Symbol(f"x{i}", real=True): self.expr(arg, through_broadcast(mapping, arg.shape, node.shape), kernel)
                      for i, arg in enumerate(node.args)}
            result = self._guarded(_substituted(body, values), mapping, kernel)
            if node in self.home and not root:
                kernel.shared[(node, mapping)] = result
            return result
        if node.op in LAYOUT_OPS and (root or node not in self.buffer_of):
            inner = through_layout(node, mapping)
            if inner is None:
                return self._load(Access(self.materialize(node.args[0]), node.shape, mapping), kernel)
            if root:
                kernel.nodes.append(node)
            return self.expr(node.args[0], inner, kernel)
        if node.op == "concat" and root:
            return self._concat(node, mapping, kernel)
        return self._load(Access(self.materialize(node), node.shape, mapping), kernel)

    def _random(self, node: Node, mapping: Index, kernel: Kernel) -> sympy.Expr:
        """A random node is drawn where it is read (``draws_inline``; a loop of another float type
        reads a stored draw): one RandomDraw leaf per uniform its distribution needs, at the
        element `mapping` reads, so every kernel reading an element -- forward and backward --
        draws the same bits."""
        seed, counter = (Access(self.materialize(arg), (), Index(())) for arg in node.args)
        uniforms = []
        for lane in LANES[node.attr("distribution")]:
            draw = RandomDraw(node.attr("stream"), node.shape, node.dtype, Index(mapping.dims), seed, counter, lane)
            symbol = next((s for s, existing in kernel.leaves.items() if existing == draw), None)
            if symbol is None:
                symbol = sympy.Symbol(f"r{len(kernel.leaves)}", real=True)
                kernel.leaves[symbol] = draw
            uniforms.append(symbol)
        return value_of_uniforms(node.attr("distribution"), uniforms)

    def _guarded(self, value: sympy.Expr, mapping: Index, kernel: Kernel) -> sympy.Expr:
        """`value` where every bound of `mapping` holds; else the fill of the first that fails."""
        for bound in reversed(mapping.within(kernel.space).valid):
            symbol = next((s for s, existing in kernel.leaves.items() if existing == bound), None)
            if symbol is None:
                symbol = sympy.Symbol(f"v{len(kernel.leaves)}", real=True)
                kernel.leaves[symbol] = bound
            value = sf.Where(symbol, value, _number(bound.fill))
        return value

    def _concat(self, node: Node, mapping, kernel):
        """concat = sum of zero-padded pieces: each piece reads 0 outside its range."""
        axis, offset, total = node.attr("axis"), 0, sympy.Integer(0)
        kernel.nodes.append(node)
        for piece in node.args:
            size = piece.shape[axis]
            total = total + self.expr(piece, concat_piece(mapping, axis, offset, size), kernel)
            offset += size
        return total

    def _load(self, access: Access, kernel: Kernel) -> sympy.Expr:
        access = Access(access.buffer, access.view_shape, access.index.within(kernel.space))
        if kernel.in_place and access.buffer in self.write_targets:
            in_place = access.buffer in kernel.writes() and writes_element_read(access, kernel.space)
            if not in_place:
                access = Access(self._snapshot(access.buffer), access.view_shape, access.index)
        for symbol, existing in kernel.leaves.items():
            if existing == access:
                return symbol
        symbol = sympy.Symbol(f"a{len(kernel.leaves)}", real=True)
        kernel.leaves[symbol] = access
        return symbol


def _substituted(body: sympy.Expr, values: dict) -> sympy.Expr:
    """`body` with its arguments' expressions substituted. sympy's algebra runs on the result and may
    cancel an operand the body reads: x * 0 with a size-1 constant 0 written in (also in x + y * 0, where
    x stays), (a k) / k with the map a k inlined. As the simplifier never lets it (``passes/identities.py``,
    ``constant_folding.py``), a written-in 0 is wrapped in ``Kept``, opaque to the algebra, and so is every
    argument when an operand vanishes all the same, so an inf or nan operand gives what it gives in NumPy
    (inf * 0 is nan) instead of vanishing."""
    from .scalar import Kept
    values = {symbol: Kept(v) if v.is_number and v.is_zero else v for symbol, v in values.items()}
    result = body.xreplace(values)
    operands = [v.free_symbols for v in values.values() if not v.is_number]
    if operands and set().union(*operands) - result.free_symbols:
        result = body.xreplace({symbol: v if isinstance(v, Kept) else Kept(v) for symbol, v in values.items()})
    return result


def _number(value):
    if isinstance(value, float) and not np.isfinite(value):
        return sympy.nan if np.isnan(value) else (sympy.oo if value > 0 else -sympy.oo)
    if isinstance(value, float):
        return sympy.Float(value, 17)
    return sympy.Integer(int(value))


def _merge_groups(source: tuple, out: tuple):
    """For each axis of `out`, the run of `source` axes it merges (row-major), or None when the
    reshape also splits an axis."""
    groups, k = [], 0
    for d in out:
        target, group = size_factors([d]), []
        while size_factors([source[a] for a in group]) != target and k < len(source):
            group.append(k)
            k += 1
        if size_factors([source[a] for a in group]) != target:
            return None
        groups.append(group)
    if any(d != 1 for d in source[k:]):
        return None
    return groups


def _one_stride(digits: tuple) -> bool:
    """Whether mixed-radix digits ((size, stride), ...) step through memory with one stride."""
    return all(stride == inner_stride * inner_size for (_, stride), (inner_size, inner_stride) in zip(digits, digits[1:]))


TABLE_LIMIT = 16384  # entries of an IndexedMatrix's row or depth offset table (constants in the code)


def _matrix_compatible(access: Access, ndim: int) -> bool:
    """Whether a GEMM reads it as it is: unit column stride (row-major) or unit row stride
    (transposed) over the operand's last two axes."""
    coefs, _ = linear_form(access, ndim)
    return coefs[-1] == 1 or coefs[-2] == 1


def schedule(outputs, updates=(), eager_updates: bool = False) -> Scheduler:
    """The kernels of `outputs` and of the in-place `updates`; with `eager_updates` (targets that no
    value reads: a data-parallel step's gradient sums) each update loop runs as soon as its value is
    ready, in the order given, rather than all after every other kernel."""
    from .loop_fusion import chain_kernels, fuse_loops
    scheduler = Scheduler(outputs, updates, eager_updates).run()
    scheduler.kernels = chain_kernels(fuse_loops(scheduler.kernels, set(scheduler.output_buffers)))
    return scheduler
