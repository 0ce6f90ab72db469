"""The ``symprop`` command: ``symprop train [MODEL.toml]`` and ``symprop inspect MODEL``."""
from __future__ import annotations

import argparse
import sys


def _train(args) -> int:
    from .model_file import ModelFileError, default_model_spec, load_model_file
    from .train_job import TrainArgumentError, check_train_arguments, train
    try:  # every mistake in the file, the flags or the paths, before compiling and training
        spec = load_model_file(args.model) if args.model else default_model_spec()
        check_train_arguments(epochs=args.epochs, save=args.save, plot=args.plot)
    except (ModelFileError, TrainArgumentError) as error:
        print(f"symprop train: {error}", file=sys.stderr)
        return 2
    if args.distributed:
        from runtime.distributed import MPIUnavailable, mpi
        try:
            mpi()
        except MPIUnavailable as error:
            print(f"symprop train: --distributed: {error}", file=sys.stderr)
            return 2
    if args.bucket_mb is not None and not args.distributed:
        print("symprop train: --bucket-mb applies with --distributed only", file=sys.stderr)
        return 2
    train(spec, epochs=args.epochs, progress=not args.quiet, plot=args.plot, save=args.save,
          distributed=args.distributed, bucket_mb=args.bucket_mb)
    return 0


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse reports anything else as a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _inspect(args) -> int:
    from .inspect.command import main as inspect_main
    return inspect_main(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="symprop", description="A symbolic graph compiler for backpropagation.")
    commands = top.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model file (default: a 64-128-10 MLP on the digits)")
    train.add_argument("model", nargs="?", help="a TOML model file, e.g. examples/digits_mlp.toml")
    train.add_argument("--epochs", type=positive_int, help="override the file's epoch count (an integer >= 1)")
    train.add_argument("--plot", metavar="PATH", help="draw the loss curves to PATH (needs matplotlib)")
    train.add_argument("--save", metavar="PATH", help="save parameters and optimizer state (.npz)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel over MPI ranks: mpiexec -n N symprop train --distributed (needs .[mpi])")
    train.add_argument("--bucket-mb", type=positive_float, metavar="MB",
                       help="with --distributed: sum the gradients in buckets of about MB megabytes while the "
                            "backward pass runs (default: one sum after it)")
    train.set_defaults(run=_train)
    try:
        from .inspect.command import add_arguments
    except ImportError:
        add_arguments = None
    if add_arguments is not None:
        inspect = commands.add_parser("inspect", help="show a model's gradients as text, mathematics, graphs, IR, assembly or cost")
        add_arguments(inspect)
        inspect.set_defaults(run=_inspect)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
