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
  expression is shared and cse'd (``shared_map_homes``), so a residual chain
  ``h = h + f(h)`` is one loop too;
- a node gets a buffer of its own when it is a leaf, a program output, a
  reduction, a matrix product, a concatenation, or any other map used more than
  once (unless it is so cheap that each user recomputes it: ``recomputable``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy

from .. import scalar_functions as sf
from ..dtypes import is_float
from ..graph import Node
from ..shapes import product_dim, size_factors
from ..traversal import topological_order
from ..primitives import PRIMITIVES, ops_lowered_as
from ..primitives.random import LANES, value_of_uniforms
from .access import (Access, Affine, Buffer, Index, concat_piece, contiguous_strides, identity_index, linear_form,
                     size_expr, through_broadcast)
from .random_bits import RandomDraw
from .gather_access import GatherLoad

LAYOUT_OPS = ops_lowered_as("index")  # read through index arithmetic, never run alone


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
        return {a.buffer for a in accesses}.union(*(part.reads() for part in self.prologue + self.epilogue))


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

    def __init__(self, outputs, updates=()):
        self.outputs = list(outputs)
        self.updates = list(updates)  # (target leaf, new value): written in place, after everything else
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
        for node in self.order:  # arguments first: building any kernel recurses at most CHAIN_LIMIT nodes deep
            if node in self.chain_breaks:
                self.materialize(node)
        for i, node in enumerate(self.outputs):
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
        buffer = self.buffer_of.get(node)
        if buffer is None:
            buffer = self.new_buffer(node, "temp")
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
        kernel = Kernel(node.op, out, source.shape, compute_dtype(node.dtype),
                        kept_axes=tuple(a for a in range(source.ndim) if a not in axes), nodes=[node], root=node)
        kernel.body = self.expr(source, identity_index(source.ndim), kernel)
        self.kernels.append(kernel)

    def _bmm(self, node: Node, out: Buffer):
        kernel = Kernel("bmm", out, node.shape, node.dtype, nodes=[node], contract_dim=node.args[0].shape[-1], root=node)
        operands = []
        for arg in node.args:
            access = self.plain_access(arg, identity_index(arg.ndim))
            if access is None or not _matrix_compatible(access, arg.ndim):
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
        return self.uses[node] <= 1 and not _read_repeatedly(node, mapping, kernel.space)

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
            result = self._guarded(body.xreplace(values), mapping, kernel)
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


def writes_element_read(access: Access, space: tuple) -> bool:
    """Whether `access` reads, at each point of a loop over `space`, the element the loop stores
    there (contiguous, in order): an in-place update reads it before writing it."""
    coefs, offset = linear_form(access, len(space))
    return not access.index.valid and offset == 0 and all(
        sympy.expand(c - s) == 0 for c, s in zip(coefs, contiguous_strides(space)))


def update_loops(updates) -> list:
    """[(space, dtype, [(target, value)])]: the in-place updates grouped into loops. Targets of a
    dtype and element count share a loop over their common layout when there is one, else those
    of one shape without its size-1 axes do."""
    groups: dict = {}
    for target, value in updates:
        groups.setdefault((_element_key(target.shape), target.dtype), []).append((target, value))
    loops = []
    for (_, dtype), items in groups.items():
        space = common_layout([t.shape for t, _ in items])
        if space is not None:
            loops.append((space, dtype, items))
            continue
        squeezed: dict = {}
        for target, value in items:
            squeezed.setdefault(_squeezed(target.shape), []).append((target, value))
        loops += [(shape, dtype, group) for shape, group in squeezed.items()]
    return loops


def _squeezed(shape: tuple) -> tuple:
    return tuple(d for d in shape if d != 1)


def _element_key(shape: tuple):
    """Element count of a static shape; a symbolic one's own shape without its size-1 axes."""
    if all(isinstance(d, int) for d in shape):
        return int(np.prod(shape)) or shape  # an empty one: its own loop
    return _squeezed(shape)


def common_layout(shapes) -> tuple | None:
    """The coarsest shape that every contiguous shape of `shapes` (one element count) reshapes
    from without mixing its axes: every axis of each shape is a run of its axes, so one index into
    it is affine in the loop's ((1, 64), (64, 1) -> (64,); (64, 10), (640,) -> (64, 10);
    (64, 10), (10, 64) -> None). Symbolic shapes share one only when equal without size-1 axes."""
    if not all(isinstance(d, int) for shape in shapes for d in shape):
        return _squeezed(shapes[0]) if len({_squeezed(s) for s in shapes}) == 1 else None
    total = int(np.prod(shapes[0]))
    if total == 0:
        return shapes[0] if len(set(shapes)) == 1 else None
    cuts = sorted({int(np.prod(shape[a + 1:])) for shape in shapes for a, d in enumerate(shape) if d != 1})
    if any(outer % inner for inner, outer in zip(cuts, cuts[1:] + [total])):
        return None
    return tuple(outer // inner for inner, outer in reversed(list(zip(cuts, cuts[1:] + [total]))))


def layout_index(shape: tuple, space: tuple) -> Index:
    """The index into a contiguous `shape` of the element a contiguous loop over `space` (its
    common_layout with others) is at: each axis of `shape` is a run of the loop's axes."""
    if tuple(shape) == tuple(space):
        return identity_index(len(shape))
    if not all(isinstance(d, int) for d in shape):  # equal to `space` without its size-1 axes
        axes = iter(range(len(space)))
        return Index(tuple(Affine() if d == 1 else Affine.axis(next(axes)) for d in shape))
    strides, loop_strides = contiguous_strides(shape), contiguous_strides(space)
    dims = []
    for d, stride in zip(shape, strides):
        terms = tuple((j, int(s // stride)) for j, s in enumerate(loop_strides)
                      if d != 1 and stride <= s < stride * d)
        dims.append(Affine(terms))
    return Index(tuple(dims))


SHARED_TREE_LIMIT = 4096
STORED_OPS = ("sum", "max", "bmm", "scan", "attention")  # always computed into a buffer of their own
CHAIN_LIMIT = 64


def chain_breaks(order, outputs: set) -> set:
    """Nodes stored in a buffer of their own, computed in graph order before anything else, so
    that no kernel's expression (nor the recursion building it) spans more than CHAIN_LIMIT
    nodes: a chain of 20,000 maps becomes loops of at most 64 maps each, built bottom-up."""
    depth, breaks = {}, set()
    for node in order:
        if node.is_leaf or node.op in STORED_OPS:  # a kernel's expression starts again after them
            depth[node] = 0
            continue
        depth[node] = 1 + max((depth[arg] for arg in node.args), default=0)
        if depth[node] > CHAIN_LIMIT and node not in outputs:
            breaks.add(node)
            depth[node] = 0
    return breaks



def shared_map_homes(order, outputs) -> dict:
    """Map used several times -> the root node of the one loop that computes all its uses.

    Such a map is read by maps (or a reduction) of one loop at the same index, so
    that loop computes it once. Written as a tree, a body grows with every shared
    use (``h + f(h)`` doubles it); past SHARED_TREE_LIMIT leaves a map is stored
    instead, so compile time stays linear in the graph.
    """
    users = {node: [] for node in order}
    for node in order:
        for arg in dict.fromkeys(node.args):
            users[arg].append(node)
    stored = set(outputs)
    while True:
        root = {}
        for node in reversed(order):
            root[node] = node
            if node.op != "map" or node in stored:
                continue
            homes = set()
            for user in users[node]:
                if user.op == "map" and user.shape == node.shape:
                    homes.add(root[user])
                elif user.op in ("sum", "max"):
                    homes.add(user)
                else:
                    homes = None
                    break
            if homes and len(homes) == 1:
                root[node] = homes.pop()
        tree, too_big = {}, None
        for node in order:
            tree[node] = 1 + sum(tree[arg] for arg in node.args if root[arg] is root[node]) \
                if node.op == "map" else 1
            if too_big is None and tree[node] > SHARED_TREE_LIMIT and root[node] is not node:
                too_big = node
        if too_big is None:
            return {node: home for node, home in root.items() if home is not node and len(users[node]) > 1}
        stored.add(too_big)


CHEAP_OPS = 2


def recomputable(node: Node) -> bool:
    """A map so cheap that each user recomputes it rather than reading a stored copy:
    a few arithmetic operations on tensors that are stored anyway (a bias add read by
    both an activation and its derivative)."""
    body = node.attr("body")
    if sympy.count_ops(body) > CHEAP_OPS or body.atoms(sympy.Function):
        return False
    return all(_stored(arg) for arg in node.args)


def _stored(node: Node) -> bool:
    """Whether reading `node` is a load: a leaf, or layout ops over a value always stored (not a map,
    whose recomputation would nest): a sum of shifted taps of a product is cheap to recompute."""
    while node.op in LAYOUT_OPS:
        node = node.args[0]
    return node.is_leaf or node.op in STORED_OPS


def _computed(node: Node) -> bool:
    """Whether reading `node` computes something: a map, possibly behind layout ops."""
    while node.op in LAYOUT_OPS:
        node = node.args[0]
    return node.op == "map"


REPEAT_STORE_MIN = 1024  # elements per sample (symbolic sizes aside) from which a map read repeatedly is stored


def _read_repeatedly(node: Node, mapping: Index, space: tuple) -> bool:
    """Whether a loop over `space` would compute each element of a large, costly map (three or more
    arguments, or a computed one) more than once: the read ignores a loop axis of size > 1 (a
    pooling window's cotangent spread over its taps), so inlining repeats the whole expression."""
    heavy = len(node.args) >= 3 or any(_computed(arg) for arg in node.args)
    if not heavy:  # a few operations on loaded values: recomputing is cheaper than storing
        return False
    used = {axis for d in mapping.dims for axis, _ in d.terms}
    if all(size == 1 for axis, size in enumerate(space) if axis not in used):
        return False
    return int(np.prod([d for d in node.shape if isinstance(d, int)])) >= REPEAT_STORE_MIN


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


def _matrix_compatible(access: Access, ndim: int) -> bool:
    """Whether a GEMM reads it as it is: unit column stride (row-major) or unit row stride
    (transposed) over the operand's last two axes."""
    coefs, _ = linear_form(access, ndim)
    return coefs[-1] == 1 or coefs[-2] == 1


def schedule(outputs, updates=()) -> Scheduler:
    from .loop_fusion import chain_kernels, fuse_loops
    scheduler = Scheduler(outputs, updates).run()
    scheduler.kernels = chain_kernels(fuse_loops(scheduler.kernels, set(scheduler.output_buffers)))
    return scheduler
