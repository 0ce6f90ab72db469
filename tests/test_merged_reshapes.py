"""A reshape that merges axes is read in place when each merged run of axes steps through memory
with one stride (a transposed history read as a matrix by a product), and stored first when not;
either way the compiled result is the reference's."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import compiler as C
from compiler import ops

RNG = np.random.default_rng(0)


def compiled_equals_reference(outputs, values):
    f = C.compile(outputs)
    got = f(**values)
    got = got if isinstance(got, tuple) else (got,)
    for g, want in zip(got, C.evaluate(outputs, values) if isinstance(outputs, list) else [C.evaluate(outputs, values)]):
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-12)
    return f


def test_a_transposed_history_is_a_product_operand_without_a_copy():
    h = C.Input("h", (6, "batch", 5), "float64")   # (T, batch, H), as a scan stacks its carries
    g = C.Input("g", (6, "batch", 4), "float64")
    a = ops.reshape(ops.transpose(h, (2, 0, 1)), (5, -1))   # (H, T*batch)
    b = ops.reshape(g, (-1, 4))                              # (T*batch, 4)
    f = compiled_equals_reference(a @ b, {"h": RNG.standard_normal((6, 3, 5)), "g": RNG.standard_normal((6, 3, 4))})
    assert [k["kind"] for k in f.kernels()] == ["bmm"]  # no transposed copy of h before the product


@pytest.mark.parametrize("perm,merge", [((1, 0, 2), (-1, 5)), ((0, 2, 1), (6, -1)), ((2, 1, 0), (-1,)),
                                        ((0, 1, 2), (-1, 5)), ((1, 2, 0), (3, -1))])
def test_merges_of_permuted_axes_read_the_right_elements(perm, merge):
    x = C.Input("x", (6, 3, 5), "float64")
    y = ops.reshape(ops.transpose(x, perm), merge)
    compiled_equals_reference([y * 2.0 + 1.0, ops.sum(y, axis=0)], {"x": RNG.standard_normal((6, 3, 5))})


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(4)), st.integers(1, 3), st.booleans(), st.integers(0, 1))
def test_merged_runs_of_any_permutation_and_slice_equal_the_reference(perm, split, reverse, product):
    shape = (2, 3, 4, 5)
    x = C.Input("x", shape, "float64")
    t = ops.transpose(x, tuple(perm))
    if reverse:
        t = t[::-1]
    dims = t.shape
    merged = ops.reshape(t, (int(np.prod(dims[:split])), int(np.prod(dims[split:]))))
    out = merged @ C.const(RNG.standard_normal((merged.shape[1], 2))) if product else merged * 3.0
    compiled_equals_reference(out, {"x": RNG.standard_normal(shape)})


def test_the_rnn_weight_gradient_reads_the_stacked_hidden_states_in_place():
    x = C.Input("x", (8, "batch", 4), "float64")
    w, u = C.Param("w_merge", (4, 6), dtype="float64"), C.Param("u_merge", (6, 6), dtype="float64")
    h0 = C.Input("h0", ("batch", 6), "float64")
    _, hs = C.scan(lambda h, x_t: (C.tanh(x_t @ w + h @ u),) * 2, h0, x)
    loss = ops.sum(hs ** 2)
    grads = C.grad(loss, [w, u])
    values = {"x": RNG.standard_normal((8, 3, 4)), "h0": RNG.standard_normal((3, 6)),
              "w_merge": RNG.standard_normal((4, 6)) * 0.3, "u_merge": RNG.standard_normal((6, 6)) * 0.3}
    f = compiled_equals_reference(grads, values)
    copies = [k for k in f.kernels() if k["kind"] == "elementwise" and k["flops"] == "0" and "8" in map(str, k["shape"])]
    assert not [k for k in copies if k["shape"][0] == 6], copies  # no (H, T, batch) transposed copy of the history
