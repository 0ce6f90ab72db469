"""The declarative model file: a TOML description of a model and how to train it.

    [model]
    input_features = 64                   # or input_shape = [1, 8, 8] for convolutions
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

``load_model_file(path)`` checks every key and builds the graph from
``compiler.nn`` layers: layer i is named ``layer_<i>`` (its Params
``layer_0.weight``, ``layer_0.bias``, ...), so a file builds the same graph
every time. Anything wrong -- bad TOML, a missing or unknown key, a value of the
wrong type or out of range, a layer that cannot take the shape its predecessor
gives -- raises ModelFileError naming the file, the key as a dotted path
(``model.layers[1].units``) and what was expected against what was found.

Layer types and their keys (defaults as in torch.nn):

- ``dense``: units, activation = "linear" (over the last axis: (batch, features) or (batch, positions, features))
- ``conv2d``, ``conv1d``, ``conv_transpose2d``, ``conv_transpose1d``, ``max_pool2d``, ``avg_pool2d``,
  ``max_pool1d``, ``avg_pool1d``, ``adaptive_avg_pool2d``, ``adaptive_max_pool2d``, ``adaptive_avg_pool1d``,
  ``batch_norm``, ``group_norm``, ``instance_norm``, ``upsample``, ``pixel_shuffle``: images and signals
  (``model_file_images``), over input_shape = [channels, height, width] or [channels, length]
- ``dropout``: p = 0.5
- ``flatten``: (batch, C, H, W) -> (batch, C*H*W)
- ``embedding``, ``position_embedding``, ``transformer_block``, ``multi_head_attention``, ``layer_norm``,
  ``rms_norm``: sequence models (``model_file_sequences``), over ``input_tokens = T`` (token ids of
  dataset ``python_docs``: each example T characters, labelled by the next T) or input_shape = [T, features]
- ``rnn``, ``lstm``, ``gru``: units, num_layers = 1, bias = true, bidirectional = false, dropout = 0.0,
  return_sequences = false (rnn also nonlinearity = "tanh"), over input_shape = [T, features]
  (``model_file_recurrent``)
"""
from __future__ import annotations

import difflib
import inspect
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import nn
from .errors import GraphError
from .graph import Input, Node
from .model_file_images import (IMAGE_INPUT_LAYOUTS, IMAGE_LAYER_TYPES, IMAGE_WIDTH_KEYS, make_image_layer,
                                read_image_layer)
from .model_file_recurrent import (RECURRENT_INPUT_LAYOUTS, RECURRENT_LAYER_TYPES, make_recurrent_layer,
                                   read_recurrent_layer)
from .model_file_values import is_count, is_natural, is_number, read_activation
from .model_file_sequences import (SEQUENCE_INPUT_LAYOUTS, SEQUENCE_LAYER_TYPES, check_input_keys, make_sequence_layer,
                                   python_docs_sizes, read_input_tokens, read_sequence_layer)
from .ops import cross_entropy, mse, one_hot
from .show import format_shape
from .optim import OPTIMIZERS, HyperparameterError, Optimizer
from .schedules import SCHEDULES, LinearWarmup, Schedule


class ModelFileError(ValueError):
    """A model file that cannot be used as written."""


@dataclass(frozen=True)
class DatasetInfo:
    features: int
    classes: int
    image_shape: tuple  # (channels, height, width) of its examples
    tokens: bool = False  # examples are sequences of token ids labelled by the next ids (classes: the vocabulary)


def python_docs_info() -> DatasetInfo:
    return DatasetInfo(features=0, classes=python_docs_sizes()[0], image_shape=(), tokens=True)


DIGITS = DatasetInfo(features=64, classes=10, image_shape=(1, 8, 8))
DATASETS = {"digits": lambda: DIGITS, "python_docs": python_docs_info}  # name -> its DatasetInfo (read when used)
LOSSES = ("cross_entropy", "mse")
DTYPES = ("float32", "float64")
LAYER_TYPES = ("dense", *IMAGE_LAYER_TYPES, "dropout", "flatten", *SEQUENCE_LAYER_TYPES, *RECURRENT_LAYER_TYPES)


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

    inputs: dict            # name -> Input: "x" (batch, *input shape) and "labels" (batch,) int64
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


# ---- sections --------------------------------------------------------------------------------


def read_input_shape(table: Table, dataset: DatasetInfo, dataset_name: str) -> tuple:
    """The shape of one example: input_features = n gives (n,), input_shape = [c, h, w] gives (c, h, w)."""
    named = f"dataset {json.dumps(dataset_name)}"
    example = list(dataset.image_shape)
    if "input_features" in table.content and "input_shape" in table.content:
        raise table.error(table.key("input_shape"), "set together with input_features; expected one of the two "
                          f"(input_features = {dataset.features} for dense layers, input_shape = {example} for "
                          "convolutions)")
    if "input_shape" in table.content:
        shape = table.take("input_shape", f"an array of 1 to 3 positive integers whose product is {dataset.features} "
                           f"(the features of {named}), such as {example}",
                           lambda v: isinstance(v, list) and 1 <= len(v) <= 3 and all(is_count(d) for d in v))
        if math.prod(shape) != dataset.features:
            raise table.error(table.key("input_shape"), f"expected dimensions whose product is {dataset.features} "
                              f"(the features of {named}), such as {example}, found {shape} "
                              f"(product {math.prod(shape)})")
        return tuple(shape)
    features = table.take("input_features", f"a positive integer ({dataset.features} for {named}), or input_shape "
                          f"= {example}", is_count)
    if features != dataset.features:
        raise table.error(table.key("input_features"), f"expected {dataset.features} (the features of {named}), "
                          f"found {describe(features)}")
    return (features,)


@dataclass(frozen=True)
class LayerEntry:
    """One checked entry of model.layers: its key path, its type and its layer's arguments."""

    path: str
    type: str
    arguments: dict        # keyword arguments of the nn layer
    width_key: str | None  # the key that sets the layer's output width (units, filters), for errors


def read_layer(entry: Table, dataset: DatasetInfo, dtype: str) -> LayerEntry:
    kind = entry.choice("type", LAYER_TYPES)
    if kind in SEQUENCE_LAYER_TYPES:
        arguments = read_sequence_layer(kind, entry, dataset.classes if dataset.tokens else None, dtype)
    elif kind in RECURRENT_LAYER_TYPES:
        arguments = read_recurrent_layer(kind, entry)
    elif kind == "dense":
        arguments = {"units": entry.take("units", "a positive integer", is_count), "activation": read_activation(entry)}
    elif kind in IMAGE_LAYER_TYPES:
        arguments = read_image_layer(kind, entry)
    elif kind == "dropout":
        arguments = {"p": entry.take("p", "a probability in [0, 1]", lambda v: is_number(v) and 0 <= v <= 1,
                                     default=0.5)}
    else:  # flatten
        arguments = {}
    entry.finish()
    width_key = {"dense": "units", **IMAGE_WIDTH_KEYS, **{kind: "units" for kind in RECURRENT_LAYER_TYPES}}.get(kind)
    return LayerEntry(entry.path, kind, arguments, width_key)


def read_model(table: Table, dataset: DatasetInfo, dataset_name: str):
    check_input_keys(table, dataset.tokens, dataset_name)
    if dataset.tokens:
        input_shape = (read_input_tokens(table, dataset_name),)
    else:
        input_shape = read_input_shape(table, dataset, dataset_name)
    dtype = table.choice("dtype", DTYPES, default="float32")
    layers = table.take("layers", "a non-empty array of tables like { type = \"dense\", units = 128, "
                        "activation = \"relu\" }", lambda v: isinstance(v, list) and len(v) > 0)
    entries = []
    for i, layer in enumerate(layers):
        path = f"{table.key('layers')}[{i}]"
        if not isinstance(layer, dict):
            raise table.error(path, f'expected a table like {{ type = "dense", units = 128 }}, found {describe(layer)}')
        entries.append(read_layer(Table(table.source, path, layer), dataset, dtype))
    table.finish()
    return input_shape, dtype, entries


# ---- building the layers -------------------------------------------------------------------------

INPUT_LAYOUTS = {  # what each layer type takes: ranks of (batch, ...) and the layout spelled for errors
    "dense": ((2, 3), "(batch, features) or (batch, positions, features)"),  # over the last axis
    **IMAGE_INPUT_LAYOUTS,
    "flatten": ((2, 3, 4, 5), "(batch, ...)"),
    **SEQUENCE_INPUT_LAYOUTS,
    **RECURRENT_INPUT_LAYOUTS,
}


def make_layer(entry: LayerEntry, x: Node, name: str) -> nn.Layer:
    """The nn layer of `entry` for input `x` (batch norm's kind follows the input's rank)."""
    if entry.type in SEQUENCE_LAYER_TYPES:
        return make_sequence_layer(entry.type, entry.arguments, x, name)
    if entry.type in RECURRENT_LAYER_TYPES:
        return make_recurrent_layer(entry.type, entry.arguments, name)
    if entry.type == "dense":
        return nn.Dense(name=name, **entry.arguments)
    if entry.type in IMAGE_LAYER_TYPES:
        return make_image_layer(entry.type, entry.arguments, x, name)
    if entry.type == "dropout":
        return nn.Dropout(name=name, **entry.arguments)
    return nn.Flatten(name=name)


def _hint(entry: LayerEntry, x: Node) -> str:
    if entry.type == "dense" and x.ndim > 2:
        return '; add { type = "flatten" } before it'
    if entry.type != "dense" and x.ndim == 2:
        return ("; set model.input_shape (such as [1, 8, 8], or [8, 8] for conv1d) instead of input_features for "
                "convolutions and pooling")
    return ""


def build_layers(table: Table, x: Node, entries: list) -> tuple:
    """Apply the layers in order: (output, layers). A layer that cannot take its input's shape is a
    ModelFileError naming it."""
    layers = []
    with nn.names():
        for i, entry in enumerate(entries):
            ranks, layout = INPUT_LAYOUTS.get(entry.type, (None, None))
            if ranks is not None and x.ndim not in ranks:
                raise table.error(entry.path, f"a {entry.type} layer expects an input of shape {layout}, found "
                                  f"shape {format_shape(x.shape)} from the layer before{_hint(entry, x)}")
            try:
                layer = make_layer(entry, x, f"layer_{i}")
                x = layer(x)
            except GraphError as error:
                reason = re.sub(r" \(declared at [^()]*\)$", "", str(error))
                raise table.error(entry.path, f"cannot build this {entry.type} layer for its input of shape "
                                  f"{format_shape(x.shape)}: {reason}") from None
            layers.append(layer)
    return x, layers


def check_output(table: Table, logits: Node, entries: list, dataset: DatasetInfo, dataset_name: str) -> None:
    """The last layer must give one output per class: (batch, classes)."""
    last = entries[-1]
    if dataset.tokens:
        if logits.ndim != 3:
            raise table.error(last.path, f"expected the last layer to give outputs of shape (batch, "
                              f"{logits.shape[1] if logits.ndim > 1 else 'positions'}, {dataset.classes}) (one per "
                              f"token of dataset {json.dumps(dataset_name)} at each position), found shape "
                              f"{format_shape(logits.shape)}; end with a dense layer of {dataset.classes} units")
    elif logits.ndim != 2:
        raise table.error(last.path, f"expected the last layer to give outputs of shape (batch, {dataset.classes}) "
                          f"(one per class of dataset {json.dumps(dataset_name)}), found shape "
                          f"{format_shape(logits.shape)}; end with a flatten and a dense layer")
    if logits.shape[-1] != dataset.classes:
        key = f"{last.path}.{last.width_key}" if last.width_key else last.path
        found = describe(logits.shape[-1]) if last.width_key else f"{logits.shape[-1]} outputs"
        raise table.error(key, f"expected {dataset.classes} (the classes of dataset {json.dumps(dataset_name)}, "
                          f"as the last layer gives one output per class), found {found}")


def physical_memory() -> int:
    """Bytes of memory in this machine (2**40 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


COPIES_PER_PARAMETER = 4  # the parameter, its gradient and up to two optimizer state arrays


def check_fits_in_memory(table: Table, entries: list, layers: list, dtype: str) -> None:
    """Raise naming the first layer whose parameters (with gradients and optimizer state) exceed memory."""
    itemsize = 4 if dtype == "float32" else 8
    budget = physical_memory() // (COPIES_PER_PARAMETER * itemsize)  # parameters that fit
    total = 0
    for entry, layer in zip(entries, layers):
        count = sum(math.prod(p.shape) for p in layer.params + layer.buffers)
        if total + count > budget:
            fits = (f"the layer's {count} {dtype} parameters, with their gradients and optimizer state, must fit in "
                    f"this machine's {physical_memory() / 2**30:.1f} GiB of memory")
            if entry.width_key is None:  # a layer sized by the one before it
                raise table.error(entry.path, f"expected a smaller input to this {entry.type} layer ({fits})")
            width = layer.out_channels if entry.type in IMAGE_WIDTH_KEYS else layer.units
            most = max((budget - total) // max(count // width, 1), 0)
            raise table.error(f"{entry.path}.{entry.width_key}", f"expected at most {most} ({fits}), "
                              f"found {describe(width)}")
        total += count


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
    dataset = DATASETS[training.dataset]()
    input_shape, dtype, entries = read_model(sections["model"], dataset, training.dataset)
    loss_name = sections["loss"].choice("name", LOSSES)
    sections["loss"].finish()

    if dataset.tokens:  # T token ids, labelled by the T ids that follow them
        x, labels = Input("x", ("batch", *input_shape), "int64"), Input("labels", ("batch", *input_shape), "int64")
    else:
        x, labels = Input("x", ("batch", *input_shape), dtype), Input("labels", ("batch",), "int64")
    logits, layers = build_layers(sections["model"], x, entries)
    check_fits_in_memory(sections["model"], entries, layers, dtype)
    check_output(sections["model"], logits, entries, dataset, training.dataset)
    params = [p for layer in layers for p in layer.params]
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
