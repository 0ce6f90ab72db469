"""Random numbers inside compiled code: Philox-4x32-10 drawn in the loops (random_uniform,
random_normal, dropout), equal bit for bit to the NumPy reference, reproducible from a seed in
any process, new with every call and every training step, and distributed as they should be."""
from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import compiler as C
from compiler import optim
from compiler.primitives.random import make_random
from runtime import philox

B = "batch"
SHAPES = [(7,), (3, 5), (B, 4), (2, B, 3)]


def concrete(shape, batch):
    return tuple(batch if d == B else d for d in shape)


# ---- the generator ----------------------------------------------------------------------------------


def test_philox_matches_the_published_known_answers():
    """Random123's known-answer vectors for Philox-4x32-10."""
    cases = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for counter, key, expected in cases:
        words = philox.philox4x32(*[np.array([c], np.uint32) for c in counter], *key)
        assert tuple(int(w[0]) for w in words) == expected


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_compiled_uniforms_equal_the_reference_bit_for_bit(shape, dtype):
    node = C.random_uniform(shape, dtype)
    fn = C.compile(node)
    for batch, seed, counter in ((3, 0, 1), (5, -7, 2), (1, 2 ** 40 + 3, 2 ** 33 + 5)):
        dims = {B: batch} if B in shape else {}
        got = fn(**dims, rng_seed=seed, rng_counter=counter)
        expected = C.evaluate(node, {**dims, "rng_seed": seed, "rng_counter": counter})
        assert got.dtype == np.dtype(dtype) and got.shape == concrete(shape, batch)
        np.testing.assert_array_equal(got, expected)
        assert np.all((got >= 0) & (got < 1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_compiled_normals_equal_the_reference(shape, dtype):
    """The uniforms are the same bits; Box-Muller's log, sqrt and cos are the compiler's own
    vectorised functions, within an ulp or two of NumPy's."""
    node = C.random_normal(shape, dtype)
    fn = C.compile(node)
    dims = {B: 6} if B in shape else {}
    got = fn(**dims, rng_seed=11, rng_counter=4)
    expected = C.evaluate(node, {**dims, "rng_seed": 11, "rng_counter": 4})
    tolerance = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def test_a_random_node_read_through_layout_ops_is_the_same_tensor():
    """Each element is drawn from its own index wherever it is read: transposed, sliced, broadcast."""
    r = C.random_uniform((4, 6), "float64")
    row = C.random_uniform((1, 6), "float64")
    outputs = [r.T, r[1:, ::-2], r + row, C.flip(r, 0) * 2]
    got = C.compile(outputs)(rng_counter=9)
    for g, e in zip(got, C.evaluate(outputs, {"rng_counter": 9})):
        np.testing.assert_array_equal(g, e)
    base, row_values = C.evaluate([r, row], {"rng_counter": 9})
    np.testing.assert_array_equal(got[0], base.T)
    np.testing.assert_array_equal(got[2], base + row_values)


def test_random_nodes_under_validity_bounds_in_reductions_and_products_equal_the_reference():
    """Pads and concat pieces guard a draw like a load; reductions accumulate draws; a matrix
    product reads a stored draw; a float64 loop reads a float32 uniform exactly."""
    x = C.Input("x", (B, 3), "float64")
    r = C.random_uniform((B, 3), "float64")
    n = C.random_normal((3, 4), "float64")
    u32 = C.random_uniform((B, 3))
    outputs = [C.pad(r, ((0, 0), (2, 1)), value=0.5), C.concat([r[:, :2], x, C.flip(r, 1)], 1),
               r.sum(axis=0), (r * x).sum(), (x + r) @ n, C.softmax(n, axis=0),
               u32.astype("float64") * x, C.pad(C.random_normal((B, 2)), ((0, 0), (1, 1)), "reflect")]
    values = {"x": np.random.default_rng(5).normal(size=(4, 3)), "rng_seed": 17, "rng_counter": 3}
    got = C.compile(outputs)(**values)
    for k, (g, e) in enumerate(zip(got, C.evaluate(outputs, values))):
        tolerance = 0 if k in (0, 1, 6) else 1e-6 if g.dtype == np.float32 else 1e-12  # sums and normals round
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance, err_msg=f"output {k}")


def test_the_same_seed_and_counter_draw_the_same_bits_in_a_fresh_process():
    code = textwrap.dedent("""
        import compiler as C, numpy as np
        x = C.Input("x", ("batch", 5))
        out = [C.random_uniform(("batch", 5)), C.random_normal((3,), "float64"), C.ops.dropout(x, 0.25)]
        values = C.compile(out)(x=np.ones((4, 5), np.float32), rng_seed=1234, rng_counter=77)
        print(";".join(v.tobytes().hex() for v in values))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    x = C.Input("x", (B, 5))
    out = [C.random_uniform((B, 5)), C.random_normal((3,), "float64"), C.ops.dropout(x, 0.25)]
    here = C.compile(out)(x=np.ones((4, 5), np.float32), rng_seed=1234, rng_counter=77)
    assert done.stdout.strip() == ";".join(v.tobytes().hex() for v in here)


def test_counters_seeds_and_streams_draw_different_numbers():
    a, b = C.random_uniform((64,)), C.random_uniform((64,))
    fn = C.compile([a, b])
    first, second = fn(rng_counter=1), fn(rng_counter=2)
    assert not np.array_equal(first[0], first[1]), "two random nodes of one program draw one stream"
    assert not np.array_equal(first[0], second[0]), "a new counter drew the same numbers"
    assert not np.array_equal(first[0], fn(rng_counter=1, rng_seed=1)[0]), "a new seed drew the same numbers"
    np.testing.assert_array_equal(fn(rng_counter=1)[0], first[0])


def test_a_compiled_function_draws_new_numbers_each_call_and_repeats_from_a_fresh_start():
    node = C.random_uniform((32,))
    fn = C.compile(node)
    calls = [fn() for _ in range(3)]
    assert not np.array_equal(calls[0], calls[1]) and not np.array_equal(calls[1], calls[2])
    for counter, values in enumerate(calls, start=1):  # the counter is the call's number; the seed 0
        np.testing.assert_array_equal(values, C.evaluate(node, {"rng_seed": 0, "rng_counter": counter}))
    np.testing.assert_array_equal(C.evaluate(node, {}), calls[0])  # evaluate's defaults: the first call
    fresh = C.compile(node)
    np.testing.assert_array_equal(fresh(), calls[0])
    fresh.random.seed = 5
    np.testing.assert_array_equal(fresh(), C.evaluate(node, {"rng_seed": 5, "rng_counter": 2}))


def test_bad_seeds_and_counters_name_the_argument():
    fn = C.compile(C.random_uniform((4,)))
    with pytest.raises(TypeError, match="'rng_seed' must be an integer.*1.5"):
        fn(rng_seed=1.5)
    with pytest.raises(ValueError, match="'rng_counter' must fit in int64, got 18446744073709551616"):
        fn(rng_counter=2 ** 64)
    with pytest.raises(C.GraphError, match="random_normal: dtype must be float32 or float64, got 'int64'"):
        C.random_normal((3,), "int64")
    with pytest.raises(C.GraphError, match="random: distribution must be one of"):
        make_random("cauchy", (3,))


def test_the_generator_vectorises():
    """Philox is integer arithmetic in the loop: vector 32x32->64-bit multiplies, no calls."""
    x = C.Input("x", (B, 256))
    ir_text = C.compile([C.ops.dropout(x, 0.5), C.random_normal((B, 256))]).llvm_ir(optimized=True)
    widths = {int(n) for n in re.findall(r"mul (?:nuw )?(?:nsw )?<(\d+) x i64>", ir_text)}
    assert widths and max(widths) >= 4, "the Philox rounds were not vectorised"
    kernels = re.findall(r"define [^\n]*@\w+_k\d+\(.*?\n}\n", ir_text, re.S)
    assert len(kernels) == 1  # one loop: both read the seed and the counter (sibling loops are joined)
    called = {name for body in kernels for name in re.findall(r"call [^\n]*?@([\w.]+)", body)}
    assert all(name.startswith("llvm.") for name in called), f"a kernel calls {called}"


def test_the_same_model_built_twice_has_one_compiled_program():
    """Stream numbers are handed out per node built, but numbered in graph order for the cache key."""
    def build():
        x = C.Input("x", (B, 4))
        return C.ops.dropout(C.tanh(C.ops.dropout(x, 0.5)), 0.2) + C.random_normal((B, 4))

    first, second = build(), build()
    assert first is not second
    assert C.compile(first).key == C.compile(second).key


# ---- distributions ------------------------------------------------------------------------------------

SAMPLES = 200_000


def ks_statistic(samples: np.ndarray, cdf) -> float:
    """Kolmogorov-Smirnov distance between the empirical CDF of `samples` and `cdf`."""
    x = np.sort(samples.astype(np.float64))
    n = x.size
    expected = cdf(x)
    return float(max(np.max(np.arange(1, n + 1) / n - expected), np.max(expected - np.arange(n) / n)))


KS_LIMIT = 1.95 / math.sqrt(SAMPLES)  # the 0.1 % critical value
normal_cdf = np.vectorize(lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2))))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniforms_are_uniform(dtype):
    u = C.compile(C.random_uniform((SAMPLES,), dtype))(rng_seed=3).astype(np.float64)
    sigma = math.sqrt(1 / 12 / SAMPLES)
    assert abs(u.mean() - 0.5) < 5 * sigma
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / SAMPLES)  # var of (u - 1/2)**2 is 1/180
    assert ks_statistic(u, lambda t: np.clip(t, 0, 1)) < KS_LIMIT
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / math.sqrt(SAMPLES)  # neighbours are independent


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normals_are_standard_normal(dtype):
    z = C.compile(C.random_normal((SAMPLES,), dtype))(rng_seed=4).astype(np.float64)
    assert np.all(np.isfinite(z))
    assert abs(z.mean()) < 5 / math.sqrt(SAMPLES)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / SAMPLES)
    assert ks_statistic(z[:20_000], normal_cdf) < 1.95 / math.sqrt(20_000)
    assert abs(np.mean(z ** 3)) < 5 * math.sqrt(15 / SAMPLES)  # symmetric


# ---- dropout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.7])
def test_dropout_keeps_one_minus_p_of_the_units_scaled_by_its_inverse(p, dtype):
    x = C.Input("x", (B, 500), dtype)
    values = np.random.default_rng(0).uniform(0.5, 2.0, (200, 500)).astype(dtype)
    out = C.compile(C.ops.dropout(x, p))(x=values, rng_counter=3)
    kept = out != 0
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(out[kept], values[kept] * np.asarray(1 / (1 - p), dtype))
    expected_mask = C.evaluate(C.random_uniform((200, 500), dtype), {"rng_counter": 3}) >= p
    np.testing.assert_array_equal(kept, expected_mask)


def test_dropout_gradient_is_the_forward_mask_over_one_minus_p():
    p = 0.3
    x = C.Input("x", (B, 40), "float64")
    w = C.Input("w", (B, 40), "float64")
    y = C.ops.dropout(x, p)
    gx = C.grad((y * w).sum(), x)
    rng = np.random.default_rng(1)
    values = {"x": rng.uniform(0.5, 1.5, (8, 40)), "w": rng.normal(size=(8, 40)), "rng_counter": 5, "rng_seed": 9}
    mask = C.evaluate(C.random_uniform((8, 40), "float64"), values) >= p  # the forward's one random node
    out, grad = C.compile([y, gx])(**values)
    np.testing.assert_array_equal(out, np.where(mask, values["x"] * (1 / (1 - p)), 0))
    np.testing.assert_array_equal(grad, np.where(mask, values["w"] * (1 / (1 - p)), 0))
    for got, expected in zip((out, grad), C.evaluate([y, gx], values)):
        np.testing.assert_array_equal(got, expected)
    forward_only = C.compile(gx)(**{k: v for k, v in values.items() if k != "x"})
    np.testing.assert_array_equal(forward_only, grad)  # a backward program alone draws the same mask


def test_dropout_edge_probabilities_and_inference_mode():
    x = C.Input("x", (3, 4))
    values = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    assert C.ops.dropout(x, 0.0) is x
    assert C.ops.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(C.compile(C.ops.dropout(x, 1.0))(x=values), np.zeros((3, 4), np.float32))
    both = C.ops.dropout(x, 0.5)
    switched = C.inference(both)
    np.testing.assert_array_equal(C.compile(switched)(x=values), values)
    assert not any(arg["name"].startswith("rng_") for _, arg in C.compile(switched).arguments)
    with pytest.raises(ValueError, match="dropout: p must be a probability in \\[0, 1\\], got 1.5"):
        C.ops.dropout(x, 1.5)
    with pytest.raises(C.GraphError, match="dropout: x must be floating point, got int64"):
        C.ops.dropout(C.Input("labels", (3,), "int64"), 0.5)


def test_a_random_leaf_reparameterises_a_gaussian():
    """VAE-style sampling mu + sigma * eps: the gradient with respect to sigma is eps itself."""
    mu = C.Input("mu", (B, 3), dtype="float64")  # an encoder's outputs
    log_sigma = C.Input("log_sigma", (B, 3), dtype="float64")
    eps = C.random_normal((B, 3), "float64")
    sample = mu + C.exp(log_sigma) * eps
    g_mu, g_sigma = C.grad(sample.sum(), [mu, log_sigma])
    values = {"mu": np.zeros((5, 3)), "log_sigma": np.zeros((5, 3)), "rng_counter": 2}
    got = C.compile([sample, g_mu, g_sigma])(**values)
    noise = C.evaluate(C.random_normal((5, 3), "float64"), values)
    np.testing.assert_allclose(got[0], noise, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(got[1], np.ones((5, 3)))
    np.testing.assert_allclose(got[2], noise, rtol=1e-13, atol=1e-13)


# ---- training steps -----------------------------------------------------------------------------------

UNITS = 256
STEP_SCRIPT = """
import compiler as C, numpy as np
from compiler import optim
x = C.Input("x", ("batch", 1))
w = C.Param("w", (1, {units}), init="ones")
step = C.compile_step(C.ops.dropout(x * w, 0.5).sum(), optim.SGD(lr=0.25), seed={seed})
"""


def dropout_step(seed: int):
    """A step whose update reveals its mask: loss = sum(dropout(x * w)) with x = 1, so
    w -= 0.25 * 2 * mask, and the change of w divided by -0.5 is the mask."""
    scope: dict = {}
    exec(STEP_SCRIPT.format(units=UNITS, seed=seed), scope)
    return scope["step"]


def test_each_training_step_draws_a_new_mask_from_its_seed_and_step_number():
    step = dropout_step(seed=21)
    ones = np.ones((1, 1), np.float32)
    masks = []
    for number in (1, 2, 3):
        before = step.params["w"].copy()
        step(x=ones)
        masks.append((before - step.params["w"]) / 0.5)
        expected = C.evaluate(C.random_uniform((1, UNITS)), {"rng_seed": 21, "rng_counter": number}) >= 0.5
        np.testing.assert_array_equal(masks[-1], expected.astype(np.float32))
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    other = dropout_step(seed=22)
    before = other.params["w"].copy()
    other(x=ones)
    assert not np.array_equal((before - other.params["w"]) / 0.5, masks[0])


def test_a_native_epoch_draws_the_masks_of_the_same_steps_taken_one_by_one():
    data = np.ones((6, 1), np.float32)
    by_epoch, by_step = dropout_step(seed=3), dropout_step(seed=3)
    by_epoch.run_epoch({"x": data}, batch_size=1, shuffle=False)
    for _ in range(6):
        by_step(x=data[:1])
    assert by_epoch.step_count == by_step.step_count == 6
    np.testing.assert_array_equal(by_epoch.params["w"], by_step.params["w"])


def test_training_with_the_same_seed_in_two_processes_gives_identical_parameters():
    run = STEP_SCRIPT.format(units=UNITS, seed=8) + textwrap.dedent("""
        for _ in range(3):
            step(x=np.ones((2, 1), np.float32))
        step.run_epoch({"x": np.ones((5, 1), np.float32)}, batch_size=2)
        print(step.params["w"].tobytes().hex())
    """)
    first = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, check=True).stdout
    second = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, check=True).stdout
    assert first == second and len(first.strip()) == 8 * UNITS


def test_inspect_measures_a_step_with_dropout(tmp_path, capsys):
    """`symprop inspect --cost` feeds the model's data only: the step draws with its own seed and counter."""
    from compiler.cli import main
    model = tmp_path / "dropout_model.py"
    model.write_text(textwrap.dedent("""
        import compiler as C
        from compiler import optim
        x = C.Input("x", ("batch", 4)); y = C.Input("y", ("batch",), "int64")
        w = C.Param("w", (4, 3))
        loss = C.cross_entropy(C.ops.dropout(C.tanh(x @ w), 0.5), y)
        optimizer = optim.SGD(lr=0.1)
    """))
    assert main(["inspect", str(model), "--cost", "--batch", "8"]) == 0
    report = capsys.readouterr().out
    assert "backward" in report and "update" in report
    assert main(["inspect", str(model), "--format", "kernels"]) == 0
    assert "random0.float32.u0[i0, i1]" in capsys.readouterr().out  # drawn in the loops, never stored


def test_the_reference_step_draws_the_compiled_steps_masks():
    """UpdateGraph.evaluate uses the step number as the counter: steps 1 and 2 of a dropout model
    update the parameters exactly as the compiled step does (given its seed)."""
    from compiler.optim import update_graph
    x = C.Input("x", (B, 3), "float64")
    w = C.Param("w", (3, 5), init="ones", dtype="float64")
    loss = (C.ops.dropout(C.tanh(x @ w), 0.4) ** 2).sum()
    step = C.compile_step(loss, optim.SGD(lr=0.1), seed=6)
    graph = update_graph(loss, optim.SGD(lr=0.1))
    data = np.random.default_rng(2).normal(size=(4, 3))
    params = {"w": step.params["w"].copy()}
    for number in (1, 2):
        step(x=data)
        reference = graph.evaluate(params, {}, number, 0.1, {"x": data, "rng_seed": 6})
        params = reference.params
        np.testing.assert_allclose(step.params["w"], params["w"], rtol=1e-13, atol=1e-14)


def test_a_loaded_step_resumes_the_sequence_of_masks(tmp_path):
    ones = np.ones((1, 1), np.float32)
    running, resumed = dropout_step(seed=4), dropout_step(seed=4)
    running(x=ones)
    running(x=ones)
    running.save(tmp_path / "step.npz")
    resumed.load(tmp_path / "step.npz")
    running(x=ones)
    resumed(x=ones)
    np.testing.assert_array_equal(resumed.params["w"], running.params["w"])
