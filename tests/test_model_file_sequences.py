"""Model files for sequence models: token-id inputs of the python_docs corpus, embedding, position_embedding,
transformer_block, multi_head_attention, layer_norm and rms_norm; every mistake names the file and the key."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from compiler.model_file import ModelFileError, load_model_file
from compiler.train_job import train
from runtime.datasets import load_python_docs

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "char_transformer.toml"
VOCABULARY = load_python_docs().vocab_size

SMALL = f"""
[model]
input_tokens = 16
layers = [
    {{ type = "embedding", dim = 16 }},
    {{ type = "position_embedding" }},
    {{ type = "transformer_block", num_heads = 2, mlp_ratio = 2 }},
    {{ type = "multi_head_attention", num_heads = 4, causal = true }},
    {{ type = "rms_norm" }},
    {{ type = "layer_norm", eps = 1e-6 }},
    {{ type = "dense", units = {VOCABULARY} }},
]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.003

[training]
dataset = "python_docs"
epochs = 1
batch_size = 32
"""

DIGIT_ROWS = """
[model]
input_shape = [8, 8]          # 8 positions (rows) of 8 features (pixels)
layers = [
    { type = "dense", units = 16 },
    { type = "transformer_block", num_heads = 2, causal = false },
    { type = "layer_norm" },
    { type = "flatten" },
    { type = "dense", units = 10 },
]

[loss]
name = "cross_entropy"

[optimizer]
name = "adam"
lr = 0.01

[training]
dataset = "digits"
epochs = 3
batch_size = 32
"""


def write(tmp_path, text):
    path = tmp_path / "model.toml"
    path.write_text(text)
    return path


def test_the_example_builds_a_char_transformer():
    spec = load_model_file(EXAMPLE)
    assert spec.inputs["x"].shape == spec.inputs["labels"].shape == ("batch", 64)
    assert spec.inputs["x"].dtype == spec.inputs["labels"].dtype == "int64"
    assert spec.logits.shape == ("batch", 64, VOCABULARY)
    shapes = {p.name: p.shape for p in spec.params}
    assert shapes["layer_0.weight"] == (VOCABULARY, 64) and shapes["layer_1.weight"] == (64, 64)
    assert shapes["layer_2.self_attn.in_proj_weight"] == (192, 64)
    assert shapes["layer_3.linear1.weight"] == (256, 64) and shapes["layer_3.norm2.bias"] == (64,)
    assert shapes["layer_5.weight"] == (64, VOCABULARY)
    assert sum(len(p.shape) and 1 for p in spec.params) == len(spec.params) == 2 + 2 * 12 + 2 + 2


def test_every_sequence_layer_type_builds_with_its_keys(tmp_path):
    spec = load_model_file(write(tmp_path, SMALL))
    shapes = {p.name: p.shape for p in spec.params}
    assert shapes["layer_2.linear1.weight"] == (32, 16)
    assert shapes["layer_3.in_proj_weight"] == (48, 16) and shapes["layer_3.out_proj.bias"] == (16,)
    assert shapes["layer_4.weight"] == (16,) and "layer_4.bias" not in shapes
    assert spec.logits.shape == ("batch", 16, VOCABULARY)


def test_the_text_job_learns_and_reports_the_validation_loss(tmp_path):
    out = io.StringIO()
    result = train(load_model_file(write(tmp_path, SMALL)), progress=False, out=out)  # 818 steps of 32 x 16 ids
    assert result["val_loss"] < 0.75 * result["unigram_entropy"], result["val_loss"]  # about 0.69x
    assert "validation loss" in out.getvalue() and "unigram entropy" in out.getvalue()


def test_a_transformer_reads_the_digits_as_rows(tmp_path):
    result = train(load_model_file(write(tmp_path, DIGIT_ROWS)), progress=False, out=io.StringIO())
    assert result["test_accuracy"] > 0.8  # chance is 10 %


@pytest.mark.parametrize("replace, add, key, expectation", [
    ("input_tokens = 16", "input_features = 16", "model.input_features",
     'set for dataset "python_docs"; expected input_tokens = T'),
    ("input_tokens = 16", "input_tokens = 10000000", "model.input_tokens", "expected a positive integer"),
    ("num_heads = 2, mlp_ratio", "heads = 2, mlp_ratio", "model.layers[2].num_heads", "missing"),
    ("num_heads = 4, causal = true", "num_heads = 4, causal = 1", "model.layers[3].causal", "expected true or false"),
    ("dim = 16", "dim = 16, padding_idx = 0", "model.layers[0].padding_idx", "unknown key"),
    ("num_heads = 4,", "num_heads = 3,", "model.layers[3]",
     "cannot build this multi_head_attention layer for its input of shape (batch, 16, 16)"),
    ('{ type = "position_embedding" },', '{ type = "position_embedding" },\n    { type = "flatten" },',
     "model.layers[3]", "a transformer_block layer expects an input of shape (batch, positions, features)"),
    (f"units = {VOCABULARY}", "units = 100", "model.layers[6].units",
     f'expected {VOCABULARY} (the classes of dataset "python_docs"'),
    ('{ type = "embedding", dim = 16 },', "", "model.layers[0]",
     "a position_embedding layer expects an input of shape (batch, positions, features), found shape (batch, 16)"),
    ('"python_docs"', '"digits"', "model.input_tokens", 'set for dataset "digits"; expected input_features or'),
])
def test_errors_name_file_key_and_expectation(tmp_path, replace, add, key, expectation):
    text = SMALL.replace(replace, add, 1)
    assert text != SMALL
    path = write(tmp_path, text)
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert expectation in message, message
