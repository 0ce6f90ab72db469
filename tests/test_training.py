"""The compiled training step: epochs, checkpoints, shared parameters, NaN diagnosis, the main job."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import compiler as sp
import runtime
from compiler import optim
from compiler.model_file import ModelFileError, default_model_spec, load_model_file
from compiler.train_job import train


def mlp_loss(dtype="float32", prefix=""):
    x = sp.Input("x", ("batch", 6), dtype)
    y = sp.Input("y", ("batch",), "int64")
    W1 = sp.Param(f"{prefix}W1", (6, 8), dtype=dtype)
    b1 = sp.Param(f"{prefix}b1", (8,), init="zeros", dtype=dtype)
    W2 = sp.Param(f"{prefix}W2", (8, 3), dtype=dtype)
    logits = sp.tanh(x @ W1 + b1) @ W2
    return sp.cross_entropy(logits, y), logits


def data(n=37, dtype="float32", seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 6)).astype(dtype), "y": rng.integers(0, 3, n)}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_epoch_equals_the_same_steps_one_by_one(dtype):
    loss, _ = mlp_loss(dtype)
    inputs = data(dtype=dtype)
    native = sp.compile_step(loss, optim.Adam(lr=0.01), seed=3)
    by_hand = sp.compile_step(loss, optim.Adam(lr=0.01), seed=3)
    mean = native.run_epoch(inputs, batch_size=8, seed=11)
    order = np.random.default_rng(11).permutation(37)
    losses = []
    for start in range(0, 37, 8):  # the last batch has 5 rows: it runs, smaller
        index = order[start:start + 8]
        losses.append(by_hand(x=np.ascontiguousarray(inputs["x"][index]), y=np.ascontiguousarray(inputs["y"][index])))
    assert native.step_count == by_hand.step_count == 5
    np.testing.assert_array_equal(native.last_epoch_losses, np.array(losses))
    for name in native.params:
        np.testing.assert_array_equal(native.params[name], by_hand.params[name])
    sizes = np.array([8, 8, 8, 8, 5])
    assert mean == pytest.approx(float(np.dot(losses, sizes) / 37), rel=1e-12)


def test_save_load_and_continue_is_bit_identical(tmp_path):
    loss, _ = mlp_loss()
    inputs = data()
    straight = sp.compile_step(loss, optim.Adam(lr=0.01), seed=1)
    for epoch in range(4):
        straight.run_epoch(inputs, 8, seed=epoch)
    first = sp.compile_step(loss, optim.Adam(lr=0.01), seed=1)
    for epoch in range(2):
        first.run_epoch(inputs, 8, seed=epoch)
    path = tmp_path / "checkpoint.npz"
    first.save(path)
    resumed = sp.compile_step(loss, optim.Adam(lr=0.01), seed=99)  # different initial values, overwritten
    resumed.load(path)
    assert resumed.step_count == first.step_count
    for epoch in range(2, 4):
        resumed.run_epoch(inputs, 8, seed=epoch)
    for name in straight.params:
        np.testing.assert_array_equal(resumed.params[name], straight.params[name])
    for name in straight.state:
        np.testing.assert_array_equal(resumed.state[name], straight.state[name])
    assert not list(tmp_path.glob(".symprop-*")), "the temporary file of the atomic write is gone"


def test_load_rejects_a_checkpoint_of_another_model(tmp_path):
    loss, _ = mlp_loss()
    other_loss, _ = mlp_loss(prefix="other_")
    step = sp.compile_step(loss, optim.SGD(lr=0.1))
    other = sp.compile_step(other_loss, optim.SGD(lr=0.1))
    other.save(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="does not match"):
        step.load(tmp_path / "other.npz")


def test_inference_function_reads_the_live_parameters():
    loss, logits = mlp_loss()
    inputs = data()
    step = sp.compile_step(loss, optim.SGD(lr=0.5), seed=0)
    predict = step.function(logits)
    before = predict(x=inputs["x"])
    step.run_epoch(inputs, 8)
    after = predict(x=inputs["x"])
    assert not np.allclose(before, after)
    expected = sp.evaluate(logits, {"x": inputs["x"], **step.params})
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)


def test_subset_training_and_shared_parameters():
    x = sp.Input("x", ("batch", 4))
    shared = sp.Param("shared", (4, 4))
    head_a, head_b = sp.Param("head_a", (4, 1)), sp.Param("head_b", (4, 1))
    loss_a = sp.mean((x @ shared @ head_a) ** 2)
    loss_b = sp.mean((x @ shared @ head_b - 1.0) ** 2)
    step_a = sp.compile_step(loss_a, optim.SGD(lr=0.1), params=[head_a], seed=0)
    step_b = sp.compile_step(loss_b, optim.SGD(lr=0.1), share=step_a, seed=5)
    assert step_b.params["shared"] is step_a.params["shared"]
    frozen = step_a.params["shared"].copy()
    inputs = {"x": np.random.default_rng(0).standard_normal((16, 4)).astype("float32")}
    step_a(**inputs)
    np.testing.assert_array_equal(step_a.params["shared"], frozen)  # not trained by step_a
    step_b(**inputs)
    assert not np.array_equal(step_a.params["shared"], frozen)  # step_b trains the same buffer


def test_debug_nans_names_the_step_and_the_node():
    x = sp.Input("x", ("batch", 3))
    w = sp.Param("w", (3,), init="ones")
    loss = sp.mean(sp.log(x @ w))
    step = sp.compile_step(loss, optim.SGD(lr=0.1), debug_nans=True)
    good = np.ones((2, 3), np.float32)
    step(x=good)
    kept = step.params["w"].copy()
    with pytest.raises(FloatingPointError, match=r"step 2: .*not finite.*map\[log"):
        step(x=-good)
    np.testing.assert_array_equal(step.params["w"], kept)  # the bad step is not applied


def test_debug_nans_from_the_environment(monkeypatch):
    monkeypatch.setenv("SYMPROP_DEBUG_NANS", "1")
    loss, _ = mlp_loss()
    assert sp.compile_step(loss, optim.SGD(lr=0.1)).debug_nans


def test_fit_records_history_checkpoints_and_stops_early(tmp_path):
    loss, logits = mlp_loss()
    inputs = data()
    step = sp.compile_step(loss, optim.SGD(lr=0.1), seed=0)
    history = runtime.fit(step, inputs, epochs=10, batch_size=8, checkpoint_every=2,
                          checkpoint_path=tmp_path / "epoch{epoch}.npz", early_stopping=2, monitor="val",
                          progress=False, validate=lambda: {"val": 1.0})
    assert len(history) == 3  # the best "val" is epoch 1's; two more without improvement
    assert history["val"] == [1.0, 1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch2.npz"]


def test_epoch_schedule_sets_the_rate_of_each_epoch():
    loss, _ = mlp_loss()
    step = sp.compile_step(loss, optim.SGD(lr=1.0))
    history = runtime.fit(step, data(), epochs=3, batch_size=8, epoch_schedule=lambda e: 0.1 / (e + 1), progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3])


def test_fit_takes_fresh_data_for_each_epoch_from_a_callable():
    loss, _ = mlp_loss()
    step = sp.compile_step(loss, optim.SGD(lr=0.1))
    asked = []

    def epoch_data(epoch):
        asked.append(epoch)
        return data(n=10 + epoch, seed=epoch)

    history = runtime.fit(step, epoch_data, epochs=3, batch_size=4, progress=False)
    assert asked == [1, 2, 3] and len(history["loss"]) == 3
    assert step.step_count == 3 + 3 + 4  # 11, 12 and 13 rows in batches of 4


def test_main_job_three_epochs_beats_85_percent():
    out = io.StringIO()
    result = train(default_model_spec(), epochs=3, progress=False, out=out)
    assert result["test_accuracy"] > 0.85
    assert "test accuracy" in out.getvalue()


def test_example_model_file_trains():
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "digits_mlp.toml")
    result = train(load_model_file(path), epochs=1, progress=False, out=io.StringIO())
    assert result["test_accuracy"] > 0.5


def test_bad_model_file_error_names_file_key_and_expectation(tmp_path):
    path = tmp_path / "bad.toml"
    text = open(os.path.join(os.path.dirname(__file__), "..", "examples", "digits_mlp.toml")).read()
    path.write_text(text.replace("units = 128", "units = -3"))
    with pytest.raises(ModelFileError) as error:
        load_model_file(path)
    message = str(error.value)
    assert str(path) in message and "model.layers[0].units" in message and "positive integer" in message


def test_cli_reports_a_bad_model_file(tmp_path):
    path = tmp_path / "bad.toml"
    text = open(os.path.join(os.path.dirname(__file__), "..", "examples", "digits_mlp.toml")).read()
    path.write_text(text.replace("input_features = 64", "input_features = 'many'"))
    done = subprocess.run([sys.executable, "-m", "compiler.cli", "train", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert str(path) in done.stderr and "input_features" in done.stderr


def test_scalar_parameters_of_a_sympy_model_train_and_stay_scalars():
    import sympy
    a, b, t = sympy.symbols("a b t", real=True)
    model = sp.from_sympy(a * sympy.sin(t) + b, inputs=[t], params=[a, b], dtype="float64", init="zeros")
    y = sp.Input("y", ("batch",), "float64")
    step = sp.compile_step(sp.mse(model, y), optim.Adam(lr=0.05))
    times = np.linspace(0, 6, 50)
    data = {"t": times, "y": 1.5 * np.sin(times) - 0.5}
    for _ in range(400):
        step.run_epoch(data, batch_size=50, shuffle=False)
    assert step.params["a"].shape == () and step.params["b"].shape == ()
    assert float(step.params["a"]) == pytest.approx(1.5, abs=1e-3)
    assert float(step.params["b"]) == pytest.approx(-0.5, abs=1e-3)


def test_assigning_a_parameter_copies_into_the_live_array():
    loss, logits = mlp_loss()
    step = sp.compile_step(loss, optim.SGD(lr=0.1))
    live = step.params["W1"]
    step.params["W1"] = np.zeros((6, 8))
    assert step.params["W1"] is live and not live.any()
    predict = step.function(logits)
    np.testing.assert_array_equal(predict(x=np.ones((2, 6), np.float32)), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        step.params["W1"] = np.zeros((8, 6))
    with pytest.raises(KeyError, match="no parameter named 'V'"):
        step.params["V"] = np.zeros(3)


def test_threads_calling_one_step_never_interleave_inside_it():
    import threading
    loss, logits = mlp_loss()
    step = sp.compile_step(loss, optim.SGD(lr=0.0))
    predict = step.function(logits)
    small, large = data(n=3), data(n=300)
    expected = {3: predict(x=small["x"]), 300: predict(x=large["x"])}
    errors = []

    def worker(inputs):
        for _ in range(200):
            out = predict(x=inputs["x"])  # alternating batch sizes rebind the shared arena
            if not np.array_equal(out, expected[len(inputs["x"])]):
                errors.append(len(inputs["x"]))

    threads = [threading.Thread(target=worker, args=(d,)) for d in (small, large, small, large)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
