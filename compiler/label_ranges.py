"""Class labels and the range they must lie in: checked, never silently wrong.

``cross_entropy`` and ``one_hot`` select by comparing each label with every
class index, so a label outside [0, classes) would select nothing: a loss that
adds 0 and trains on, an all-zero row. They record here the node that selects,
with its labels and class count (``require``). ``index_checks(outputs)`` lists
the program inputs whose values must lie in a range (labels given as an input,
possibly reshaped, transposed or broadcast); the compiled plan carries the list
and the runtime checks those arguments before any kernel runs
(``runtime.executable.check_indices``), raising IndexError with the argument,
the bad value and the range. Constant labels are checked at once. Labels
computed inside the graph (an argmax, arithmetic, a cast) are checked in the
program itself: ``index_faults(outputs)`` gives, per computed labels node, a
scalar node that the compiled program computes as a hidden extra output (the
smallest label if it is below the range, else the largest); the runtime reads
it after the native call and raises IndexError when it is out of range
(``runtime.executable.check_faults``). Programs without computed labels get no
extra output.

Gathers and scatters (``take``, ``take_along_axis``, ``embedding``, ``index_add``,
``scatter_add``: ``primitives/gathers.py``) record their ids the same way, named
``ids`` and with the declaring line of the op, so a computed id out of range
names the node and the user's line. Their kernels never read or write out of
bounds whatever the ids hold (an out-of-range id reads 0 and adds nothing); the
check turns such an id into an IndexError.
"""
from __future__ import annotations

import weakref

import numpy as np

from .graph import Node

_REQUIREMENTS: dict = {}  # id(selecting node) -> (weakref to it, labels node, low, high, op, name, location)
_VALUE_PRESERVING = ("reshape", "transpose", "broadcast", "stop_gradient")


def _source(labels: Node) -> Node:
    """The node whose values `labels` are (through reshapes, transposes and broadcasts)."""
    while labels.op in _VALUE_PRESERVING:
        labels = labels.args[0]
    return labels


def require(selecting: Node, labels: Node, high: int, op: str, name: str = "labels",
            location: str | None = None, ignored: int | None = None) -> Node:
    """Record that `selecting` is only right when every value of `labels` is in [0, high) (or equals
    `ignored`, when given: cross_entropy's ignore_index). `name` is what messages call the values;
    `location` (the user's line), when given, is named with the op in the message of a computed
    value out of range."""
    source = _source(labels)
    if source.op == "const":
        check_values(source.attr("value").array, name, 0, high, op if location is None else f"{op} at {location}",
                     ignored)
    key = id(selecting)
    _REQUIREMENTS[key] = (weakref.ref(selecting, lambda _: _REQUIREMENTS.pop(key, None)), labels, 0, high, op, name,
                          location, ignored)
    return selecting


def transfer_requirement(old: Node, new: Node, replaced: dict) -> None:
    """`new` (`old` rebuilt over other arguments: a scan body's captured values) selects as `old`
    did, by the labels `old` read, or what `replaced` maps them to."""
    entry = _REQUIREMENTS.get(id(old))
    if entry is None or entry[0]() is not old or new is old:
        return
    _, labels, _, high, op, name, location, ignored = entry
    require(new, replaced.get(labels, labels), high, op, name, location, ignored)


def requirement_of(selecting: Node):
    """(op, name, location) that `require` recorded for `selecting`, or None: a gradient node checking the
    same values names them as its forward node does."""
    entry = _REQUIREMENTS.get(id(selecting))
    if entry is None or entry[0]() is not selecting:
        return None
    return entry[4], entry[5], entry[6]


def check_values(array: np.ndarray, name: str, low: int, high: int, op: str, ignored: int | None = None) -> None:
    flat = np.asarray(array).reshape(-1)
    outside = (flat < low) | (flat >= high)
    if ignored is not None:
        outside &= flat != ignored
    bad = np.flatnonzero(outside)
    if bad.size:
        allowed = f"{low} <= {name} < {high}" + (f" or {name} == {ignored}" if ignored is not None else "")
        raise IndexError(f"{op}: {name} value {flat[bad[0]]} is out of range (expected {allowed})")


def check_evaluated(node: Node, results: dict) -> None:
    """The reference evaluator's check, before it computes a selecting `node`: its labels, already
    computed, lie in their range (IndexError as the compiled program raises; not a silent zero row)."""
    entry = _REQUIREMENTS.get(id(node))
    if entry is None or entry[0]() is not node:
        return
    _, labels, low, high, op, name, location, ignored = entry
    source = _source(labels)
    if source in results:
        check_values(results[source], name, low, high, op if location is None else f"{op} at {location}", ignored)


def _requirements(outputs):
    """(labels source, low, high, op, name, location) of every selecting node `outputs` depend on,
    inside scan bodies too (``_body_requirements``)."""
    from .primitives.scan import siblings_key
    from .traversal import topological_order

    loops = set()
    for node in topological_order(list(outputs)):
        entry = _REQUIREMENTS.get(id(node))
        if entry is not None and entry[0]() is node:
            _, labels, low, high, op, name, location, ignored = entry
            yield _source(labels), low, high, op, name, location, ignored
        if node.op == "scan" and siblings_key(node) not in loops:
            loops.add(siblings_key(node))
            yield from _body_requirements(node)


def _body_requirements(scan: Node):
    """The requirements inside a scan's body, on values of the enclosing graph: ids sliced from a
    sequence are that sequence (an Input is then checked before the call), captured ids are the
    captured value, and ids computed in the loop are their stack over the steps (a result of the
    same loop, whose smallest and largest value the program reports)."""
    from .primitives.scan import make_scan_result, split_args
    body = scan.attr("body")
    _, xs, outside = split_args(body, scan.args)
    outer = dict(zip(body.xs, xs))
    outer.update(zip(body.captured, outside))
    for source, low, high, op, name, location, ignored in _requirements(list(body.new_carries) + list(body.ys)):
        if source.op == "const":
            continue  # checked when it was declared
        value = outer[source] if source in outer else make_scan_result(scan.args, body, ("stack", source))
        yield _source(value), low, high, op, name, location, ignored


def _narrow(range_: dict, low: int, high: int, op: str, ignored: int | None) -> None:
    """A second requirement on the same labels: the narrower range, both ops named; a value ignored
    by one but not by the other is not ignored."""
    range_["low"], range_["high"] = max(low, range_["low"]), min(high, range_["high"])
    if op not in range_["op"].split(" and "):
        range_["op"] += f" and {op}"
    if range_.get("ignored") != ignored:
        range_.pop("ignored", None)


def _first(low: int, high: int, op: str, ignored: int | None, **fields) -> dict:
    """A range as plans carry it ("ignored" only where a value is)."""
    return dict(fields, low=low, high=high, op=op, **({} if ignored is None else {"ignored": ignored}))


def index_checks(outputs) -> list:
    """[{"input", "low", "high", "op"[, "ignored"]}] for every Input the program `outputs` uses as labels."""
    checks = {}
    for source, low, high, op, _, _, ignored in _requirements(outputs):
        if source.op != "input":
            continue
        _narrow(checks.setdefault(source.name, _first(low, high, op, ignored, input=source.name)), low, high, op,
                ignored)
    return [checks[name] for name in sorted(checks)]


def index_faults(outputs) -> list:
    """[(fault node, {"op", "low", "high"})] for every labels node of `outputs` computed inside the graph.

    The fault node is a scalar of the labels' dtype: the smallest label if it is below `low`,
    else the largest; it lies in [low, high) exactly when every label does (a NaN label makes
    it NaN). Labels that are an Input (checked before the call) or a constant (checked at
    declaration) get none. Requirements on the same labels are merged (the narrowest range).
    A fault named other than "labels" (the ids of a gather) carries its "name"."""
    from . import ops
    faults = {}
    for source, low, high, op, name, location, ignored in _requirements(outputs):
        if source.op in ("input", "const") or 0 in source.shape:
            continue
        op = op if location is None else f"{op} at {location}"
        fault = _first(low, high, op, ignored)
        if name != "labels":
            fault["name"] = name
        _narrow(faults.setdefault(id(source), [source, fault])[1], low, high, op, ignored)
    result = []
    for source, fault in faults.values():
        values = ops.astype(source, "int64") if source.dtype == "bool" else source
        if "ignored" in fault:  # an ignored label counts as the lowest valid one
            values = ops.where(ops.equal(values, fault.pop("ignored")), fault["low"], values)
        smallest, largest = ops.min(values), ops.max(values)
        result.append((ops.where(smallest < fault["low"], smallest, largest), fault))
    return result


def record_faults(plan: dict, faults: list, first: int) -> dict:
    """Move the fault outputs (plan outputs `first`, `first` + 1, ...) from plan["outputs"] to
    plan["index_faults"] ({"buffer", "op", "low", "high"}): the runtime reads them, never returns them."""
    fault_buffers = plan["outputs"][first:first + len(faults)]
    del plan["outputs"][first:first + len(faults)]
    plan["index_faults"] = [dict(fault, buffer=buffer) for (_, fault), buffer in zip(faults, fault_buffers)]
    return plan
