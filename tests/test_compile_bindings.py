"""Symbolic dimensions: one compiled program serves any binding.

Compiling the same graph again, or calling it at new batch sizes, loads no
new machine code; each call returns fresh arrays (outputs are no arena slots);
several outputs come back as a tuple in order. The per-op checks at two batch
sizes are in test_compile_ops.py.
"""
from __future__ import annotations

import math

import numpy as np

import compiler as C
from compile_op_table import B
from compiler import Input
from runtime.engine import Engine


# ---- symbolic dimensions: one program, any binding ------------------------------------------------


def test_new_batch_size_reuses_the_loaded_program():
    """Compiling the same graph again and calling it at new batch sizes loads no machine code."""
    x = Input("reuse_x", (B, 8), dtype="float32")
    w = C.Param("reuse_w", (8, 3), dtype="float32")
    out = C.softmax(C.tanh(x @ w))
    fn = C.compile(out)
    engine = Engine.instance()
    objects = len(engine._loaded_objects)
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(8, 3)).astype(np.float32)
    for batch in (1, 5, 64, 3, 64):
        xs = rng.normal(size=(batch, 8)).astype(np.float32)
        logits = np.tanh(xs.astype(np.float64) @ weights)
        expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(fn(reuse_x=xs, reuse_w=weights), expected, rtol=1e-5, atol=1e-6)
    again = C.compile(out)
    assert again(reuse_x=xs, reuse_w=weights).shape == (64, 3)
    assert len(engine._loaded_objects) == objects


def test_outputs_are_fresh_arrays_every_call():
    """A result is never overwritten by the next call (outputs are not arena slots)."""
    x = Input("fresh_x", (B, 4), dtype="float64")
    fn = C.compile(C.exp(x) * 2)
    first_input = np.zeros((2, 4))
    first = fn(fresh_x=first_input)
    second = fn(fresh_x=np.ones((2, 4)))
    np.testing.assert_array_equal(first, np.full((2, 4), 2.0))
    np.testing.assert_allclose(second, np.full((2, 4), 2 * math.e), rtol=1e-15)
    assert not np.shares_memory(first, second)


def test_several_outputs_come_back_as_a_tuple_in_order():
    x = Input("tuple_x", (B, 3), dtype="float64")
    fn = C.compile([x.sum(), C.tanh(x), x * 2])
    xs = np.linspace(-1, 1, 6).reshape(2, 3)
    total, tanh, double = fn(tuple_x=xs)
    np.testing.assert_allclose(total, xs.sum(), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(tanh, np.tanh(xs), rtol=1e-14)
    np.testing.assert_array_equal(double, xs * 2)
    assert total.shape == ()
