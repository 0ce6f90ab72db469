"""Model files with recurrent layers: rnn, lstm and gru over input_shape = [T, features].

The example LSTM file reads the digits as 8 rows of 8 pixels and trains past 95 %; stacked layers
pass sequences with return_sequences; Params are named as torch's state dict under the layer's
name; mistakes name the file, the layer's key and what was expected.
"""
import io
from pathlib import Path

import numpy as np
import pytest

from compiler import compile_step
from compiler.model_file import ModelFileError, load_model_file
from compiler.train_job import train
from runtime import datasets

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

STACKED = """
[model]
input_shape = [8, 8]
dtype = "float64"
layers = [
    { type = "gru", units = 5, num_layers = 2, return_sequences = true },
    { type = "rnn", units = 4, nonlinearity = "relu", bias = false, return_sequences = true },
    { type = "lstm", units = 3, bidirectional = true, num_layers = 2, dropout = 0.25 },
    { type = "dense", units = 10 },
]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[training]
dataset = "digits"
epochs = 1
batch_size = 64
"""


def write(tmp_path, text):
    path = tmp_path / "recurrent.toml"
    path.write_text(text)
    return path


def error_of(tmp_path, text) -> str:
    with pytest.raises(ModelFileError) as info:
        load_model_file(write(tmp_path, text))
    return str(info.value)


def test_lstm_example_file_reads_rows_and_learns_the_digits():
    spec = load_model_file(EXAMPLES / "digits_lstm.toml")
    assert spec.inputs["x"].shape == ("batch", 8, 8)
    assert [(p.name, p.shape) for p in spec.params] == [
        ("layer_0.weight_ih_l0", (256, 8)), ("layer_0.weight_hh_l0", (256, 64)), ("layer_0.bias_ih_l0", (256,)),
        ("layer_0.bias_hh_l0", (256,)), ("layer_1.weight", (64, 10)), ("layer_1.bias", (10,))]
    out = io.StringIO()
    result = train(spec, epochs=12, progress=False, out=out)
    assert result["test_accuracy"] >= 0.95, out.getvalue()


def test_stacked_layers_pass_sequences_and_are_named_as_torch(tmp_path):
    spec = load_model_file(write(tmp_path, STACKED))
    assert spec.logits.shape == ("batch", 10)
    assert [p.name for p in spec.params] == [
        "layer_0.weight_ih_l0", "layer_0.weight_hh_l0", "layer_0.bias_ih_l0", "layer_0.bias_hh_l0",
        "layer_0.weight_ih_l1", "layer_0.weight_hh_l1", "layer_0.bias_ih_l1", "layer_0.bias_hh_l1",
        "layer_1.weight_ih_l0", "layer_1.weight_hh_l0",
        *[f"layer_2.{kind}_l{k}{suffix}" for k in (0, 1) for suffix in ("", "_reverse")
          for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
        "layer_3.weight", "layer_3.bias"]
    shapes = {p.name: p.shape for p in spec.params}
    assert shapes["layer_0.weight_ih_l0"] == (15, 8) and shapes["layer_0.weight_ih_l1"] == (15, 5)
    assert shapes["layer_1.weight_ih_l0"] == (4, 5) and shapes["layer_2.weight_hh_l0_reverse"] == (12, 3)
    assert shapes["layer_2.weight_ih_l1"] == (12, 6) and shapes["layer_3.weight"] == (6, 10)
    step = compile_step(spec.loss, spec.optimizer, seed=0)
    x, labels = datasets.load_digits("train", dtype="float64")
    losses = [float(step(x=x[:16].reshape(16, 8, 8), labels=labels[:16])) for _ in range(3)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize("layer,message", [
    ('{ type = "lstm" }', "model.layers[0].units: missing; expected a positive integer"),
    ('{ type = "gru", units = 0 }', "model.layers[0].units: expected a positive integer"),
    ('{ type = "lstm", units = 4, num_layers = 1.5 }', "model.layers[0].num_layers: expected a positive integer"),
    ('{ type = "rnn", units = 4, nonlinearity = "sigmoid" }',
     'model.layers[0].nonlinearity: expected one of "tanh", "relu"'),
    ('{ type = "gru", units = 4, nonlinearity = "relu" }', "model.layers[0].nonlinearity: unknown key"),
    ('{ type = "lstm", units = 4, return_sequences = "yes" }', "model.layers[0].return_sequences: expected true"),
    ('{ type = "lstm", units = 4, batch_first = true }', "model.layers[0].batch_first: unknown key"),
    ('{ type = "gru", units = 4, dropout = 1 }', "model.layers[0].dropout: expected a probability in [0, 1)"),
    ('{ type = "rnn", units = 4, bidirectional = 1 }', "model.layers[0].bidirectional: expected true or false"),
])
def test_mistakes_in_a_recurrent_layer_name_the_key(tmp_path, layer, message):
    text = STACKED.replace('{ type = "gru", units = 5, num_layers = 2, return_sequences = true },', layer + ",")
    assert message in error_of(tmp_path, text)


def test_a_recurrent_layer_needs_a_sequence_input(tmp_path):
    text = STACKED.replace("input_shape = [8, 8]", "input_features = 64")
    message = error_of(tmp_path, text)
    assert "model.layers[0]: a gru layer expects an input of shape (batch, steps, features)" in message
    assert "input_shape = [T, features]" in message
    text = STACKED.replace('bias = false, return_sequences = true }', 'bias = false }')
    assert "model.layers[2]: a lstm layer expects an input of shape (batch, steps, features)" in error_of(tmp_path, text)
