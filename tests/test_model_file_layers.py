"""Model files with convolutional layers: input_shape, conv2d, pooling, batch_norm, dropout, flatten.

The example CNN file is the Python example's model and trains to 98 %; every kind of mistake in a
layer entry names the file, the layer's key and what was expected.
"""
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.cli import main as cli_main
from compiler.model_file import LAYER_TYPES, ModelFileError, load_model_file
from compiler.train_job import train
from runtime import datasets

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL_CNN = """
[model]
input_shape = [1, 8, 8]
layers = [
    { type = "conv2d", filters = 4, kernel_size = 3, padding = 1, activation = "relu" },
    { type = "batch_norm" },
    { type = "max_pool2d", kernel_size = 2 },
    { type = "conv2d", filters = 6, kernel_size = [3, 1], stride = [1, 2], padding = "valid" },
    { type = "avg_pool2d", kernel_size = 2, stride = 1, padding = [1, 0], count_include_pad = false },
    { type = "flatten" },
    { type = "batch_norm", momentum = 0.2, eps = 0.001 },
    { type = "dropout", p = 0.1 },
    { type = "dense", units = 10 },
]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[training]
dataset = "digits"
epochs = 2
batch_size = 32
"""


def write(tmp_path, text, name="cnn.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def names(nodes) -> list:
    return [node.name for node in nodes]


def with_layers(text: str, layers: str) -> str:
    """The model file `text` with its layers array replaced by `layers` (a whole ``layers = [...]``)."""
    return text[:text.index("layers = [")] + layers + text[text.index("]\n\n[loss]") + 1:]


def error_of(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    message = str(info.value)
    assert message.startswith(str(path) + ":"), message
    return message


def test_every_layer_type_builds_with_its_keys(tmp_path):
    spec = load_model_file(write(tmp_path, SMALL_CNN))
    assert spec.inputs["x"].shape == ("batch", 1, 8, 8)
    assert [(p.name, p.shape) for p in spec.params] == [
        ("layer_0.weight", (4, 1, 3, 3)), ("layer_0.bias", (4,)),
        ("layer_1.weight", (4,)), ("layer_1.bias", (4,)),
        ("layer_3.weight", (6, 4, 3, 1)), ("layer_3.bias", (6,)),
        ("layer_6.weight", (18,)), ("layer_6.bias", (18,)),   # 6 channels x 3 x 1 after the pool, flattened
        ("layer_8.weight", (18, 10)), ("layer_8.bias", (10,))]
    assert spec.logits.shape == ("batch", 10)
    buffers = sorted(leaf.name for leaf in compiler.leaves(spec.loss) if compiler.graph.is_buffer(leaf))
    assert buffers == ["layer_1.running_mean", "layer_1.running_var", "layer_6.running_mean", "layer_6.running_var"]


IMAGE_LAYERS = """layers = [
    { type = "conv2d", filters = 8, kernel_size = 3, padding = 1, activation = "relu" },
    { type = "group_norm", num_groups = 4 },
    { type = "instance_norm", affine = true, track_running_stats = true },
    { type = "max_pool2d", kernel_size = 3, stride = 2, ceil_mode = true },
    { type = "upsample", scale_factor = 2, mode = "bilinear" },
    { type = "conv_transpose2d", filters = 4, kernel_size = 2, stride = 2, output_padding = 0 },
    { type = "pixel_shuffle", upscale_factor = 2 },
    { type = "avg_pool2d", kernel_size = 2, divisor_override = 3 },
    { type = "adaptive_avg_pool2d", output_size = [2, 1] },
    { type = "flatten" },
    { type = "dense", units = 10 },
]"""


def test_image_layer_types_equal_their_nn_layers(tmp_path):
    """Normalisation, ceil_mode pooling, upsampling, transposed convolution and adaptive pooling from a
    model file: torch's names and shapes, and the same logits as the nn layers built in Python."""
    text = with_layers(SMALL_CNN, IMAGE_LAYERS)
    spec = load_model_file(write(tmp_path, text))
    assert [(p.name, p.shape) for p in spec.params] == [
        ("layer_0.weight", (8, 1, 3, 3)), ("layer_0.bias", (8,)), ("layer_1.weight", (8,)), ("layer_1.bias", (8,)),
        ("layer_2.weight", (8,)), ("layer_2.bias", (8,)), ("layer_5.weight", (8, 4, 2, 2)), ("layer_5.bias", (4,)),
        ("layer_10.weight", (2, 10)), ("layer_10.bias", (10,))]
    buffers = sorted(leaf.name for leaf in compiler.leaves(spec.loss) if compiler.graph.is_buffer(leaf))
    assert buffers == ["layer_2.running_mean", "layer_2.running_var"]
    nn = compiler.nn
    x = compiler.Input("x", ("batch", 1, 8, 8))
    with nn.names():
        logits = nn.Sequential(
            nn.Conv2d(8, 3, padding=1, activation="relu"), nn.GroupNorm(4),
            nn.InstanceNorm2d(affine=True, track_running_stats=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Upsample(scale_factor=2, mode="bilinear"), nn.ConvTranspose2d(4, 2, stride=2), nn.PixelShuffle(2),
            nn.AvgPool2d(2, divisor_override=3), nn.AdaptiveAvgPool2d((2, 1)), nn.Flatten(), nn.Dense(10))(x)
    file_leaves = [leaf for leaf in compiler.leaves(spec.logits) if leaf.op in ("param", "buffer")]
    python_leaves = [leaf for leaf in compiler.leaves(logits) if leaf.op in ("param", "buffer")]
    assert [p.shape for p in file_leaves] == [p.shape for p in python_leaves]
    rng = np.random.default_rng(0)
    values = [np.abs(rng.normal(size=p.shape)).astype(np.float32) + 0.5 for p in file_leaves]
    images = datasets.load_digits("test")[0][:4].reshape(-1, 1, 8, 8)
    for mode in (lambda node: node, compiler.inference):
        from_file = compiler.evaluate(mode(spec.logits), {"x": images, **dict(zip(names(file_leaves), values))})
        from_python = compiler.evaluate(mode(logits), {"x": images, **dict(zip(names(python_leaves), values))})
        assert from_file.shape == (4, 10) and np.all(np.isfinite(from_file))
        np.testing.assert_allclose(from_file, from_python, rtol=1e-5, atol=1e-5)


def test_signal_layer_types_take_integer_sizes(tmp_path):
    layers = """layers = [
    { type = "conv1d", filters = 6, kernel_size = 3, padding = 1, activation = "relu" },
    { type = "max_pool1d", kernel_size = 3, stride = 2, ceil_mode = true },
    { type = "conv_transpose1d", filters = 4, kernel_size = 2, stride = 2, output_padding = 1 },
    { type = "instance_norm" },
    { type = "avg_pool1d", kernel_size = 2, ceil_mode = true, count_include_pad = false },
    { type = "adaptive_avg_pool1d", output_size = 3 },
    { type = "flatten" },
    { type = "dense", units = 10 },
]"""
    text = with_layers(SMALL_CNN.replace("input_shape = [1, 8, 8]", "input_shape = [8, 8]"), layers)
    spec = load_model_file(write(tmp_path, text))
    assert [(p.name, p.shape) for p in spec.params] == [
        ("layer_0.weight", (6, 8, 3)), ("layer_0.bias", (6,)), ("layer_2.weight", (6, 4, 2)), ("layer_2.bias", (4,)),
        ("layer_7.weight", (12, 10)), ("layer_7.bias", (10,))]
    bad = text.replace('type = "max_pool1d", kernel_size = 3', 'type = "max_pool1d", kernel_size = [3, 3]')
    assert ("model.layers[1].kernel_size: expected a positive integer, found an array of 2 items"
            in error_of(tmp_path, bad))


def test_conv1d_reads_rows_of_pixels_as_a_sequence(tmp_path):
    layers = """layers = [
    { type = "conv1d", filters = 5, kernel_size = 3, stride = 2, padding = "valid", activation = "tanh" },
    { type = "batch_norm" },
    { type = "flatten" },
    { type = "dense", units = 10 },
]"""
    text = with_layers(SMALL_CNN.replace("input_shape = [1, 8, 8]", "input_shape = [8, 8]"), layers)
    spec = load_model_file(write(tmp_path, text))
    assert spec.inputs["x"].shape == ("batch", 8, 8)
    assert [(p.name, p.shape) for p in spec.params] == [
        ("layer_0.weight", (5, 8, 3)), ("layer_0.bias", (5,)), ("layer_1.weight", (5,)), ("layer_1.bias", (5,)),
        ("layer_3.weight", (15, 10)), ("layer_3.bias", (10,))]
    bad = text.replace("kernel_size = 3, stride = 2", "kernel_size = [3, 3], stride = 2")
    assert ("model.layers[0].kernel_size: expected a positive integer, found an array of 2 items"
            in error_of(tmp_path, bad))


def test_the_example_file_and_the_python_example_are_one_model():
    spec = load_model_file(EXAMPLES / "digits_cnn.toml")
    module_spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLES / "digits_cnn.py")
    example = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(example)
    _, logits, model = example.build()
    file_leaves = [leaf for leaf in compiler.leaves(spec.logits) if leaf.op == "param"]
    python_leaves = [leaf for leaf in compiler.leaves(logits) if leaf.op == "param"]
    assert [(p.shape, p.attrs[1:]) for p in file_leaves] == [(p.shape, p.attrs[1:]) for p in python_leaves]
    rng = np.random.default_rng(0)
    values = [rng.normal(size=p.shape).astype(np.float32) for p in file_leaves]
    values = [np.abs(v) + 0.5 if p.name.endswith("running_var") else v for p, v in zip(file_leaves, values)]
    images = datasets.load_digits("test")[0][:16].reshape(-1, 1, 8, 8)
    for mode in (lambda node: node, compiler.inference):
        from_file = compiler.evaluate(mode(spec.logits), {"x": images, **dict(zip(names(file_leaves), values))})
        from_python = compiler.evaluate(mode(logits), {"x": images, **dict(zip(names(python_leaves), values))})
        assert np.all(np.isfinite(from_file))
        np.testing.assert_allclose(from_file, from_python, rtol=1e-5, atol=1e-5)


def test_the_example_cnn_reaches_98_percent_evaluated_in_inference_mode():
    out = io.StringIO()
    result = train(load_model_file(EXAMPLES / "digits_cnn.toml"), progress=False, out=out)
    assert result["test_accuracy"] >= 0.98, out.getvalue()
    assert result["seconds"] < 60
    # evaluating draws no dropout mask and moves no running statistic: the last epoch's
    # validation and the final one, on the same parameters, agree exactly
    assert result["history"]["test_accuracy"][-1] == result["test_accuracy"]


def test_a_short_run_of_a_small_cnn_learns(tmp_path):
    result = train(load_model_file(write(tmp_path, SMALL_CNN)), progress=False, out=io.StringIO())
    assert result["test_accuracy"] > 0.8  # chance is 10 %


def test_the_mlp_file_still_takes_flat_inputs():
    spec = load_model_file(EXAMPLES / "digits_mlp.toml")
    assert spec.inputs["x"].shape == ("batch", 64)


CONV = '{ type = "conv2d", filters = 4, kernel_size = 3, padding = 1, activation = "relu" }'


@pytest.mark.parametrize("replace, add, key, expectation", [
    # input shape
    ("input_shape = [1, 8, 8]", "input_shape = [1, 8, 9]", "model.input_shape",
     "expected dimensions whose product is 64 (the features of dataset \"digits\"), such as [1, 8, 8], "
     "found [1, 8, 9] (product 72)"),
    ("input_shape = [1, 8, 8]", "input_shape = [1, 8, 8]\ninput_features = 64", "model.input_shape",
     "set together with input_features; expected one of the two"),
    ("input_shape = [1, 8, 8]", 'input_shape = "8x8"', "model.input_shape",
     'expected an array of 1 to 3 positive integers whose product is 64'),
    ("input_shape = [1, 8, 8]", "", "model.input_features", "missing; expected a positive integer (64 for dataset "
     '"digits"), or input_shape = [1, 8, 8]'),
    # keys of each layer type
    ("filters = 4, kernel_size = 3, padding = 1,", "kernel_size = 3,", "model.layers[0].filters",
     "missing; expected a positive integer"),
    ("kernel_size = 3, padding = 1,", "kernel_size = 0, padding = 1,", "model.layers[0].kernel_size",
     "expected a positive integer or an array of 2 positive integers, found 0 (an integer)"),
    ("padding = 1,", 'padding = "full",', "model.layers[0].padding",
     'expected a non-negative integer or an array of 2, "same" or "valid", found "full" (a string)'),
    ('activation = "relu" }', 'activation = "relu", units = 4 }', "model.layers[0].units",
     "unknown key; expected one of activation, dilation, filters, groups, kernel_size, padding, stride, type"),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "max_pool2d", kernel_size = 2, count_include_pad = true }',
     "model.layers[2].count_include_pad",
     "unknown key; expected one of ceil_mode, dilation, kernel_size, padding, stride, type"),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "max_pool2d", kernel_size = 2, ceil_mode = 1 }',
     "model.layers[2].ceil_mode", "expected true or false, found 1 (an integer)"),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "upsample", scale_factor = 2, size = 16 }',
     "model.layers[2].scale_factor", "expected exactly one of scale_factor and size, found both"),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "upsample", mode = "bicubic", size = 16 }',
     "model.layers[2].mode", 'expected one of "nearest", "nearest-exact", "linear", "bilinear", found "bicubic"'),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "group_norm", num_groups = 3 }', "model.layers[2]",
     "cannot build this group_norm layer for its input of shape (batch, 4, 8, 8)"),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "pixel_shuffle", upscale_factor = 3 }', "model.layers[2]",
     "cannot build this pixel_shuffle layer for its input of shape (batch, 4, 8, 8)"),
    ("p = 0.1", "p = 1.5", "model.layers[7].p", "expected a probability in [0, 1], found 1.5 (a float)"),
    ("momentum = 0.2", "momentum = -1", "model.layers[6].momentum", "expected a number in [0, 1], found -1"),
    ("count_include_pad = false", "count_include_pad = 0", "model.layers[4].count_include_pad",
     "expected true or false, found 0 (an integer)"),
    ('{ type = "flatten" }', '{ type = "flatten", start_dim = 2 }', "model.layers[5].start_dim", "unknown key"),
    ('type = "conv2d", filters = 4', 'type = "convolution", filters = 4', "model.layers[0].type",
     f'expected one of {", ".join(json.dumps(t) for t in LAYER_TYPES)}, found "convolution" (a string)'),
    # shapes that do not fit
    ("input_shape = [1, 8, 8]", "input_features = 64", "model.layers[0]",
     "a conv2d layer expects an input of shape (batch, channels, height, width), found shape (batch, 64) from the "
     "layer before; set model.input_shape"),
    ('{ type = "flatten" },', '{ type = "flatten" },\n    { type = "max_pool2d", kernel_size = 2 },', "model.layers[6]",
     "a max_pool2d layer expects an input of shape (batch, channels, height, width), found shape (batch, 18)"),
    ('{ type = "flatten" },', "", "model.layers[7]",
     'a dense layer expects an input of shape (batch, features) or (batch, positions, features), found shape '
     '(batch, 6, 3, 1) from the layer '
     'before; add { type = "flatten" } before it'),
    ('{ type = "max_pool2d", kernel_size = 2 }', '{ type = "max_pool2d", kernel_size = 9 }', "model.layers[2]",
     "cannot build this max_pool2d layer for its input of shape (batch, 4, 8, 8): max_pool2d: the kernel"),
    ("filters = 4, kernel_size = 3, padding = 1,", "filters = 4, kernel_size = 3, padding = 1, groups = 3,",
     "model.layers[0]", "cannot build this conv2d layer for its input of shape (batch, 1, 8, 8): Conv2d 'layer_0': "
     "groups: expected a divisor of out_channels 4, got 3"),
    ("filters = 6,", "filters = 1000000000000,", "model.layers[3].filters",
     "expected at most"),  # parameters, gradients and optimizer state must fit in memory
    ('{ type = "dense", units = 10 }', '{ type = "dense", units = 12 }', "model.layers[8].units",
     'expected 10 (the classes of dataset "digits", as the last layer gives one output per class), found 12'),
    ('{ type = "flatten" },\n    { type = "batch_norm", momentum = 0.2, eps = 0.001 },'
     '\n    { type = "dropout", p = 0.1 },\n    { type = "dense", units = 10 },', "", "model.layers[4]",
     "expected the last layer to give outputs of shape (batch, 10) (one per class of dataset \"digits\"), found "
     "shape (batch, 6, 3, 1); end with a flatten and a dense layer"),
])
def test_layer_errors_name_file_key_and_expectation(tmp_path, replace, add, key, expectation):
    text = SMALL_CNN.replace(replace, add, 1)
    assert text != SMALL_CNN
    message = error_of(tmp_path, text)
    assert f": {key}: " in message, message
    assert expectation in message, message
    assert "declared at" not in message


def test_the_cli_reports_a_bad_layer_in_one_line(tmp_path, capsys):
    path = write(tmp_path, SMALL_CNN.replace("kernel_size = 3, padding = 1,", "kernel_size = [3], padding = 1,"))
    assert cli_main(["train", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"symprop train: {path}: model.layers[0].kernel_size: expected a positive integer or "
                            "an array of 2 positive integers, found an array of 1 item")
    assert len(error.strip().splitlines()) == 1
