"""The declarative model file: a TOML description of a model and how to train it.

    [model]
    input_features = 64
    layers = [{ type = "dense", units = 128, activation = "relu" },
              { type = "dense", units = 10 }]

    [loss]
    name = "cross_entropy"

    [optimizer]
    name = "adam"
    lr = 0.01

    [training]
    dataset = "digits"
    epochs = 10
    batch_size = 32
    seed = 0
    schedule = { name = "cosine", T_max = 10 }

``load_model_file(path)`` checks every key and builds the graph. Anything
wrong -- bad TOML, a missing or unknown key, a value of the wrong type or out
of range -- raises ModelFileError naming the file, the key as a dotted path
(``model.layers[1].units``) and what was expected against what was found.
"""
from __future__ import annotations

import difflib
import inspect
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .graph import Input, Node
from .models import ACTIVATIONS, stack_dense
from .ops import cross_entropy, mse, one_hot
from .optim import OPTIMIZERS, HyperparameterError, Optimizer
from .schedules import SCHEDULES, LinearWarmup, Schedule


class ModelFileError(ValueError):
    """A model file that cannot be used as written."""


@dataclass(frozen=True)
class DatasetInfo:
    features: int
    classes: int


DATASETS = {"digits": DatasetInfo(features=64, classes=10)}
LOSSES = ("cross_entropy", "mse")
DTYPES = ("float32", "float64")
LAYER_TYPES = ("dense",)


@dataclass(frozen=True)
class TrainingSettings:
    """How to train: `schedule(epoch)` gives the learning rate of each 0-based epoch (None: optimizer.lr throughout)."""

    dataset: str
    epochs: int
    batch_size: int
    seed: int = 0
    schedule: Schedule | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A built model: the graph, its optimizer and its training settings."""

    inputs: dict            # name -> Input: "x" (batch, features) and "labels" (batch,) int64
    logits: Node
    loss: Node
    params: list
    optimizer: Optimizer
    training: TrainingSettings
    source: str             # the file it came from, or "<default model>"


MISSING = object()


def describe(value) -> str:
    """A found value as the file spells it, with its TOML type."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value!r} (a float)"
    if isinstance(value, str):
        return f"{json.dumps(value)} (a string)"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' * (len(value) != 1)}"
    return f"{value} (a {type(value).__name__})"


def _quoted(names) -> str:
    return ", ".join(json.dumps(n) for n in names)


def _did_you_mean(word, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {json.dumps(close[0])}?)" if close else ""


class Table:
    """One TOML table being read: take() each known key, then finish() rejects the rest."""

    def __init__(self, source: str, path: str, content):
        self.source, self.path, self.content, self.taken = source, path, content, set()

    def key(self, name) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, key: str, message: str) -> ModelFileError:
        return ModelFileError(f"{self.source}: {key}: {message}")

    def take(self, name, expected: str, check, default=MISSING):
        """The value at `name`, or `default`; `check(value)` says whether it is what `expected` describes."""
        self.taken.add(name)
        if name not in self.content:
            if default is MISSING:
                raise self.error(self.key(name), f"missing; expected {expected}")
            return default
        value = self.content[name]
        if not check(value):
            raise self.error(self.key(name), f"expected {expected}, found {describe(value)}")
        return value

    def choice(self, name, choices, default=MISSING) -> str:
        value = self.take(name, f"one of {_quoted(choices)}", lambda v: isinstance(v, str), default)
        if value not in choices:
            raise self.error(self.key(name), f"expected one of {_quoted(choices)}, found {describe(value)}"
                             + _did_you_mean(value, choices))
        return value

    def table(self, name, default=MISSING) -> "Table | None":
        value = self.take(name, "a table", lambda v: isinstance(v, dict), default)
        return None if value is None else Table(self.source, self.key(name), value)

    def finish(self):
        for name in self.content:
            if name not in self.taken:
                known = sorted(self.taken)
                raise self.error(self.key(name), "unknown key" + _did_you_mean(name, known)
                                 + f"; expected one of {', '.join(known)}")


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_natural(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---- sections --------------------------------------------------------------------------------

def read_model(table: Table, dataset: DatasetInfo, dataset_name: str):
    features = table.take("input_features", f"a positive integer ({dataset.features} for dataset "
                          f"{json.dumps(dataset_name)})", is_count)
    if features != dataset.features:
        raise table.error(table.key("input_features"), f"expected {dataset.features} (the features of dataset "
                          f"{json.dumps(dataset_name)}), found {describe(features)}")
    dtype = table.choice("dtype", DTYPES, default="float32")
    layers = table.take("layers", "a non-empty array of tables like { type = \"dense\", units = 128, "
                        "activation = \"relu\" }", lambda v: isinstance(v, list) and len(v) > 0)
    spec = []
    for i, layer in enumerate(layers):
        path = f"{table.key('layers')}[{i}]"
        if not isinstance(layer, dict):
            raise table.error(path, f'expected a table like {{ type = "dense", units = 128 }}, found {describe(layer)}')
        entry = Table(table.source, path, layer)
        entry.choice("type", LAYER_TYPES)
        units = entry.take("units", "a positive integer", is_count)
        activation = entry.choice("activation", tuple(ACTIVATIONS), default="linear")
        entry.finish()
        spec.append((units, activation))
    check_fits_in_memory(table, features, spec, dtype)
    if spec[-1][0] != dataset.classes:
        raise table.error(f"{table.key('layers')}[{len(spec) - 1}].units",
                          f"expected {dataset.classes} (the classes of dataset {json.dumps(dataset_name)}, "
                          f"as the last layer gives one output per class), found {describe(spec[-1][0])}")
    table.finish()
    return features, dtype, spec


def physical_memory() -> int:
    """Bytes of memory in this machine (2**40 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


COPIES_PER_PARAMETER = 4  # the parameter, its gradient and up to two optimizer state arrays


def check_fits_in_memory(table: Table, features: int, layers: list, dtype: str) -> None:
    """Raise naming the first layer whose parameters (with gradients and optimizer state) exceed memory."""
    itemsize = 4 if dtype == "float32" else 8
    budget = physical_memory() // (COPIES_PER_PARAMETER * itemsize)  # parameters that fit
    total, fan_in = 0, features
    for i, (units, _) in enumerate(layers):
        if total + (fan_in + 1) * units > budget:
            most = max((budget - total) // (fan_in + 1), 0)
            raise table.error(f"{table.key('layers')}[{i}].units",
                              f"expected at most {most} (a {fan_in} x units {dtype} layer, with its gradient and "
                              f"optimizer state, must fit in this machine's {physical_memory() / 2**30:.1f} GiB of "
                              f"memory), found {describe(units)}")
        total += (fan_in + 1) * units
        fan_in = units


def _toml_spelling(expected: str) -> str:
    return expected.replace("True", "true").replace("False", "false")


def _expected_from_default(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, tuple):
        return f"an array of {len(default)} numbers"
    return "a number"


def _read_arguments(table: Table, cls, skip=()) -> dict:
    """The constructor arguments of `cls` given in `table` (their checks are the constructor's)."""
    arguments = {}
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.name in skip:
            continue
        required = parameter.default is inspect.Parameter.empty
        table.take(parameter.name, _expected_from_default(parameter.default), lambda v: True,
                   default=MISSING if required else None)
        if parameter.name in table.content:
            arguments[parameter.name] = table.content[parameter.name]
    return arguments


def _argument_error(table: Table, error: HyperparameterError, key: str | None = None) -> ModelFileError:
    return table.error(table.key(key or error.argument),
                       f"expected {_toml_spelling(error.expected)}, found {describe(error.found)}")


def read_optimizer(table: Table) -> Optimizer:
    cls = OPTIMIZERS[table.choice("name", tuple(OPTIMIZERS))]
    arguments = _read_arguments(table, cls)
    table.finish()
    try:
        return cls(**arguments)
    except HyperparameterError as error:
        raise _argument_error(table, error) from None


def read_schedule(table: Table, lr: float) -> Schedule:
    cls = SCHEDULES[table.choice("name", tuple(SCHEDULES))]
    arguments = _read_arguments(table, cls, skip=("lr",))  # the base rate is optimizer.lr
    warmup_steps = table.take("warmup_steps", "a positive integer", is_count, default=None)
    start_factor = table.take("warmup_start_factor", "a number in (0, 1]", lambda v: True, default=None)
    table.finish()
    if start_factor is not None and warmup_steps is None:
        raise table.error(table.key("warmup_start_factor"), "set without warmup_steps; expected warmup_steps too")
    try:
        schedule = cls(lr, **arguments)
        if warmup_steps is not None:
            extra = {} if start_factor is None else {"start_factor": start_factor}
            schedule = LinearWarmup(schedule, warmup_steps, **extra)
    except HyperparameterError as error:
        key = "warmup_start_factor" if error.argument == "start_factor" else None
        raise _argument_error(table, error, key) from None
    return schedule


def read_training(table: Table, lr: float) -> TrainingSettings:
    dataset = table.choice("dataset", tuple(DATASETS))
    epochs = table.take("epochs", "a positive integer", is_count)
    batch_size = table.take("batch_size", "a positive integer", is_count)
    seed = table.take("seed", "a non-negative integer", is_natural, default=0)
    schedule_table = table.table("schedule", default=None)
    table.finish()
    schedule = read_schedule(schedule_table, lr) if schedule_table is not None else None
    return TrainingSettings(dataset, epochs, batch_size, seed, schedule)


# ---- the whole file ----------------------------------------------------------------------------

def model_spec_from_document(document: dict, source: str) -> ModelSpec:
    """Check a parsed model file and build its graph; `source` names it in errors."""
    root = Table(source, "", document)
    sections = {name: root.table(name) for name in ("model", "loss", "optimizer", "training")}
    root.finish()
    optimizer = read_optimizer(sections["optimizer"])
    training = read_training(sections["training"], optimizer.lr)
    dataset = DATASETS[training.dataset]
    features, dtype, layers = read_model(sections["model"], dataset, training.dataset)
    loss_name = sections["loss"].choice("name", LOSSES)
    sections["loss"].finish()

    x = Input("x", ("batch", features), dtype)
    labels = Input("labels", ("batch",), "int64")
    logits, params = stack_dense(x, layers, name="layer")
    if loss_name == "cross_entropy":
        loss = cross_entropy(logits, labels)
    else:
        loss = mse(logits, one_hot(labels, dataset.classes, dtype))
    return ModelSpec(inputs={"x": x, "labels": labels}, logits=logits, loss=loss, params=params,
                     optimizer=optimizer, training=training, source=source)


def load_model_file(path) -> ModelSpec:
    """Read, check and build the model file at `path`."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ModelFileError(f"{source}: no such file; expected a TOML model file "
                             "such as examples/digits_mlp.toml") from None
    except IsADirectoryError:
        raise ModelFileError(f"{source}: is a directory; expected a TOML model file "
                             "such as examples/digits_mlp.toml") from None
    except OSError as error:
        raise ModelFileError(f"{source}: cannot be read ({error.strerror or error}); expected a readable "
                             "TOML model file") from None
    except UnicodeDecodeError as error:
        raise ModelFileError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start}); "
                             "expected a TOML model file") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ModelFileError(f"{source}: invalid TOML: {error}{_quote_line(text, error)}") from None
    return model_spec_from_document(document, source)


def _quote_line(text: str, error) -> str:
    """The offending line of the file, when tomllib says which."""
    match = re.search(r"line (\d+)", str(error))
    line = int(match.group(1)) if match else None
    lines = text.splitlines()
    if line is None or not 1 <= line <= len(lines):
        return ""
    return f"\n    {line} | {lines[line - 1]}"


DEFAULT_MODEL = {
    "model": {"input_features": 64,
              "layers": [{"type": "dense", "units": 128, "activation": "relu"},
                         {"type": "dense", "units": 10}]},
    "loss": {"name": "cross_entropy"},
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"dataset": "digits", "epochs": 10, "batch_size": 32, "seed": 0,
                 "schedule": {"name": "cosine", "T_max": 10}},
}


def default_model_spec() -> ModelSpec:
    """The default model, the same as examples/digits_mlp.toml: a 64-128-10 ReLU MLP trained with Adam."""
    return model_spec_from_document(DEFAULT_MODEL, "<default model>")
