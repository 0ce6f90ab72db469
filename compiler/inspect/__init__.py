"""Seeing what the compiler made: gradients as mathematics, graphs as pictures, programs per pass.

- ``to_sympy`` / ``latex`` / ``pretty``: a node (a gradient) as an exact formula (a deep
  graph with named intermediates H1, H2, ... and their definitions);
- ``from_sympy``: a scalar sympy formula as a batched model;
- ``to_dot`` / ``render``: Graphviz pictures of a graph;
- ``pass_stages``: the program after each compilation stage (``show(nodes, passes=True)``).
"""
from .dot import GraphvizNotFound, render, to_dot
from .from_sympy import from_sympy
from .mathematics import latex, pretty, to_sympy
from .stages import Stage, format_stages, pass_stages, register_stage

__all__ = ["to_sympy", "latex", "pretty", "from_sympy", "to_dot", "render", "GraphvizNotFound",
           "pass_stages", "format_stages", "register_stage", "Stage"]
