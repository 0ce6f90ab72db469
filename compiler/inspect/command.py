"""``symprop inspect MODEL``: a model's gradients as text, mathematics, graphs, IR, assembly or cost.

MODEL is a TOML model file (as for ``symprop train``) or a Python file that
defines, at module level, ``loss`` (a scalar node) and optionally
``optimizer`` (default ``Adam(lr=1e-3)``). Without ``--grad`` the views show
the loss with the gradients of every parameter, and the machine-code views
show the whole compiled training step; with ``--grad PARAM`` they show that
one gradient (compiled as a function for the machine-code views).
"""
from __future__ import annotations

import os
import runpy
import sys

import numpy as np

from runtime.random_inputs import NAMES as RANDOM_INPUTS

FORMATS = ("text", "math", "latex", "dot", "svg", "llvm", "llvm-opt", "asm", "kernels", "cost")


class InspectError(ValueError):
    """A model that cannot be inspected as asked."""


def add_arguments(parser) -> None:
    parser.add_argument("model", help="a TOML model file, or a Python file defining `loss` (and optionally `optimizer`)")
    parser.add_argument("--grad", metavar="PARAM", help="show the gradient with respect to this parameter")
    parser.add_argument("--format", choices=FORMATS, default="text", help="what to show (default: text)")
    parser.add_argument("--cost", action="store_true", help="same as --format cost")
    parser.add_argument("--scale", choices=("batch", "width"),
                        help="with --cost: how FLOPs and time grow as the batch (or the hidden width) doubles")
    parser.add_argument("--batch", type=int, default=64, help="batch size for cost measurements (default 64)")
    parser.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of standard output")
    one_line_usage_errors(parser)


class Model:
    """What inspection needs of a model: its loss, parameters, optimizer and how it was declared."""

    def __init__(self, path: str):
        from ..graph import Node
        from ..optim import Adam
        from ..graph import is_buffer
        from ..traversal import leaves
        self.path = path
        self.spec = None
        if path.endswith(".toml"):
            from ..model_file import load_model_file
            self.spec = load_model_file(path)
            self.loss, self.optimizer = self.spec.loss, self.spec.optimizer
        elif path.endswith(".py"):
            namespace = _run_model_file(path)
            self.loss = namespace.get("loss")
            if not isinstance(self.loss, Node) or self.loss.shape != ():
                raise InspectError(f"{path}: expected a module-level `loss`, a scalar graph node; got {_short_repr(self.loss)}")
            self.optimizer = namespace.get("optimizer") or Adam(lr=1e-3)
        else:
            _check_readable(path)
            raise InspectError(f"{path}: expected a .toml model file or a .py file defining `loss`")
        self.params = [leaf for leaf in leaves(self.loss) if leaf.op == "param" and not is_buffer(leaf)]
        self.inputs = [leaf for leaf in leaves(self.loss)  # data: a step feeds its own seed and counter
                       if leaf.op == "input" and leaf.name not in RANDOM_INPUTS]

    def param(self, name: str):
        for p in self.params:
            if p.name == name:
                return p
        raise InspectError(f"{self.path}: no parameter {name!r}; the model has {', '.join(p.name for p in self.params)}")

    def example_inputs(self, batch: int, seed: int = 0) -> dict:
        """Random data of the declared shapes, every symbolic dimension = batch (integer inputs are 0)."""
        rng = np.random.default_rng(seed)
        values = {}
        for leaf in self.inputs:
            shape = tuple(batch if isinstance(d, str) else d for d in leaf.shape)
            if leaf.dtype.startswith("float"):
                values[leaf.name] = rng.standard_normal(shape).astype(leaf.dtype)
            else:
                values[leaf.name] = np.zeros(shape, dtype=leaf.dtype)
        return values


def _check_readable(path: str) -> None:
    """An InspectError naming `path` when it is not a file that can be read."""
    if not os.path.exists(path):
        raise InspectError(f"{path}: no such file; expected a .toml model file or a .py file defining `loss`")
    if os.path.isdir(path):
        raise InspectError(f"{path}: is a directory; expected a .toml model file or a .py file defining `loss`")
    if not os.access(path, os.R_OK):
        raise InspectError(f"{path}: cannot be read; expected a readable .toml or .py model file")


def _short_repr(value, limit: int = 80) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _run_model_file(path: str) -> dict:
    """The module-level names of the Python model file at `path`; any failure is an InspectError."""
    _check_readable(path)
    try:
        return runpy.run_path(path, run_name="symprop_model")
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        raise InspectError(f"{path}: not valid Python: {error.msg}{where}; expected a Python file defining `loss`") from None
    except SystemExit as error:
        raise InspectError(f"{path}: the model file exited (code {error.code}) before defining `loss`") from None
    except Exception as error:  # the file is the user's program: whatever it raises is a mistake in it
        line = _line_in(error, path)
        message = " ".join(str(error).split()) or "(no message)"
        raise InspectError(f"{path}: running it raised {type(error).__name__}{line}: {message}; "
                           "expected a Python file defining `loss`") from None


def _line_in(error: BaseException, path: str) -> str:
    """ ' at line N' for the innermost frame of `error`'s traceback inside the file `path`."""
    line, target = None, os.path.abspath(path)
    traceback = error.__traceback__
    while traceback is not None:
        if os.path.abspath(traceback.tb_frame.f_code.co_filename) == target:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f" at line {line}" if line else ""


def render_view(model: Model, fmt: str, grad_name: str | None, batch: int, output: str | None) -> str:
    """The text of one view (for svg: where the picture was written)."""
    from ..show import show
    target = model.param(grad_name) if grad_name else None
    if fmt == "text":
        return show(model.loss, wrt=target if target is not None else model.params)
    if fmt in ("math", "latex"):
        return _math_view(model, target, "pretty" if fmt == "math" else "latex")
    if fmt in ("dot", "svg"):
        return _graph_view(model, target, fmt, output)
    return _machine_view(model, fmt, target, batch)


def _math_view(model: Model, target, style: str) -> str:
    """The gradient (or the loss and every gradient) as formulas; what matrix notation cannot
    write (tensors of rank 3, ...) appears as named symbols, listed under each formula."""
    from ..autodiff import grad
    from .mathematics import formula
    if target is not None:
        return formula(grad(model.loss, target)).text(style)
    titled = [("loss", model.loss)]
    titled += [(f"d loss / d {p.name}", g) for p, g in zip(model.params, grad(model.loss, model.params))]
    heading = "%% {}" if style == "latex" else "{}:"
    return "\n\n".join(heading.format(title) + "\n" + formula(node).text(style) for title, node in titled)


def _graph_view(model: Model, target, fmt: str, output: str | None) -> str:
    from ..autodiff import grad
    from ..codegen.fused import fused_kernels
    from ..passes import simplify
    from .dot import render, to_dot
    targets = [target] if target is not None else model.params
    outputs = simplify([model.loss, *grad(model.loss, targets)])
    lowered, kernels = fused_kernels(outputs)
    clusters = {f"k{k} {kernel['kind']}": nodes for k, (kernel, nodes) in enumerate(kernels) if len(nodes) > 1}
    text = to_dot(lowered, forward=lowered[:1], clusters=clusters, title=os.path.basename(model.path))
    if fmt == "dot":
        return text
    path = output or os.path.splitext(model.path)[0] + ".svg"
    render(text, path)
    return f"wrote {path}"


def _machine_view(model: Model, fmt: str, target, batch: int) -> str:
    from ..autodiff import grad
    from ..compile import compile
    from ..step import compile_step
    if target is not None:
        program = compile(grad(model.loss, target))
        run = lambda inputs: program.cost(**inputs, **_param_values(model))  # noqa: E731
    else:
        program = compile_step(model.loss, model.optimizer, seed=0)
        run = lambda inputs: program.cost(**inputs)  # noqa: E731
    if fmt == "llvm":
        return program.llvm_ir()
    if fmt == "llvm-opt":
        return program.llvm_ir(optimized=True)
    if fmt == "asm":
        return program.asm()
    if fmt == "kernels":
        return _kernel_table(program.kernels())
    return str(run(model.example_inputs(batch)))


def _param_values(model: Model) -> dict:
    from ..initializers import initial_values
    return initial_values(model.params, seed=0)


def _kernel_table(kernels) -> str:
    lines = [f"{len(kernels)} fused kernels, in execution order"]
    for k, kernel in enumerate(kernels):
        shape = "(" + ", ".join(str(d) for d in kernel["shape"]) + ")"
        lines.append(f"k{k:<3} {kernel['kind']:<11} {kernel.get('phase', ''):<8} {shape:<16} flops {kernel['flops']:<14} "
                     f"bytes {kernel['bytes']:<16} {kernel['body']}")
    return "\n".join(lines)


def scaling_table(model: Model, scale: str, batch: int, steps: int = 4) -> str:
    """How FLOPs and measured step time grow as the batch (or every hidden width) doubles,
    beside the O(n*m*p) estimate: examples x weights x per-activation cost."""
    from ..step import compile_step
    rows = []
    for k in range(steps):
        factor = 2 ** k
        if scale == "batch":
            current, n = model, batch * factor
        else:
            current, n = _widened(model, factor), batch
        step = compile_step(current.loss, current.optimizer, seed=0)
        weights = sum(int(np.prod(p.shape)) for p in current.params)
        totals = step.cost(**current.example_inputs(n)).totals()["total"]
        rows.append((n, weights, totals["flops"], totals["seconds"]))
    base_n, base_w, base_f, base_t = rows[0]
    lines = [f"scaling the {scale} (per-activation cost p taken from the first row)",
             f"{'batch':>7} {'weights':>9} {'MFLOP':>10} {'x':>6} {'estimate n*m*p x':>17} {'time us':>10} {'x':>6}"]
    for n, weights, flops, seconds in rows:
        estimate = (n * weights) / (base_n * base_w)
        lines.append(f"{n:>7} {weights:>9} {flops / 1e6:>10.3f} {flops / base_f:>6.2f} {estimate:>17.2f} "
                     f"{seconds * 1e6:>10.1f} {seconds / base_t:>6.2f}")
    return "\n".join(lines)


def _widened(model: Model, factor: int) -> Model:
    """The same TOML model with every hidden layer `factor` times wider."""
    if model.spec is None:
        raise InspectError(f"{model.path}: --scale width needs a TOML model file (its layer widths can be changed)")
    import tomllib
    from ..model_file import model_spec_from_document
    with open(model.path, "rb") as f:
        document = tomllib.load(f)
    layers = document["model"]["layers"]
    for layer in layers[:-1]:
        for width in ("units", "filters"):  # dense and convolution layers; the others have no width
            if width in layer:
                layer[width] = layer[width] * factor
    widened = Model.__new__(Model)
    widened.__dict__.update(model.__dict__)
    widened.spec = model_spec_from_document(document, model.path)
    widened.loss, widened.optimizer = widened.spec.loss, widened.spec.optimizer
    widened.params = widened.spec.params
    return widened


def one_line_usage_errors(parser) -> None:
    """Make `parser` report a bad flag or argument as one line (``symprop inspect: ...``), exit code 2."""
    def error(message: str):
        parser.exit(2, f"symprop inspect: {message}; see symprop inspect --help\n")
    parser.error = error


def main(args) -> int:
    from .dot import GraphvizNotFound
    fmt = "cost" if args.cost else args.format
    try:
        if args.batch < 1:
            raise InspectError(f"--batch: expected a positive integer, got {args.batch}")
        model = Model(args.model)
        if args.scale:
            if fmt != "cost":
                raise InspectError("--scale goes with --cost (or --format cost)")
            text = scaling_table(model, args.scale, args.batch)
        else:
            text = render_view(model, fmt, args.grad, args.batch, args.output if fmt == "svg" else None)
        if args.output and fmt != "svg":
            try:
                with open(args.output, "w") as f:
                    f.write(text + "\n")
            except OSError as error:
                raise InspectError(f"--output {args.output}: cannot be written ({error.strerror or error}); "
                                   "expected a path in an existing, writable directory") from None
    except (InspectError, ValueError, GraphvizNotFound) as error:
        print(f"symprop inspect: {error}", file=sys.stderr)
        return 2
    if args.output and fmt != "svg":
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0
