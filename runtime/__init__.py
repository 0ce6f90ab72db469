"""symprop runtime: loads and runs compiled programs on NumPy buffers (never imports sympy)."""

from . import callbacks, datasets
from .cache import ObjectCache
from .engine import Engine
from .executable import Executable
from .fit import fit
from .history import History
from .lr_finder import lr_finder
from .training import TrainStep

__all__ = ["Engine", "ObjectCache", "Executable", "TrainStep", "History", "fit", "lr_finder", "callbacks", "datasets"]
