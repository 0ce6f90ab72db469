"""Layout operations (strided and reversed slices, pad modes, flip, roll, tile, repeat,
diagonal, tril/triu, einsum with repeated indices and '...'): compiled values against
NumPy, gradients against central differences of the NumPy function, float64."""
import numpy as np
import pytest

import compiler as sp
from compiler import ops

RNG = np.random.default_rng(7)

CASES = [
    # (name, input shape, symprop function, numpy function)
    ("step2", (7, 4), lambda x: x[::2], lambda a: a[::2]),
    ("reversed", (5, 3), lambda x: x[::-1], lambda a: a[::-1]),
    ("reversed_strided", (9, 4), lambda x: x[7:0:-3, ::-2], lambda a: a[7:0:-3, ::-2]),
    ("negative_bounds", (6, 5), lambda x: x[-2:-6:-1, 1:-1:2], lambda a: a[-2:-6:-1, 1:-1:2]),
    ("empty", (4, 3), lambda x: x[3:1, :], lambda a: a[3:1, :]),
    ("flip_all", (3, 4), lambda x: ops.flip(x), lambda a: np.flip(a)),
    ("flip_axis", (3, 4, 2), lambda x: ops.flip(x, (0, 2)), lambda a: np.flip(a, (0, 2))),
    ("roll", (5, 4), lambda x: ops.roll(x, 2, 0), lambda a: np.roll(a, 2, 0)),
    ("roll_negative_two_axes", (5, 4), lambda x: ops.roll(x, (-1, 3), (0, 1)), lambda a: np.roll(a, (-1, 3), (0, 1))),
    ("roll_flat", (3, 4), lambda x: ops.roll(x, 5), lambda a: np.roll(a, 5)),
    ("pad_constant", (3, 4), lambda x: ops.pad(x, ((1, 2), (0, 3)), value=1.5),
     lambda a: np.pad(a, ((1, 2), (0, 3)), constant_values=1.5)),
    ("pad_int", (3, 2), lambda x: ops.pad(x, 2), lambda a: np.pad(a, 2)),
    ("pad_reflect", (5, 4), lambda x: ops.pad(x, ((2, 4), (3, 1)), "reflect"),
     lambda a: np.pad(a, ((2, 4), (3, 1)), "reflect")),
    ("pad_replicate", (3, 4), lambda x: ops.pad(x, ((2, 1), (0, 3)), "replicate"),
     lambda a: np.pad(a, ((2, 1), (0, 3)), "edge")),
    ("pad_circular", (4, 3), lambda x: ops.pad(x, ((2, 4), (3, 1)), "circular"),
     lambda a: np.pad(a, ((2, 4), (3, 1)), "wrap")),
    ("tile", (2, 3), lambda x: ops.tile(x, (2, 1, 3)), lambda a: np.tile(a, (2, 1, 3))),
    ("repeat_axis", (2, 3), lambda x: ops.repeat(x, 3, 1), lambda a: np.repeat(a, 3, 1)),
    ("repeat_flat", (2, 3), lambda x: ops.repeat(x, 2), lambda a: np.repeat(a, 2)),
    ("diagonal", (4, 4), lambda x: ops.diagonal(x), lambda a: np.diagonal(a)),
    ("diagonal_offset", (3, 5), lambda x: ops.diagonal(x, 2), lambda a: np.diagonal(a, 2)),
    ("diagonal_negative_offset_batched", (2, 5, 3), lambda x: ops.diagonal(x, -1, 1, 2),
     lambda a: np.diagonal(a, -1, 1, 2)),
    ("diagonal_axes_swapped", (4, 3, 2), lambda x: ops.diagonal(x, 1, 2, 0), lambda a: np.diagonal(a, 1, 2, 0)),
    ("tril", (4, 5), lambda x: ops.tril(x), lambda a: np.tril(a)),
    ("triu_offset_batched", (2, 4, 3), lambda x: ops.triu(x, 1), lambda a: np.triu(a, 1)),
    ("einsum_trace", (4, 4), lambda x: ops.einsum("ii->", x), lambda a: np.einsum("ii->", a)),
    ("einsum_diagonal", (4, 4), lambda x: ops.einsum("ii->i", x), lambda a: np.einsum("ii->i", a)),
    ("einsum_ellipsis", (2, 3, 4), lambda x: ops.einsum("...ij,...kj->...ik", x, x),
     lambda a: np.einsum("...ij,...kj->...ik", a, a)),
    ("einsum_implicit_ellipsis", (2, 3, 3), lambda x: ops.einsum("...ii", x), lambda a: np.einsum("...ii", a)),
    ("slice_of_pad_of_flip", (4, 5), lambda x: ops.pad(ops.flip(x, 1), ((1, 1), (2, 0)))[1:5:2, ::-2],
     lambda a: np.pad(np.flip(a, 1), ((1, 1), (2, 0)))[1:5:2, ::-2]),
]


@pytest.mark.parametrize("name, shape, fn, reference", CASES, ids=[c[0] for c in CASES])
def test_compiled_values_match_numpy(name, shape, fn, reference):
    x = sp.Input("x", shape, dtype="float64")
    a = RNG.standard_normal(shape)
    out = fn(x)
    expected = reference(a)
    assert out.shape == expected.shape
    np.testing.assert_allclose(sp.evaluate(out, {"x": a}), expected, rtol=1e-12, atol=1e-15)
    (compiled,) = sp.compile([out])(x=a)
    assert compiled.shape == expected.shape
    np.testing.assert_allclose(compiled, expected, rtol=1e-12, atol=1e-15)


def _central_differences(f, a, h=1e-6):
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[i] += h
        down[i] -= h
        g[i] = (f(up) - f(down)) / (2 * h)
    return g


@pytest.mark.parametrize("name, shape, fn, reference", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_central_differences(name, shape, fn, reference):
    x = sp.Input("x", shape, dtype="float64")
    a = RNG.standard_normal(shape)
    weights = RNG.standard_normal(reference(a).shape)
    loss = ops.sum(ops.sin(fn(x)) * sp.const(weights))
    gradient = sp.grad(loss, x)
    expected = _central_differences(lambda v: np.sum(np.sin(reference(v)) * weights), a)
    compiled, _ = sp.compile([gradient, fn(x)])(x=a)  # the value keeps x an argument when the gradient is 0
    np.testing.assert_allclose(sp.evaluate(gradient, {"x": a}), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(compiled, sp.evaluate(gradient, {"x": a}), rtol=1e-10, atol=1e-12)


def test_pad_rejects_widths_its_mode_cannot_take():
    x = sp.Input("x", (3, 4), dtype="float64")
    with pytest.raises(sp.GraphError, match="reflect"):
        ops.pad(x, ((3, 0), (0, 0)), "reflect")
    with pytest.raises(sp.GraphError, match="mode"):
        ops.pad(x, 1, "mirror")
    with pytest.raises(sp.GraphError, match="widths"):
        ops.pad(x, ((1, 2, 3),))
    with pytest.raises(sp.GraphError, match="step"):
        x[::0]


def test_reshape_infers_a_product_of_symbolic_dimensions():
    """("batch", 16, 8) -> (-1, 8) is ("batch*16", 8); written by hand in any order it is the same
    dimension; it compiles once and runs at every batch size, means over it divide by batch*16."""
    x = sp.Input("x", ("batch", 4, 3), dtype="float64")
    flat = x.reshape(-1, 3)
    assert flat.shape == ("batch*4", 3)
    assert x.reshape(("4*batch", 3)) is flat
    w = sp.Param("w", (3, 2), dtype="float64")
    back = (sp.tanh(flat) @ w).reshape("batch", 4, 2)
    loss = back.sum() + sp.mean(flat, axis=0).sum()
    outputs = [flat, back, sp.mean(flat, axis=0), sp.grad(loss, w)]
    fn = sp.compile(outputs)
    for batch in (1, 5):
        a, wv = RNG.standard_normal((batch, 4, 3)), RNG.standard_normal((3, 2))
        got = fn(x=a, w=wv)
        expected = [a.reshape(-1, 3), (np.tanh(a.reshape(-1, 3)) @ wv).reshape(batch, 4, 2), a.reshape(-1, 3).mean(0),
                    np.tanh(a.reshape(-1, 3)).T @ np.ones((4 * batch, 2))]
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_an_input_dimension_is_a_name_not_a_product():
    with pytest.raises(sp.GraphError, match="name"):
        sp.Input("x", ("batch*4", 3))
