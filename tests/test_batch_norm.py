"""Batch normalisation with running statistics (compiler.ops.batch_norm).

Forward values in both modes against a NumPy transcription of PyTorch's definition (and
torch.nn.functional.batch_norm itself when torch is installed), gradients against central
differences, the running statistics a compiled step writes in place against PyTorch's update
formulas, the live ``step.buffers``, checkpoints, inference functions that change nothing, and the
errors a PyTorch user would expect.
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
import runtime
from compiler import optim
from compiler.optim import update_graph
from op_table import central_difference

SHAPES = {"2d": (6, 3), "3d": (5, 3, 4), "4d": (4, 3, 3, 2)}
EPS = 1e-5


def reference(x, gamma, beta, mean, var, eps=EPS):
    """PyTorch's definition, per channel (axis 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if gamma is not None:
        out = out * gamma.reshape(shape)
    if beta is not None:
        out = out + beta.reshape(shape)
    return out


def batch_statistics(x):
    """Per channel: mean, biased variance (normalisation) and unbiased variance (running estimate)."""
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axes), x.var(axes), x.var(axes, ddof=1)


def declare(shape, dtype="float64", batch="batch", affine=True, momentum=0.1, training=True, prefix="bn"):
    """(x, gamma, beta, running_mean, running_var, out) with x's first dimension symbolic."""
    x = C.Input(f"{prefix}_x", (batch,) + shape[1:], dtype)
    channels = shape[1]
    gamma = C.Param(f"{prefix}_gamma", (channels,), init="ones", dtype=dtype) if affine else None
    beta = C.Param(f"{prefix}_beta", (channels,), init="zeros", dtype=dtype) if affine else None
    mean = C.Buffer(f"{prefix}_running_mean", (channels,), init="zeros", dtype=dtype)
    var = C.Buffer(f"{prefix}_running_var", (channels,), init="ones", dtype=dtype)
    out = C.batch_norm(x, gamma, beta, mean, var, training=training, momentum=momentum)
    return x, gamma, beta, mean, var, out


def arrays(shape, seed=0):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    return {"x": rng.normal(size=shape) * 2 + 1, "gamma": rng.uniform(0.5, 2, channels),
            "beta": rng.normal(size=channels), "mean": rng.normal(size=channels),
            "var": rng.uniform(0.5, 2, channels)}


# ---- forward, both modes -----------------------------------------------------------------------


@pytest.mark.parametrize("rank", SHAPES)
def test_training_mode_normalises_with_the_batch_statistics(rank):
    shape = SHAPES[rank]
    x, gamma, beta, _, _, out = declare(shape, prefix=f"train{rank}")
    a = arrays(shape)
    mean, biased, _ = batch_statistics(a["x"])
    expected = reference(a["x"], a["gamma"], a["beta"], mean, biased)
    values = {x.name: a["x"], gamma.name: a["gamma"], beta.name: a["beta"]}
    np.testing.assert_allclose(C.evaluate(out, values), expected, rtol=1e-12, atol=1e-12)
    compiled = C.compile(out)  # no running statistic is read in training mode: no buffer argument
    assert {name for _, spec in compiled.arguments for name in [spec["name"]]} == set(values)
    np.testing.assert_allclose(compiled(**values), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", SHAPES)
def test_inference_mode_normalises_with_the_running_statistics(rank):
    shape = SHAPES[rank]
    x, gamma, beta, mean, var, out = declare(shape, prefix=f"infer{rank}")
    a = arrays(shape, seed=1)
    expected = reference(a["x"], a["gamma"], a["beta"], a["mean"], a["var"])
    values = {x.name: a["x"], gamma.name: a["gamma"], beta.name: a["beta"], mean.name: a["mean"], var.name: a["var"]}
    switched = C.inference(out)
    np.testing.assert_allclose(C.evaluate(switched, values), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C.compile(switched)(**values), expected, rtol=1e-12, atol=1e-12)
    # training=False declares the same inference graph directly
    declared = C.batch_norm(x, gamma, beta, mean, var, training=False)
    assert declared is switched


def test_without_affine_transform_and_without_running_statistics():
    shape = SHAPES["3d"]
    x = C.Input("plain_x", ("batch",) + shape[1:], "float64")
    a = arrays(shape, seed=2)
    mean, biased, _ = batch_statistics(a["x"])
    batch_only = C.batch_norm(x, None, None, None, None)
    assert batch_only.op != "training"  # nothing to switch: batch statistics in both modes
    np.testing.assert_allclose(C.evaluate(batch_only, {"plain_x": a["x"]}), reference(a["x"], None, None, mean, biased),
                               rtol=1e-12, atol=1e-12)
    _, _, _, rm, rv, out = declare(shape, affine=False, prefix="noaffine")
    values = {"noaffine_x": a["x"], rm.name: a["mean"], rv.name: a["var"]}
    np.testing.assert_allclose(C.evaluate(C.inference(out), values), reference(a["x"], None, None, a["mean"], a["var"]),
                               rtol=1e-12, atol=1e-12)


def test_float32_compiles_close_to_the_float64_reference():
    shape = SHAPES["4d"]
    x, gamma, beta, mean, var, out = declare(shape, dtype="float32", prefix="f32")
    a = arrays(shape, seed=3)
    values = {x.name: a["x"].astype(np.float32), gamma.name: a["gamma"].astype(np.float32),
              beta.name: a["beta"].astype(np.float32)}
    batch_mean, biased, _ = batch_statistics(a["x"].astype(np.float32).astype(np.float64))
    expected = reference(values[x.name].astype(np.float64), a["gamma"].astype(np.float32), a["beta"].astype(np.float32),
                         batch_mean, biased)
    result = C.compile(out)(**values)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)


# ---- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", SHAPES)
def test_gradients_match_central_differences(rank):
    shape = SHAPES[rank]
    x, gamma, beta, _, _, out = declare(shape, batch=shape[0], prefix=f"grad{rank}")
    a = arrays(shape, seed=4)
    weights = np.random.default_rng(5).normal(size=shape)
    loss = C.sum(out * C.const(weights))
    values = {x.name: a["x"], gamma.name: a["gamma"], beta.name: a["beta"]}
    gradients = C.evaluate(C.grad(loss, [x, gamma, beta]), values)

    def weighted(xs, g, b):
        mean, biased, _ = batch_statistics(xs)
        return float(np.sum(reference(xs, g, b, mean, biased) * weights))

    operands = [a["x"], a["gamma"], a["beta"]]
    for i, gradient in enumerate(gradients):
        expected = central_difference(weighted, operands, i)
        error = np.linalg.norm(gradient - expected) / max(np.linalg.norm(expected), 1e-5)
        assert error < 1e-6, f"operand {i}: relative error {error:.2e}"


def test_inference_mode_gradient_is_an_affine_map_of_the_running_statistics():
    shape = SHAPES["2d"]
    x, gamma, beta, mean, var, out = declare(shape, batch=shape[0], prefix="gradinfer")
    a = arrays(shape, seed=6)
    values = {x.name: a["x"], gamma.name: a["gamma"], beta.name: a["beta"], mean.name: a["mean"], var.name: a["var"]}
    (dx,) = C.evaluate(C.grad(C.sum(C.inference(out)), [x]), values)
    np.testing.assert_allclose(dx, np.broadcast_to(a["gamma"] / np.sqrt(a["var"] + EPS), shape), rtol=1e-12)


# ---- PyTorch itself, when installed ----------------------------------------------------------------


@pytest.mark.parametrize("rank", SHAPES)
def test_forward_gradients_and_running_statistics_equal_torch(rank):
    torch = pytest.importorskip("torch")
    shape = SHAPES[rank]
    momentum = 0.3
    x, gamma, beta, mean, var, out = declare(shape, batch=shape[0], momentum=momentum, prefix=f"torch{rank}")
    a = arrays(shape, seed=7)
    weights = np.random.default_rng(8).normal(size=shape)

    tx, tg, tb = (torch.tensor(a[k], requires_grad=True) for k in ("x", "gamma", "beta"))
    t_mean, t_var = torch.tensor(a["mean"]), torch.tensor(a["var"])
    t_out = torch.nn.functional.batch_norm(tx, t_mean, t_var, tg, tb, training=True, momentum=momentum, eps=EPS)
    (t_out * torch.tensor(weights)).sum().backward()

    values = {x.name: a["x"], gamma.name: a["gamma"], beta.name: a["beta"], mean.name: a["mean"], var.name: a["var"]}
    loss = C.sum(out * C.const(weights))
    graph = update_graph(loss, optim.SGD(lr=0.0))
    result = graph.evaluate({gamma.name: a["gamma"], beta.name: a["beta"]}, {}, 1, 0.0, {x.name: a["x"]},
                            buffers={mean.name: a["mean"], var.name: a["var"]})
    np.testing.assert_allclose(result.buffers[mean.name], t_mean.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(result.buffers[var.name], t_var.numpy(), rtol=1e-12, atol=1e-14)
    forward, *gradients = C.evaluate([out, *C.grad(loss, [x, gamma, beta])], values)
    np.testing.assert_allclose(forward, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(gradients, (tx.grad, tg.grad, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-9, atol=1e-12)
    t_inference = torch.nn.functional.batch_norm(torch.tensor(a["x"]), t_mean, t_var, torch.tensor(a["gamma"]),
                                                 torch.tensor(a["beta"]), training=False, eps=EPS)
    values.update({mean.name: t_mean.numpy(), var.name: t_var.numpy()})
    np.testing.assert_allclose(C.evaluate(C.inference(out), values), t_inference.numpy(), rtol=1e-10, atol=1e-12)


# ---- compiled training steps: running statistics in place ----------------------------------------


def conv_like_model(prefix, dtype="float64", momentum=0.1):
    """x (batch, 3, 4) -> batch norm -> relu -> flatten -> dense 12->4 -> cross-entropy."""
    x = C.Input("x", ("batch", 3, 4), dtype)
    labels = C.Input("labels", ("batch",), "int64")
    gamma = C.Param(f"{prefix}_gamma", (3,), init="ones", dtype=dtype)
    beta = C.Param(f"{prefix}_beta", (3,), init="zeros", dtype=dtype)
    mean = C.Buffer(f"{prefix}_mean", (3,), init="zeros", dtype=dtype)
    var = C.Buffer(f"{prefix}_var", (3,), init="ones", dtype=dtype)
    w = C.Param(f"{prefix}_w", (12, 4), dtype=dtype)
    hidden = C.relu(C.batch_norm(x, gamma, beta, mean, var, momentum=momentum))
    logits = C.reshape(hidden, ("batch", 12)) @ w
    return C.cross_entropy(logits, labels), logits, mean, var


def batches(count, size=6, seed=9, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [{"x": (rng.normal(size=(size, 3, 4)) * 1.5 + 0.5).astype(dtype), "labels": rng.integers(0, 4, size)}
            for _ in range(count)]


def test_compiled_steps_update_the_running_statistics_as_torch_does():
    momentum = 0.25
    loss, _, mean, var, = conv_like_model("steps", momentum=momentum)
    step = C.compile_step(loss, optim.Adam(lr=0.01), seed=0)
    assert set(step.buffers) == {mean.name, var.name} and not set(step.buffers) & set(step.params)
    assert not any(name.startswith(("steps_mean", "steps_var")) for name in step.state)  # never trained
    live_mean, live_var = step.buffers[mean.name], step.buffers[var.name]
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for batch in batches(4):
        step(**batch)
        batch_mean, _, unbiased = batch_statistics(batch["x"])
        expected_mean = (1 - momentum) * expected_mean + momentum * batch_mean
        expected_var = (1 - momentum) * expected_var + momentum * unbiased
        np.testing.assert_allclose(step.buffers[mean.name], expected_mean, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(step.buffers[var.name], expected_var, rtol=1e-13, atol=1e-15)
    assert step.buffers[mean.name] is live_mean and step.buffers[var.name] is live_var  # updated in place


def test_compiled_step_equals_the_reference_step_buffers_included():
    loss, _, mean, var = conv_like_model("ref")
    step = C.compile_step(loss, optim.SGD(lr=0.1, momentum=0.9), seed=1)
    graph = update_graph(loss, optim.SGD(lr=0.1, momentum=0.9))
    params = {k: v.copy() for k, v in step.params.items()}
    state = {k: v.copy() for k, v in step.state.items()}
    buffers = {k: v.copy() for k, v in step.buffers.items()}
    for t, batch in enumerate(batches(3, seed=10), start=1):
        loss_value = step(**batch)
        expected = graph.evaluate(params, state, t, 0.1, batch, buffers=buffers)
        assert loss_value == pytest.approx(expected.loss, rel=1e-12)
        params, state, buffers = expected.params, expected.state, expected.buffers
        for group, live in ((params, step.params), (state, step.state), (buffers, step.buffers)):
            for name, value in group.items():
                np.testing.assert_allclose(live[name], value, rtol=1e-11, atol=1e-13, err_msg=name)


def test_a_native_epoch_updates_the_buffers_once_per_batch():
    loss, _, mean, var = conv_like_model("epoch")
    native = C.compile_step(loss, optim.SGD(lr=0.05), seed=2)
    by_hand = C.compile_step(loss, optim.SGD(lr=0.05), seed=2)
    data = batches(1, size=23, seed=11)[0]
    native.run_epoch(data, batch_size=5, shuffle=False)
    for start in range(0, 23, 5):  # the last batch holds the 3 remaining rows
        by_hand(**{k: v[start:start + 5] for k, v in data.items()})
    for name in native.buffers:
        np.testing.assert_allclose(native.buffers[name], by_hand.buffers[name], rtol=1e-13, atol=1e-15)
    assert not np.array_equal(native.buffers[mean.name], np.zeros(3))


def dense_model(prefix):
    """x (batch, 3) -> batch norm -> dense 3->4 -> cross-entropy: one value per channel per sample."""
    x = C.Input("x", ("batch", 3), "float64")
    labels = C.Input("labels", ("batch",), "int64")
    mean = C.Buffer(f"{prefix}_mean", (3,), init="zeros", dtype="float64")
    var = C.Buffer(f"{prefix}_var", (3,), init="ones", dtype="float64")
    w = C.Param(f"{prefix}_w", (3, 4), dtype="float64")
    hidden = C.batch_norm(x, None, None, mean, var)
    return C.cross_entropy(hidden @ w, labels), hidden


def test_one_value_per_channel_in_training_is_refused_before_any_kernel_runs():
    """torch's "Expected more than 1 value per channel when training", for a symbolic batch bound to 1: a
    step call, an epoch whose last batch holds one row (refused before its first batch), a compiled
    function and the evaluator raise ValueError naming batch_norm and batch=1, and change nothing; the unbiased running
    variance would have been 0 * inf = nan. More than one value (a batch of one (3, 4) sample) is fine."""
    loss, hidden = dense_model("one")
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=0)
    data = batches(1, size=9)[0]
    data["x"] = np.ascontiguousarray(data["x"][:, :, 0])
    before = {name: value.copy() for name, value in {**step.params, **step.buffers}.items()}
    message = r"batch_norm: .*values per channel.* is 1 with batch=1; it must be at least 2"
    with pytest.raises(ValueError, match=message):
        step(x=data["x"][:1], labels=data["labels"][:1])
    with pytest.raises(ValueError, match=message):
        step.run_epoch(data, batch_size=4)  # batches of 4, 4 and 1
    with pytest.raises(ValueError, match=message):
        C.compile(hidden)(x=data["x"][:1])
    with pytest.raises(ValueError, match=message):
        C.evaluate(hidden, {"x": data["x"][:1]})
    for name, value in {**step.params, **step.buffers}.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    step.run_epoch(data, batch_size=3)
    assert all(np.isfinite(value).all() for value in step.buffers.values())
    inference = step.function(hidden)  # the running statistics: one row is fine
    np.testing.assert_allclose(inference(x=data["x"][:1]), inference(x=data["x"][:2])[:1], rtol=1e-14)
    spatial, _, _, _ = conv_like_model("spatial")
    one_sample = {k: v[:1] for k, v in batches(1)[0].items()}
    assert np.isfinite(C.compile_step(spatial, optim.SGD(lr=0.1), seed=0)(**one_sample))


def test_assigning_a_buffer_copies_into_the_live_array_the_step_reads():
    loss, logits, mean, var = conv_like_model("assign")
    step = C.compile_step(loss, optim.SGD(lr=0.0), seed=3)
    live = step.buffers[var.name]
    step.buffers[var.name] = np.full(3, 4.0)
    assert step.buffers[var.name] is live and np.all(live == 4.0)
    with pytest.raises(ValueError, match="assign_var"):
        step.buffers[var.name] = np.zeros(4)
    with pytest.raises(KeyError, match="no buffer named"):
        step.buffers["assign_gamma"] = np.zeros(3)
    batch = batches(1, seed=12)[0]
    step(**batch)
    _, _, unbiased = batch_statistics(batch["x"])
    np.testing.assert_allclose(step.buffers[var.name], 0.9 * 4.0 + 0.1 * unbiased, rtol=1e-13)


# ---- inference functions and fit's validation never change the buffers ---------------------------


def test_step_function_runs_in_inference_mode_and_changes_nothing():
    loss, logits, mean, var = conv_like_model("function")
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=4)
    for batch in batches(3, seed=13):
        step(**batch)
    predict = step.function(logits)
    assert [spec["name"] for _, spec in predict.arguments] == ["x"]  # parameters and buffers are bound live
    x = batches(1, size=7, seed=14)[0]["x"]
    before = {name: array.copy() for name, array in step.buffers.items()}
    first, second = predict(x=x), predict(x=x)
    np.testing.assert_array_equal(first, second)
    for name, array in step.buffers.items():
        np.testing.assert_array_equal(array, before[name])
    values = {"x": x, **step.params, **step.buffers}
    np.testing.assert_allclose(first, C.evaluate(C.inference(logits), values), rtol=1e-12)
    # the running statistics are read, not the batch's: one row alone gives its own prediction
    np.testing.assert_allclose(predict(x=x[:1]), first[:1], rtol=1e-12)
    step.buffers[mean.name] = step.buffers[mean.name] + 1.0  # live: the bound function sees the new value
    assert not np.allclose(predict(x=x), first)


def test_fit_validation_reads_the_buffers_without_updating_them():
    loss, logits, mean, var = conv_like_model("fit")
    step = C.compile_step(loss, optim.SGD(lr=0.05), seed=5)
    predict = step.function(logits)
    data = batches(1, size=30, seed=15)[0]
    held_out = batches(1, size=9, seed=16)[0]
    seen = []

    def validate():
        before = {name: array.copy() for name, array in step.buffers.items()}
        outputs = [predict(x=held_out["x"]) for _ in range(2)]
        seen.append((before, {name: array.copy() for name, array in step.buffers.items()}, outputs))
        return {"validation_sum": float(outputs[0].sum())}

    runtime.fit(step, data, epochs=3, batch_size=8, validate=validate, progress=False)
    assert len(seen) == 3
    for before, after, (first, second) in seen:
        np.testing.assert_array_equal(first, second)
        for name in before:
            np.testing.assert_array_equal(before[name], after[name])
    assert not np.array_equal(seen[0][0][mean.name], seen[-1][0][mean.name])  # training moved them between epochs


# ---- checkpoints ---------------------------------------------------------------------------------


def test_save_and_load_round_trip_the_buffers(tmp_path):
    loss, _, mean, var = conv_like_model("ckpt")
    step = C.compile_step(loss, optim.Adam(lr=0.01), seed=6)
    for batch in batches(2, seed=17):
        step(**batch)
    path = tmp_path / "bn.npz"
    step.save(path)
    saved = {name: array.copy() for name, array in step.buffers.items()}
    with np.load(path) as archive:
        assert {f"buffer/{mean.name}", f"buffer/{var.name}"} <= set(archive.files)
    for batch in batches(2, seed=18):
        step(**batch)
    assert not np.array_equal(step.buffers[mean.name], saved[mean.name])
    live = step.buffers[mean.name]
    step.load(path)
    assert step.buffers[mean.name] is live
    for name in saved:
        np.testing.assert_array_equal(step.buffers[name], saved[name])


def test_a_checkpoint_without_buffers_still_loads(tmp_path):
    loss, _, mean, var = conv_like_model("old")
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=7)
    step(**batches(1, seed=19)[0])
    path = tmp_path / "old.npz"
    step.save(path)
    with np.load(path) as archive:  # as written before buffers existed
        old = {name: archive[name] for name in archive.files if not name.startswith("buffer/")}
    np.savez(path, **old)
    kept = {name: array.copy() for name, array in step.buffers.items()}
    step.params["old_w"] = np.zeros((12, 4))
    step.load(path)
    np.testing.assert_array_equal(step.params["old_w"], old["param/old_w"])
    for name in kept:
        np.testing.assert_array_equal(step.buffers[name], kept[name])


def test_a_checkpoint_with_a_wrong_buffer_changes_nothing(tmp_path):
    loss, _, mean, var = conv_like_model("badckpt")
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=8)
    path = tmp_path / "bad.npz"
    step.save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays[f"buffer/{var.name}"] = np.ones(5)
    arrays[f"param/badckpt_w"] = np.full((12, 4), 7.0)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"buffer '{var.name}' is \\(5,\\)"):
        step.load(path)
    assert not np.any(step.params["badckpt_w"] == 7.0)
    del arrays[f"buffer/{mean.name}"]
    arrays[f"buffer/{var.name}"] = np.ones(3)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"missing \\['buffer/{mean.name}'\\]"):
        step.load(path)


# ---- sharing -------------------------------------------------------------------------------------


def test_steps_that_share_parameters_share_buffers():
    loss, _, mean, var = conv_like_model("shared")
    first = C.compile_step(loss, optim.SGD(lr=0.1), seed=9)
    second = C.compile_step(loss, optim.SGD(lr=0.1), seed=9, share=first)
    assert second.buffers[mean.name] is first.buffers[mean.name]
    second(**batches(1, seed=20)[0])
    assert not np.array_equal(first.buffers[mean.name], np.zeros(3))


# ---- errors ---------------------------------------------------------------------------------------


def test_errors_name_the_argument_both_shapes_and_the_line():
    x = C.Input("err_x", ("batch", 3, 5))
    good = C.Param("err_gamma", (3,), init="ones")
    mean, var = C.Buffer("err_mean", (3,)), C.Buffer("err_var", (3,), init="ones")
    with pytest.raises(C.GraphError, match=r"gamma has shape \(4,\), but x \('batch', 3, 5\) has 3 channels.*"
                                           r"test_batch_norm\.py:\d+"):
        C.batch_norm(x, C.Param("err_gamma4", (4,)), None, mean, var)
    with pytest.raises(C.GraphError, match=r"running_var has shape \(5,\), but x \('batch', 3, 5\)"):
        C.batch_norm(x, good, None, mean, C.Buffer("err_var5", (5,)))
    with pytest.raises(C.GraphError, match=r"running_mean must be a compiler.Buffer.*param 'err_pmean'"):
        C.batch_norm(x, good, None, C.Param("err_pmean", (3,)), var)
    with pytest.raises(C.GraphError, match=r"both be Buffers or both None, got Buffer 'err_mean' \(3,\) float32 and None"):
        C.batch_norm(x, good, None, mean, None)
    with pytest.raises(C.GraphError, match=r"x must have shape \(N, C\).*got \('batch',\)"):
        C.batch_norm(C.Input("err_flat", ("batch",)), None, None, None, None)
    with pytest.raises(C.GraphError, match="float tensor, got dtype int64"):
        C.batch_norm(C.Input("err_int", ("batch", 3), "int64"), None, None, mean, var)
    with pytest.raises(C.GraphError, match=r"momentum must be a number in \[0, 1\], got 1.5"):
        C.batch_norm(x, good, None, mean, var, momentum=1.5)
    with pytest.raises(C.GraphError, match="eps must be a positive number, got 0"):
        C.batch_norm(x, good, None, mean, var, eps=0)
    with pytest.raises(C.GraphError, match=r"x \(1, 3\) has one value per channel"):
        C.batch_norm(C.Input("err_one", (1, 3)), None, None, mean, var)
    with pytest.raises(C.GraphError, match="training=False normalises with running statistics"):
        C.batch_norm(x, None, None, None, None, training=False)
    with pytest.raises(C.GraphError, match="channel axis"):
        C.batch_norm(C.Input("err_sym", ("batch", "channels")), None, None, None, None)


def test_a_buffer_is_never_a_trained_parameter():
    loss, _, mean, var = conv_like_model("never")
    with pytest.raises(TypeError, match="'never_mean' is a Buffer"):
        update_graph(loss, optim.SGD(lr=0.1), params=[mean])
    with pytest.raises(TypeError, match="'never_var' is a Buffer"):
        C.compile_step(loss, optim.SGD(lr=0.1), params=[var])
    graph = update_graph(loss, optim.Adam())
    assert [p.name for p in graph.params] == ["never_gamma", "never_beta", "never_w"]
    assert [b.name for b in graph.buffers] == ["never_mean", "never_var"]


def test_a_non_finite_step_leaves_the_buffers_as_they_were():
    loss, _, mean, var = conv_like_model("nans")
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=10, debug_nans=True)
    step(**batches(1, seed=21)[0])
    before = {name: array.copy() for name, array in step.buffers.items()}
    bad = batches(1, seed=22)[0]
    bad["x"][0, 1, 2] = np.nan
    with pytest.raises(FloatingPointError, match="step 2: .*not finite; first non-finite value from"):
        step(**bad)
    for name, array in step.buffers.items():
        np.testing.assert_array_equal(array, before[name])
    assert step.step_count == 1


def test_a_frozen_batch_norm_in_a_training_step_reads_its_buffers_and_keeps_them():
    """training=False inside a loss (fine-tuning with frozen statistics): read live, never updated."""
    x = C.Input("x", ("batch", 3), "float64")
    mean = C.Buffer("frozen_mean", (3,), dtype="float64")
    var = C.Buffer("frozen_var", (3,), init="ones", dtype="float64")
    w = C.Param("frozen_w", (3,), init="ones", dtype="float64")
    loss = C.mean(C.batch_norm(x * w, None, None, mean, var, training=False) ** 2)
    step = C.compile_step(loss, optim.SGD(lr=0.0), seed=11)
    step.buffers[mean.name] = np.array([1.0, 2.0, 3.0])
    step.buffers[var.name] = np.array([4.0, 1.0, 0.25])
    a = np.random.default_rng(23).normal(size=(5, 3))
    expected = np.mean(((a - [1.0, 2.0, 3.0]) / np.sqrt(np.array([4.0, 1.0, 0.25]) + EPS)) ** 2)
    assert step(x=a) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(step.buffers[mean.name], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(step.buffers[var.name], [4.0, 1.0, 0.25])


def test_float32_steps_track_torch_running_statistics():
    torch = pytest.importorskip("torch")
    x = C.Input("x", ("batch", 4, 3, 3))
    gamma, beta = C.Param("f32_gamma", (4,), init="ones"), C.Param("f32_beta", (4,), init="zeros")
    mean, var = C.Buffer("f32_mean", (4,)), C.Buffer("f32_var", (4,), init="ones")
    loss = C.mean(C.batch_norm(x, gamma, beta, mean, var, momentum=0.3) ** 2)
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=12)
    t_mean, t_var = torch.zeros(4), torch.ones(4)
    rng = np.random.default_rng(24)
    for _ in range(4):
        batch = (rng.normal(size=(8, 4, 3, 3)) * 3 + 2).astype(np.float32)
        step(x=batch)
        torch.nn.functional.batch_norm(torch.tensor(batch), t_mean, t_var, training=True, momentum=0.3)
    assert step.buffers[mean.name].dtype == np.float32
    np.testing.assert_allclose(step.buffers[mean.name], t_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(step.buffers[var.name], t_var.numpy(), rtol=1e-5, atol=1e-6)
