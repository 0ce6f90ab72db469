"""Named regressions: compositions of layout ops that compiled to wrong numbers.

Each test is the minimal program of one bug, compiled and compared with a
NumPy computation written out by hand (never with a value the compiler
computed). The random programs of ``test_fuzz_compositions.py`` found or
confirm them.
"""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

import compiler as C
from compiler import Input, ops

RTOL, ATOL = 1e-12, 1e-12


def run(program, **values):
    """Compile and call with the arguments the executable takes (a constant gradient takes none)."""
    fn = C.compile(program)
    names = {b["name"] for _, b in fn.arguments}
    return fn(**{k: v for k, v in values.items() if k in names})


def values(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-2.0, 2.0, shape) for shape in shapes]


def test_concat_of_complementary_slices_is_the_input():
    """concat([x[:, :2], x[:, 2:]], 1) once compiled to 2 * x: each piece was read over the whole axis."""
    x = Input("x", (3, 4), "float64")
    (xv,) = values((3, 4))
    (got,) = C.compile([ops.concat([x[:, :2], x[:, 2:]], 1)])(x=xv)
    assert_allclose(got, xv, rtol=RTOL, atol=ATOL)


def test_concat_of_rotated_slices_is_numpy_roll():
    x = Input("x", (3, 5), "float64")
    (xv,) = values((3, 5))
    (got,) = C.compile([ops.concat([x[:, 3:], x[:, :3]], 1)])(x=xv)
    assert_allclose(got, np.concatenate([xv[:, 3:], xv[:, :3]], 1), rtol=RTOL, atol=ATOL)


def test_concat_of_a_broadcast_and_a_tensor_keeps_their_rows_apart():
    """concat([broadcast_to(a, (2, 3)), b], 0) once added a into b's rows."""
    a, b = Input("a", (3,), "float64"), Input("b", (2, 3), "float64")
    av, bv = values((3,), (2, 3))
    (got,) = C.compile([ops.concat([ops.broadcast_to(a, (2, 3)), b], 0)])(a=av, b=bv)
    assert_allclose(got, np.concatenate([np.broadcast_to(av, (2, 3)), bv], 0), rtol=RTOL, atol=ATOL)


def test_gradient_through_a_slice_is_zero_outside_the_slice():
    """grad(tanh(x[:, 1:3].sum(1)).sum(), x) was once nonzero in columns 0 and 3."""
    x = Input("x", (3, 4), "float64")
    (xv,) = values((3, 4))
    (got,) = C.compile([C.grad(ops.tanh(x[:, 1:3].sum(1)).sum(), x)])(x=xv)
    expected = np.zeros((3, 4))
    expected[:, 1:3] = (1.0 - np.tanh(xv[:, 1:3].sum(1)) ** 2)[:, None]
    assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_gradient_of_a_concat_of_concats_counts_every_copy():
    """x (5, 2, 3) concatenated 3 times on axis 2, then 2.5 times on axis 1: each element of x appears
    in 3 * (3 for row 0, 2 for row 1) places of the mean, so its gradient is w times that count over
    the mean's size. Once half the elements got a wrong gradient."""
    x, w = Input("x", (5, 2, 3), "float64"), Input("w", (), "float64")
    wide = ops.concat([x, x, x], 2)
    tall = ops.concat([wide, wide, wide[:, 0:1]], 1)
    loss = ops.mean(ops.sum(tall, axis=1), axis=(0, -1)) * w
    xv, wv = values((5, 2, 3), ())
    (got,) = run([C.grad(loss, x)], x=xv, w=wv)
    copies = np.array([3.0, 2.0])[None, :, None] * 3
    expected = np.broadcast_to(wv * copies / (5 * 9), (5, 2, 3))
    assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_max_over_a_concat_of_single_column_slices():
    x = Input("x", (2, 3, 1), "float64")
    program = ops.max(ops.concat([x[:, 0:1], x[:, 1:2], x[:, 2:3]], 1), axis=-3, keepdims=True)
    (xv,) = values((2, 3, 1))
    (got,) = C.compile([program])(x=xv)
    assert_allclose(got, np.max(xv, axis=0, keepdims=True), rtol=RTOL, atol=ATOL)


def test_stack_of_a_concat_of_broadcasts_and_a_broadcast():
    x = Input("x", (4,), "float64")
    b = ops.broadcast_to(x, (1, 2, 4))
    rows = ops.concat([b, b, b], 1)
    program = ops.stack([ops.sin(rows), ops.broadcast_to(x, (1, 6, 4))], -1)
    (xv,) = values((4,))
    (got,) = C.compile([program])(x=xv)
    rows_np = np.broadcast_to(xv, (1, 6, 4))
    assert_allclose(got, np.stack([np.sin(rows_np), rows_np], -1), rtol=RTOL, atol=ATOL)


def test_replicate_pad_wider_than_the_axis():
    """mode="replicate" is numpy's "edge": any width, also beyond the axis size. ops.pad rejected
    widths above the axis size (the reflect/circular limit applied to replicate too)."""
    x = Input("x", (2, 1), "float64")
    (xv,) = values((2, 1))
    (got,) = C.compile([ops.pad(x, ((0, 0), (0, 2)), mode="replicate")])(x=xv)
    assert_allclose(got, np.pad(xv, ((0, 0), (0, 2)), mode="edge"), rtol=RTOL, atol=ATOL)


def test_matmul_of_a_padded_reshape_reads_the_pad():
    """A matmul operand pad(reshape(a)) compiled to `a @ q`: the pad was dropped and the product
    read past the end of a (plain_access's early return for a general reshape ignored validity bounds)."""
    a, q = Input("a", (4, 2), "float64"), Input("q", (4, 2), "float64")
    av, qv = values((4, 2), (4, 2))
    padded = ops.pad(ops.reshape(a, (2, 4)), ((0, 1), (0, 0)), value=3.0)
    (got,) = C.compile([padded @ q])(a=av, q=qv)
    expected = np.pad(av.reshape(2, 4), ((0, 1), (0, 0)), constant_values=3.0) @ qv
    assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_batched_matmul_of_a_padded_reshape_of_a_product():
    """The program the fuzzer found: a (2, 2) @ (2, 2, 2) product, padded, then multiplied again."""
    s, y, q = Input("s", (2, 2), "float64"), Input("y", (2, 2, 2), "float64"), Input("q", (2, 2, 2), "float64")
    sv, yv, qv = values((2, 2), (2, 2, 2), (2, 2, 2))
    product = ops.einsum("ij,bjk->bik", s, y)
    (got,) = C.compile([ops.pad(product, ((0, 0), (0, 1), (0, 0))) @ q])(s=sv, y=yv, q=qv)
    expected = np.pad(np.einsum("ij,bjk->bik", sv, yv), ((0, 0), (0, 1), (0, 0))) @ qv
    assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def _linear_gradient(f, x):
    """The gradient of a function linear in x: its value at each unit vector."""
    basis = np.eye(x.size).reshape((x.size,) + x.shape)
    return np.array([f(e) for e in basis]).reshape(x.shape)


def test_gradient_through_a_reversed_strided_slice_of_a_contraction():
    """The backward pass pads and reshapes the cotangent of x1[..][::2, :-5:-3] into an einsum operand;
    the compiled product read that operand past its end (the pad(reshape) matmul operand bug above).
    What it reads there is whatever the heap holds: in a fresh process often denormal zeros (then this
    passes), after other programs ran, numbers of order one (as in the random program that found it)."""
    x0, x1, w = Input("x0", (3, 2, 4), "float64"), Input("x1", (1, 4, 4), "float64"), Input("w", (3, 2, 4), "float64")
    x0v, x1v, wv = values((3, 2, 4), (1, 4, 4), (3, 2, 4))

    def forward(a0, a1, broadcast_to, einsum, sum):
        picked = einsum("ijk,lmk->lki", a1, a0)[None, 2][::2, :-5:-3]
        return sum(broadcast_to(picked, (3, 2, 4)) * wv if isinstance(a0, np.ndarray) else
                   broadcast_to(picked, (3, 2, 4)) * w)

    loss = forward(x0, x1, ops.broadcast_to, ops.einsum, ops.sum)
    fn = C.compile(C.grad(loss, [x0, x1]))
    got0, got1 = fn(x0=x0v, x1=x1v, w=wv)
    numpy_loss = lambda a0, a1: forward(a0, a1, np.broadcast_to, np.einsum, np.sum)  # noqa: E731
    assert_allclose(got0, _linear_gradient(lambda e: numpy_loss(e, x1v), x0v), rtol=RTOL, atol=ATOL)
    assert_allclose(got1, _linear_gradient(lambda e: numpy_loss(x0v, e), x1v), rtol=RTOL, atol=ATOL)


def test_flattened_outer_product_over_a_symbolic_batch():
    """reshape(x @ x.T, (-1,)) of x ("batch", 3) declares shape ("batch*batch",), and compiling it
    raised NotImplementedError("size expression batch**2"): sizes with a power were not emitted."""
    x = Input("x", ("batch", 3), "float64")
    fn = C.compile([ops.reshape(x @ x.T, (-1,))])
    for batch in (4, 5):
        (xv,) = values((batch, 3), seed=batch)
        (got,) = fn(x=xv)
        assert_allclose(got, (xv @ xv.T).reshape(-1), rtol=RTOL, atol=ATOL)


def test_where_of_equal_constant_branches_keeps_the_broadcast_shape():
    """where(x > 0, b, b) with b a scalar that simplifies to the constant 1 declares shape (2, 3), but
    simplification returned the () constant itself: the compiled output had shape ()."""
    x, s = Input("x", (2, 3), "float64"), Input("s", (), "float64")
    branch = (s - s) + C.const(1.0, "float64")
    xv, sv = values((2, 3), ())
    (got,) = run([ops.where(x > 0, branch, branch)], x=xv, s=sv)
    assert got.shape == (2, 3)
    assert_allclose(got, np.ones((2, 3)), rtol=RTOL, atol=ATOL)


def test_where_of_a_zero_variance_keeps_the_broadcast_shape():
    """The random program that found it: the variance of a scalar is the constant 0."""
    x, s = Input("x", (1, 2, 3), "float64"), Input("s", (), "float64")
    xv, sv = values((1, 2, 3), ())
    variance = ops.var(s, None, 0)
    (got,) = run([ops.where(x > -0.4, variance, variance)], x=xv, s=sv)
    assert got.shape == (1, 2, 3)
    assert_allclose(got, np.zeros((1, 2, 3)), rtol=RTOL, atol=ATOL)


def test_broadcasting_identity_map_of_a_matmul_keeps_its_shape():
    """A map whose body is its first argument, a product, and whose second argument only gives the
    shape (simplification drops it: map[x0](x @ x) of shape (2, 3, 3)) compiled to a loop over the
    product's own shape: the output came back (3, 3)."""
    first = C.elementwise(lambda a, b: a, "first")
    x, y = Input("x", (3, 3), "float64"), Input("y", (2, 3, 3), "float64")
    xv, yv = values((3, 3), (2, 3, 3))
    (got,) = run([first(x @ x, y)], x=xv, y=yv)
    assert got.shape == (2, 3, 3)
    assert_allclose(got, np.broadcast_to(xv @ xv, (2, 3, 3)), rtol=RTOL, atol=ATOL)


def test_where_of_equal_branches_over_a_wider_condition_keeps_its_shape():
    """The random program that found the bug above: where(c, v0, v0) with c (3, 3) and v0 (3,) a
    contraction; the condition is dropped as unused and the output came back (3,)."""
    x1, x2 = Input("x1", (3,), "float64"), Input("x2", (3, 4), "float64")
    x1v, x2v = values((3,), (3, 4))
    v0 = ops.einsum("ij,i->i", x2, x1)
    v3 = ops.var(ops.stack([v0, v0, x1], 1), None, 1).mean()
    v5 = ops.stack([v3, ops.mean(v3), ops.mean(v3)], 0)
    v6 = ops.log_softmax(v5, 0)
    v7 = ops.stack([v6, x1, v5], -2)
    (got,) = run([ops.where(v7 > v6, v0, v0)], x1=x1v, x2=x2v)
    assert got.shape == (3, 3)
    assert_allclose(got, np.broadcast_to(np.einsum("ij,i->i", x2v, x1v), (3, 3)), rtol=RTOL, atol=ATOL)
