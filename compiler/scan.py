"""``scan(fn, init, xs)``: a loop over time, traced once, compiled as one native loop.

The semantics are ``jax.lax.scan``'s::

    def scan(fn, init, xs, length=None):
        carry, ys = init, []
        for x in xs:                     # xs sliced along axis 0
            carry, y = fn(carry, x)
            ys.append(y)
        return carry, stack(ys)

``fn`` is called once, on placeholders, and its graph is the body of every
step, so compile time and code size do not grow with the number of steps.
Carries, slices and outputs are nodes or tuples, lists and dicts of nodes.
Nodes from outside that the body reads (Params, Inputs, values computed before
the loop) are captured: they become arguments of the scan, read by every step.

Backprop through time is the vector-Jacobian product of the body, run as a
reverse scan (``scan_vjp``). The forward loop saves what that reverse body
reads: the carries at every step and the body's values the backward pass
needs (``remat=False``, the default), or only the carries (``remat=True``:
the reverse body recomputes each step's forward values from its carry, for
less memory).
"""
from __future__ import annotations

from .dtypes import is_float
from .errors import GraphError
from .graph import Node, as_node, const, scalar_symbol
from .primitives import make_broadcast, make_einsum, make_map, make_reduce, make_reshape, ops_lowered_as, zeros_like
from .primitives.scan import (ScanBody, make_scan_result, next_body_id, placeholder, siblings_key, split_args)
from .traversal import topological_order

__all__ = ["scan"]


# ---- trees of nodes ---------------------------------------------------------------------------

def _flatten(tree, what: str, numbers: bool = False) -> tuple:
    """(leaves, rebuild) of a node, or tuple/list/dict of them (None: no leaves)."""
    if tree is None:
        return [], lambda leaves: None
    if isinstance(tree, Node) or (numbers and isinstance(tree, (int, float))):
        return [tree if isinstance(tree, Node) else const(tree)], lambda leaves: leaves[0]
    if isinstance(tree, (tuple, list)):
        parts = [_flatten(t, what, numbers) for t in tree]
        if hasattr(tree, "_fields"):  # a namedtuple is built from its fields, not from one iterable
            return _join(parts, lambda items: type(tree)(*items))
        return _join(parts, lambda items: type(tree)(items))
    if isinstance(tree, dict):
        keys = _sorted_keys(tree)  # as jax.lax.scan: a dict's leaves in the order of its sorted keys
        parts = [_flatten(tree[k], what, numbers) for k in keys]
        return _join(parts, lambda items: dict(zip(keys, items)))
    raise GraphError(f"scan: {what} must be graph nodes or tuples, lists or dicts of them, "
                     f"got {type(tree).__name__}: {tree!r}")


def _sorted_keys(tree: dict) -> list:
    try:
        return sorted(tree)
    except TypeError:
        raise GraphError(f"scan: the keys of a dict must be sortable (as jax.lax.scan's), got {list(tree)!r}") from None


def _treedef(tree):
    """The structure of a tree without its leaves (types, lengths, dict keys): a carry must keep it."""
    if isinstance(tree, (tuple, list)):
        return type(tree), tuple(_treedef(t) for t in tree)
    if isinstance(tree, dict):
        return dict, tuple((k, _treedef(tree[k])) for k in _sorted_keys(tree))
    return "leaf"


def _join(parts, make) -> tuple:
    leaves, sizes = [], []
    for part_leaves, _ in parts:
        leaves.extend(part_leaves)
        sizes.append(len(part_leaves))

    def rebuild(flat):
        items, start = [], 0
        for (_, part_rebuild), size in zip(parts, sizes):
            items.append(part_rebuild(list(flat[start:start + size])))
            start += size
        return make(items)
    return leaves, rebuild


def _structure(tree) -> str:
    """A tree's shape, for error messages: nodes as their shapes."""
    if isinstance(tree, Node):
        return f"{tree.shape} {tree.dtype}"
    if isinstance(tree, (tuple, list)):
        return type(tree).__name__ + "(" + ", ".join(_structure(t) for t in tree) + ")"
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{k!r}: {_structure(v)}" for k, v in tree.items()) + "}"
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return f"{tree!r} (a {const(tree).dtype} constant)"
    return repr(tree)


# ---- tracing ----------------------------------------------------------------------------------

def scan(fn, init, xs, length=None, reverse: bool = False, remat: bool = False):
    """(final carry, stacked outputs) of ``fn(carry, x_t) -> (carry, y_t)`` over axis 0 of `xs`.

    `length` is the number of steps when `xs` is None (or checks it otherwise); it may be a
    symbolic dimension's name. `reverse=True` runs from the last slice to the first (the
    outputs keep their positions)."""
    carry_leaves, carry_tree = _flatten(init, "init", numbers=True)
    x_leaves, x_tree = _flatten(xs, "xs")
    length = _length(x_leaves, length)
    body_id = next_body_id()
    carries = [placeholder(body_id, "carry", j, c.shape, c.dtype) for j, c in enumerate(carry_leaves)]
    x_slots = [placeholder(body_id, "x", i, x.shape[1:], x.dtype) for i, x in enumerate(x_leaves)]
    result = fn(carry_tree(carries), x_tree(x_slots))
    if not (isinstance(result, tuple) and len(result) == 2):
        raise GraphError(f"scan: fn(carry, x) must return a pair (new carry, y), got {_structure(result)}")
    new_carry, y = result
    new_leaves, _ = _flatten(new_carry, "the new carry", numbers=True)
    _check_carry(init, new_carry, carry_leaves, new_leaves)
    y_leaves, y_tree = _flatten(y, "y")
    y_leaves = [as_node(leaf) for leaf in y_leaves]
    _check_body(new_leaves + y_leaves)
    outside, captured, outputs = _capture(body_id, carries + x_slots, new_leaves + y_leaves)
    body = ScanBody(carries, x_slots, captured, outputs[:len(new_leaves)], outputs[len(new_leaves):], length,
                    reverse, remat, body_id)
    args = tuple(carry_leaves) + tuple(x_leaves) + tuple(outside)
    finals = [make_scan_result(args, body, ("carry", j)) for j in range(len(carries))]
    stacks = [make_scan_result(args, body, ("stack", n)) for n in body.ys]
    return carry_tree(finals), y_tree(stacks)


def _length(x_leaves, length):
    if length is not None and not (isinstance(length, str) and length.isidentifier()
                                   or isinstance(length, int) and not isinstance(length, bool) and length >= 0):
        raise GraphError(f"scan: length must be a non-negative int or a symbolic dimension's name, got {length!r}")
    sizes = []
    for x in x_leaves:
        if x.ndim == 0:
            raise GraphError(f"scan: every xs must have an axis 0 to scan over, got a scalar {x.dtype} node")
        sizes.append(x.shape[0])
    if len(set(sizes)) > 1:
        raise GraphError(f"scan: every xs must have the same length along axis 0, got shapes "
                         f"{[x.shape for x in x_leaves]}")
    if sizes and length is not None and sizes[0] != length:
        raise GraphError(f"scan: length={length!r} but xs have {sizes[0]} along axis 0 "
                         f"(shapes {[x.shape for x in x_leaves]})")
    if not sizes and length is None:
        raise GraphError("scan: with no xs, give the number of steps as length=")
    return sizes[0] if sizes else length


def _check_carry(init, new_carry, carry_leaves, new_leaves):
    same = _treedef(init) == _treedef(new_carry) and len(carry_leaves) == len(new_leaves) and all(
        a.shape == b.shape and a.dtype == b.dtype for a, b in zip(carry_leaves, new_leaves))
    if not same:
        raise GraphError(f"scan: fn must return a carry of the structure, shapes and dtypes of init; "
                         f"init is {_structure(init)}, fn returned {_structure(new_carry)}")


def _check_body(outputs) -> None:
    """A running statistic updated inside a loop would need one in-place update per step."""
    for node in topological_order(outputs):
        if node.op == "training" and node.attr("updates"):
            raise GraphError(f"scan: a normalisation with running statistics (batch_norm or instance_norm, "
                             f"declared at {node.location}) inside a scan body is not supported: its running "
                             f"statistics would be updated at every step; normalise outside the loop, or use "
                             f"layer_norm inside it")


def map_bodies(outputs, transform) -> list:
    """`outputs` with ``transform`` (a list of nodes -> a list of nodes, the same length) applied to the
    graph of every scan body, nested bodies first: ``compiler.inference`` switches dropout off inside
    loops too."""
    outputs = list(outputs)
    stacked = {}
    for node in topological_order(outputs):
        if node.op == "scan":
            nodes = stacked.setdefault(node.attr("body"), [])
            kind, which = node.attr("result")
            if kind == "stack" and which not in nodes:
                nodes.append(which)
    if not stacked:
        return outputs
    replaced = {}
    for body, nodes in stacked.items():
        inner = list(body.new_carries) + list(body.ys) + nodes
        new = transform(map_bodies(inner, transform))
        if all(a is b for a, b in zip(inner, new)):
            continue
        n_c, n_y = len(body.new_carries), len(body.ys)
        replaced[body] = (ScanBody(body.carries, body.xs, body.captured, new[:n_c], new[n_c:n_c + n_y], body.length,
                                   body.reverse, body.remat, next_body_id()), dict(zip(nodes, new[n_c + n_y:])))

    def rule(node):
        if node.op != "scan" or node.attr("body") not in replaced:
            return None
        body, moved = replaced[node.attr("body")]
        kind, which = node.attr("result")
        return make_scan_result(node.args, body, (kind, moved[which] if kind == "stack" else which))
    from .passes.rewrite import rewrite
    return rewrite(outputs, rule)


def _capture(body_id: int, placeholders: list, outputs: list) -> tuple:
    """(outside nodes, their placeholders, outputs rewritten to read the placeholders).

    An outside node is one the body reads that does not depend on a placeholder (constants and
    dimension sizes stay inside): computed once before the loop, read by every step."""
    order = topological_order(outputs)
    dependent = _per_step(outputs, set(placeholders))
    constant = set()  # computed from constants and sizes only: stays inside, where it simplifies
    for node in order:
        if node.op in ("const", "dim") or (node.args and node.op != "random" and all(a in constant for a in node.args)):
            constant.add(node)
    outside = []
    for node in order:
        reads = node.args if node in dependent else ()
        for a in reads:
            if a not in dependent and a not in constant and a not in outside:
                outside.append(a)
    for node in outputs:
        if node not in dependent and node not in constant and node not in outside:
            outside.append(node)
    captured = [placeholder(body_id, "captured", k, n.shape, n.dtype) for k, n in enumerate(outside)]
    return outside, captured, substitute(outputs, dict(zip(outside, captured)))


def substitute(outputs, mapping: dict) -> list:
    """`outputs` with every node in `mapping` replaced (outermost first: a replaced node's
    arguments are not visited) and everything above rebuilt."""
    from .label_ranges import transfer_requirement
    from .passes.rewrite import rebuild
    done = {}
    for root in outputs:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if node in mapping:
                done[node] = mapping[node]
            elif expanded:
                done[node] = rebuild(node, [done[a] for a in node.args])
                transfer_requirement(node, done[node], done)
            else:
                stack.append((node, True))
                stack.extend((a, False) for a in node.args if a not in done)
    return [done[n] for n in outputs]


# ---- backprop through time --------------------------------------------------------------------

def scan_vjp(nodes, cotangents) -> list:
    """Cotangents of the arguments of the sibling scan `nodes` given theirs (None: zero).

    One reverse scan over the body's vector-Jacobian product: its carry is the cotangent of
    the carry plus an accumulator per captured value; its slices are the outputs' cotangents
    and what the forward loop saved; its outputs are the cotangents of the xs."""
    first = nodes[0]
    body, args = first.attr("body"), first.args
    inits, xs, outside = split_args(body, args)
    seeds = [(n.attr("result"), g) for n, g in zip(nodes, cotangents) if g is not None]
    if not seeds:
        return [None] * len(args)
    carry_seeds = {which: g for (kind, which), g in seeds if kind == "carry" and is_float(body.carries[which].dtype)}
    stack_seeds = {which: g for (kind, which), g in seeds if kind == "stack" and is_float(which.dtype)}
    grad_carries = [j for j, c in enumerate(body.carries) if is_float(c.dtype)]
    grad_xs = [i for i, x in enumerate(body.xs) if is_float(x.dtype)]
    grad_captured = [k for k, c in enumerate(body.captured) if is_float(c.dtype)]
    tag = next_body_id()
    ct_carry = {j: placeholder(tag, "ct_carry", j, body.carries[j].shape, body.carries[j].dtype) for j in grad_carries}
    ct_stack = {n: placeholder(tag, "ct_y", k, n.shape, n.dtype) for k, n in enumerate(stack_seeds)}
    step_loss = _dot_sum([(body.new_carries[j], ct_carry[j]) for j in grad_carries] +
                         [(n, ct_stack[n]) for n in stack_seeds])
    if step_loss is None:
        return [None] * len(args)
    from .autodiff import grad
    wrt = [body.carries[j] for j in grad_carries] + [body.xs[i] for i in grad_xs] + \
          [body.captured[k] for k in grad_captured]
    vjps = grad(step_loss, wrt) if wrt else []
    invariant = {n: _step_invariant(g) for n, g in stack_seeds.items()}  # the same at every step: no slices
    stack_seeds = {n: g for n, g in stack_seeds.items() if invariant[n] is None}
    saved = _saved_values(body, vjps)
    history = {j: make_scan_result(args, body, ("stack", body.carries[j])) for j in saved["carries"]}
    residual = {n: make_scan_result(args, body, ("stack", n)) for n in saved["values"]}
    slices = ([stack_seeds[n] for n in stack_seeds] + [history[j] for j in saved["carries"]] +
              [xs[i] for i in saved["xs"]] + [residual[n] for n in saved["values"]])
    slot_of = ([ct_stack[n] for n in stack_seeds] + [body.carries[j] for j in saved["carries"]] +
               [body.xs[i] for i in saved["xs"]] + list(saved["values"]))
    n_c, n_x = len(grad_carries), len(grad_xs)
    per_step = _per_step(vjps, set(body.carries) | set(body.xs) | set(ct_carry.values()) |
                         {ct_stack[n] for n in stack_seeds})
    deferred = {k: _defer(g, per_step) for k, g in zip(grad_captured, vjps[n_c + n_x:])}
    deferred = {k: d for k, d in deferred.items() if d is not None}
    accumulated = [k for k in grad_captured if k not in deferred]
    known = {body.carries[j]: h for j, h in history.items()}
    known.update(zip(body.xs, xs))
    known.update(residual)
    known.update({ct_stack[n]: g for n, g in stack_seeds.items()})
    operands = list(dict.fromkeys(o for operands, _ in deferred.values() for o in operands))
    extra = [o for o in operands if o not in known]  # per-step values the reverse loop stacks for them
    kept = vjps[:n_c + n_x] + [vjps[n_c + n_x + grad_captured.index(k)] for k in accumulated]

    def backward_step(carry, x_t):
        ct, acc = carry
        mapping = dict(zip(slot_of, x_t))
        mapping.update({ct_carry[j]: c for j, c in zip(grad_carries, ct)})
        mapping.update({ct_stack[n]: value for n, value in invariant.items() if value is not None})
        mapping.update(zip(body.captured, outside))
        step = substitute(kept + extra, mapping)
        new_acc = [make_map_sum(a, g) for a, g in zip(acc, step[n_c + n_x:len(kept)])]
        return (step[:n_c], new_acc), step[n_c:n_c + n_x] + step[len(kept):]

    start = ([carry_seeds.get(j, zeros_like(inits[j])) for j in grad_carries],
             [zeros_like(outside[k]) for k in accumulated])
    (ct_init, ct_accumulated), ys = scan(backward_step, start, slices, length=body.length,
                                         reverse=not body.reverse, remat=body.remat)
    known.update(zip(extra, ys[n_x:]))
    outer = {ct_stack[n]: value for n, value in invariant.items() if value is not None}
    outer.update(zip(body.captured, outside))
    ct_outside = dict(zip(accumulated, ct_accumulated))
    for k, (_, build) in deferred.items():
        ct_outside[k] = build(known.__getitem__, lambda node: substitute([node], outer)[0])
    result = [None] * len(args)
    for j, g in zip(grad_carries, ct_init):
        result[j] = g
    for i, g in zip(grad_xs, ys[:n_x]):
        result[len(inits) + i] = g
    for k, g in ct_outside.items():
        result[len(inits) + len(xs) + k] = g
    return result


def _per_step(outputs, sources: set) -> set:
    """The nodes of `outputs`' graph that depend on one of `sources` (differ from step to step)."""
    result = set()
    for node in topological_order(outputs):
        if node in sources or any(a in result for a in node.args):
            result.add(node)
    return result


def _defer(g: Node, per_step: set):
    """(per-step operands, build) when the cotangent `g` of a captured value is a sum of products or
    sums over per-step values: summed over the steps, it is one contraction (or reduction) of their
    stacks after the loop -- one large matrix product instead of one small product and one
    accumulation per step. ``build(stacked, outer)`` makes it from each operand's stack (and the
    outer form of a step-invariant operand). None: accumulate it in the reverse loop's carry."""
    if g not in per_step:
        return None
    if g.op == "einsum" and len(g.args) == 2:
        inputs, out = g.attr("spec").split("->")
        terms = inputs.split(",")
        t = next(c for c in "tuvwxyzabcdefghijklmnopqrs" if c not in g.attr("spec"))
        spec = ",".join(t + term if a in per_step else term for term, a in zip(terms, g.args)) + "->" + out
        return ([a for a in g.args if a in per_step],
                lambda stacked, outer: make_einsum(spec, *[stacked(a) if a in per_step else outer(a) for a in g.args]))
    if g.op == "sum" and g.args[0] in per_step:
        axes = (0,) + tuple(a + 1 for a in g.attr("axes"))
        return [g.args[0]], lambda stacked, outer: make_reduce("sum", stacked(g.args[0]), axes)
    if g.op == "reshape":
        inner = _defer(g.args[0], per_step)
        if inner is not None:
            return inner[0], lambda stacked, outer: make_reshape(inner[1](stacked, outer), g.shape)
    if g.op == "map" and len(g.args) == 2 and g.attr("body") == _SUM_BODY:
        parts = [_defer(a, per_step) for a in g.args]
        if all(p is not None for p in parts):
            return (parts[0][0] + parts[1][0],
                    lambda stacked, outer: make_map_sum(parts[0][1](stacked, outer), parts[1][1](stacked, outer)))
    return None


def _step_invariant(g: Node):
    """The one slice of `g` when every slice along axis 0 is the same (a cotangent broadcast over
    the steps, as a mean's), else None."""
    if g.op != "broadcast":
        return None
    source = g.args[0]
    if source.ndim == g.ndim:
        if source.shape[0] != 1:
            return None
        source = make_reshape(source, source.shape[1:])
    return make_broadcast(source, g.shape[1:])


_SUM_BODY = scalar_symbol(0) + scalar_symbol(1)


def make_map_sum(a: Node, b: Node) -> Node:
    return make_map(scalar_symbol(0) + scalar_symbol(1), [a, b], a.dtype)


def _dot_sum(pairs):
    """sum over the pairs of sum(value * cotangent): a scalar whose gradient is the VJP."""
    total = None
    for value, ct in pairs:
        term = make_reduce("sum", make_map(scalar_symbol(0) * scalar_symbol(1), [value, ct], value.dtype),
                           tuple(range(value.ndim)))
        if term.dtype != "float64":
            term = make_map(scalar_symbol(0), [term], "float64")
        total = term if total is None else make_map_sum(total, term)
    return total


def _saved_values(body: ScanBody, vjps) -> dict:
    """What the reverse body reads from the forward pass: the carries' histories, the xs, and
    (unless remat) the forward values its cotangent rules read. Layout views are recomputed
    from what they view; values that depend on no carry and no slice are recomputed."""
    carries, xs = set(body.carries), set(body.xs)
    forward_outputs = list(body.new_carries) + list(body.ys)
    forward = set(topological_order(forward_outputs))
    dependent = _per_step(forward_outputs, carries | xs)
    saved = {"carries": [], "xs": [], "values": []}
    visited = set()

    def need(node):
        if node in visited or node not in dependent:
            return
        visited.add(node)
        if node in carries:
            saved["carries"].append(body.carries.index(node))
        elif node in xs:
            saved["xs"].append(body.xs.index(node))
        elif body.remat or node.op in ops_lowered_as("index"):
            for a in node.args:
                need(a)
        else:
            saved["values"].append(node)

    for node in vjps:
        if node in forward:
            need(node)
    for node in topological_order(vjps):
        if node not in forward:
            for a in node.args:
                if a in forward:
                    need(a)
    saved["carries"].sort()
    saved["xs"].sort()
    return saved


def scan_siblings(order) -> dict:
    """scan node -> its siblings in `order` (the results of one loop), earliest first."""
    groups = {}
    for node in order:
        if node.op == "scan":
            groups.setdefault(siblings_key(node), []).append(node)
    return {node: group for group in groups.values() for node in group}
