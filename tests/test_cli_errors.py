"""The CLI never shows a traceback, and refuses bad arguments before compiling.

A model file that is a directory, a layer too large for memory, bad epochs,
an output in a missing directory: `symprop train` exits with status 2 and a
message naming the argument; `train` raises TrainArgumentError before compiling.
Part of the reliability probes (issue 9): one test per probe, each able to fail.
"""
from __future__ import annotations

import pytest

from compiler import cli


# ---- the CLI never shows a traceback --------------------------------------------------------------

MODEL_FILE = """
[model]
input_features = 64
layers = [{{ type = "dense", units = {units}, activation = "relu" }}, {{ type = "dense", units = 10 }}]
[loss]
name = "cross_entropy"
[optimizer]
name = "adam"
lr = 0.01
[training]
dataset = "digits"
epochs = 1
batch_size = 32
"""


def cli_error(capsys, *argv) -> str:
    try:
        code = cli.main(["train", *map(str, argv), "--quiet"])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    captured = capsys.readouterr()
    assert code == 2 and "Traceback" not in captured.err
    assert "compiled forward" not in captured.out  # refused before compiling
    return captured.err


def test_cli_model_file_that_is_a_directory(tmp_path, capsys):
    assert f"{tmp_path}: is a directory; expected a TOML model file" in cli_error(capsys, tmp_path)


def test_cli_layer_too_large_for_memory(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(MODEL_FILE.format(units=10**13))
    assert "model.layers[0].units: expected at most" in cli_error(capsys, path)
    path.write_text(MODEL_FILE.format(units="1e13"))
    assert "model.layers[0].units: expected a positive integer" in cli_error(capsys, path)


@pytest.mark.parametrize("value", ["-3", "0", "two"])
def test_cli_negative_epochs(capsys, value):
    assert "argument --epochs: expected a positive integer" in cli_error(capsys, "--epochs", value)


@pytest.mark.parametrize("flag", ["--save", "--plot"])
def test_cli_output_in_a_missing_directory_is_refused_before_training(tmp_path, capsys, flag):
    err = cli_error(capsys, flag, tmp_path / "missing_dir" / "x.npz")
    assert f"{flag} {tmp_path / 'missing_dir' / 'x.npz'}: the directory" in err and "does not exist" in err
    assert f"{flag} {tmp_path}: is a directory" in cli_error(capsys, flag, tmp_path)


def test_train_checks_its_arguments_before_compiling(tmp_path):
    from compiler.model_file import default_model_spec
    from compiler.train_job import TrainArgumentError, train
    spec = default_model_spec()
    with pytest.raises(TrainArgumentError, match="--epochs: expected a positive integer, got -3"):
        train(spec, epochs=-3, progress=False)
    with pytest.raises(TrainArgumentError, match="does not exist"):
        train(spec, epochs=1, progress=False, save=tmp_path / "missing_dir" / "x.npz")
