"""Fusion and the memory plan, pinned on graphs whose kernel structure follows from the rules.

The rules (compiler/codegen/schedule.py): a map is computed inside the loop
that uses it; a map shared by several maps of one loop is computed once there;
a map feeding a reduction runs inside the reduction's loop; a node is stored
only when it is an output, a reduction, a matrix product, or a map read by
more than one loop. Then (compiler/codegen/loop_fusion.py) a loop joins the
loop producing its input when both run over the same index space and it reads
that input at the loop's own index, never a reduction still being accumulated;
a stored tensor nobody reads any more is dropped. Every count below is derived
from those rules in its comment. Each test also checks the values against NumPy, so a count can never
be bought with a wrong result.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import compiler as C
from compiler import Input, Param
from compiler.codegen.access import Affine
from compiler.codegen.update_layouts import common_layout, layout_index

B = "batch"


def reductions(fn) -> list:
    """Per kernel, the reductions it accumulates ("sum", "max"), in order."""
    return [re.findall(r"\b(sum|max) over axes", k["body"]) for k in fn.kernels()]


def temps(fn) -> list:
    """Intermediates that get memory (a temporary no loop stores any more has no arena slot)."""
    return [b for b in fn.plan["buffers"] if b["role"] == "temp" and b["slot"] is not None]


def full_size_temps(fn, shape) -> list:
    return [b for b in temps(fn) if b["shape"] == list(shape)]


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(7)


def test_kernel_descriptions_carry_body_flops_and_bytes():
    x = Input("describe_x", (B, 256), dtype="float32")
    fn = C.compile(C.tanh(x) * 2 + 1)
    (kernel,) = fn.kernels()
    assert kernel["kind"] == "elementwise"
    assert kernel["shape"] == [B, 256]
    assert "tanh" in kernel["body"] and "describe_x" in kernel["body"]
    assert kernel["bytes"] == "2048*batch"  # read x and write the result: 2 * 256 * 4 bytes per row
    assert "batch" in kernel["flops"]


def test_chain_of_five_maps_is_one_kernel(rng):
    x = Input("chain_x", (B, 64), dtype="float64")
    h = x
    for f in (C.tanh, C.exp, C.sigmoid, C.sin, lambda t: t * 2 + 1):
        h = f(h)
    fn = C.compile(h)
    # Each map is used once, by the next: all five are one loop body; nothing is stored.
    assert len(fn.kernels()) == 1
    assert fn.plan["slots"] == 0 and not temps(fn)
    xs = rng.normal(size=(3, 64))
    expected = 2 * np.sin(1 / (1 + np.exp(-np.exp(np.tanh(xs))))) + 1
    np.testing.assert_allclose(fn(chain_x=xs), expected, rtol=1e-13)


def residual_chain(x, w, b, steps=8):
    h = x
    for _ in range(steps):
        h = h + 0.1 * C.tanh(h * w + b)
    return h


def numpy_residual_chain(x, w, b, steps=8):
    h = x.astype(np.float64)
    for _ in range(steps):
        h = h + 0.1 * np.tanh(h * w + b)
    return h


def test_residual_chain_forward_is_one_kernel(rng):
    x = Input("residual_x", (B, 256), dtype="float32")
    w, b = Param("residual_w", (256,), dtype="float32"), Param("residual_b", (256,), dtype="float32")
    fn = C.compile(residual_chain(x, w, b))
    # Every h is read twice (h + ... and h * w), both times by maps of the same loop at the same
    # index: it is shared inside the one loop, never stored.
    assert len(fn.kernels()) == 1, fn.kernels()
    assert not temps(fn)
    xs, ws, bs = (rng.normal(size=s).astype(np.float32) for s in ((5, 256), (256,), (256,)))
    np.testing.assert_allclose(fn(residual_x=xs, residual_w=ws, residual_b=bs),
                               numpy_residual_chain(xs, ws, bs), rtol=1e-5, atol=1e-5)


def numpy_residual_backprop(x, w, b, steps=8):
    """sum(h) after `steps` residual steps and its gradients with respect to x, w, b, by hand."""
    hs, ts, h = [], [], x
    for _ in range(steps):
        t = np.tanh(h * w + b)
        hs.append(h), ts.append(t)
        h = h + 0.1 * t
    g, dw, db = np.ones_like(h), np.zeros_like(w), np.zeros_like(b)
    for h, t in zip(reversed(hs), reversed(ts)):
        dz = g * 0.1 * (1 - t ** 2)
        dw += (dz * h).sum(axis=0)
        db += dz.sum(axis=0)
        g = g + dz * w
    return (hs[-1] + 0.1 * ts[-1]).sum(), g, dw, db


def test_residual_chain_forward_and_backward_is_two_passes_over_memory(rng):
    x = Input("fb_x", (B, 64), dtype="float64")
    w, b = Param("fb_w", (64,), dtype="float64"), Param("fb_b", (64,), dtype="float64")
    loss = residual_chain(x, w, b).sum()
    fn = C.compile([loss] + C.grad(loss, [x, w, b]))
    # Every forward and backward value of every step is a map over (batch, 64) read at its own
    # index, so all of them, the loss's sum and the per-step column sums of the w and b gradients
    # join into loops over (batch, 64). Written as a tree, the joined body doubles with every
    # step; at SHARED_TREE_LIMIT leaves the join stops and the values it needs are stored: the
    # eight steps take two loops. Two small loops over (64,) add the per-step sums of dw and db.
    assert [k["shape"] for k in fn.kernels()] == [[B, 64], [B, 64], [64], [64]]
    assert sum(r.count("sum") for r in reductions(fn)) == 1 + 2 * 8
    xs, ws, bs = rng.normal(size=(5, 64)), rng.normal(size=64), rng.normal(size=64)
    for actual, expected in zip(fn(fb_x=xs, fb_w=ws, fb_b=bs), numpy_residual_backprop(xs, ws, bs)):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


def test_softmax_kernels(rng):
    x = Input("softmax_x", (B, 100), dtype="float32")
    fn = C.compile(C.softmax(x))
    # 1. the row max (a reduction);
    # 2. e = exp(x - shift) and its row sum in one loop: e is read again after the sum is complete
    #    (by the division), so that loop also stores e, the one full-size intermediate;
    # 3. e / sum, the output: it needs the finished sum, so it cannot join loop 2.
    # The shift (0 where the max is not finite) is cheap: loop 2 recomputes it from the max.
    assert reductions(fn) == [["max"], ["sum"], []]
    assert len(full_size_temps(fn, (B, 100))) == 1
    xs = rng.normal(size=(4, 100)).astype(np.float32) * 5
    e = np.exp(xs - xs.max(axis=1, keepdims=True))
    np.testing.assert_allclose(fn(softmax_x=xs), e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_logsumexp_stores_no_full_size_intermediate(rng):
    x = Input("lse_x", (B, 100), dtype="float64")
    fn = C.compile(C.logsumexp(x, axis=1))
    # 1. the row max; 2. the shift, of shape (batch, 1): read by two loops, over another index
    # space than the max's, so a loop of its own; 3. the sum of exp(x - shift), the exp inside
    # the reduction's loop; 4. shift + log(sum), over (batch,). Only per-row values are stored.
    assert reductions(fn) == [["max"], [], ["sum"], []]
    assert not full_size_temps(fn, (B, 100))
    xs = rng.normal(size=(6, 100)) * 30
    m = xs.max(axis=1)
    np.testing.assert_allclose(fn(lse_x=xs), m + np.log(np.exp(xs - m[:, None]).sum(axis=1)), rtol=1e-13)


def test_mse_forward_is_one_reduction_and_one_scalar_kernel(rng):
    pred, target = Input("mse_pred", (B, 32), dtype="float32"), Input("mse_y", (B, 32), dtype="float32")
    fn = C.compile(C.mse(pred, target))
    # (pred - target)**2 runs inside the sum's loop: one reduction over both axes into a scalar;
    # then the scalar division by 32 * batch (the mean's count depends on the bound batch size), a
    # 0-d loop run as the reduction's epilogue, in its kernel, once the sum is complete.
    assert reductions(fn) == [["sum"]]
    assert "out0" in fn.kernels()[0]["out"].split(", ")
    assert not full_size_temps(fn, (B, 32))
    ps, ys = rng.normal(size=(2, 9, 32)).astype(np.float32)
    np.testing.assert_allclose(fn(mse_pred=ps, mse_y=ys), np.mean((ps.astype(np.float64) - ys) ** 2), rtol=1e-5)


def test_cross_entropy_stores_no_full_size_intermediate(rng):
    logits, labels = Input("ce_logits", (B, 10), dtype="float32"), Input("ce_labels", (B,), dtype="int64")
    fn = C.compile(C.cross_entropy(logits, labels))
    # 1. max; 2. shift (batch, 1); 3. sum of exp(x - shift); 4. the label's logit (a gather: one read
    # per row) minus the row's log-sum-exp, summed over the batch (it needs the finished sum of loop 3,
    # so it cannot join it), then the mean's division, a 0-d epilogue of that loop. None writes a
    # (batch, 10) buffer.
    assert reductions(fn) == [["max"], [], ["sum"], ["sum"]]
    assert "out0" in fn.kernels()[3]["out"].split(", ")
    assert not full_size_temps(fn, (B, 10))
    ls, ys = rng.normal(size=(7, 10)).astype(np.float32) * 4, rng.integers(0, 10, 7)
    z = ls.astype(np.float64)
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(fn(ce_logits=ls, ce_labels=ys), -logp[np.arange(7), ys].mean(), rtol=1e-5)


def test_dense_layer_is_a_product_and_one_fused_map(rng):
    x, w, b = Input("dense_x", (B, 8), dtype="float64"), Param("dense_w", (8, 6), dtype="float64"), \
        Param("dense_b", (6,), dtype="float64")
    fn = C.compile(C.tanh(x @ w + b))
    # The product is stored (a GEMM writes memory); bias add and tanh are one loop over it.
    assert [k["kind"] for k in fn.kernels()] == ["bmm", "elementwise"]
    xs, ws, bs = rng.normal(size=(3, 8)), rng.normal(size=(8, 6)), rng.normal(size=6)
    np.testing.assert_allclose(fn(dense_x=xs, dense_w=ws, dense_b=bs), np.tanh(xs @ ws + bs), rtol=1e-13)


@pytest.mark.parametrize("rows, columns, transposed", [(32, 128, True), (64, 128, False), (32, 64, False)])
def test_a_deep_product_packs_its_smaller_operand(rng, rows, columns, transposed):
    """A weight gradient x^T dz summed over the batch (K symbolic) whose result is over twice as wide
    as tall runs as dz^T x: the GEMM packs x, the smaller operand, and the result is stored
    transposed (contraction._pack_the_smaller); otherwise in its own orientation. Same values."""
    x, dz = Input("x", (B, rows), dtype="float64"), Input("dz", (B, columns), dtype="float64")
    fn = C.compile(C.einsum("bi,bh->ih", x, dz))
    products = [k for k in fn.kernels() if k["kind"] == "bmm"]
    assert len(products) == 1 and products[0]["shape"] == ([columns, rows] if transposed else [rows, columns])
    xs, dzs = rng.normal(size=(40, rows)), rng.normal(size=(40, columns))
    np.testing.assert_allclose(fn(x=xs, dz=dzs), xs.T @ dzs, rtol=1e-12, atol=1e-12)


def test_three_operand_einsum_never_forms_an_outer_product(rng):
    w, b, c = Input("e3_w", (B, 6), dtype="float64"), Input("e3_b", (5, 7), dtype="float64"), \
        Input("e3_c", (7, 6), dtype="float64")
    fn = C.compile(C.einsum("il,jk,kl->ij", w, b, c))
    # Pairs sharing an index contract first: (jk, kl) -> jl, then (il, jl) -> ij. Contracting left
    # to right would start with the outer product of w and b. (No size is tiny: two GEMMs.)
    assert [k["kind"] for k in fn.kernels()] == ["bmm", "bmm"]
    ws, bs, cs = rng.normal(size=(5, 6)), rng.normal(size=(5, 7)), rng.normal(size=(7, 6))
    np.testing.assert_allclose(fn(e3_w=ws, e3_b=bs, e3_c=cs), np.einsum("il,jk,kl->ij", ws, bs, cs), rtol=1e-12)


def test_memory_plan_reuses_arena_slots(rng):
    x = Input("plan_x", (B, 16), dtype="float64")
    h, steps = x, 12
    for _ in range(steps):
        h = C.tanh(h - C.max(h, axis=1, keepdims=True))
    fn = C.compile(h)
    # A step needs the finished row max of h, so each step is a loop of its own (computing h and
    # accumulating the next max) and h is read again by the next loop: every step stores h and
    # its row max, 2 temporaries per step. A temporary is dead once the next step has read it,
    # so a handful of arena slots serve them all.
    assert len(temps(fn)) >= 2 * (steps - 1)
    assert fn.plan["slots"] <= 4 < len(temps(fn))
    xs = rng.normal(size=(3, 16))
    expected = xs
    for _ in range(steps):
        expected = np.tanh(expected - expected.max(axis=1, keepdims=True))
    for batch in (3, 1, 6):  # slots are sized per binding; smaller and larger batches reuse the plan
        xs = rng.normal(size=(batch, 16))
        expected = xs
        for _ in range(steps):
            expected = np.tanh(expected - expected.max(axis=1, keepdims=True))
        np.testing.assert_allclose(fn(plan_x=xs), expected, rtol=1e-13, atol=1e-15)


def test_shared_maps_past_the_size_limit_are_stored(rng):
    x = Input("deep_x", (B, 8), dtype="float64")
    h, steps = x, 16
    for _ in range(steps):
        h = h + 0.1 * C.tanh(h)
    fn = C.compile(h)
    # Written as a tree, h doubles at every step: past the limit of shared_map_homes a few h are
    # stored and later loops read them, keeping compile time linear in the number of steps.
    assert len(fn.kernels()) < steps
    xs = rng.normal(size=(2, 8))
    expected = xs
    for _ in range(steps):
        expected = expected + 0.1 * np.tanh(expected)
    np.testing.assert_allclose(fn(deep_x=xs), expected, rtol=1e-13)


def test_unused_outputs_of_shared_subgraphs_cost_nothing(rng):
    """Dead code: only what the outputs need is scheduled."""
    x = Input("dead_x", (B, 8), dtype="float64")
    unused = C.exp(x) @ C.const(np.ones((8, 8)))  # built, never requested
    fn = C.compile(C.sin(x) * 2)
    assert len(fn.kernels()) == 1 and unused.shape == (B, 8)
    xs = rng.normal(size=(2, 8))
    np.testing.assert_allclose(fn(dead_x=xs), np.sin(xs) * 2, rtol=1e-14)


def test_products_with_a_dimension_of_one_are_loops_that_join_their_neighbours():
    """The 1-64-1 tanh regression: its four products (outer products x @ W1 and g @ W2^T,
    matrix-vector products h @ W2 and the weights' gradients) are multiplies and sums inside the
    fused loops -- the weights' gradients accumulate in the loop that computes the bias gradient --
    never a GEMM call; and the step trains as the reference says."""
    x, y = Input("x", ("batch", 1), "float64"), Input("y", ("batch", 1), "float64")
    w1, b1 = Param("W1", (1, 64), dtype="float64"), Param("b1", (64,), "zeros", "float64")
    w2, b2 = Param("W2", (64, 1), dtype="float64"), Param("b2", (1,), "zeros", "float64")
    loss = C.ops.mean((C.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2)
    step = C.compile_step(loss, C.optim.SGD(0.1), seed=0)
    # Four kernels (issue 14): the forward loop over (batch, 64) (tanh layer, h @ W2 row sums); the
    # loss loop over (batch, 1) with the mean's division as its 0-d epilogue; the backward loop over
    # (batch, 64) accumulating the three gradients; one update loop over 64 elements for W1 (1, 64),
    # b1 (64,) and W2 (64, 1) (one contiguous layout), with b2's one-element update as its epilogue.
    kernels = step.kernels()
    assert [k["kind"] for k in kernels] == ["elementwise"] * 4, kernels
    assert [k["phase"] for k in kernels] == ["forward", "forward+backward", "backward", "update"]
    assert [k["shape"] for k in kernels] == [["batch", 64], ["batch", 1], ["batch", 64], [64]]
    assert kernels[3]["out"].split(", ") == ["W1", "b1", "W2", "b2"]
    rng = np.random.default_rng(0)
    xs = rng.uniform(-3, 3, (256, 1))
    ys = np.sin(xs)
    before = {name: step.params[name].copy() for name in ("W1", "b1", "W2", "b2")}
    grads = C.evaluate(C.grad(loss, [w1, b1, w2, b2]), {"x": xs, "y": ys, **before})
    step(x=xs, y=ys)
    for (name, old), g in zip(before.items(), grads):
        np.testing.assert_allclose(step.params[name], old - 0.1 * g, rtol=1e-12, atol=1e-14)


def test_update_loops_run_over_the_common_layout_of_their_targets():
    """Contiguous targets of one element count are one loop when their shapes differ only by size-1
    axes or by a reshape that keeps every axis a run of the loop's axes."""
    assert common_layout([(1, 64), (64,), (64, 1)]) == (64,)
    assert common_layout([(64, 10), (640,), (64, 1, 10)]) == (64, 10)
    assert common_layout([(2, 3, 4), (6, 4), (2, 12)]) == (2, 3, 4)
    assert common_layout([(64, 10), (10, 64)]) is None  # a row of one cuts a row of the other
    assert common_layout([(1,), ()]) == ()
    assert common_layout([("batch", 1, 8), ("batch", 8)]) == ("batch", 8)
    assert common_layout([("batch", 8), (8, "batch")]) is None
    assert layout_index((640,), (64, 10)).dims == (Affine(((0, 10), (1, 1))),)
    assert layout_index((1, 64), (64,)).dims == (Affine(), Affine.axis(0))


def test_buffer_updates_of_one_element_count_share_a_loop_and_read_old_values(rng):
    """Five Buffers updated in place by one training step: (1, 4), (4, 1) and (4,) share one loop of
    4 (each reads the others' element at its own position before writing it, or a snapshot of the
    old value when it reads another position, as u_c reads u_a reversed); (2, 6) and (12,) share
    one loop of 12, run in the same kernel. The two snapshots (4 and 12 elements) are epilogues of
    the forward loop, so the step is two kernels."""
    from compiler import optim
    from compiler.primitives.modes import make_training
    x, w = Input("u_x", (4,), dtype="float64"), Param("u_w", (4,), init="ones", dtype="float64")
    a, b, c = (C.Buffer(name, shape, dtype="float64") for name, shape in
               (("u_a", (1, 4)), ("u_b", (4, 1)), ("u_c", (4,))))
    d, e = C.Buffer("u_d", (2, 6), dtype="float64"), C.Buffer("u_e", (12,), dtype="float64")
    updates = [(a, a + C.reshape(b, (1, 4)) * 2.0 + C.reshape(x, (1, 4))), (b, b - C.reshape(a, (4, 1))),
               (c, c + a[0, ::-1]), (d, d * 0.5 + C.reshape(e, (2, 6))), (e, e + C.reshape(d, (12,))[::-1])]
    step = C.compile_step(C.sum(make_training(x * w, x * w, updates=updates)), optim.SGD(lr=0.0), seed=0)
    kernels = step.kernels()
    assert [k["phase"] for k in kernels] == ["forward", "update"]
    assert kernels[1]["shape"] == [4] and "u_c = t" in kernels[1]["body"]  # u_c reads a snapshot of u_a
    old = {name: rng.normal(size=step.buffers[name].shape) for name in ("u_a", "u_b", "u_c", "u_d", "u_e")}
    for name, value in old.items():
        np.copyto(step.buffers[name], value)
    xs = rng.normal(size=4)
    step(u_x=xs)
    A, B_, Cv, D, E = old.values()
    expected = {"u_a": A + 2 * B_.reshape(1, 4) + xs.reshape(1, 4), "u_b": B_ - A.reshape(4, 1),
                "u_c": Cv + A[0, ::-1], "u_d": 0.5 * D + E.reshape(2, 6), "u_e": E + D.reshape(12)[::-1]}
    for name, value in expected.items():
        np.testing.assert_allclose(step.buffers[name], value, rtol=1e-15, atol=1e-15)


def test_an_adam_mlp_updates_every_parameter_in_one_kernel_and_runs_no_tiny_kernel(rng):
    """The 8-16-3 Adam MLP: the 0-d kernels (the mean's division, Adam's bias corrections) run as
    epilogues of the kernels before them, and the four parameters' update loops (w and its moments,
    ...) one kernel: the update phase is one kernel, 11 in all (the products with 3 outputs split
    into loops: x @ W1 is the one GEMM of the forward pass, its weight gradient of the backward). One step
    matches Adam written with NumPy over the evaluated gradients."""
    from compiler import optim
    x, logits, params = C.mlp(8, [16], 3, dtype="float64", name="adam_mlp")
    labels = Input("adam_y", (B,), "int64")
    loss = C.cross_entropy(logits, labels)
    step = C.compile_step(loss, optim.Adam(lr=1e-2), seed=0)
    kernels = step.kernels()
    assert [k["phase"] for k in kernels].count("update") == 1
    assert not [k for k in kernels if all(isinstance(d, int) for d in k["shape"]) and np.prod(k["shape"]) <= 16]
    assert [k["kind"] for k in kernels].count("bmm") == 2
    assert len(kernels) == 11, [(k["phase"], k["shape"], k["out"]) for k in kernels]
    names = [p.name for p in params]
    before = {name: step.params[name].copy() for name in names}
    xs, ys = rng.normal(size=(5, 8)), rng.integers(0, 3, 5)
    grads = C.evaluate(C.grad(loss, params), {"x": xs, "adam_y": ys, **before})
    step(x=xs, adam_y=ys)
    for name, g in zip(names, grads):  # step 1: m = 0.1 g, v = 0.001 g^2, bias-corrected to g and g^2
        expected = before[name] - 1e-2 * g / (np.abs(g) + 1e-8)
        np.testing.assert_allclose(step.params[name], expected, rtol=1e-9, atol=1e-12)


def test_a_tiny_loop_with_no_kernel_before_it_runs_as_the_next_kernels_prologue(rng):
    """sum(s) over 3 elements is the first loop, read by the (batch, 8) product: it runs at the start
    of that loop's kernel (a prologue, complete before the loop reads it), and sum(2 s), a loop over
    the same 3 elements, joins it there. One kernel; the ``fused`` stage of show lists the prologue."""
    x, s = Input("pro_x", (B, 8), dtype="float64"), Input("pro_s", (3,), dtype="float64")
    outputs = [x * C.sum(s), C.sum(s * 2.0)]
    fn = C.compile(outputs)
    (kernel,) = fn.kernels()
    assert kernel["shape"] == [B, 8] and {"out0", "out1"} <= set(kernel["out"].split(", "))
    fused = C.show(outputs, passes=True).split("== fused")[1]
    assert "| first elementwise(3): t3 = sum over axes (0,) of pro_s; out1 = sum" in fused
    xs, ss = rng.normal(size=(5, 8)), rng.normal(size=3)
    product, total = fn(pro_x=xs, pro_s=ss)
    np.testing.assert_allclose(product, xs * ss.sum(), rtol=1e-14)
    np.testing.assert_allclose(total, 2 * ss.sum(), rtol=1e-14)


def test_products_with_a_tiny_dimension_split_into_loops_that_join_their_neighbours():
    """A 3-64-2 tanh regression: every product has a matrix dimension of at most TINY_PRODUCT (3)
    elements (K = 3 in x @ W1, N = 2 in h @ W2, M = 3 and N = 2 in the weights' gradients), so each
    is split along it into size-1 products -- x @ W1 a sum of three outer products inside the tanh
    loop, h @ W2 two row sums of that loop -- and the step is four kernels as the 1-64-1 step is
    (with its five products as GEMM calls: nine); it trains as the reference says."""
    x, y = Input("x3", ("batch", 3), "float64"), Input("y3", ("batch", 2), "float64")
    w1, b1 = Param("W1_3", (3, 64), dtype="float64"), Param("b1_3", (64,), "zeros", "float64")
    w2, b2 = Param("W2_3", (64, 2), dtype="float64"), Param("b2_3", (2,), "zeros", "float64")
    loss = C.ops.mean((C.tanh(x @ w1 + b1) @ w2 + b2 - y) ** 2)
    step = C.compile_step(loss, C.optim.SGD(0.1), seed=0)
    kernels = step.kernels()
    assert [k["kind"] for k in kernels] == ["elementwise"] * 4, kernels
    assert [k["shape"] for k in kernels] == [["batch", 64], ["batch", 2], ["batch", 64], [3, 64]]
    rng = np.random.default_rng(1)
    xs = rng.uniform(-3, 3, (100, 3))
    ys = np.stack([np.sin(xs.sum(1)), np.cos(xs[:, 0])], axis=1)
    names = ("W1_3", "b1_3", "W2_3", "b2_3")
    before = {name: step.params[name].copy() for name in names}
    grads = C.evaluate(C.grad(loss, [w1, b1, w2, b2]), {"x3": xs, "y3": ys, **before})
    step(x3=xs, y3=ys)
    for (name, old), g in zip(before.items(), grads):
        np.testing.assert_allclose(step.params[name], old - 0.1 * g, rtol=1e-12, atol=1e-14)


def test_einsums_with_tiny_dimensions_match_numpy(rng):
    """The split lowering on its own: contracted, row, column and batched tiny indices, symbolic
    sizes beside them, against numpy.einsum; a dimension of 4 stays a GEMM."""
    cases = [("ik,kj->ij", (B, 3), (3, 7)), ("ki,kj->ij", (B, 2), (B, 9)), ("ik,kj->ij", (B, 9), (9, 3)),
             ("bik,bkj->bij", (5, 2, 3), (5, 3, 6)), ("ik,jk->ij", (4, 2), (B, 2))]
    for spec, sa, sb in cases:
        a, b = Input("tiny_a", sa, dtype="float64"), Input("tiny_b", sb, dtype="float64")
        fn = C.compile(C.einsum(spec, a, b))
        assert "bmm" not in [k["kind"] for k in fn.kernels()], spec
        av = rng.normal(size=tuple(6 if d == B else d for d in sa))
        bv = rng.normal(size=tuple(6 if d == B else d for d in sb))
        np.testing.assert_allclose(fn(tiny_a=av, tiny_b=bv), np.einsum(spec, av, bv), rtol=1e-13, atol=1e-13)
    a, b = Input("wide_a", (B, 4), dtype="float64"), Input("wide_b", (4, 9), dtype="float64")
    assert [k["kind"] for k in C.compile(a @ b).kernels()] == ["bmm"]


def overwrites(fn) -> list:
    """Per kernel, the temporaries it writes over (``memory.mark_in_place``)."""
    return [k.get("overwrites", []) for k in fn.plan["kernels"]]


def slot_of(fn) -> dict:
    return {b["name"]: b["slot"] for b in fn.plan["buffers"] if b["role"] == "temp"}


def test_a_loop_writes_over_a_product_it_reads_for_the_last_time(rng):
    x, w = Input("ip_x", (B, 12), dtype="float64"), Input("ip_w", (12, 9), dtype="float64")
    b = Input("ip_b", (9,), dtype="float64")
    z = x @ w + b  # the product is stored; the bias loop reads it at its own index, and nothing after
    fn = C.compile(C.tanh(z) @ C.transpose(w))
    plan = fn.plan["kernels"]
    assert [k["kind"] for k in plan] == ["bmm", "elementwise", "bmm"]
    product, activation = plan[0]["out"], plan[1]["out"]
    assert overwrites(fn)[1] == [product]
    assert slot_of(fn)[product] == slot_of(fn)[activation]
    for batch in (1, 5, 33):
        xs, ws, bs = rng.normal(size=(batch, 12)), rng.normal(size=(12, 9)), rng.normal(size=9)
        np.testing.assert_allclose(fn(ip_x=xs, ip_w=ws, ip_b=bs), np.tanh(xs @ ws + bs) @ ws.T, rtol=1e-12)


@pytest.mark.parametrize("read", ["transposed", "shifted", "broadcast", "read_later"])
def test_no_loop_writes_over_what_it_reads_elsewhere(rng, read):
    """Each graph reads the product somewhere other than the element its loop stores (or reads
    it again later): the loop gets a buffer of its own."""
    x, w = Input(f"nw_{read}_x", (8, 8), dtype="float64"), Input(f"nw_{read}_w", (8, 8), dtype="float64")
    p = x @ w
    xs, ws = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    ps = xs @ ws
    if read == "transposed":
        out, expected = C.tanh(p + C.transpose(p)) @ w, np.tanh(ps + ps.T) @ ws
    elif read == "shifted":
        out, expected = C.tanh(p[1:, :] + p[:-1, :]) @ w, np.tanh(ps[1:] + ps[:-1]) @ ws
    elif read == "broadcast":
        out, expected = C.tanh(p + p[0:1, :]) @ w, np.tanh(ps + ps[0:1]) @ ws
    else:
        out, expected = (C.tanh(p) @ w) * p, (np.tanh(ps) @ ws) * ps
    fn = C.compile(out)
    assert all(not o for o in overwrites(fn)), overwrites(fn)
    np.testing.assert_allclose(fn(**{f"nw_{read}_x": xs, f"nw_{read}_w": ws}), expected, rtol=1e-5)


def test_cost_of_a_loop_that_writes_over_its_input_leaves_results_alone(rng):
    """The cost report runs each kernel alone; one that writes over its input is timed on fresh
    input each time, and the buffers end as the program leaves them."""
    x, w, b = Input("ci_x", (B, 6)), Input("ci_w", (6, 6)), Input("ci_b", (6,))
    fn = C.compile(C.tanh(x @ w + b) @ w)
    assert any(overwrites(fn))
    values = dict(ci_x=rng.normal(size=(4, 6)).astype(np.float32), ci_w=rng.normal(size=(6, 6)).astype(np.float32),
                  ci_b=rng.normal(size=6).astype(np.float32))
    before = fn(**values).copy()
    report = fn.cost(**values)
    assert all(row.seconds > 0 for row in report.rows)
    np.testing.assert_array_equal(fn(**values), before)


def test_large_buffers_choose_slots_first():
    """Buffers first written by the same kernel take slots the larger first, so a large one reuses
    a large free slot rather than a small buffer taking it (the memory planner, directly)."""
    from compiler.codegen.access import Buffer
    from compiler.codegen.memory import assign_slots
    from compiler.codegen.schedule import Kernel

    def kernel(writes, reads):
        k = Kernel("elementwise", writes[0], (1,), "float32")
        k.writes = lambda: set(writes)
        k.reads = lambda: set(reads)
        return k

    big, small, big2, reader = (Buffer(0, (1 << 16,), "float32", "temp", "big"),
                                Buffer(1, (4,), "float32", "temp", "small"),
                                Buffer(2, (1 << 16,), "float32", "temp", "big2"),
                                Buffer(3, (4,), "float32", "temp", "reader"))
    slots = assign_slots([kernel([big], []), kernel([reader], [big]), kernel([small, big2], []),
                          kernel([reader], [small, big2])])
    assert slots[big2] == slots[big] != slots[small]
