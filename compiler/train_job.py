"""The main job: train a declarative model (the default: a 64-128-10 MLP on the
digits) with the compiled step, showing progress and the test accuracy."""
from __future__ import annotations

import importlib.util
import io
import os
import sys
import time

import numpy as np

from runtime import datasets, fit

from .model_file import ModelSpec
from .step import compile_step


class TrainArgumentError(ValueError):
    """An argument of a training job that cannot be used as given (named as the command line spells it)."""


def check_train_arguments(*, epochs=None, save=None, plot=None) -> None:
    """Raise TrainArgumentError unless epochs is an int >= 1 (or None) and save/plot name writable files."""
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise TrainArgumentError(f"--epochs: expected a positive integer, got {epochs!r}")
    for flag, path in (("--save", save), ("--plot", plot)):
        if path is not None:
            check_output_path(flag, os.fspath(path))
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise TrainArgumentError("--plot needs matplotlib (pip install 'symprop[plot]')")


def check_output_path(flag: str, path: str) -> None:
    """Raise TrainArgumentError unless a file can be written at `path` (its directory exists and is writable)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise TrainArgumentError(f"{flag} {path}: is a directory; expected a file path")
    if not os.path.isdir(directory):
        raise TrainArgumentError(f"{flag} {path}: the directory {directory} does not exist; expected a path in an "
                                 "existing directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TrainArgumentError(f"{flag} {path}: the directory {directory} is not writable")


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def mean_loss(loss_function, inputs: dict, batch_size: int = 256) -> float:
    """The mean of a mean-per-example loss over all rows of `inputs`, batch_size rows at a time."""
    rows = len(next(iter(inputs.values())))
    total = 0.0
    for start in range(0, rows, batch_size):
        batch = {name: array[start:start + batch_size] for name, array in inputs.items()}
        total += float(loss_function(**batch)) * len(next(iter(batch.values())))
    return total / rows


def train(spec: ModelSpec, *, epochs: int | None = None, progress: bool = True, out=sys.stdout,
          plot: str | None = None, save: str | None = None, distributed: bool = False,
          bucket_mb: float | None = None) -> dict:
    """Compile and train `spec`; returns {"test_accuracy", "seconds", "compile_seconds", "history"}
    ({"val_loss", "unigram_entropy", ...} for a text dataset, see `train_on_text`).

    `epochs`, `save` and `plot` are checked first (TrainArgumentError), so a mistake costs no training.
    distributed: data-parallel over the MPI ranks (``mpiexec -n N``): each global batch of
    batch_size rows is split between the ranks; rank 0 alone prints, plots and saves. bucket_mb: the
    gradients are summed in buckets of about that many megabytes while the backward pass runs
    (``compile_step``); None: in one message after it."""
    check_train_arguments(epochs=epochs, save=save, plot=plot)
    if distributed:
        from runtime.distributed import world
        comm = world()
        if comm.rank != 0:
            out, progress, plot = io.StringIO(), False, None
        print(f"symprop: data-parallel on {comm.size} ranks (MPI), each global batch split between them", file=out)
        distributed = comm
    if spec.training.dataset == "python_docs":
        return train_on_text(spec, epochs=epochs, progress=progress, out=out, plot=plot, save=save,
                             distributed=distributed, bucket_mb=bucket_mb)
    started = time.perf_counter()
    dtype, example_shape = spec.inputs["x"].dtype, spec.inputs["x"].shape[1:]  # (64,) or an image's (1, 8, 8)
    x_train, y_train = datasets.load_digits("train", dtype=dtype)
    x_test, y_test = datasets.load_digits("test", dtype=dtype)
    x_train, x_test = x_train.reshape(-1, *example_shape), x_test.reshape(-1, *example_shape)
    settings = spec.training
    epochs = settings.epochs if epochs is None else epochs
    print(f"symprop: training {spec.source} on {settings.dataset} ({len(x_train)} train / {len(x_test)} test), "
          f"{epochs} epochs, batch {settings.batch_size}, {spec.optimizer!r}", file=out)
    step = compile_step(spec.loss, spec.optimizer, seed=settings.seed, distributed=distributed,
                        **({"bucket_mb": bucket_mb} if distributed else {}))
    predict = step.function(spec.logits)  # inference mode: batch norm's running statistics, no dropout
    compiled = time.perf_counter() - started
    print(f"compiled forward, backward and update in {compiled:.2f} s ({len(step.kernels())} kernels)", file=out)

    def validate():
        return {"test_accuracy": accuracy(predict(x=x_test), y_test)}

    history = fit(step, {"x": x_train, "labels": y_train}, epochs, settings.batch_size, validate=validate,
                  seed=settings.seed, epoch_schedule=settings.schedule, progress=progress)
    seconds = time.perf_counter() - started
    final = validate()["test_accuracy"]
    print(f"test accuracy {final:.2%} after {epochs} epochs; {seconds:.2f} s wall time, compilation included", file=out)
    finish(step, history, save, plot, out)
    return {"test_accuracy": final, "seconds": seconds, "compile_seconds": compiled, "history": history}


def finish(step, history, save, plot, out) -> None:
    if save:
        step.save(save)
        print(f"saved parameters and optimizer state to {save}", file=out)
    if plot:
        history.plot(plot)
        print(f"loss curves written to {plot}", file=out)


def train_on_text(spec: ModelSpec, *, epochs: int | None = None, progress: bool = True, out=sys.stdout,
                  plot: str | None = None, save: str | None = None, distributed=False,
                  bucket_mb: float | None = None) -> dict:
    """Train a model of token windows on the python_docs corpus: each epoch draws as many windows at
    random offsets of the training text as it holds characters / T, and ends with the mean loss over every
    non-overlapping window of the validation text. Returns {"val_loss", "unigram_entropy", "seconds",
    "compile_seconds", "history"}."""
    started = time.perf_counter()
    corpus = datasets.load_python_docs()
    context, settings = spec.inputs["x"].shape[1], spec.training
    epochs = settings.epochs if epochs is None else epochs
    per_epoch = len(corpus.split("train")) // context
    print(f"symprop: training {spec.source} on {settings.dataset} ({len(corpus):,} characters, "
          f"{corpus.vocab_size} in the vocabulary, the last 10 % for validation), {epochs} epochs of {per_epoch} "
          f"random windows of {context}, batch {settings.batch_size}, {spec.optimizer!r}", file=out)
    step = compile_step(spec.loss, spec.optimizer, seed=settings.seed, distributed=distributed,
                        **({"bucket_mb": bucket_mb} if distributed else {}))
    validation_loss = step.function(spec.loss)  # inference mode, parameters untouched
    compiled = time.perf_counter() - started
    print(f"compiled forward, backward and update in {compiled:.2f} s ({len(step.kernels())} kernels); unigram "
          f"entropy {corpus.unigram_entropy:.3f} nats/char", file=out)
    x_val, y_val = corpus.windows("validation", context)
    rng = np.random.default_rng(settings.seed)

    def windows(epoch):
        x, y = corpus.random_windows("train", per_epoch, context, rng)
        return {"x": x, "labels": y}

    def validate():
        return {"val_loss": mean_loss(validation_loss, {"x": x_val, "labels": y_val})}

    history = fit(step, windows, epochs, settings.batch_size, validate=validate, shuffle=False, seed=settings.seed,
                  epoch_schedule=settings.schedule, progress=progress)
    seconds = time.perf_counter() - started
    final = history["val_loss"][-1]
    print(f"validation loss {final:.3f} nats/char ({final / corpus.unigram_entropy:.2f}x the unigram entropy) after "
          f"{epochs} epochs; {seconds:.2f} s wall time, compilation included", file=out)
    finish(step, history, save, plot, out)
    return {"val_loss": final, "unigram_entropy": corpus.unigram_entropy, "seconds": seconds,
            "compile_seconds": compiled, "history": history}
