"""Loops over the same index space joined into one, after scheduling.

The scheduler fuses along single uses; what it leaves are loops that meet at
buffers: a tensor stored by one loop and read back by the next at the same
index (a residual step's forward value read by its backward, a gradient
summed over the batch). A later loop joins the loop that produced its input
when

- both iterate over the same index space in the same compute dtype,
- it reads that loop's stored outputs only at the loop's own index (so the
  value is still in a register) and none of its accumulated reductions,
- no kernel between the two writes anything it reads,
- neither is an in-place update or a snapshot of one,
- the joined body, written as a tree, stays within SHARED_TREE_LIMIT leaves
  (a residual chain doubles its tree with every step; past the limit the
  value is stored and read back, so compile time stays linear in the graph).

The joined loop computes the later loop's outputs from the earlier one's
expressions (the scalar code is cse'd once), accumulates its reductions, and a
stored tensor that no kernel reads any more is not stored at all. A forward
and backward pass of elementwise residual steps becomes one pass over memory.
"""
from __future__ import annotations

import numpy as np
import sympy

from .access import Access, identity_index
from .gather_kernels import gather_reads_of
from .schedule import Kernel
from .storage import CHAIN_LIMIT, SHARED_TREE_LIMIT


def fuse_loops(kernels: list, kept_buffers: set) -> list:
    """The kernel list with same-space loops joined and dead stores dropped.

    kept_buffers: buffers written even when no kernel reads them (program outputs).
    """
    result, writer, measures = [], {}, {}
    for kernel in kernels:
        position = _host(result, writer, kernel, measures) if _joinable(kernel) else None
        if position is None:
            kernel = _as_loop(kernel)
            result.append(kernel)
            position = len(result) - 1
        else:
            _join(result[position], kernel)
        for buffer in kernel.writes():
            writer[buffer] = position
    _drop_dead_stores(result, kept_buffers)
    return [k for k in result if k.kind != "elementwise" or k.bodies() or k.reductions]


def _joinable(kernel: Kernel) -> bool:
    if kernel.in_place or kernel.snapshot:
        return False
    if kernel.kind == "elementwise":
        return True
    return kernel.kind in ("sum", "max") and kernel.out.dtype in ("float32", "float64")


def _as_loop(kernel: Kernel) -> Kernel:
    """A float reduction kernel as an elementwise loop hosting one reduction (so it can host others)."""
    if kernel.kind not in ("sum", "max") or not _joinable(kernel):
        return kernel
    loop = Kernel("elementwise", kernel.out, kernel.space, kernel.dtype, body=None, leaves=dict(kernel.leaves),
                  nodes=list(kernel.nodes), stores_out=False, root=kernel.root)
    loop.reductions.append((kernel.kind, kernel.out, kernel.body, kernel.kept_axes))
    return loop


def _host(earlier: list, writer: dict, kernel: Kernel, measures: dict) -> int | None:
    """The position of the loop that produced `kernel`'s latest input, if `kernel` can join it; else
    of a later loop over the same space reading some of the same buffers (the gates of an LSTM cell
    sliced from one product: one loop reads the product once and computes each gate once).
    (writer: buffer -> position in `earlier` of the loop that last wrote it.)"""
    reads = kernel.reads()
    positions = [writer[b] for b in reads if b in writer]
    ready = max(positions) if positions else -1
    if positions and _can_host(earlier[ready], kernel, measures):
        return ready
    for position in range(len(earlier) - 1, ready, -1):  # a sibling: a later loop over the same inputs
        candidate = earlier[position]
        if candidate.reads() & reads and _can_host(candidate, kernel, measures):
            return position
    return None


def _can_host(candidate: Kernel, kernel: Kernel, measures: dict) -> bool:
    if candidate.kind != "elementwise" or candidate.in_place or candidate.snapshot:
        return False
    if candidate.space != kernel.space or candidate.dtype != kernel.dtype:
        return False
    identity = identity_index(len(kernel.space))
    accumulated = {out for _, out, _, _ in candidate.reductions}
    stored = {buffer for buffer, _ in candidate.bodies()}
    if gather_reads_of(kernel) & (accumulated | stored):
        return False  # a gathered element (or an id) of the loop's own output may not be written yet
    for access in kernel.leaves.values():
        if not isinstance(access, Access):
            continue
        if access.buffer in accumulated:
            return False  # complete only after the loop
        if access.buffer in stored and (access.index != identity or access.view_shape != access.buffer.shape):
            return False  # another element than the one in the register
    measure = measures.setdefault(id(candidate), HostMeasure())
    size, depth = measure.joined(candidate, kernel)
    return size <= SHARED_TREE_LIMIT and depth <= DEPTH_LIMIT


DEPTH_LIMIT = 4 * CHAIN_LIMIT  # sympy and the IR printer recurse about once per level


class HostMeasure:
    """Tree size and depth of each body a loop stores, remembered across joins: the memos stay
    valid (expressions are immutable), so measuring a long run of joins is linear."""

    def __init__(self):
        self.tree_memo, self.depth_memo, self.sizes, self.depths = {}, {}, {}, {}

    def joined(self, host: Kernel, kernel: Kernel) -> tuple:
        """(leaves as a tree, depth) of the largest body `kernel` would have inside `host`."""
        for buffer, body in host.bodies():
            if buffer not in self.sizes:
                self.sizes[buffer] = tree_size(body, {}, self.tree_memo)
                self.depths[buffer] = expression_depth(body, {}, self.depth_memo)
        sizes = {s: self.sizes.get(a.buffer, 1) if isinstance(a, Access) else 1 for s, a in kernel.leaves.items()}
        depths = {s: self.depths.get(a.buffer, 0) if isinstance(a, Access) else 0 for s, a in kernel.leaves.items()}
        bodies = [body for _, body in kernel.bodies()] + [body for _, _, body, _ in kernel.reductions]
        if kernel.kind != "elementwise":
            bodies = [kernel.body]
        size_memo, depth_memo = {}, {}
        size = max((tree_size(body, sizes, size_memo) for body in bodies), default=0)
        depth = max((expression_depth(body, depths, depth_memo) for body in bodies), default=0)
        return size, depth


def expression_depth(expr, depths: dict, memo: dict) -> int:
    """Levels of `expr`, a symbol counting depths.get(symbol, 0) (iterative: bodies can be deep)."""
    stack = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if node in memo:
            continue
        if node.is_Symbol or not node.args:
            memo[node] = depths.get(node, 0) if node.is_Symbol else 0
        elif expanded:
            memo[node] = 1 + max(memo[arg] for arg in node.args)
        else:
            stack.append((node, True))
            stack.extend((arg, False) for arg in node.args if arg not in memo)
    return memo[expr]


def tree_size(expr, sizes: dict, memo: dict) -> int:
    """Leaves of `expr` written as a tree, a symbol counting sizes.get(symbol, 1) (linear time)."""
    size = memo.get(expr)
    if size is None:
        if expr.is_Symbol:
            size = sizes.get(expr, 1)
        elif not expr.args:
            size = 1
        else:
            size = sum(tree_size(arg, sizes, memo) for arg in expr.args)
        memo[expr] = size
    return size


def _join(host: Kernel, kernel: Kernel) -> None:
    """Append `kernel`'s outputs and reductions to `host`, over the host's leaves."""
    computed = {buffer: body for buffer, body in host.bodies()}
    replace = {}
    for symbol, source in kernel.leaves.items():
        if isinstance(source, Access) and source.buffer in computed:
            replace[symbol] = computed[source.buffer]
        else:
            replace[symbol] = _leaf(host, source)
    if kernel.kind == "elementwise":
        for buffer, body in kernel.bodies():
            host.extra_outputs.append((buffer, body.xreplace(replace)))
        for kind, out, body, kept in kernel.reductions:
            host.reductions.append((kind, out, body.xreplace(replace), kept))
    else:
        host.reductions.append((kernel.kind, kernel.out, kernel.body.xreplace(replace), kernel.kept_axes))
    host.nodes.extend(kernel.nodes)
    host.joined.extend([kernel.root] + kernel.joined)


def _leaf(host: Kernel, source) -> sympy.Symbol:
    for symbol, existing in host.leaves.items():
        if existing == source:
            return symbol
    if isinstance(source, tuple):  # a dimension's value (a Bound or an Access gets a fresh name)
        symbol = sympy.Symbol(f"d_{source[1]}", real=True)
    else:
        symbol = sympy.Symbol(f"a{len(host.leaves)}", real=True)
        while symbol in host.leaves:
            symbol = sympy.Symbol(f"{symbol.name}_", real=True)
    host.leaves[symbol] = source
    return symbol


def _drop_dead_stores(kernels: list, kept_buffers: set) -> None:
    """Joined loops stop storing temporaries that no kernel reads any more."""
    read = set()
    for kernel in kernels:
        read |= kernel.reads()

    def needed(buffer) -> bool:
        return buffer in read or buffer in kept_buffers or buffer.role != "temp"

    for kernel in kernels:
        if kernel.kind != "elementwise" or kernel.in_place or kernel.snapshot:
            continue
        if kernel.stores_out and not needed(kernel.out):
            kernel.stores_out = False
        kernel.extra_outputs = [(buffer, body) for buffer, body in kernel.extra_outputs if needed(buffer)]


TINY_LOOP = 16  # elements (static) up to which a loop runs inside a neighbouring kernel's function
HOST_KINDS = ("elementwise", "bmm", "sum", "max")  # kernels whose function can run other loops too


def chain_kernels(kernels: list) -> list:
    """The kernel list with tiny loops and update loops run inside a neighbour's function.

    Nothing moves: a kernel joins the function of the kernel just before it (an epilogue, after that
    kernel's loop has completed every reduction it reads) or, when that one cannot host it, of the
    kernel just after it (a prologue), so every kernel still runs after all it depends on. What
    joins: a tiny loop (at most TINY_LOOP elements: a loss divided by the batch, a bias of one
    output, a step count's bias correction), and every in-place update loop into the first one:
    the update phase is one kernel whose loops run one after another."""
    result = []
    for kernel in kernels:
        previous = result[-1] if result else None
        if previous is not None and _hosts(previous, kernel):
            _chain(previous, kernel, previous.epilogue)
            continue
        if previous is not None and _lone_tiny(previous) and all(_hosts(kernel, p) for p in previous.parts()):
            result.pop()
            _take_prologue(kernel, previous)
        result.append(kernel)
    return result


def _take_prologue(kernel: Kernel, previous: Kernel) -> None:
    """`previous` (a tiny loop and its epilogue) run at the start of `kernel`'s function."""
    kernel.prologue = previous.parts()
    previous.epilogue = []
    kernel.nodes[:0] = previous.nodes
    kernel.joined.extend([previous.root] + previous.joined)


def _hosts(host: Kernel, kernel: Kernel) -> bool:
    """Whether `kernel` may run inside `host`'s function (just before or after host's own loop)."""
    if host.kind not in HOST_KINDS or kernel.kind != "elementwise":
        return False
    if host.in_place != kernel.in_place:
        return False  # the update phase runs after everything else, in kernels of its own
    return kernel.in_place or _tiny(kernel)


def _tiny(kernel: Kernel) -> bool:
    space = kernel.space
    return all(isinstance(d, int) for d in space) and int(np.prod(space)) <= TINY_LOOP


def _lone_tiny(kernel: Kernel) -> bool:
    """A tiny loop that no kernel before it could host (its epilogue: the tiny loops after it)."""
    return kernel.kind == "elementwise" and _tiny(kernel) and not kernel.prologue


def _chain(host: Kernel, kernel: Kernel, parts: list) -> None:
    parts.append(kernel)
    host.nodes.extend(kernel.nodes)
    host.joined.extend([kernel.root] + kernel.joined)
