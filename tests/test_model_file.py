"""The declarative model file: the example loads; every kind of mistake names file, key and expectation."""
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.model_file import ModelFileError, default_model_spec, load_model_file
from compiler.optim import Adam, SGD
from compiler.schedules import Cosine, LinearWarmup, StepDecay

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits_mlp.toml"

MINIMAL = """
[model]
input_features = 64
layers = [{ type = "dense", units = 32, activation = "tanh" }, { type = "dense", units = 10 }]

[loss]
name = "cross_entropy"

[optimizer]
name = "sgd"
lr = 0.1
momentum = 0.9

[training]
dataset = "digits"
epochs = 3
batch_size = 16
"""


def write(tmp_path, text, name="model.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    message = str(info.value)
    assert message.startswith(str(path) + ":"), message
    return message


def test_example_file_is_the_default_model():
    spec = load_model_file(EXAMPLE)
    default = default_model_spec()
    assert [(p.name, p.shape) for p in spec.params] == [("layer_0.weight", (64, 128)), ("layer_0.bias", (128,)),
                                                      ("layer_1.weight", (128, 10)), ("layer_1.bias", (10,))]
    assert spec.loss is default.loss and spec.logits is default.logits
    assert isinstance(spec.optimizer, Adam) and spec.optimizer.hyperparameters() == default.optimizer.hyperparameters()
    assert spec.training == default.training
    assert spec.training.dataset == "digits" and spec.training.seed == 0
    assert isinstance(spec.training.schedule, Cosine)
    assert spec.inputs["x"].shape == ("batch", 64) and spec.inputs["labels"].dtype == "int64"


def test_built_graph_computes_the_mlp(tmp_path):
    spec = load_model_file(write(tmp_path, MINIMAL))
    assert isinstance(spec.optimizer, SGD) and spec.optimizer.momentum == 0.9
    assert spec.training.schedule is None and spec.training.seed == 0
    rng = np.random.default_rng(0)
    values = {p.name: rng.normal(size=p.shape).astype(p.dtype) for p in spec.params}
    x = rng.random((5, 64), dtype=np.float32)
    labels = np.array([0, 3, 9, 1, 1])
    logits, loss = compiler.evaluate([spec.logits, spec.loss], {"x": x, "labels": labels, **values})
    hidden = np.tanh(x @ values["layer_0.weight"] + values["layer_0.bias"])
    expected = hidden @ values["layer_1.weight"] + values["layer_1.bias"]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    shifted = expected - expected.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss, -log_probs[np.arange(5), labels].mean(), rtol=1e-5)


def test_mse_loss_against_one_hot_labels(tmp_path):
    spec = load_model_file(write(tmp_path, MINIMAL.replace('"cross_entropy"', '"mse"')))
    values = {p.name: np.full(p.shape, 0.01, p.dtype) for p in spec.params}
    x, labels = np.ones((2, 64), np.float32), np.array([2, 7])
    logits, loss = compiler.evaluate([spec.logits, spec.loss], {"x": x, "labels": labels, **values})
    np.testing.assert_allclose(loss, np.mean((logits - np.eye(10)[labels]) ** 2), rtol=1e-6)


def test_schedule_with_warmup(tmp_path):
    text = MINIMAL + '\n[training.schedule]\nname = "step"\nstep_size = 2\ngamma = 0.5\nwarmup_steps = 3\n'
    schedule = load_model_file(write(tmp_path, text)).training.schedule
    assert isinstance(schedule, LinearWarmup) and schedule.after == StepDecay(0.1, 2, 0.5)


@pytest.mark.parametrize("replace, add, key, expectation", [
    # a missing key
    ("batch_size = 16\n", "", "training.batch_size", "missing; expected a positive integer"),
    ("[loss]\nname = \"cross_entropy\"\n", "", "loss", "missing; expected a table"),
    ("lr = 0.1\n", "", "optimizer.lr", "missing; expected a number"),
    # a wrong type
    ("epochs = 3", "epochs = \"three\"", "training.epochs", 'expected a positive integer, found "three" (a string)'),
    ("lr = 0.1", "lr = \"fast\"", "optimizer.lr", 'expected a number >= 0, found "fast" (a string)'),
    ("momentum = 0.9", "momentum = true", "optimizer.momentum", "expected a number >= 0, found true (a boolean)"),
    ("units = 32,", "units = 32.5,", "model.layers[0].units", "expected a positive integer, found 32.5 (a float)"),
    ("batch_size = 16", "batch_size = 0", "training.batch_size", "expected a positive integer, found 0"),
    ("lr = 0.1", "lr = -0.1", "optimizer.lr", "expected a number >= 0, found -0.1"),
    ("input_features = 64", "input_features = 65", "model.input_features", "expected 64"),
    ('{ type = "dense", units = 10 }', '{ type = "dense", units = 12 }', "model.layers[1].units", "expected 10"),
    # an unknown activation, layer type, optimizer or loss
    ('activation = "tanh"', 'activation = "tahn"', "model.layers[0].activation",
     'expected one of "relu", "tanh", "sigmoid", "gelu", "softplus", "leaky_relu", "silu", "elu", "selu", '
     '"mish", "hardswish", "relu6", "linear", '
     'found "tahn" (a string) (did you mean "tanh"?)'),
    ('type = "dense", units = 32', 'type = "conv", units = 32', "model.layers[0].type", 'expected one of "dense"'),
    ('name = "sgd"', 'name = "adamax"', "optimizer.name",
     'expected one of "sgd", "adagrad", "rmsprop", "adam", "adamw"'),
    ('name = "cross_entropy"', 'name = "hinge"', "loss.name", 'expected one of "cross_entropy", "mse"'),
    # an unknown optimizer argument, and other unknown keys
    ("momentum = 0.9", "momentum = 0.9\nbetas = [0.9, 0.99]", "optimizer.betas",
     "unknown key; expected one of clip_grad_norm, dampening, lr, momentum, name, nesterov, weight_decay"),
    ("momentum = 0.9", "momentun = 0.9", "optimizer.momentun", 'unknown key (did you mean "momentum"?)'),
    ("epochs = 3", "epochs = 3\nepoch = 4", "training.epoch", 'unknown key (did you mean "epochs"?)'),
    ("units = 32,", "units = 32, dropout = 0.5,", "model.layers[0].dropout",
     "unknown key; expected one of activation, type, units"),
    ("[loss]", "[losses]\nname = 1\n[loss]", "losses", 'unknown key (did you mean "loss"?)'),
    # values out of range that only the optimizer or schedule knows about
    ("momentum = 0.9", "nesterov = true", "optimizer.nesterov", "expected false unless momentum > 0"),
    ("", '\n[training.schedule]\nname = "cosine"\nT_max = 0\n', "training.schedule.T_max",
     "expected a positive integer, found 0"),
    ("", '\n[training.schedule]\nname = "cosine"\n', "training.schedule.T_max", "missing"),
    ("", '\n[training.schedule]\nname = "constant"\nwarmup_start_factor = 0.5\n',
     "training.schedule.warmup_start_factor", "expected warmup_steps too"),
    ("", '\n[training.schedule]\nname = "constant"\nwarmup_steps = 2\nwarmup_start_factor = 0\n',
     "training.schedule.warmup_start_factor", "expected a number > 0 and <= 1, found 0 (an integer)"),
    ("", '\n[training.schedule]\nname = "linear"\n', "training.schedule.name",
     'expected one of "constant", "step", "exponential", "cosine"'),
])
def test_errors_name_file_key_and_expectation(tmp_path, replace, add, key, expectation):
    text = MINIMAL.replace(replace, add, 1) if replace else MINIMAL + add
    assert text != MINIMAL
    message = error_of(tmp_path, text)
    assert f": {key}: " in message, message
    assert expectation in message, message


def test_adam_betas_element_is_named(tmp_path):
    text = MINIMAL.replace('name = "sgd"', 'name = "adam"').replace("momentum = 0.9", "betas = [0.9, 1.5]")
    message = error_of(tmp_path, text)
    assert ": optimizer.betas[1]: expected a number >= 0 and < 1, found 1.5 (a float)" in message


def test_invalid_toml_names_the_line(tmp_path):
    message = error_of(tmp_path, MINIMAL.replace("lr = 0.1", "lr 0.1"))
    assert "invalid TOML" in message and "line 11" in message
    assert "11 | lr 0.1" in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="nowhere.toml: no such file"):
        load_model_file(tmp_path / "nowhere.toml")


def test_model_file_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)
