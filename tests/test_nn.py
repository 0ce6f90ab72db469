"""compiler.nn: layers name their Params, infer input sizes, share weights on reuse, start as PyTorch's."""
from __future__ import annotations

import math

import numpy as np
import pytest

import compiler as sp
from compiler import nn
from compiler.errors import GraphError
from compiler.initializers import initial_values


def image(name="x", channels=3, size=8, dtype="float32"):
    return sp.Input(name, ("batch", channels, size, size), dtype)


def names_of(nodes):
    return [n.name for n in nodes]


# ---- naming ------------------------------------------------------------------------------------

def test_default_names_count_per_kind_within_a_scope():
    with nn.names():
        first, second, conv = nn.Dense(4), nn.Dense(4), nn.Conv2d(2, 3)
        named = nn.Dense(4, name="head")
    assert [first.name, second.name, conv.name, named.name] == ["dense", "dense_1", "conv2d", "head"]
    x = sp.Input("x", ("batch", 5))
    second(x)
    named(x)
    assert names_of(second.params) == ["dense_1.weight", "dense_1.bias"]
    assert names_of(named.params) == ["head.weight", "head.bias"]


def test_a_default_name_skips_a_name_given_explicitly():
    with nn.names():
        given = nn.Dense(3, name="dense")
        unnamed = nn.Dense(3)
    assert (given.name, unnamed.name) == ("dense", "dense_1")


def test_a_prefix_scope_prefixes_every_name():
    with nn.names("encoder"):
        inner = nn.Dense(3)
        with nn.names("block"):
            deeper = nn.Conv2d(2, 1, name="proj")
    assert (inner.name, deeper.name) == ("encoder.dense", "encoder.block.proj")


def test_outside_a_scope_names_never_repeat():
    a, b = nn.Dense(2), nn.Dense(2)
    assert a.name != b.name and a.name.startswith("dense") and b.name.startswith("dense")


def test_a_name_given_twice_in_one_scope_is_an_error():
    with nn.names():
        nn.Dense(3, name="fc")
        with pytest.raises(GraphError, match="name 'fc' is already used"):
            nn.Dense(3, name="fc")


def test_a_model_built_twice_in_fresh_scopes_is_the_same_graph():
    def build():
        x = image()
        with nn.names():
            model = nn.Sequential(nn.Conv2d(4, 3, padding=1, activation="relu"), nn.BatchNorm2d(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Dense(10))
            return model, model(x)

    (first, out_first), (second, out_second) = build(), build()
    assert out_first is out_second
    assert names_of(first.params) == names_of(second.params) == [
        "conv2d.weight", "conv2d.bias", "batch_norm.weight", "batch_norm.bias", "dense.weight", "dense.bias"]
    assert names_of(first.buffers) == ["batch_norm.running_mean", "batch_norm.running_var"]


def test_bad_layer_names_are_rejected():
    with pytest.raises(GraphError, match="name: expected a Python identifier"):
        nn.Dense(3, name="1st")
    with pytest.raises(GraphError, match="expected a Python identifier"):
        with nn.names("a b"):
            pass


# ---- Params: created once, listed, shared -------------------------------------------------------

def test_params_appear_on_the_first_call():
    layer = nn.Dense(7)
    assert layer.params == [] and layer.weight is None
    layer(sp.Input("x", ("batch", 5)))
    assert [(p.shape, p.dtype) for p in layer.params] == [((5, 7), "float32"), ((7,), "float32")]
    assert layer.params == [layer.weight, layer.bias]


def test_calling_a_layer_again_shares_its_weights():
    layer = nn.Dense(3, bias=False)
    a, b = sp.Input("a", ("batch", 4), "float64"), sp.Input("b", ("batch", 4), "float64")
    loss = sp.sum(layer(a) * layer(b))
    assert len(layer.params) == 1
    rng = np.random.default_rng(0)
    values = {"a": rng.normal(size=(2, 4)), "b": rng.normal(size=(2, 4)), layer.weight.name: rng.normal(size=(4, 3))}
    (gradient,) = sp.grad(loss, [layer.weight])
    w = values[layer.weight.name]
    expected = values["a"].T @ (values["b"] @ w) + values["b"].T @ (values["a"] @ w)  # both uses add up
    np.testing.assert_allclose(sp.evaluate(gradient, values), expected, rtol=1e-10)


def test_reuse_on_an_input_of_another_size_names_both_sizes():
    layer = nn.Conv2d(4, 3)
    layer(image(channels=3))
    with pytest.raises(GraphError, match=r"called on an input with 5 channels .*made for 3"):
        layer(image("y", channels=5))


def test_sequential_lists_each_param_once():
    shared = nn.Dense(6, activation="tanh")
    model = nn.Sequential(nn.Dense(6), shared, shared, sp.relu, nn.Dense(2))
    model(sp.Input("x", ("batch", 6)))
    assert len(model) == 5 and model[1] is shared
    assert len(model.params) == 6
    assert model.params[2:4] == shared.params


# ---- shape inference -----------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, expected", [
    (dict(out_channels=6, kernel_size=3), (6, 6, 6)),
    (dict(out_channels=6, kernel_size=3, padding=1), (6, 8, 8)),
    (dict(out_channels=6, kernel_size=(3, 1), stride=2, padding="valid"), (6, 3, 4)),
    (dict(out_channels=6, kernel_size=3, padding="same", dilation=2), (6, 8, 8)),
    (dict(out_channels=4, kernel_size=2, groups=2), (4, 7, 7)),
])
def test_conv2d_infers_in_channels_and_output_shape(arguments, expected):
    layer = nn.Conv2d(**arguments)
    y = layer(image(channels=2))
    assert y.shape == ("batch",) + expected
    groups = arguments.get("groups", 1)
    assert layer.weight.shape == (arguments["out_channels"], 2 // groups, *layer.kernel_size)
    assert y is sp.conv2d(image(channels=2), layer.weight, layer.bias, stride=layer.stride, padding=layer.padding,
                          dilation=layer.dilation, groups=groups)


def test_conv1d_pooling_flatten_and_dense_shapes():
    signal = sp.Input("s", ("batch", 3, 10))
    conv = nn.Conv1d(5, 3, stride=2)
    assert conv(signal).shape == ("batch", 5, 4) and conv.weight.shape == (5, 3, 3)
    x = image(channels=2)
    assert nn.MaxPool2d(2)(x).shape == ("batch", 2, 4, 4)
    assert nn.AvgPool2d(3, stride=1, padding=1)(x).shape == ("batch", 2, 8, 8)
    assert nn.Flatten()(x).shape == ("batch", 128)
    sequence = sp.Input("t", ("batch", 7, 5))
    assert nn.Dense(4)(sequence).shape == ("batch", 7, 4)  # on the last axis, as torch.nn.Linear


def test_activation_argument_and_layers():
    x = sp.Input("x", ("batch", 5))
    for activation, function in (("relu", sp.relu), ("tanh", sp.tanh), ("gelu", sp.gelu), (nn.ReLU(), sp.relu)):
        layer = nn.Dense(3, activation=activation)
        assert layer(x) is function(x @ layer.weight + layer.bias)
    assert nn.Tanh()(x) is sp.tanh(x) and nn.GELU()(x) is sp.gelu(x) and nn.ReLU()(x) is sp.relu(x)
    conv = nn.Conv2d(2, 1, activation="relu")
    assert conv(image()) is sp.relu(sp.conv2d(image(), conv.weight, conv.bias))


# ---- initialisation -------------------------------------------------------------------------------

def test_default_init_is_pytorchs():
    dense, conv = nn.Dense(300), nn.Conv2d(64, (3, 5), groups=2)
    dense(sp.Input("x", ("batch", 400)))
    conv(image(channels=8))
    values = initial_values(dense.params + conv.params, seed=0)
    for layer, fan_in in ((dense, 400), (conv, 4 * 3 * 5)):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias's uniform(+-1/sqrt(fan_in))
        weight, bias = values[layer.weight.name], values[layer.bias.name]
        assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
        assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert abs(weight.mean()) < 0.05 * bound


@pytest.mark.parametrize("init, std", [("he_normal", math.sqrt(2 / 72)), ("glorot_uniform", math.sqrt(2 / (72 + 144))),
                                       ("he_uniform", math.sqrt(2 / 72))])
def test_init_names_another_scheme_with_the_layers_fans(init, std):
    conv = nn.Conv2d(16, 3, init=init)  # fan_in 8*3*3 = 72, fan_out 16*3*3 = 144
    conv(image(channels=8))
    weight = initial_values(conv.params, seed=1)[conv.weight.name]
    assert weight.std() == pytest.approx(std, rel=0.1)


def test_callable_and_constant_inits():
    def fives(shape, rng):
        return np.full(shape, 5.0)

    for init, value in ((fives, 5.0), ("zeros", 0.0), ("ones", 1.0)):
        layer = nn.Dense(3, init=init)
        layer(sp.Input("x", ("batch", 2)))
        assert np.all(initial_values([layer.weight])[layer.weight.name] == value)


def test_batch_norm_starts_as_the_identity_with_unit_running_variance():
    bn = nn.BatchNorm2d()
    bn(image(channels=4))
    values = initial_values(bn.params + bn.buffers)
    assert [values[n].tolist() for n in names_of(bn.params + bn.buffers)] == [[1.0] * 4, [0.0] * 4, [0.0] * 4,
                                                                               [1.0] * 4]


# ---- modes: batch norm and dropout ----------------------------------------------------------------

def test_batch_norm_layer_normalises_the_batch_and_reads_running_statistics_in_inference():
    bn = nn.BatchNorm1d(momentum=0.2, eps=1e-3)
    x = sp.Input("x", ("batch", 3), "float64")
    y = bn(x)
    rng = np.random.default_rng(0)
    data = rng.normal(2.0, 3.0, size=(16, 3))
    values = {"x": data, bn.weight.name: np.full(3, 2.0), bn.bias.name: np.full(3, 0.5),
              bn.running_mean.name: np.array([1.0, 2.0, 3.0]), bn.running_var.name: np.array([4.0, 1.0, 0.25])}
    normalised = (data - data.mean(0)) / np.sqrt(data.var(0) + 1e-3)
    np.testing.assert_allclose(sp.evaluate(y, values), 2.0 * normalised + 0.5, rtol=1e-10)
    inferred = (data - values[bn.running_mean.name]) / np.sqrt(values[bn.running_var.name] + 1e-3)
    np.testing.assert_allclose(sp.evaluate(sp.inference(y), values), 2.0 * inferred + 0.5, rtol=1e-10)


def test_dropout_layer_is_the_identity_in_inference():
    if not hasattr(sp.ops, "dropout"):
        pytest.skip("compiler.ops.dropout is not available")
    x = sp.Input("x", ("batch", 8))
    layer = nn.Dropout(0.3)
    assert layer.params == [] and sp.inference(layer(x)) is x
    assert layer(x) is not x


# ---- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: nn.Dense(0), "units: expected a positive integer, got 0"),
    (lambda: nn.Dense(3, activation="swish"), "activation: expected one of relu"),
    (lambda: nn.Dense(3, init="kaiming"), "init: expected None, a callable"),
    (lambda: nn.Conv2d(4, (3, 3, 3)), r"kernel_size: expected an int or 2 ints >= 1, got \(3, 3, 3\)"),
    (lambda: nn.Conv2d(4, 3, padding="full"), "padding: expected an int, 'same' or 'valid', got 'full'"),
    (lambda: nn.Conv2d(4, 3, stride=0), "stride: expected an int or 2 ints >= 1, got 0"),
    (lambda: nn.Conv2d(6, 3, groups=4), "groups: expected a divisor of out_channels 6, got 4"),
    (lambda: nn.MaxPool2d(2, padding=2), "padding: expected at most half the kernel size"),
    (lambda: nn.BatchNorm2d(momentum=1.5), r"momentum: expected a number in \[0, 1\], got 1.5"),
    (lambda: nn.Dropout(p=1.5), r"p: expected a probability in \[0, 1\], got 1.5"),
    (lambda: nn.Sequential(nn.Dense(2), 3), "layers\\[1\\]: expected a layer or a callable"),
])
def test_bad_constructor_arguments_name_the_argument_and_the_value(make, message):
    with pytest.raises(GraphError, match=message):
        make()


@pytest.mark.parametrize("layer, x, message", [
    (lambda: nn.Conv2d(4, 3), lambda: sp.Input("x", ("batch", 64)),
     r"Conv2d '.*': expected an input of shape \(N, C, H, W\), got shape \('batch', 64\)"),
    (lambda: nn.Conv2d(4, 3, groups=2), lambda: image(channels=3), "groups 2 must divide the input channels, got 3"),
    (lambda: nn.Conv2d(4, 9), lambda: image(size=8), "kernel spans 9 elements"),
    (lambda: nn.BatchNorm2d(), lambda: sp.Input("x", ("batch", 4)), r"expected an input of shape \(N, C, H, W\)"),
    (lambda: nn.Dense(3), lambda: sp.Input("x", ("batch", "features")), "features .* must be a number"),
    (lambda: nn.Dense(3), lambda: sp.Input("x", ("batch", 4), "int64"), "expected a float input"),
    (lambda: nn.MaxPool2d(2), lambda: sp.Input("x", ("batch", 4, 4)), r"expected an input of shape \(N, C, H, W\)"),
])
def test_an_input_a_layer_cannot_take_is_an_error_at_the_users_line(layer, x, message):
    made, node = layer(), x()
    with pytest.raises(GraphError, match=message) as error:
        made(node)
    assert "test_nn.py" in str(error.value)


def test_a_layer_applied_to_an_array_says_what_it_expects():
    with pytest.raises(GraphError, match="expected a graph node .* got ndarray"):
        nn.Dense(3)(np.ones((2, 3)))


# ---- training ----------------------------------------------------------------------------------------

def test_dotted_param_names_bind_by_name_in_compiled_functions():
    layer = nn.Dense(3, activation="tanh")
    x = sp.Input("x", ("batch", 4), "float64")
    f = sp.compile(layer(x))
    values = {"x": np.ones((2, 4)), layer.weight.name: np.full((4, 3), 0.25), layer.bias.name: np.zeros(3)}
    np.testing.assert_allclose(f(**values), np.tanh(np.ones((2, 3))), rtol=1e-12)
    with pytest.raises(TypeError, match=rf"missing argument.*{layer.bias.name}"):
        f(x=values["x"], **{layer.weight.name: values[layer.weight.name]})


def test_a_small_cnn_built_from_layers_learns_the_digits(tmp_path):
    from runtime import datasets
    x, labels = sp.Input("x", ("batch", 1, 8, 8)), sp.Input("labels", ("batch",), "int64")
    with nn.names("test_cnn"):
        model = nn.Sequential(nn.Conv2d(8, 3, padding=1, activation="relu"), nn.BatchNorm2d(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Dense(10))
        logits = model(x)
    step = sp.compile_step(sp.cross_entropy(logits, labels), sp.optim.Adam(lr=3e-3), seed=0)
    assert set(step.params) == set(names_of(model.params)) and set(step.buffers) == set(names_of(model.buffers))
    images, classes = datasets.load_digits("train")
    test_images, test_classes = datasets.load_digits("test")
    for _ in range(3):
        step.run_epoch({"x": images.reshape(-1, 1, 8, 8), "labels": classes}, batch_size=32)
    predict = step.function(sp.inference(logits))
    accuracy = np.mean(predict(x=test_images.reshape(-1, 1, 8, 8)).argmax(1) == test_classes)
    assert accuracy > 0.9
    assert not np.allclose(step.buffers["test_cnn.batch_norm.running_mean"], 0)  # running statistics moved
    saved = {name: array.copy() for name, array in {**step.params, **step.buffers}.items()}
    step.save(tmp_path / "cnn.npz")
    step.run_epoch({"x": images.reshape(-1, 1, 8, 8), "labels": classes}, batch_size=32)
    step.load(tmp_path / "cnn.npz")
    for name, array in {**step.params, **step.buffers}.items():
        np.testing.assert_array_equal(array, saved[name], err_msg=name)
