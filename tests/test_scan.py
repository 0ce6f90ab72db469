"""compiler.scan: the loop equals the Python loop it stands for (evaluated, compiled, differentiated),
its gradient is backprop through time (finite differences, the unrolled graph), and its code does
not grow with the number of steps."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import compiler as C
from compiler import ops
from compiler.errors import GraphError


def _unrolled(step, init, xs, steps, reverse=False):
    """The Python loop scan stands for, on graph nodes: (final carry, stacked ys)."""
    carry, ys = init, [None] * steps
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        carry, ys[t] = step(carry, xs[t])
    return carry, ops.stack(ys)


def _rnn(T=5, B=3, I=4, H=6, dtype="float64", batch=None, steps=None):
    x = C.Input("x", (steps or T, batch or B, I), dtype=dtype)
    h0 = C.Input("h0", (batch or B, H), dtype=dtype)
    W, U, b = C.Param("W", (I, H), dtype=dtype), C.Param("U", (H, H), dtype=dtype), C.Param("b", (H,), dtype=dtype)

    def step(h, x_t):
        h = ops.tanh(x_t @ W + h @ U + b)
        return h, h * h
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=(T, B, I)), "h0": rng.normal(size=(B, H)), "W": rng.normal(size=(I, H)) * 0.5,
              "U": rng.normal(size=(H, H)) * 0.4, "b": rng.normal(size=H) * 0.1}
    return step, (x, h0, W, U, b), {k: v.astype(dtype) for k, v in values.items()}


def _close(actual, expected, tol=1e-10):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol)


def test_scan_equals_the_unrolled_loop_evaluated_compiled_and_differentiated():
    step, (x, h0, W, U, b), values = _rnn()
    h_T, ys = C.scan(step, h0, x)
    loss = ops.sum(ys) + ops.sum(h_T * h_T)
    u_T, u_ys = _unrolled(step, h0, x, 5)
    unrolled = ops.sum(u_ys) + ops.sum(u_T * u_T)
    wrt = [W, U, b, h0, x]
    expected = C.evaluate([unrolled, u_T, u_ys] + C.grad(unrolled, wrt), values)
    outputs = [loss, h_T, ys] + C.grad(loss, wrt)
    _close(C.evaluate(outputs, values), expected)
    _close(C.compile(outputs)(**values), expected)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("remat", [False, True])
def test_symbolic_steps_and_batch_reverse_and_remat(reverse, remat):
    step, (x, h0, W, U, b), values = _rnn(batch="batch", steps="T")
    h_T, ys = C.scan(step, h0, x, reverse=reverse, remat=remat)
    loss = ops.sum(ys * ys) + ops.sum(h_T)
    wrt = [W, U, b, h0, x]
    outputs = [loss, ys] + C.grad(loss, wrt)
    f = C.compile(outputs)
    for T, B in ((5, 3), (2, 1), (7, 4)):
        v = {k: a[:T, :B] if k == "x" else a[:B] if k == "h0" else a for k, a in values.items()}
        v["x"] = np.resize(v["x"], (T, B, 4))
        v["h0"] = np.resize(v["h0"], (B, 6))
        xs = C.Input("x", (T, B, 4), dtype="float64")
        hs = C.Input("h0", (B, 6), dtype="float64")
        u_T, u_ys = _unrolled(step, hs, xs, T, reverse)
        unrolled = ops.sum(u_ys * u_ys) + ops.sum(u_T)
        expected = C.evaluate([unrolled, u_ys] + C.grad(unrolled, [W, U, b, hs, xs]), v)
        _close(f(**v), expected)


def test_trees_of_carries_and_outputs_length_without_xs_and_int_carries():
    W = C.Param("W", (3, 3), dtype="float64")
    h0 = C.Input("h0", (2, 3), dtype="float64")

    def step(carry, _):
        h, c = carry["h"], carry["c"]
        h2 = ops.tanh(h @ W) + c
        return {"h": h2, "c": c * 0.5}, (h2, ops.sum(h2, axis=1))
    carry, (hs, sums) = C.scan(step, {"h": h0, "c": h0 * 2}, None, length=4)
    loss = ops.sum(hs) + ops.sum(sums * sums) + ops.sum(carry["c"])
    values = {"W": np.random.default_rng(1).normal(size=(3, 3)), "h0": np.random.default_rng(2).normal(size=(2, 3))}
    outputs = [loss, carry["h"], hs, sums] + C.grad(loss, [W, h0])
    _close(C.compile(outputs)(**values), C.evaluate(outputs, values))
    counter, _ = C.scan(lambda n, x_t: (n + 1, x_t), C.const(np.int64(0)), C.Input("x", (5, 2)))
    assert counter.dtype == "int64"
    assert int(C.compile(counter)(x=np.zeros((5, 2), np.float32))) == 5


def test_scan_inside_scan_and_gradients_against_the_unrolled_graph():
    x = C.Input("x", (3, 4, 2), dtype="float64")  # outer steps, inner steps, features
    W = C.Param("W", (2, 2), dtype="float64")
    h0 = C.Input("h0", (2,), dtype="float64")

    def inner(h, x_t):
        h = ops.tanh(h @ W + x_t)
        return h, h

    def outer(h, row):
        h, _ = C.scan(inner, h, row)
        return h * 0.9, ops.sum(h)
    h_T, sums = C.scan(outer, h0, x)
    loss = ops.sum(sums) + ops.sum(h_T)

    def unrolled_outer(h, row):
        h, _ = _unrolled(inner, h, row, 4)
        return h * 0.9, ops.sum(h)
    u_T, u_sums = _unrolled(unrolled_outer, h0, x, 3)
    unrolled = ops.sum(u_sums) + ops.sum(u_T)
    rng = np.random.default_rng(3)
    values = {"x": rng.normal(size=(3, 4, 2)), "W": rng.normal(size=(2, 2)), "h0": rng.normal(size=2)}
    expected = C.evaluate([unrolled] + C.grad(unrolled, [W, h0, x]), values)
    outputs = [loss] + C.grad(loss, [W, h0, x])
    _close(C.evaluate(outputs, values), expected)
    _close(C.compile(outputs)(**values), expected)


@pytest.mark.parametrize("remat", [False, True])
def test_captured_gradients_accumulated_in_the_loop_or_contracted_after_it(remat):
    """A captured value's cotangent that is a product or a sum over per-step values is one
    contraction of their stacks after the loop; any other is accumulated step by step."""
    x = C.Input("x", (6, 3), dtype="float64")
    w, v, M = (C.Param("w", (3,), dtype="float64"), C.Param("v", (3,), dtype="float64"),
               C.Param("M", (3, 3), dtype="float64"))

    def step(h, x_t):
        h = ops.tanh(h * ops.sin(w) + x_t @ M) + v * x_t  # sin(w): per-step, elementwise, accumulated
        return h, ops.sum(h * v)
    h_T, ys = C.scan(step, C.const(np.zeros(3)), x, remat=remat)
    loss = ops.sum(ys) + ops.sum(h_T * h_T)
    u_T, u_ys = _unrolled(step, C.const(np.zeros(3)), x, 6)
    unrolled = ops.sum(u_ys) + ops.sum(u_T * u_T)
    rng = np.random.default_rng(5)
    values = {"x": rng.normal(size=(6, 3)), "w": rng.normal(size=3), "v": rng.normal(size=3),
              "M": rng.normal(size=(3, 3)) * 0.5}
    expected = C.evaluate(C.grad(unrolled, [w, v, M, x]), values)
    _close(C.compile(C.grad(loss, [w, v, M, x]))(**values), expected)


def _finite_difference(f, values, name, eps=1e-6):
    grad = np.zeros_like(values[name])
    for i in np.ndindex(grad.shape):
        plus, minus = dict(values), dict(values)
        plus[name] = values[name].copy()
        minus[name] = values[name].copy()
        plus[name][i] += eps
        minus[name][i] -= eps
        grad[i] = (float(f(**plus)) - float(f(**minus))) / (2 * eps)
    return grad


@settings(max_examples=8, deadline=None)
@given(T=st.integers(1, 4), B=st.integers(1, 3), H=st.integers(1, 4), reverse=st.booleans(), remat=st.booleans())
def test_gradients_through_scan_equal_central_finite_differences(T, B, H, reverse, remat):
    step, (x, h0, W, U, b), values = _rnn(T=T, B=B, I=2, H=H)
    h_T, ys = C.scan(step, h0, x, reverse=reverse, remat=remat)
    loss = ops.sum(ys * C.const(np.linspace(-1, 1, T * B * H).reshape(T, B, H))) + ops.sum(h_T)
    f = C.compile(loss)
    grads = C.compile(C.grad(loss, [W, U, b, h0, x]))(**values)
    for name, g in zip(["W", "U", "b", "h0", "x"], grads):
        np.testing.assert_allclose(g, _finite_difference(f, values, name), rtol=1e-6, atol=1e-7)


def test_float32_training_step_through_scan_matches_the_reference():
    step, (x, h0, W, U, b), values = _rnn(dtype="float32", batch="batch")
    h_T, _ = C.scan(step, h0, x)
    loss = ops.mean(h_T * h_T)
    trainer = C.compile_step(loss, C.optim.SGD(0.1), params=[W, U, b])
    before = {k: trainer.params[k].copy() for k in ("W", "U", "b")}
    grads = C.evaluate(C.grad(loss, [W, U, b]), {**{k: values[k] for k in ("x", "h0")}, **before})
    trainer(x=values["x"], h0=values["h0"])
    for (name, old), g in zip(before.items(), grads):
        np.testing.assert_allclose(trainer.params[name], old - 0.1 * g, rtol=1e-5, atol=1e-6)


def _loop_code(T: int) -> tuple:
    """(kernel count, the scan loops' IR, their machine code) of an RNN step over T steps. Outside
    the loops, sizes that depend on T (the matrix products after the loop) differ, as they should."""
    x = C.Input("x", (T, 8, 16))
    W, U = C.Param("W", (16, 32)), C.Param("U", (32, 32))
    h0 = C.Input("h0", (8, 32))
    h_T, ys = C.scan(lambda h, x_t: (ops.tanh(x_t @ W + h @ U),) * 2, h0, x)
    loss = ops.sum(h_T * h_T) + ops.sum(ys)  # (a mean would put 1/T in the body)
    f = C.compile([loss] + C.grad(loss, [W, U]))
    loops = [k for k, kernel in enumerate(f.kernels()) if kernel["kind"] == "scan"]
    assert len(loops) == 2  # forward and backward

    def ir_functions(text):
        parts = re.split(r"\n(?=define )", text)
        return [re.sub(r"sp_[0-9a-f]+", "sp", part) for part in parts
                if any(re.search(r'^define .*_k%d(_|")' % k, part) for k in loops)]

    def instructions(assembly):  # machine instructions of the loops and their bodies' kernels
        count, inside = 0, False
        for line in assembly.splitlines():
            if re.match(r'^"?[A-Za-z_]', line):
                inside = any(re.match(r'^"?sp_[0-9a-f]+_k%d(_\w+)?"?:' % k, line) for k in loops)
            elif inside and line.startswith("\t") and not line.startswith("\t."):
                count += 1
        return count
    ir_text = re.sub(r'(asm\s+"", "=r,0"\(i64 )' + str(T), r"\1T", f.llvm_ir())
    return len(f.kernels()), ir_functions(ir_text), instructions(f.asm())


def test_code_does_not_grow_with_the_number_of_steps():
    kernels_8, ir_8, asm_8 = _loop_code(8)
    kernels_1024, ir_1024, asm_1024 = _loop_code(1024)
    assert kernels_8 == kernels_1024
    assert ir_8 == ir_1024 and len(ir_8) >= 6  # the loops and their bodies' kernels, but for the step count
    assert asm_8 == asm_1024 > 100


def test_show_prints_each_body_once_with_canonical_names():
    step, (x, h0, W, U, b), _ = _rnn(batch="batch")
    h_T, ys = C.scan(step, h0, x)
    text = C.show([h_T, ys])
    assert text.count("body1 (carries 1, xs 1, captured 3; length 5):") == 1
    assert "scan[body1, carry 0]" in text and "scan[body1, stack %" in text
    assert "input carry0 : (batch, 6)" in text and "$" not in text
    again, ys2 = C.scan(step, h0, x)  # the same model traced again prints the same text
    assert C.show([again, ys2]) == text


@pytest.mark.parametrize("build, message", [
    (lambda h, x: C.scan(lambda c, x_t: (c[:1], x_t), h, x), r"carry of the structure.*\(2, 3\)"),
    (lambda h, x: C.scan(lambda c, x_t: (c, x_t), h, [x, x[:2]]), "same length along axis 0"),
    (lambda h, x: C.scan(lambda c, x_t: (c, x_t), h, None), "give the number of steps"),
    (lambda h, x: C.scan(lambda c, x_t: c, h, x), r"must return a pair"),
    (lambda h, x: C.scan(lambda c, x_t: (c, x_t), h, x, length=4), "length=4 but xs have 5"),
    (lambda h, x: C.scan(lambda c, x_t: (c, x_t), h, "x"), "must be graph nodes"),
])
def test_declaration_errors_name_what_is_wrong(build, message):
    with pytest.raises(GraphError, match=message):
        build(C.Input("h", (2, 3)), C.Input("x", (5, 2, 3)))


def test_to_dot_draws_each_body_once_as_a_nested_graph():
    step, (x, h0, W, U, b), _ = _rnn(batch="batch")
    h_T, _ = C.scan(step, h0, x)
    loss = ops.mean(h_T)
    dot = C.to_dot([loss] + C.grad(loss, [W]), forward=[loss])
    assert dot.count("subgraph cluster_body1 {") == 1 and dot.count("subgraph cluster_body2 {") == 1
    assert 'label="body1: one step of 5"' in dot and "carry0\\nInput (batch, 6)" in dot
    assert 'style=dotted, label="carry"' in dot and 'style=dotted, label="stack"' in dot


RNN_MODEL = """
import compiler as C
from compiler import ops
x = C.Input("x", (6, 3))
W, U, v = C.Param("W", (3, 4)), C.Param("U", (4, 4)), C.Param("v", (4,))
h_T, ys = C.scan(lambda h, x_t: (ops.tanh(x_t @ W + h @ U),) * 2, v * 0, x)
loss = ops.sum(h_T * v) + ops.mean(ys)
"""


@pytest.mark.parametrize("view, expected", [
    ("text", r"scan\[body1, carry 0\]\(.*\n(.*\n)*body1 \(carries 1, xs 1, captured 2; length 6\):"),
    ("math", r"scan\[stack of map\[tanh\(x0\)\] \(4,\)\]"),
    ("kernels", r"scan +forward +\(6\) .*for each of 6 steps: .*captured0"),
    ("cost", r"scan +forward .*\n(.*\n)* +\d+ scan +backward"),
])
def test_symprop_inspect_shows_the_loops(tmp_path, capsys, view, expected):
    from compiler.cli import main
    path = tmp_path / "rnn.py"
    path.write_text(RNN_MODEL)
    assert main(["inspect", str(path), "--format", view]) == 0
    assert re.search(expected, capsys.readouterr().out)


def test_programs_differing_only_in_a_constant_inside_a_body_are_not_confused():
    x = C.Input("x", (3, 4), dtype="float64")
    results = []
    for scale in (1.0, 2.0):
        M = C.const(np.eye(4) * scale)
        h_T, _ = C.scan(lambda h, x_t: (h @ M + x_t, h), C.const(np.zeros(4)), x)
        results.append(C.compile(h_T)(x=np.ones((3, 4))))
    np.testing.assert_allclose(results[0], [3, 3, 3, 3])
    np.testing.assert_allclose(results[1], [7, 7, 7, 7])


def test_inference_switches_dropout_off_inside_loops_and_batch_norm_inside_is_refused():
    x = C.Input("x", (4, 50, 8), dtype="float64")
    h_T, ys = C.scan(lambda h, x_t: (ops.tanh(h + ops.dropout(x_t, 0.5)),) * 2, C.const(np.zeros((50, 8))), x)
    values = {"x": np.ones((4, 50, 8))}
    trained, inferred = C.compile([ys, C.inference(ys)])(**values)
    assert (trained == np.tanh(0)).any()  # some units dropped at every step (the slice is all ones)
    expected = C.evaluate(C.scan(lambda h, x_t: (ops.tanh(h + x_t),) * 2, C.const(np.zeros((50, 8))), x)[1], values)
    np.testing.assert_allclose(inferred, expected)
    gamma, beta = C.Param("g", (8,), dtype="float64"), C.Param("b", (8,), dtype="float64")
    mean, var = C.Buffer("m", (8,), dtype="float64"), C.Buffer("v", (8,), init="ones", dtype="float64")
    with pytest.raises(GraphError, match="running statistics .* inside a scan body is not supported"):
        C.scan(lambda h, x_t: (ops.batch_norm(h + x_t, gamma, beta, mean, var), h), C.const(np.zeros((50, 8))), x)
    with pytest.raises(GraphError, match="instance_norm, declared at .* inside a scan body"):
        C.scan(lambda h, x_t: (ops.instance_norm(ops.reshape(h + x_t, (50, 8, 1)) + ops.reshape(x_t, (50, 1, 8)),
                                                 mean, var)[:, :, 0], h), C.const(np.zeros((50, 8))), x)


def test_ids_inside_a_loop_are_range_checked_sliced_or_computed():
    table = C.Param("table", (5, 3), dtype="float64")
    ids = C.Input("ids", ("T", 2), "int64")
    h_T, _ = C.scan(lambda h, i_t: (h + ops.embedding(table, i_t), h), C.const(np.zeros((2, 3))), ids)
    f = C.compile(ops.sum(h_T))
    values = {"table": np.arange(15.0).reshape(5, 3)}
    assert float(f(ids=np.array([[0, 4], [1, 2]]), **values)) == pytest.approx(
        values["table"][[0, 4, 1, 2]].sum())
    for bad in (5, -1, 10**12):
        with pytest.raises(IndexError, match=f"{bad}"):
            f(ids=np.array([[0, 1], [bad, 2]]), **values)
    computed, _ = C.scan(lambda h, i_t: (h + ops.embedding(table, i_t * 3), h), C.const(np.zeros((2, 3))), ids)
    g = C.compile(ops.sum(computed))
    assert float(g(ids=np.array([[0, 1], [1, 0]]), **values)) == pytest.approx(
        values["table"][[0, 3, 3, 0]].sum())
    with pytest.raises(IndexError, match="6"):
        g(ids=np.array([[0, 1], [2, 0]]), **values)


def test_a_recurrent_weights_gradient_is_one_product_over_steps_and_batch():
    """sum over t of h_t^T dz_t, with a symbolic batch: one GEMM whose K is 6 * batch rows, not a
    product per sample summed after."""
    x = C.Input("x", (6, "batch", 4))
    W, U = C.Param("W", (4, 5)), C.Param("U", (5, 5))
    h0 = C.Input("h0", ("batch", 5))
    _, hs = C.scan(lambda h, x_t: (ops.tanh(x_t @ W + h @ U),) * 2, h0, x)
    f = C.compile(C.grad(ops.sum(hs), [U]))
    products = [k for k in f.kernels() if k["kind"] == "bmm"]
    assert [k["shape"] for k in products if k["shape"] == [5, 5]] == [[5, 5]]
    assert not any("batch" in map(str, k["shape"]) and len(k["shape"]) == 3 for k in products)
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=(6, 3, 4)).astype(np.float32), "h0": rng.normal(size=(3, 5)).astype(np.float32),
              "W": rng.normal(size=(4, 5)).astype(np.float32), "U": rng.normal(size=(5, 5)).astype(np.float32)}
    np.testing.assert_allclose(f(**values)[0], C.evaluate(C.grad(ops.sum(hs), U), values), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("init_is_input", [False, True])
def test_the_last_backward_step_skips_the_gradient_of_a_constant_initial_state(init_is_input):
    """Backprop through time ends with the carry's gradient with respect to the initial state: when
    that is a constant (zeros), nothing reads it, and the last step of the backward loop does not
    compute it (a second step function without that product); when it is an input, it is
    computed. Either way the gradients equal the unrolled graph's."""
    step, (x, h0, W, U, b), values = _rnn()
    init = h0 if init_is_input else C.const(np.zeros(h0.shape))
    loss = (C.scan(step, init, x)[1] ** 2).sum()
    wrt = [W, U, b] + ([h0] if init_is_input else [])
    fn = C.compile(C.grad(loss, wrt))
    assert ("_last_step" in fn.llvm_ir()) is (not init_is_input)
    unrolled = (_unrolled(step, init, [x[t] for t in range(5)], 5)[1] ** 2).sum()
    given_values = values if init_is_input else {k: v for k, v in values.items() if k != "h0"}
    _close(fn(**given_values), C.evaluate(C.grad(unrolled, wrt), given_values))


def test_a_dict_carry_is_matched_by_key_and_its_structure_is_kept():
    """Carries are matched as jax.lax.scan matches them: a dict by its sorted keys (a body returning the keys
    in another order once swapped the values, silently), and any change of structure (a tuple returned as
    a list, a nesting added, a key renamed) is an error; namedtuples go through as namedtuples."""
    from collections import namedtuple
    a, b = C.Input("a", (2,), "float64"), C.Input("b", (2,), "float64")
    values = {"a": np.ones(2), "b": np.ones(2)}
    carry, _ = C.scan(lambda c, _: ({"b": c["b"] * 10.0, "a": c["a"] + 1.0}, None), {"a": a, "b": b}, None, length=1)
    for got in (C.evaluate([carry["a"], carry["b"]], values), C.compile([carry["a"], carry["b"]])(**values)):
        np.testing.assert_array_equal(got[0], [2.0, 2.0])
        np.testing.assert_array_equal(got[1], [10.0, 10.0])
    for body, init in [(lambda c, _: ([c[0], c[1]], None), (a, b)), (lambda c, _: ((c[0], (c[1],)), None), (a, b)),
                       (lambda c, _: ({"a": c["a"], "z": c["b"]}, None), {"a": a, "b": b})]:
        with pytest.raises(GraphError, match="fn must return a carry of the structure"):
            C.scan(body, init, None, length=2)
    State = namedtuple("State", "h c")
    x = C.Input("x", (3, 2), "float64")
    state, ys = C.scan(lambda s, xt: (State(s.h * xt + s.c, s.c), s.h), State(a, b), x)
    assert isinstance(state, State)
    got = C.evaluate([state.h, ys], {**values, "x": np.full((3, 2), 2.0)})
    np.testing.assert_array_equal(got[0], [15.0, 15.0])
    np.testing.assert_array_equal(got[1], [[1.0, 1.0], [3.0, 3.0], [7.0, 7.0]])
