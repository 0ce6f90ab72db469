"""The examples run and reach what they claim (short runs)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_autoencoder_learns_to_reconstruct():
    result = load("digits_autoencoder").main(epochs=5)
    assert result["after"] < 0.5 * result["before"]
    assert result["accuracy"] > 0.5  # codes keep class information (chance is 10%)


def test_convolutional_autoencoder_learns_to_reconstruct():
    result = load("digits_conv_autoencoder").main(epochs=5, progress=False)
    assert result["after"] < 0.25 * result["before"]
    assert result["accuracy"] > 0.6  # codes keep class information (chance is 10%)


def test_cnn_example_learns_the_digits():
    result = load("digits_cnn").main(epochs=3, progress=False)
    assert result["accuracy"] > 0.9  # chance is 10 %
    assert result["params"][:2] == ["conv2d.weight", "conv2d.bias"]
    assert set(result["buffers"]) == {"batch_norm.running_mean", "batch_norm.running_var",
                                      "batch_norm_1.running_mean", "batch_norm_1.running_var"}


def test_gan_steps_share_parameters_and_move_the_samples_to_the_data():
    result = load("gan_1d").main(rounds=1500)
    assert abs(result["mean"] - 3.0) < 0.6  # noise starts near 0
    assert 0.05 < result["std"] < 1.5


def test_lstm_reads_the_digits_row_by_row():
    result = load("digits_lstm").main(epochs=12, progress=False)
    assert result["accuracy"] >= 0.95
    assert result["params"][:4] == ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"]


def test_gru_solves_the_adding_problem_at_100_steps():
    result = load("adding_problem").main(epochs=6, progress=False)
    assert result["mse"] < 0.01 < result["baseline"]  # predicting the mean sum scores 1/6


def test_char_transformer_reaches_six_tenths_of_the_unigram_entropy():
    result = load("char_transformer").main(steps=400, eval_every=200, sample_length=40, progress=False)
    assert result["val_loss"] <= 0.6 * result["unigram_entropy"], result["val_loss"]  # 1.78 < 1.95
    assert result["sample"].startswith("The with statement ") and len(result["sample"]) == 19 + 40
    assert result["params"][:2] == ["token_embedding.weight", "position_embedding.weight"]
