"""symprop runtime: loads and runs compiled programs on NumPy buffers (never imports sympy)."""

from . import datasets
from .cache import ObjectCache
from .engine import Engine

__all__ = ["Engine", "ObjectCache", "datasets"]
