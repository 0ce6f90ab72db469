"""A batch of matrix products summed over batch axes accumulates into one result (``summed_axes``).

A weight shared along the batch (a convolution's) gets per-sample gradient products summed over
the samples; instead of storing every product and summing them in a loop, the product kernel adds
each into the sum's buffer. Values must equal NumPy's, for any summed batch axes, and be the same
bits when the kernel splits across threads (each task sums its rows or columns over the batch in
order).
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C


def _single_product(fn):
    kinds = [k["kind"] for k in fn.kernels()]
    return kinds == ["bmm"], kinds


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_products_summed_over_the_batch_are_one_kernel_equal_to_numpy(dtype):
    a = C.Input("a", ("batch", 5, 7), dtype=dtype)
    b = C.Input("b", ("batch", 7, 6), dtype=dtype)
    fn = C.compile((a @ b).sum(axis=0))
    single, kinds = _single_product(fn)
    assert single, kinds
    rng = np.random.default_rng(0)
    for n in (1, 3, 17):
        A, B = rng.normal(size=(n, 5, 7)).astype(dtype), rng.normal(size=(n, 7, 6)).astype(dtype)
        want = np.einsum("nij,njk->ik", A.astype(np.float64), B.astype(np.float64))
        np.testing.assert_allclose(fn(a=A, b=B), want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1)])
def test_any_batch_axes_summed_with_a_shared_operand(axes):
    """Two batch axes, either or both summed; B shared by every product (broadcast, stride 0)."""
    a = C.Input("a", ("batch", 3, 9, 20))
    w = C.Input("w", (20, 11))
    fn = C.compile((a @ w).sum(axis=axes))
    assert sum(k["kind"] == "bmm" for k in fn.kernels()) == 1
    rng = np.random.default_rng(1)
    A, W = rng.normal(size=(4, 3, 9, 20)).astype(np.float32), rng.normal(size=(20, 11)).astype(np.float32)
    want = (A.astype(np.float64) @ W).sum(axis=axes)
    np.testing.assert_allclose(fn(a=A, w=W), want, rtol=1e-5, atol=1e-4)


def test_summed_products_give_the_same_bits_on_one_and_two_threads(monkeypatch):
    monkeypatch.setenv("SYMPROP_SPLIT_ALL", "1")  # split however small
    a = C.Input("a", ("batch", 37, 29))
    b = C.Input("b", ("batch", 29, 53))
    out = (a @ b).sum(axis=0)
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(6, 37, 29)).astype(np.float32), rng.normal(size=(6, 29, 53)).astype(np.float32)
    one, two = C.compile(out, threads=1), C.compile(out, threads=2)
    assert any(k.get("splits") for k in two.kernels())
    np.testing.assert_array_equal(one(a=A, b=B), two(a=A, b=B))
    np.testing.assert_allclose(one(a=A, b=B), np.einsum("nij,njk->ik", A.astype(np.float64), B), rtol=1e-5, atol=1e-4)


def test_a_product_read_elsewhere_is_stored_and_summed_apart():
    """The products are also an output: stored whole, and the sum a loop of its own."""
    a = C.Input("a", ("batch", 5, 7))
    b = C.Input("b", ("batch", 7, 6))
    products = a @ b
    fn = C.compile([products, products.sum(axis=0)])
    assert [k["kind"] for k in fn.kernels()].count("bmm") == 1 and len(fn.kernels()) == 2
    rng = np.random.default_rng(3)
    A, B = rng.normal(size=(3, 5, 7)).astype(np.float32), rng.normal(size=(3, 7, 6)).astype(np.float32)
    got_products, got_sum = fn(a=A, b=B)
    np.testing.assert_allclose(got_sum, got_products.sum(axis=0), rtol=1e-5, atol=1e-5)
