"""The program after each stage of compilation, for ``show(nodes, passes=True)``.

Stages: ``declared`` (the graph as given), ``differentiated`` (when `wrt` is
given: the loss and its gradients), then every simplification pass in
pipeline order (``fold constants``, ``inline scalar constants``, ...;
repeated rounds are numbered), then any stage registered with
``register_stage`` (code generation adds ``fused`` there). Each stage
carries its node count, so a pass that does nothing is visible as such.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from ..autodiff import grad
from ..passes import count_nodes, simplify_stages
from ..traversal import as_node_list


class Stage(NamedTuple):
    name: str
    node_count: int
    text: str


LATER_STAGES: list = []


def register_stage(name: str, build: Callable) -> None:
    """Show one more stage after simplification: ``build(simplified outputs) -> (node count, text)``."""
    LATER_STAGES[:] = [(n, b) for n, b in LATER_STAGES if n != name] + [(name, build)]


def _snapshot(name: str, outputs) -> Stage:
    from ..show import show
    return Stage(name, count_nodes(outputs), show(outputs))


def pass_stages(nodes, wrt=None) -> list:
    """[Stage(name, node count, text)] from declaration to the last registered stage.

    wrt: when given, `nodes` is a scalar loss and a ``differentiated`` stage adds
    its gradients with respect to `wrt` (a node or a list of nodes).
    """
    outputs = as_node_list(nodes)
    stages = [_snapshot("declared", outputs)]
    if wrt is not None:
        if len(outputs) != 1:
            raise ValueError(f"pass_stages: with wrt=..., give one scalar loss, got {len(outputs)} outputs")
        outputs = outputs + as_node_list(grad(outputs[0], as_node_list(wrt)))
        stages.append(_snapshot("differentiated", outputs))
    rounds = {}
    for name, result in simplify_stages(outputs):
        rounds[name] = rounds.get(name, 0) + 1
        label = name if rounds[name] == 1 else f"{name} (round {rounds[name]})"
        stages.append(_snapshot(label, result))
        outputs = result
    for name, build in LATER_STAGES:
        count, text = build(outputs)
        stages.append(Stage(name, count, text))
    return stages


def format_stages(stages) -> str:
    """One block per stage with its node count; a stage that changed nothing is one line."""
    blocks, previous = [], None
    for stage in stages:
        header = f"== {stage.name}: {stage.node_count} nodes"
        if previous is not None:
            delta = stage.node_count - previous.node_count
            header += f" ({delta:+d})" if delta else ""
        if previous is not None and stage.text == previous.text:
            blocks.append(header + ", unchanged ==")
        else:
            blocks.append(header + " ==\n" + stage.text)
        previous = stage
    return "\n".join(blocks)
