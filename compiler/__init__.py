"""symprop's compiler: declare tensor graphs, differentiate them symbolically, simplify, lower."""
from .errors import GraphError
from .graph import Buffer, Input, Param, Node, const
from . import ops
from .ops import *  # noqa: F401,F403  (every op is importable from compiler)
from .ops import elementwise
from .traversal import leaves
from .autodiff import grad
from .evaluate import evaluate
from .show import show
from .passes import simplify
from .compile import compile
from .step import compile_step
from .modes import inference
from .randomness import random_normal, random_uniform
from .scan import scan
from . import metrics
from .metrics import accuracy, confusion_matrix, top_k_accuracy
from . import nn, optim, schedules
from .models import mlp, classifier_loss
from .model_file import ModelFileError, default_model_spec, load_model_file
from .inspect import to_sympy, latex, pretty, from_sympy, to_dot

from .codegen.fused import fused_stage as _fused_stage
from .inspect.stages import register_stage as _register_stage

_register_stage("fused (one line per kernel)", _fused_stage)
