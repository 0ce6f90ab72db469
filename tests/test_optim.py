"""Optimizers against a NumPy transcription of the update rules torch.optim documents.

The oracle below is written from the PyTorch documentation, independently of
compiler.optim. A `runner` takes a loss, an optimizer, initial parameters, one
batch and one learning rate per step, and returns the parameters after every
step; the 'evaluate' runner runs the update graph in the reference evaluator,
the 'compiled' runner the step compiled to machine code.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import compiler
from compiler import compile_step
from compiler.optim import (SGD, AdaGrad, Adam, AdamW, HyperparameterError, RMSProp, clip_by_global_norm,
                            update_graph)

STEPS = 20
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


# ---- the oracle: torch.optim's documented algorithms, transcribed -------------------------------

def sgd_rule(p, g, s, t, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0):
    if weight_decay != 0:
        g = g + weight_decay * p
    if momentum != 0:
        if t > 1:
            s["b"] = momentum * s["b"] + (1 - dampening) * g
        else:
            s["b"] = g
        g = g + momentum * s["b"] if nesterov else s["b"]
    return p - lr * g


def adagrad_rule(p, g, s, t, lr, lr_decay=0, weight_decay=0, eps=1e-10, initial_accumulator_value=0):
    if "state_sum" not in s:
        s["state_sum"] = np.full_like(p, initial_accumulator_value)
    clr = lr / (1 + (t - 1) * lr_decay)
    if weight_decay != 0:
        g = g + weight_decay * p
    s["state_sum"] = s["state_sum"] + g * g
    return p - clr * g / (np.sqrt(s["state_sum"]) + eps)


def rmsprop_rule(p, g, s, t, lr, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
    for key in ("v", "g_ave", "b"):
        s.setdefault(key, np.zeros_like(p))
    if weight_decay != 0:
        g = g + weight_decay * p
    s["v"] = alpha * s["v"] + (1 - alpha) * g * g
    v_tilde = s["v"]
    if centered:
        s["g_ave"] = alpha * s["g_ave"] + (1 - alpha) * g
        v_tilde = v_tilde - s["g_ave"] ** 2
    if momentum > 0:
        s["b"] = momentum * s["b"] + g / (np.sqrt(v_tilde) + eps)
        return p - lr * s["b"]
    return p - lr * g / (np.sqrt(v_tilde) + eps)


def adam_rule(p, g, s, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, decoupled=False):
    beta1, beta2 = betas
    for key in ("m", "v", "v_max"):
        s.setdefault(key, np.zeros_like(p))
    if decoupled:
        p = p - lr * weight_decay * p
    elif weight_decay != 0:
        g = g + weight_decay * p
    s["m"] = beta1 * s["m"] + (1 - beta1) * g
    s["v"] = beta2 * s["v"] + (1 - beta2) * g ** 2
    m_hat = s["m"] / (1 - beta1 ** t)
    if amsgrad:
        s["v_max"] = np.maximum(s["v_max"], s["v"])
        v_hat = s["v_max"] / (1 - beta2 ** t)
    else:
        v_hat = s["v"] / (1 - beta2 ** t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw_rule(p, g, s, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
    return adam_rule(p, g, s, t, lr, betas, eps, weight_decay, amsgrad, decoupled=True)


RULES = {SGD: sgd_rule, AdaGrad: adagrad_rule, RMSProp: rmsprop_rule, Adam: adam_rule, AdamW: adamw_rule}


def clip_reference(grads: dict, max_norm):
    total_norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    coefficient = min(max_norm / (total_norm + 1e-6), 1.0)
    return {k: g * g.dtype.type(coefficient) for k, g in grads.items()}


# ---- the problem: a linear layer fitted by mean squared error, fresh batch every step -------------

def make_problem(dtype):
    rng = np.random.default_rng(1)
    true_w = rng.normal(size=(4, 3))
    batches = []
    for _ in range(STEPS):
        x = rng.normal(size=(8, 4))
        y = x @ true_w + 0.3 * rng.normal(size=(8, 3)) + 1.0
        batches.append({"x": x.astype(dtype), "y": y.astype(dtype)})
    initial = {"w": rng.normal(size=(4, 3)).astype(dtype), "b": rng.normal(size=3).astype(dtype)}
    lrs = [0.05 * 0.8 ** (t // 7) for t in range(STEPS)]  # a schedule: the rate changes between steps
    x = compiler.Input("x", ("batch", 4), dtype)
    y = compiler.Input("y", ("batch", 3), dtype)
    w = compiler.Param("w", (4, 3), dtype=dtype)
    b = compiler.Param("b", (3,), dtype=dtype)
    loss = compiler.mse(x @ w + b, y)
    return loss, initial, batches, lrs


def reference_gradients(params, batch):
    x, y = batch["x"], batch["y"]
    residual = x @ params["w"] + params["b"] - y
    scale = residual.dtype.type(2 / residual.size)
    return {"w": scale * (x.T @ residual), "b": scale * residual.sum(axis=0)}


def reference_trajectory(cls, kwargs, initial, batches, lrs):
    kwargs = dict(kwargs)
    kwargs.pop("lr", None)
    max_norm = kwargs.pop("clip_grad_norm", None)
    params = {k: v.copy() for k, v in initial.items()}
    states = {k: {} for k in params}
    trajectory = []
    for t, (batch, lr) in enumerate(zip(batches, lrs), start=1):
        grads = reference_gradients(params, batch)
        if max_norm is not None:
            grads = clip_reference(grads, max_norm)
        params = {k: RULES[cls](params[k], grads[k], states[k], t, lr, **kwargs) for k in params}
        trajectory.append(params)
    return trajectory


# ---- runners: ways to execute the symbolic step ----------------------------------------------

def run_evaluated(loss, optimizer, initial, batches, lrs):
    """Parameters after each step, the step graph run by compiler.evaluate."""
    graph = update_graph(loss, optimizer)
    params, state = dict(initial), graph.initial_state()
    trajectory = []
    for t, (batch, lr) in enumerate(zip(batches, lrs), start=1):
        _, params, state, _ = graph.evaluate(params, state, t, lr, batch)
        trajectory.append(params)
    return trajectory


def run_compiled(loss, optimizer, initial, batches, lrs):
    """Parameters after each step, the step compiled to machine code (compile_step)."""
    step = compile_step(loss, optimizer, schedule=lambda t: lrs[t])
    for name, value in initial.items():
        step.params[name][...] = value
    trajectory = []
    for batch in batches:
        step(**batch)
        trajectory.append({name: array.copy() for name, array in step.params.items()})
    return trajectory


RUNNERS = {"evaluate": run_evaluated, "compiled": run_compiled}


@pytest.fixture(params=sorted(RUNNERS))
def runner(request):
    return RUNNERS[request.param]


CASES = [
    (SGD, {"lr": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.9}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (SGD, {"lr": 0.1, "weight_decay": 0.1}),
    (SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    (SGD, {"lr": 0.1, "momentum": 0.9, "clip_grad_norm": 0.5}),
    (AdaGrad, {}),
    (AdaGrad, {"lr_decay": 0.1}),
    (AdaGrad, {"weight_decay": 0.1}),
    (AdaGrad, {"initial_accumulator_value": 0.5}),
    (AdaGrad, {"eps": 1e-3, "lr_decay": 0.05, "weight_decay": 0.02, "initial_accumulator_value": 0.1}),
    (RMSProp, {}),
    (RMSProp, {"alpha": 0.9}),
    (RMSProp, {"centered": True}),
    (RMSProp, {"momentum": 0.9}),
    (RMSProp, {"weight_decay": 0.1}),
    (RMSProp, {"centered": True, "momentum": 0.5, "weight_decay": 0.05, "eps": 1e-4}),
    (Adam, {}),
    (Adam, {"betas": (0.8, 0.95)}),
    (Adam, {"weight_decay": 0.1}),
    (Adam, {"amsgrad": True}),
    (Adam, {"amsgrad": True, "weight_decay": 0.05, "eps": 1e-3}),
    (Adam, {"clip_grad_norm": 1.0}),
    (AdamW, {}),
    (AdamW, {"weight_decay": 0.3}),
    (AdamW, {"amsgrad": True, "betas": (0.85, 0.99)}),
    (AdamW, {"amsgrad": True, "weight_decay": 0.1, "clip_grad_norm": 0.7}),
]


def case_id(case):
    cls, kwargs = case
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in kwargs.items())


def relative_error(actual, expected):
    return float(np.max(np.abs(actual.astype(np.float64) - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_matches_torch_documented_rule(case, dtype, runner):
    cls, kwargs = case
    loss, initial, batches, lrs = make_problem(dtype)
    expected = reference_trajectory(cls, kwargs, initial, batches, lrs)
    actual = runner(loss, cls(**kwargs), initial, batches, lrs)
    assert len(actual) == STEPS
    for t, (got, want) in enumerate(zip(actual, expected), start=1):
        for name in want:
            assert got[name].dtype == np.dtype(dtype)
            error = relative_error(got[name], want[name])
            assert error <= TOLERANCE[dtype], f"step {t}, {name}: relative error {error:.3g}"


@pytest.mark.parametrize("case", [c for c in CASES if c[1] not in ({}, {"lr": 0.1})], ids=case_id)
def test_every_option_changes_the_trajectory(case):
    """So that the comparison above (in float64) would catch an option that is ignored."""
    cls, kwargs = case
    _, initial, batches, lrs = make_problem("float64")
    plain = {"lr": kwargs["lr"]} if "lr" in kwargs else {}
    with_option = reference_trajectory(cls, kwargs, initial, batches, lrs)[-1]
    without = reference_trajectory(cls, plain, initial, batches, lrs)[-1]
    assert max(relative_error(with_option[k], without[k]) for k in without) > 1e-6


def test_clipping_is_active_in_the_problem():
    _, initial, batches, _ = make_problem("float64")
    grads = reference_gradients(initial, batches[0])
    assert math.sqrt(sum(np.sum(g ** 2) for g in grads.values())) > 1.0


# ---- clip_by_global_norm alone ------------------------------------------------------------------

@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e6])
def test_clip_by_global_norm(max_norm):
    rng = np.random.default_rng(0)
    values = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    nodes = [compiler.Input(k, v.shape, "float64") for k, v in values.items()]
    clipped = compiler.evaluate(clip_by_global_norm(nodes, max_norm), values)
    expected = clip_reference(values, max_norm)
    for got, name in zip(clipped, values):
        np.testing.assert_allclose(got, expected[name], rtol=1e-13)


def test_clip_rejects_non_positive_norm():
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm([compiler.Input("a", (2,), "float64")], 0.0)


# ---- the interface: state, step graph, argument checks -------------------------------------------

@pytest.mark.parametrize("optimizer, names", [
    (SGD(0.1), []),
    (SGD(0.1, momentum=0.9), ["momentum_buffer"]),
    (AdaGrad(initial_accumulator_value=0.25), ["sum"]),
    (RMSProp(), ["square_avg"]),
    (RMSProp(centered=True, momentum=0.5), ["square_avg", "grad_avg", "momentum_buffer"]),
    (Adam(), ["exp_avg", "exp_avg_sq"]),
    (AdamW(amsgrad=True), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
])
def test_state_specs(optimizer, names):
    param = compiler.Param("p", (2, 5), dtype="float64")
    specs = optimizer.state_specs(param)
    assert [s.name for s in specs] == names
    for spec in specs:
        assert spec.shape == (2, 5) and spec.dtype == "float64"
        expected_init = 0.25 if isinstance(optimizer, AdaGrad) else 0.0
        assert spec.init_value == expected_init


def test_update_graph_trains_only_the_listed_params():
    loss, initial, batches, _ = make_problem("float64")
    w = next(p for p in compiler.leaves(loss) if p.name == "w")
    graph = update_graph(loss, Adam(), params=[w])
    assert list(graph.new_params) == ["w"]
    assert sorted(graph.state) == ["w__exp_avg", "w__exp_avg_sq"]
    assert sorted(i.name for i in graph.data_inputs) == ["x", "y"]
    _, params, _, _ = graph.evaluate(initial, graph.initial_state(), 1, 0.1, batches[0])
    assert "b" not in params and not np.array_equal(params["w"], initial["w"])


def test_update_rejects_wrong_state():
    p = compiler.Param("p", (3,), dtype="float64")
    step, lr = compiler.Input("s", (), "float64"), compiler.Input("r", (), "float64")
    with pytest.raises(ValueError, match="exp_avg"):
        Adam().update(p, p * 2.0, {}, step, lr)


@pytest.mark.parametrize("make, argument", [
    (lambda: SGD(-0.1), "lr"),
    (lambda: SGD(0.1, momentum=-1), "momentum"),
    (lambda: SGD(0.1, nesterov=True), "nesterov"),
    (lambda: SGD(0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: SGD("fast"), "lr"),
    (lambda: AdaGrad(lr_decay=-1), "lr_decay"),
    (lambda: AdaGrad(initial_accumulator_value=-1), "initial_accumulator_value"),
    (lambda: RMSProp(alpha=-0.5), "alpha"),
    (lambda: RMSProp(centered="yes"), "centered"),
    (lambda: Adam(betas=(1.0, 0.999)), "betas[0]"),
    (lambda: Adam(betas=(0.9,)), "betas"),
    (lambda: Adam(eps=-1e-8), "eps"),
    (lambda: AdamW(weight_decay=-0.1), "weight_decay"),
    (lambda: Adam(clip_grad_norm=0), "clip_grad_norm"),
])
def test_bad_hyperparameters_name_the_argument(make, argument):
    with pytest.raises(HyperparameterError) as info:
        make()
    assert info.value.argument == argument
    assert argument in str(info.value)


def test_a_listed_param_the_loss_does_not_use_is_skipped_as_torch_does():
    """torch.optim skips a parameter whose gradient is None (no weight decay, no state): a listed Param the
    loss does not depend on gets no update and no state, and the others train exactly as without it."""
    x = compiler.Input("x", ("b", 3), "float64")
    w = compiler.Param("skip_w", (3, 2), dtype="float64")
    unused = compiler.Param("skip_u", (2,), dtype="float64")
    loss = compiler.sum((x @ w) ** 2)
    with_unused = compile_step(loss, AdamW(lr=0.1, weight_decay=0.1), params=[w, unused], seed=0)
    alone = compile_step(loss, AdamW(lr=0.1, weight_decay=0.1), params=[w], seed=0)
    assert sorted(with_unused.params) == ["skip_w"] and sorted(with_unused.state) == sorted(alone.state)
    data = np.random.default_rng(0).standard_normal((4, 3))
    for _ in range(3):
        assert with_unused(x=data) == alone(x=data)
    np.testing.assert_array_equal(with_unused.params["skip_w"], alone.params["skip_w"])
