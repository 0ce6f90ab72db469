"""nn.RNN, nn.LSTM and nn.GRU: torch.nn's layers, values and gradients, with torch's weights loaded by name.

Each case compiles one program over symbolic T and batch (outputs, final states and the gradients of a
weighted sum of them with respect to every Param, the input and the initial state) and runs it at
several shapes against torch.nn.RNN/LSTM/GRU in float64 holding the same weights, copied from its
state dict by name. Beyond that: central finite differences on a tiny case, the compiled program equal
to compiler.evaluate, the input projection as one product outside the loop, and the errors.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import compiler as C
from compiler import nn, ops
from compiler.errors import GraphError

TOL = 1e-10
KINDS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make_layer(kind, hidden, **kwargs):
    with nn.names():
        return KINDS[kind](hidden, **kwargs)


def objective(layer, x, state=None, seed=0):
    """(loss, outputs, finals): loss = sum(output * A) + sum(h_n * B) (+ sum(c_n * C)), A, B, C Inputs."""
    output, final = layer(x, state)
    finals = list(final) if isinstance(final, tuple) else [final]
    weights = [C.Input(f"weight{i}", n.shape, "float64") for i, n in enumerate([output] + finals)]
    loss = ops.sum(output * weights[0])
    for f, w in zip(finals, weights[1:]):
        loss = loss + ops.sum(f * w)
    return loss, output, finals


def torch_layer(torch, kind, input_size, hidden, **kwargs):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    torch.manual_seed(0)
    return cls(input_size, hidden, dtype=torch.float64, **kwargs)


def weights_by_name(layer, module) -> dict:
    """The Params' values from the torch module's state dict: `lstm.weight_ih_l0` <- `weight_ih_l0`."""
    state = module.state_dict()
    return {p.name: state[p.name[len(layer.name) + 1:]].numpy().copy() for p in layer.params}


CASES = [  # kind, keyword arguments, input size, hidden size, with an initial state
    ("rnn", {}, 3, 5, False),
    ("rnn", {"nonlinearity": "relu", "num_layers": 2, "batch_first": True}, 4, 3, True),
    ("lstm", {}, 3, 4, True),
    ("lstm", {"num_layers": 2, "batch_first": True}, 5, 3, False),
    ("lstm", {"bias": False}, 2, 3, False),
    ("gru", {}, 4, 3, True),
    ("gru", {"num_layers": 2, "batch_first": True}, 3, 4, False),
    ("gru", {"num_layers": 2, "bias": False}, 2, 2, True),
    ("rnn", {"bidirectional": True}, 3, 2, True),
    ("lstm", {"num_layers": 2, "bidirectional": True, "batch_first": True}, 3, 2, True),
    ("gru", {"num_layers": 2, "bidirectional": True}, 2, 3, False),
]
SHAPES = [(5, 3), (1, 2), (7, 1)]  # (T, batch)


@pytest.mark.parametrize("kind,kwargs,features,hidden,with_state", CASES,
                         ids=[f"{k}-{'-'.join(f'{a}={v}' for a, v in kw.items()) or 'default'}{'-state' * w}"
                              for k, kw, _, _, w in CASES])
def test_values_and_gradients_equal_torch(kind, kwargs, features, hidden, with_state):
    torch = pytest.importorskip("torch")
    layer = make_layer(kind, hidden, **kwargs)
    first = kwargs.get("batch_first", False)
    layers = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)  # h_n's first axis
    width = hidden * (2 if kwargs.get("bidirectional") else 1)
    x = C.Input("x", ("batch", "T", features) if first else ("T", "batch", features), "float64")
    state = None
    if with_state:
        state = [C.Input(f"state{j}", (layers, "batch", hidden), "float64") for j in range(2 if kind == "lstm" else 1)]
        state = tuple(state) if kind == "lstm" else state[0]
    loss, output, finals = objective(layer, x, state)
    leaves = layer.params + [x] + ([] if state is None else list(state) if kind == "lstm" else [state])
    f = C.compile([output] + finals + C.grad(loss, leaves))
    module = torch_layer(torch, kind, features, hidden, **kwargs)
    rng = np.random.default_rng(1)
    for steps, batch in SHAPES:
        values = weights_by_name(layer, module)
        x_shape = (batch, steps, features) if first else (steps, batch, features)
        values["x"] = rng.normal(size=x_shape)
        states = [rng.normal(size=(layers, batch, hidden)) for _ in range(2 if kind == "lstm" else 1)]
        if with_state:
            values.update({f"state{j}": s for j, s in enumerate(states)})
        out_shape = (batch, steps, width) if first else (steps, batch, width)
        seeds = [rng.normal(size=out_shape)] + [rng.normal(size=(layers, batch, hidden)) for _ in finals]
        values.update({f"weight{i}": w for i, w in enumerate(seeds)})
        results = f(**values)

        tx = torch.tensor(values["x"], requires_grad=True)
        ts = [torch.tensor(s, requires_grad=True) for s in states]
        initial = None if not with_state else (tuple(ts) if kind == "lstm" else ts[0])
        module.zero_grad()
        t_out, t_final = module(tx, initial)
        t_finals = list(t_final) if kind == "lstm" else [t_final]
        t_loss = (t_out * torch.tensor(seeds[0])).sum()
        for tf, w in zip(t_finals, seeds[1:]):
            t_loss = t_loss + (tf * torch.tensor(w)).sum()
        t_loss.backward()
        named = dict(module.named_parameters())
        expected = [t_out.detach().numpy()] + [tf.detach().numpy() for tf in t_finals]
        expected += [named[p.name[len(layer.name) + 1:]].grad.numpy() for p in layer.params] + [tx.grad.numpy()]
        if with_state:
            expected += [t.grad.numpy() for t in ts]
        assert len(results) == len(expected)
        for got, want in zip(results, expected):
            np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("kind", list(KINDS))
def test_params_are_named_shaped_and_initialised_as_torch(kind):
    torch = pytest.importorskip("torch")
    layer = make_layer(kind, 6, num_layers=2, bidirectional=True)
    layer(C.Input("x", (4, "batch", 5)))
    module = torch_layer(torch, kind, 5, 6, num_layers=2, bidirectional=True)
    assert [p.name for p in layer.params] == [f"{kind}.{name}" for name in module.state_dict()]
    assert [p.shape for p in layer.params] == [tuple(v.shape) for v in module.state_dict().values()]
    assert all(p.dtype == "float32" for p in layer.params)
    bound = 1 / math.sqrt(6)
    for p in layer.params:
        assert p.attr("init") == nn.Uniform(bound)  # uniform(-1/sqrt(H), 1/sqrt(H)), as torch's
        value = p.attr("init")(p.shape, np.random.default_rng(0))
        assert value.shape == p.shape and np.all(np.abs(value) <= bound) and np.std(value) > bound / 4


def test_unbatched_input_gives_unbatched_output_and_state():
    torch = pytest.importorskip("torch")
    layer = make_layer("lstm", 3, num_layers=2)
    x = C.Input("x", (4, 2), "float64")
    output, (h_n, c_n) = layer(x)
    assert output.shape == (4, 3) and h_n.shape == (2, 3) and c_n.shape == (2, 3)
    module = torch_layer(torch, "lstm", 2, 3, num_layers=2)
    values = weights_by_name(layer, module)
    values["x"] = np.random.default_rng(0).normal(size=(4, 2))
    t_out, (t_h, t_c) = module(torch.tensor(values["x"]))
    for got, want in zip(C.compile([output, h_n, c_n])(**values), (t_out, t_h, t_c)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=TOL, atol=TOL)


def test_gradients_equal_central_finite_differences():
    layer = make_layer("lstm", 2, num_layers=2)
    x = C.Input("x", (3, 2, 2), "float64")
    h0 = C.Input("h0", (2, 2, 2), "float64")
    c0 = C.Input("c0", (2, 2, 2), "float64")
    output, (h_n, c_n) = layer(x, (h0, c0))
    loss = ops.sum(ops.sin(output)) + ops.sum(h_n * c_n)
    leaves = layer.params + [x, h0, c0]
    rng = np.random.default_rng(2)
    values = {n.name: rng.normal(size=n.shape) * 0.7 for n in leaves}
    f_loss, f_grad = C.compile(loss), C.compile(C.grad(loss, leaves))
    grads = f_grad(**values)
    eps = 1e-6
    for leaf, g in zip(leaves, grads):
        numeric = np.zeros(leaf.shape)
        for index in np.ndindex(*leaf.shape):
            plus, minus = dict(values), dict(values)
            plus[leaf.name] = values[leaf.name].copy()
            minus[leaf.name] = values[leaf.name].copy()
            plus[leaf.name][index] += eps
            minus[leaf.name][index] -= eps
            numeric[index] = (float(f_loss(**plus)) - float(f_loss(**minus))) / (2 * eps)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8, err_msg=leaf.name)


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_compiled_program_equals_evaluate(kind):
    layer = make_layer(kind, 4, num_layers=2, batch_first=True)
    x = C.Input("x", ("batch", "T", 3), "float64")
    loss, output, finals = objective(layer, x)
    outputs = [loss, output] + finals + C.grad(loss, layer.params + [x])
    rng = np.random.default_rng(3)
    values = {p.name: rng.uniform(-0.5, 0.5, p.shape) for p in layer.params}
    values.update(x=rng.normal(size=(2, 6, 3)), weight0=rng.normal(size=(2, 6, 4)), weight1=rng.normal(size=(2, 2, 4)))
    for got, want in zip(C.compile(outputs)(**values), C.evaluate(outputs, values)):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def test_float32_training_step_carries_the_first_step_to_the_last():
    x = C.Input("x", ("batch", 6, 3))
    y = C.Input("y", ("batch",), "int64")
    _, (h_n, _) = nn.LSTM(8, batch_first=True, name="encoder")(x)
    with nn.names():
        logits = nn.Dense(2)(h_n[-1])
    loss = C.cross_entropy(logits, y)
    step = C.compile_step(loss, C.optim.Adam(lr=0.05), seed=0)
    rng = np.random.default_rng(4)
    xs = rng.normal(size=(64, 6, 3)).astype(np.float32)
    ys = (xs[:, 0, 0] > 0).astype(np.int64)  # the first step decides: the state must carry it to the last
    first = float(step(x=xs, y=ys))
    for _ in range(60):
        last = float(step(x=xs, y=ys))
    assert last < 0.2 * first


def test_input_projection_is_one_product_before_the_loop():
    """The forward scan body holds one product (h @ W_hh^T); x @ W_ih^T is one product over T * batch rows."""
    layer = make_layer("lstm", 16, num_layers=2)
    x = C.Input("x", ("T", "batch", 8))
    output, _ = layer(x)
    kernels = C.compile(output).kernels()
    scans = [k for k in kernels if k["kind"] == "scan"]
    products = [k for k in kernels if k["kind"] in ("bmm", "gemm", "matmul")]
    assert len(scans) == 2
    assert all(k["body"].count(" @ ") == 1 for k in scans)
    assert len(products) == 2 and all(k["shape"][1] == 64 and "*" in str(k["shape"][0]) for k in products)


def test_program_with_product_dimensions_passes_the_cache_check():
    """A plan whose buffers have shapes like ("T*batch", 64) is valid for the disk cache (it used to be a miss)."""
    from runtime.programs import check_plan
    layer = make_layer("gru", 4)
    f = C.compile(layer(C.Input("x", ("T", "batch", 3)))[0])
    plan = json.loads(json.dumps(f.plan))
    assert any("*" in str(d) for b in plan["buffers"] for d in b["shape"])
    check_plan(plan, {})


def test_errors_name_the_layer_and_what_was_expected():
    with pytest.raises(GraphError, match="nonlinearity: expected one of tanh, relu"):
        make_layer("rnn", 4, nonlinearity="sigmoid")
    with pytest.raises(GraphError, match="hidden_size: expected a positive integer"):
        make_layer("gru", 0)
    with pytest.raises(GraphError, match=r"dropout: expected a probability in \[0, 1\]"):
        make_layer("lstm", 3, dropout=1.5)
    make_layer("lstm", 3, dropout=1.0)  # torch's range includes 1
    layer = make_layer("lstm", 4, num_layers=2)
    with pytest.raises(GraphError, match=r"expected an input of shape \(T, batch, input_size\)"):
        layer(C.Input("x", (2, 3, 4, 5)))
    layer(C.Input("x", (5, 2, 3)))
    with pytest.raises(GraphError, match="features"):
        layer(C.Input("x", (5, 2, 4)))
    with pytest.raises(GraphError, match=r"state: expected \(h_0, c_0\)"):
        layer(C.Input("x", (5, 2, 3)), C.Input("h0", (2, 2, 4)))
    with pytest.raises(GraphError, match=r"state: expected \(h_0, c_0\) of shape \(2, 2, 4\)"):
        layer(C.Input("x", (5, 2, 3)), (C.Input("h0", (1, 2, 4)), C.Input("c0", (1, 2, 4))))
    both = make_layer("gru", 4, bidirectional=True)
    both(C.Input("x", (5, 2, 3)))
    with pytest.raises(GraphError, match=r"state: expected h_0 of shape \(2, 2, 4\)"):
        both(C.Input("x", (5, 2, 3)), C.Input("h0", (1, 2, 4)))


def test_dropout_between_layers_only_while_training():
    layer = make_layer("gru", 4, num_layers=2, dropout=0.5)
    plain = make_layer("gru", 4, num_layers=2)
    x = C.Input("x", (6, 3, 2), "float64")
    output, h_n = layer(x)
    expected, expected_h = plain(x)
    rng = np.random.default_rng(5)
    values = {p.name: rng.uniform(-0.5, 0.5, p.shape) for p in layer.params}
    values.update({q.name: values[p.name] for p, q in zip(layer.params, plain.params)})
    values["x"] = rng.normal(size=(6, 3, 2))
    trained, trained_h, inferred, inferred_h, wanted, wanted_h = C.compile(
        [output, h_n] + C.inference([output, h_n]) + [expected, expected_h])(**values)
    np.testing.assert_allclose(inferred, wanted, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(inferred_h, wanted_h, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(trained_h[0], wanted_h[0], rtol=TOL, atol=TOL)  # the first layer sees no dropout
    assert not np.allclose(trained, wanted)
