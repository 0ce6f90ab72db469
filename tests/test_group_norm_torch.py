"""group_norm, instance_norm and their layers equal torch's, values, gradients and running statistics.

Runs when PyTorch is installed (it is not a dependency). Hypothesis draws shapes (rank 2 to 5,
groups dividing the channels, from one group to one per channel, groups of one value), affine or
not, eps; for each example the value and the gradient of ``sum(out * g)`` with respect to x, weight
and bias come from ``compiler.evaluate`` (many examples) or from one ``compiler.compile`` with a
symbolic batch (fewer: each compiles), and must equal torch's to 1e-10 in float64 and to 1e-5 of
their magnitude in float32. Beyond the drawn examples: instance norm with running statistics over
compiled SGD steps against ``torch.nn.InstanceNorm2d(track_running_stats=True)``, eval mode after
``compiler.inference``, state dicts loaded by name, and the errors torch raises too. The argument
and layer errors at the end need no torch and run without it.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler as C
from compiler import Input, evaluate, grad, nn, optim
from compiler.modes import buffer_updates

from optional_torch import F, needs_torch, torch

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
TOLERANCE = {"float64": (1e-10, 1e-12), "float32": (1e-5, 1e-5)}


@st.composite
def norm_case(draw, instance=False):
    """(shape, groups, affine, eps): x (N, C, *spatial) of rank 2 to 5 (3 to 5 for instance norm, whose
    statistics need more than one spatial element)."""
    groups = draw(st.integers(1, 4))
    channels = groups * draw(st.integers(1, 3))
    spatial = draw(st.lists(st.integers(1, 4), min_size=1 if instance else 0, max_size=3))
    if instance and np.prod(spatial) == 1:
        spatial[0] = 2
    one_value_groups = not instance and channels == groups and np.prod(spatial) == 1
    shape = (draw(st.integers(2 if one_value_groups else 1, 3)), channels, *spatial)  # torch refuses (1, C) in C groups
    return shape, channels if instance else groups, draw(st.booleans()), draw(st.sampled_from([1e-5, 0.1]))


def draw_arrays(shape, affine, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * rng.uniform(0.5, 3) + rng.normal()).astype(dtype)
    channels = shape[1]
    params = [rng.uniform(0.5, 2, channels).astype(dtype), rng.normal(size=channels).astype(dtype)] if affine else []
    return [x] + params, rng.normal(size=shape).astype(dtype)


def torch_results(op, arrays, g):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = op(*tensors)
    out.backward(torch.tensor(g))
    return [out.detach().numpy()] + [t.grad.numpy() for t in tensors]


def symprop_results(op, arrays, g, compiled: bool):
    """Value and gradients; the compiled program has a symbolic batch."""
    dtype = str(arrays[0].dtype)
    batch = "batch" if compiled else arrays[0].shape[0]
    nodes = [Input("x", (batch,) + arrays[0].shape[1:], dtype)]
    nodes += [Input(name, a.shape, dtype) for name, a in zip(("weight", "bias"), arrays[1:])]
    out = op(*nodes)
    weights = Input("g", nodes[0].shape, dtype)
    graph = [out] + grad((out * weights).sum(), nodes)
    values = {node.name: a for node, a in zip(nodes, arrays)} | {"g": g}
    if compiled:
        return list(C.compile(graph)(**values))
    return [np.asarray(v) for v in evaluate(graph, values)]


def check(kind, shape, groups, affine, eps, seed, dtype="float64", compiled=False):
    arrays, g = draw_arrays(shape, affine, dtype, seed)
    if kind == "group_norm":
        ours = lambda x, *wb: C.ops.group_norm(x, groups, *wb, eps=eps)  # noqa: E731
        theirs = lambda x, *wb: F.group_norm(x, groups, *wb, eps=eps)  # noqa: E731
    else:
        ours = lambda x, *wb: C.ops.instance_norm(x, None, None, *wb, eps=eps)  # noqa: E731
        theirs = lambda x, *wb: F.instance_norm(x, None, None, *wb, eps=eps)  # noqa: E731
    expected = torch_results(theirs, arrays, g)
    actual = symprop_results(ours, arrays, g, compiled)
    rtol, atol = TOLERANCE[dtype]
    for what, a, e in zip(("value", "x grad", "weight grad", "bias grad"), actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape, what
        scale = max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol * scale,
                                   err_msg=f"{kind} {what} {shape} groups={groups} affine={affine} eps={eps}")


# ---- values and gradients over drawn shapes ------------------------------------------------------


@needs_torch
@settings(max_examples=60, **SETTINGS)
@given(case=norm_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_group_norm_evaluated_equals_torch(case, seed):
    check("group_norm", *case, seed)


@needs_torch
@settings(max_examples=40, **SETTINGS)
@given(case=norm_case(instance=True), seed=st.integers(0, 2 ** 32 - 1))
def test_instance_norm_evaluated_equals_torch(case, seed):
    check("instance_norm", *case, seed)


COMPILED = [((3, 6, 5, 4), 3, True), ((2, 8), 4, True), ((2, 4, 7), 1, False), ((2, 6, 3, 3), 6, True),
            ((1, 4, 2, 3, 2), 2, True), ((2, 3, 1, 1), 3, True)]  # the last: groups of one value, output 0


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape,groups,affine", COMPILED, ids=[str(c[0]) + f"/{c[1]}" for c in COMPILED])
def test_group_norm_compiled_equals_torch(shape, groups, affine, dtype):
    if dtype == "float32" and shape[1] == groups and np.prod(shape[2:]) == 1:
        # torch's float32 kernel leaves its mean's rounding times 1/sqrt(eps) in x - mean (2e-5 here);
        # the exact value is the bias, which symprop returns
        arrays, g = draw_arrays(shape, affine, dtype, seed=0)
        out, dx, *_ = symprop_results(lambda x, w, b: C.ops.group_norm(x, groups, w, b), arrays, g, compiled=True)
        np.testing.assert_array_equal(out, np.broadcast_to(arrays[2].reshape(1, -1, 1, 1), shape))
        np.testing.assert_array_equal(dx, np.zeros(shape, np.float32))
        return
    check("group_norm", shape, groups, affine, 1e-5, seed=sum(shape) + groups, dtype=dtype, compiled=True)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape,affine", [((3, 4, 5, 6), True), ((2, 3, 7), False)])
def test_instance_norm_compiled_equals_torch(shape, affine, dtype):
    check("instance_norm", shape, shape[1], affine, 1e-5, seed=sum(shape), dtype=dtype, compiled=True)


@needs_torch
def test_float32_group_norm_at_large_offsets_is_as_exact_as_torch():
    """A large mean next to a small spread (300 +- 0.01): the variance is taken around the mean, not as
    E[x^2] - E[x]^2 (which would lose every digit), and the result is as close to the float64 value
    of the same float32 inputs as torch's own float32 result."""
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(4, 8, 6, 6)) * 0.01 + 300).astype(np.float32)
    node = Input("x", ("batch", 8, 6, 6))
    exact = F.group_norm(torch.tensor(x, dtype=torch.float64), 2).numpy()
    ours = np.abs(C.compile(C.ops.group_norm(node, 2))(x=x) - exact).max()
    theirs = np.abs(F.group_norm(torch.tensor(x), 2).numpy() - exact).max()
    assert ours <= 1.5 * theirs and ours < 0.01, (ours, theirs)


# ---- instance norm with running statistics ------------------------------------------------------


@needs_torch
def test_instance_norm_functional_running_statistics_and_eval_equal_torch():
    """One training evaluation's Buffer updates and use_input_stats=False against F.instance_norm."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 4, 5)) * 2 + 1
    mean0, var0 = rng.normal(size=4), rng.uniform(0.5, 2, 4)
    node = Input("x", ("batch", 4, 5), "float64")
    mean = C.Buffer("inf_running_mean", (4,), dtype="float64")
    var = C.Buffer("inf_running_var", (4,), init="ones", dtype="float64")
    out = C.ops.instance_norm(node, mean, var, momentum=0.3)
    t_mean, t_var = torch.tensor(mean0), torch.tensor(var0)
    expected = F.instance_norm(torch.tensor(x), t_mean, t_var, momentum=0.3).numpy()
    values = {"x": x, mean.name: mean0, var.name: var0}
    np.testing.assert_allclose(evaluate(out, values), expected, rtol=1e-10, atol=1e-12)
    updates = dict(buffer_updates(out))
    np.testing.assert_allclose(evaluate(updates[mean], values), t_mean.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(evaluate(updates[var], values), t_var.numpy(), rtol=1e-12, atol=1e-14)
    frozen = C.ops.instance_norm(node, mean, var, use_input_stats=False)
    for graph in (frozen, C.inference(out)):
        expected = F.instance_norm(torch.tensor(x), t_mean, t_var, use_input_stats=False).numpy()
        np.testing.assert_allclose(evaluate(graph, {"x": x, mean.name: t_mean.numpy(), var.name: t_var.numpy()}),
                                   expected, rtol=1e-10, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_instance_norm2d_training_steps_and_eval_equal_torch(dtype):
    """SGD steps of x -> InstanceNorm2d(affine, track_running_stats) -> mse: the weights and running
    statistics after each step, then eval mode (step.function and compiler.inference) on new data."""
    momentum, lr = 0.2, 0.5
    x = Input("x", ("batch", 3, 4, 5), dtype)
    target = Input("target", ("batch", 3, 4, 5), dtype)
    with nn.names():
        layer = nn.InstanceNorm2d(affine=True, track_running_stats=True, momentum=momentum)
        out = layer(x)
    step = C.compile_step(C.mse(out, target), optim.SGD(lr=lr), seed=0)
    module = torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=momentum,
                                     dtype=getattr(torch, dtype))
    sgd = torch.optim.SGD(module.parameters(), lr=lr)
    assert set(step.params) | set(step.buffers) == {f"instance_norm.{k}" for k in module.state_dict()
                                                     if k != "num_batches_tracked"}
    rng = np.random.default_rng(1)
    rtol, atol = TOLERANCE[dtype]
    for batch_size in (4, 2, 5):
        data = {"x": (rng.normal(size=(batch_size, 3, 4, 5)) * 2 + rng.normal(size=(1, 3, 1, 1))).astype(dtype),
                "target": rng.normal(size=(batch_size, 3, 4, 5)).astype(dtype)}
        loss = step(**data)
        sgd.zero_grad()
        t_loss = F.mse_loss(module(torch.tensor(data["x"])), torch.tensor(data["target"]))
        t_loss.backward()
        sgd.step()
        assert loss == pytest.approx(t_loss.item(), rel=10 * rtol)
        state = module.state_dict()
        for name, live in {**step.params, **step.buffers}.items():
            np.testing.assert_allclose(live, state[name.split(".")[1]].numpy(), rtol=rtol, atol=atol, err_msg=name)
    module.eval()
    fresh = (rng.normal(size=(2, 3, 4, 5)) + 3).astype(dtype)
    expected = module(torch.tensor(fresh)).detach().numpy()
    np.testing.assert_allclose(step.function(out)(x=fresh), expected, rtol=rtol, atol=atol)
    live = {**step.params, **step.buffers, "x": fresh}
    np.testing.assert_allclose(evaluate(C.inference(out), live), expected, rtol=rtol, atol=atol)


@needs_torch
def test_instance_norm_without_running_statistics_keeps_the_input_statistics_in_eval():
    """torch's InstanceNorm without track_running_stats normalises with the input's statistics in eval too."""
    x = Input("x", ("batch", 2, 6))
    with nn.names():
        out = nn.InstanceNorm1d()(x)
    data = np.random.default_rng(2).normal(size=(3, 2, 6)).astype(np.float32) * 4
    expected = torch.nn.InstanceNorm1d(2).eval()(torch.tensor(data)).numpy()
    np.testing.assert_allclose(C.compile(C.inference(out))(x=data), expected, rtol=1e-5, atol=1e-5)


@needs_torch
def test_group_norm_layer_loads_a_torch_state_dict_by_name():
    module = torch.nn.GroupNorm(2, 6, dtype=torch.float64)
    with torch.no_grad():
        module.weight.uniform_(0.5, 2)
        module.bias.normal_()
    x = Input("x", ("batch", 6, 3, 3), "float64")
    with nn.names():
        layer = nn.GroupNorm(2)
        out = layer(x)
    assert [p.name for p in layer.params] == ["group_norm.weight", "group_norm.bias"]
    data = np.random.default_rng(4).normal(size=(2, 6, 3, 3))
    values = {f"group_norm.{k}": v.numpy() for k, v in module.state_dict().items()} | {"x": data}
    np.testing.assert_allclose(evaluate(out, values), module(torch.tensor(data)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


# ---- errors torch raises too ---------------------------------------------------------------------


@needs_torch
def test_errors_torch_raises_too():
    x = Input("x", ("batch", 6, 4))
    with pytest.raises(C.GraphError, match=r"group_norm: num_groups=4 must divide the 6 channels of x"):
        C.ops.group_norm(x, 4)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        F.group_norm(torch.zeros(2, 6, 4), 4)
    with pytest.raises(C.GraphError, match=r"group_norm: weight has shape \(4,\), but x .* expected \(6,\)"):
        C.ops.group_norm(x, 3, Input("w4", (4,)))
    with pytest.raises(C.GraphError, match=r"group_norm: x \(1, 3, 1\) with num_groups=3 is one sample whose groups"):
        C.ops.group_norm(Input("single", (1, 3, 1)), 3)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        F.group_norm(torch.zeros(1, 3, 1), 3)
    with pytest.raises(ValueError, match=r"group_norm: the batch size when each group holds one value is 1"):
        C.compile(C.ops.group_norm(Input("singles", ("batch", 3)), 3))(singles=np.zeros((1, 3), np.float32))
    with pytest.raises(C.GraphError, match="instance_norm: x \\(2, 3, 1\\) has one spatial element"):
        C.ops.instance_norm(Input("one", (2, 3, 1)))
    with pytest.raises(ValueError, match="Expected more than 1 spatial element"):
        F.instance_norm(torch.zeros(2, 3, 1))
    with pytest.raises(C.GraphError, match="use_input_stats=False normalises with running statistics"):
        C.ops.instance_norm(x, use_input_stats=False)


def test_argument_errors_name_the_argument_expected_and_actual():
    x = Input("x", ("batch", 6, 4))
    cases = [
        (lambda: C.group_norm(x, 4), r"num_groups=4 must divide the 6 channels of x \('batch', 6, 4\)"),
        (lambda: C.group_norm(x, 0), r"num_groups must be a positive int, got 0"),
        (lambda: C.group_norm(x, 2.0), r"num_groups must be a positive int, got 2.0"),
        (lambda: C.group_norm(x, 3, None, Input("b5", (5,))), r"bias has shape \(5,\), but x .* expected \(6,\)"),
        (lambda: C.group_norm(x, 3, Input("w64", (6,), "float64")), r"weight has dtype float64, x float32"),
        (lambda: C.group_norm(Input("flat", ("batch",)), 1), r"x must have shape \(N, C\).*got \('batch',\)"),
        (lambda: C.group_norm(x, 3, eps=0), "eps must be a positive number, got 0"),
        (lambda: C.instance_norm(x, weight=Input("w2", (2,))), r"weight has shape \(2,\), but x .* expected \(6,\)"),
        (lambda: C.instance_norm(x, C.Buffer("gn_mean", (6,)), None), "both be Buffers or both None"),
        (lambda: C.instance_norm(x, C.Param("gn_pm", (6,)), C.Param("gn_pv", (6,))),
         "running_mean must be a compiler.Buffer"),
        (lambda: C.instance_norm(x, momentum=1.5), r"momentum must be a number in \[0, 1\], got 1.5"),
        (lambda: C.instance_norm(x, use_input_stats=False), "use_input_stats=False normalises with running statistics"),
        (lambda: C.instance_norm(Input("pts", ("batch", 6, 1, 1))), r"x \('batch', 6, 1, 1\) has one spatial element"),
        (lambda: C.group_norm(Input("one", (1, 3)), 3), r"x \(1, 3\) with num_groups=3 is one sample"),
    ]
    for make, message in cases:
        pattern = r"(group|instance)_norm: (.* )?" + message + r".*test_group_norm_torch\.py"  # the user's line
        with pytest.raises(C.GraphError, match=pattern):
            make()


def test_symbolic_sizes_of_one_are_refused_at_run_time_naming_the_binding():
    """A symbolic spatial size bound to 1 in instance norm's training (torch's refusal), checked before any
    kernel runs; in inference the running statistics are used and one element is fine."""
    x = Input("x", ("batch", 3, "L"))
    mean, var = C.Buffer("sym_mean", (3,)), C.Buffer("sym_var", (3,), init="ones")
    out = C.instance_norm(x, mean, var)
    ones = np.ones((2, 3, 1), np.float32)
    with pytest.raises(ValueError, match=r"instance_norm: the number of spatial elements .* is 1 with L=1"):
        C.compile(out)(x=ones)
    with pytest.raises(ValueError, match=r"instance_norm: .* is 1 with L=1"):
        evaluate(out, {"x": ones})
    values = {"x": ones, mean.name: np.zeros(3, np.float32), var.name: np.ones(3, np.float32)}
    np.testing.assert_allclose(evaluate(C.inference(out), values), ones / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_layers_make_torch_named_params_and_refuse_bad_inputs():
    x = Input("x", ("batch", 6, 4, 4))
    with nn.names():
        group, instance, plain = nn.GroupNorm(3), nn.InstanceNorm2d(affine=True, track_running_stats=True), \
            nn.InstanceNorm1d()
        instance(group(x))
        plain(Input("seq", ("batch", 6, 5)))
    assert [(p.name, p.shape) for p in group.params] == [("group_norm.weight", (6,)), ("group_norm.bias", (6,))]
    assert [p.name for p in instance.params] == ["instance_norm.weight", "instance_norm.bias"]
    assert [b.name for b in instance.buffers] == ["instance_norm.running_mean", "instance_norm.running_var"]
    assert plain.params == [] and plain.buffers == []
    cases = [
        (lambda: nn.GroupNorm(4)(x), r"GroupNorm .*num_groups=4 must divide the input's channels, got 6"),
        (lambda: nn.GroupNorm(0), r"num_groups: expected a positive int, got 0"),
        (lambda: nn.GroupNorm(2, affine=1), r"affine: expected True or False, got 1"),
        (lambda: nn.InstanceNorm2d()(Input("v", ("batch", 6, 4))), r"InstanceNorm2d .*expected an input of shape "
                                                                   r"\(N, C, H, W\), got shape \('batch', 6, 4\)"),
        (lambda: nn.InstanceNorm1d(momentum=2), r"momentum: expected a number in \[0, 1\], got 2"),
        (lambda: group(Input("y", ("batch", 4, 4, 4))), r"called on an input with 4 channels"),
    ]
    for make, message in cases:
        with pytest.raises(C.GraphError, match=message):
            make()
