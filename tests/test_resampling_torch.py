"""interpolate, pixel_shuffle and pixel_unshuffle equal torch.nn.functional's, values and gradients.

Runs when PyTorch is installed (it is not a dependency). Each case is a shape and torch's keyword
arguments: nearest, nearest-exact, linear, bilinear and trilinear; integer, fractional and
downsampling scale factors (one or one per axis) and sizes; align_corners both ways. The value
and the gradient of ``sum(out * g)`` with respect to x come from ``compiler.evaluate`` (every
case) and ``compiler.compile`` (a subset), in float64 to 1e-12 and float32 to 1e-5 of their
magnitude. The gradient is checked against the adjoint of torch's forward (torch's output for
each basis vector of the input): torch's nearest backward kernel copies an output of the
input's length and reads one of twice it as ``i // 2`` whatever the scale factor, which its
forward does not, and that is the only place its own gradient differs from the adjoint
(checked too). Then the index rules on their own over thousands of (length, size or factor)
pairs, the layers, and the errors.
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

import compiler as C
from compiler import GraphError, Input, evaluate, grad, nn
from compiler.resampling import linear_taps, nearest_indices

from optional_torch import F, needs_torch, torch

RTOL = {"float64": 1e-12, "float32": 1e-5}

N3, N4, N5 = (2, 3, 5), (2, 2, 4, 5), (1, 2, 3, 2, 4)
CASES = [
    # nearest: integer factors (a broadcast), integer downsampling (a strided slice), the rest (a take)
    *[(N3, dict(scale_factor=s)) for s in (2, 3, 1.5, 0.5, 0.7, 2.1, 1.1, 1.0, 0.2)],
    *[(N3, dict(size=m)) for m in (1, 3, 5, 7, 10, 16)],
    (N4, dict(scale_factor=2)), (N4, dict(scale_factor=(2, 3))), (N4, dict(scale_factor=(1.5, 0.5))),
    (N4, dict(scale_factor=0.75)), (N4, dict(scale_factor=(1.1, 2.1))), (N4, dict(size=(7, 3))),
    (N4, dict(size=8)), (N4, dict(size=(4, 10))), ((1, 1, 6, 9), dict(scale_factor=(1 / 3, 2 / 3))),
    (N5, dict(scale_factor=2)), (N5, dict(size=(2, 3, 7))),
    # nearest-exact
    *[(N3, dict(mode="nearest-exact", scale_factor=s)) for s in (2, 1.5, 0.5, 0.7, 3.3)],
    *[(N3, dict(mode="nearest-exact", size=m)) for m in (1, 4, 9)],
    (N4, dict(mode="nearest-exact", scale_factor=(2, 1.5))), (N4, dict(mode="nearest-exact", size=(3, 8))),
    (N5, dict(mode="nearest-exact", scale_factor=(1.5, 0.5, 2))),
    # linear, both corner conventions
    *[(N3, dict(mode="linear", align_corners=a, scale_factor=s)) for a in (False, True)
      for s in (2, 3, 1.5, 0.5, 0.3, 1.7, 1.1, 1.0)],
    *[(N3, dict(mode="linear", align_corners=a, size=m)) for a in (False, True) for m in (1, 2, 3, 9, 5)],
    ((2, 3, 1), dict(mode="linear", scale_factor=4)), ((1, 2, 2), dict(mode="linear", align_corners=True, size=7)),
    ((2, 3, 5), dict(mode="linear", scale_factor=2)),  # align_corners None: False
    # bilinear
    *[(N4, dict(mode="bilinear", align_corners=a, scale_factor=s)) for a in (False, True)
      for s in (2, (1.5, 2.5), 0.5, (0.6, 1.4), (3, 1))],
    *[(N4, dict(mode="bilinear", align_corners=a, size=m)) for a in (False, True) for m in ((7, 3), 1, (4, 9))],
    ((1, 3, 8, 8), dict(mode="bilinear", scale_factor=2)), ((1, 1, 3, 2), dict(mode="bilinear", size=(12, 5))),
    # trilinear
    (N5, dict(mode="trilinear", scale_factor=2)), (N5, dict(mode="trilinear", align_corners=True, size=(4, 3, 3))),
    (N5, dict(mode="trilinear", scale_factor=(0.7, 1.5, 1))),
    # longer axes
    ((1, 2, 40), dict(mode="linear", scale_factor=1.5)), ((2, 2, 33), dict(mode="linear", align_corners=True, size=10)),
    ((1, 2, 20, 6), dict(mode="bilinear", scale_factor=2)),
    ((1, 1, 18, 24), dict(mode="bilinear", align_corners=True, size=(9, 50))),
    ((1, 1, 17, 3, 2), dict(mode="trilinear", scale_factor=(0.5, 2, 1.5))),
]
COMPILED = range(0, len(CASES), 5)  # indices into CASES: every mode and rank
FLOAT32 = [*range(2, len(CASES), 9), len(CASES) - 3]


def case_id(case):
    shape, kwargs = case
    return "x".join(map(str, shape)) + "-" + "-".join(f"{k}={v}" for k, v in kwargs.items())


def adjoint_gradient(x, kwargs, g):
    """The gradient of sum(interpolate(x) * g) as the adjoint of torch's forward: its output for each
    basis vector of one (N, C) plane, which the op maps alike."""
    spatial = x.shape[2:]
    size = math.prod(spatial)
    basis = torch.eye(size, dtype=torch.float64).reshape(size, 1, *spatial)
    jacobian = F.interpolate(basis, **kwargs).reshape(size, -1).numpy()  # (in, out)
    planes = g.reshape(x.shape[0] * x.shape[1], -1)
    return (planes @ jacobian.T).reshape(x.shape)


def symprop_results(op, x, kwargs, g, dtype, compiled):
    node = Input("x", x.shape, dtype=dtype)
    out = op(node, **kwargs)
    weights = Input("weights", out.shape, dtype=dtype)
    graph = [out, *grad((out * weights).sum(), [node])]
    values = {"x": x.astype(dtype), "weights": g.astype(dtype)}
    if compiled:
        return [np.asarray(v) for v in C.compile(graph)(**values)]
    return [np.asarray(v) for v in evaluate(graph, values)]


def close(actual, expected, dtype, what):
    scale = max(1.0, float(np.abs(expected).max()) if expected.size else 0.0)
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, err_msg=what)


def check_interpolate(case, dtype, compiled):
    shape, kwargs = case
    rng = np.random.default_rng(zlib.crc32(case_id(case).encode()))
    x = rng.normal(size=shape)
    tensor = torch.tensor(x.astype(dtype), requires_grad=True)
    out = F.interpolate(tensor, **kwargs)
    g = rng.normal(size=tuple(out.shape))
    out.backward(torch.tensor(g.astype(dtype)))
    value, gradient = symprop_results(C.interpolate, x, kwargs, g, dtype, compiled)
    what = f"{case_id(case)} {dtype} {'compiled' if compiled else 'evaluated'}"
    assert value.shape == tuple(out.shape) and value.dtype == dtype
    close(value, out.detach().numpy(), dtype, "value " + what)
    close(gradient, adjoint_gradient(x.astype(dtype).astype(np.float64), kwargs, g.astype(dtype).astype(np.float64)),
          dtype, "gradient " + what)
    tolerance = RTOL[dtype]
    if np.allclose(tensor.grad.numpy(), gradient, rtol=tolerance, atol=tolerance * max(1.0, np.abs(gradient).max())):
        return
    # the one place torch's own gradient is not the adjoint of its value: its 1-d and 3-d nearest backward
    assert kwargs.get("mode", "nearest") in ("nearest", "nearest-exact") and len(shape) != 4, \
        f"torch's gradient differs: {what}"


@needs_torch
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_interpolate_evaluated(case):
    check_interpolate(case, "float64", compiled=False)


@needs_torch
@pytest.mark.parametrize("case", [CASES[i] for i in COMPILED], ids=[case_id(CASES[i]) for i in COMPILED])
def test_interpolate_compiled(case):
    check_interpolate(case, "float64", compiled=True)


@needs_torch
@pytest.mark.parametrize("compiled", [False, True], ids=["evaluated", "compiled"])
@pytest.mark.parametrize("case", [CASES[i] for i in FLOAT32], ids=[case_id(CASES[i]) for i in FLOAT32])
def test_interpolate_float32(case, compiled):
    check_interpolate(case, "float32", compiled)


@needs_torch
def test_torch_nearest_backward_differs_from_its_forward_only_at_its_shortcuts():
    """scale_factor=1.1 on 4 elements: torch's forward reads [0, 0, 1, 2], its backward [0, 1, 2, 3];
    ours is the adjoint of the forward."""
    x = torch.arange(4.0, dtype=torch.float64).reshape(1, 1, 4).requires_grad_()
    out = F.interpolate(x, scale_factor=1.1)
    out.backward(torch.ones_like(out))
    assert out.detach().numpy().ravel().tolist() == [0, 0, 1, 2]
    assert x.grad.numpy().ravel().tolist() == [1, 1, 1, 1]
    value, gradient = symprop_results(C.interpolate, x.detach().numpy(), dict(scale_factor=1.1), np.ones((1, 1, 4)),
                                      "float64", False)
    assert value.ravel().tolist() == [0, 0, 1, 2] and gradient.ravel().tolist() == [2, 1, 1, 0]


# ---- the index rules alone ------------------------------------------------------------------------

FACTORS = (0.3, 0.5, 0.7, 1.1, 1.5, 1.7, 2.0, 2.1, 2.5, 3.0, 1 / 3, 2 / 3, 0.25, 4.0, 7.0, 2.9, 1.9999, 0.1, 1.0,
           1 / 7, 5 / 3, 1.2, 11 / 3)


def pairs(lengths, sizes):
    for n in lengths:
        yield from ((n, int(n * f), f) for f in FACTORS if int(n * f) >= 1)
        yield from ((n, m, None) for m in sizes)


def vectorised_torch():
    """Torch's nearest-exact and linear positions round once (a fused multiply-add) in its AVX2 and
    AVX-512 kernels, twice in its default one; symprop follows the vectorised builds."""
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("torch runs its non-vectorised kernels here, which round positions twice")


@needs_torch
@pytest.mark.parametrize("spatial", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
def test_nearest_indices_equal_torchs(mode, dtype, spatial):
    """Along each axis of a 3-d, 4-d and 5-d input in turn (torch's 2-d kernel has rules of its own)."""
    if mode == "nearest-exact" and spatial != 2:
        vectorised_torch()
    for axis in range(spatial):
        for n, m, f in pairs(range(1, 40, 1 if spatial == 1 else 2), range(1, 90)):
            shape = [1, 1] + [n if a == axis else 1 for a in range(spatial)]
            x = torch.arange(n, dtype=getattr(torch, dtype)).reshape(shape)
            kwargs = (dict(scale_factor=tuple(f if a == axis else 1.0 for a in range(spatial))) if f else
                      dict(size=tuple(m if a == axis else 1 for a in range(spatial))))
            expected = F.interpolate(x, mode=mode, **kwargs).numpy().ravel().astype(np.int64)
            np.testing.assert_array_equal(nearest_indices(n, m, f, mode == "nearest-exact", dtype, spatial), expected,
                                          err_msg=f"{mode} {dtype} n={n} {kwargs}")


def taps_matrix(n, m, taps):
    """The (m, n) matrix of an axis's two taps (the identity for a copied axis)."""
    if taps is None:
        return np.eye(n)
    i0, i1, lambda0, lambda1 = taps
    matrix = np.zeros((m, n))
    np.add.at(matrix, (np.arange(m), i0), lambda0.astype(np.float64))
    np.add.at(matrix, (np.arange(m), i1), lambda1.astype(np.float64))
    return matrix


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_linear_weights_equal_torchs(align_corners, dtype):
    vectorised_torch()
    for n, m, f in pairs(range(1, 30), range(1, 60)):
        basis = torch.eye(n, dtype=getattr(torch, dtype)).reshape(n, 1, n)
        kwargs = dict(scale_factor=f) if f else dict(size=m)
        expected = F.interpolate(basis, mode="linear", align_corners=align_corners, **kwargs).numpy()[:, 0].T
        matrix = taps_matrix(n, m, linear_taps(n, m, f, align_corners, dtype)).astype(dtype)
        np.testing.assert_array_equal(matrix, expected, err_msg=f"{dtype} n={n} {kwargs} {align_corners}")


def test_lowering():
    """Integer nearest upsampling is a broadcast and a reshape, downsampling a slice, the rest a gather;
    linear modes two gathers per axis."""
    from compiler.traversal import topological_order
    x = Input("x", ("batch", 3, 4, 5))

    def ops(node):
        return {n.op for n in topological_order(node)}
    assert ops(C.interpolate(x, scale_factor=(2, 3))) <= {"input", "reshape", "broadcast"}
    assert "gather" not in ops(C.interpolate(x, scale_factor=0.5))
    assert "gather" in ops(C.interpolate(x, scale_factor=1.5))
    assert "gather" in ops(C.interpolate(x, scale_factor=2, mode="bilinear"))
    assert "einsum" not in ops(C.interpolate(x, scale_factor=2, mode="bilinear"))
    # an unchanged size is a copy, but torch reads it as 1 * x[i] + 0 * x[i] (an inf is nan): one map
    assert ops(C.interpolate(x, size=(4, 5), mode="bilinear")) <= {"input", "const", "map", "surrogate"}
    assert C.interpolate(x, size=(4, 5)) is x


# ---- pixel shuffle --------------------------------------------------------------------------------

SHUFFLES = [((2, 8, 3, 4), 2), ((1, 18, 2, 3), 3), ((8, 3, 4), 2), ((2, 2, 8, 3, 4), 2), ((2, 3, 2, 2), 1),
            ((1, 4, 1, 1), 2)]


@needs_torch
@pytest.mark.parametrize("compiled", [False, True], ids=["evaluated", "compiled"])
@pytest.mark.parametrize("shape, r", SHUFFLES)
def test_pixel_shuffle_and_unshuffle(shape, r, compiled):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape)
    shuffled = F.pixel_shuffle(torch.tensor(x), r).numpy()
    g = rng.normal(size=shuffled.shape)
    value, gradient = symprop_results(C.pixel_shuffle, x, dict(upscale_factor=r), g, "float64", compiled)
    np.testing.assert_array_equal(value, shuffled)
    np.testing.assert_array_equal(gradient, F.pixel_unshuffle(torch.tensor(g), r).numpy())
    value, gradient = symprop_results(C.pixel_unshuffle, shuffled, dict(downscale_factor=r), x, "float64", compiled)
    np.testing.assert_array_equal(value, x)
    np.testing.assert_array_equal(gradient, shuffled)


# ---- layers ---------------------------------------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("layer, module", [
    (lambda: nn.Upsample(scale_factor=2), lambda: torch.nn.Upsample(scale_factor=2)),
    (lambda: nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True),
     lambda: torch.nn.Upsample(size=(5, 7), mode="bilinear", align_corners=True)),
    (lambda: nn.Upsample(scale_factor=1.5, mode="nearest-exact"),
     lambda: torch.nn.Upsample(scale_factor=1.5, mode="nearest-exact")),
    (lambda: nn.PixelShuffle(2), lambda: torch.nn.PixelShuffle(2)),
    (lambda: nn.PixelUnshuffle(2), lambda: torch.nn.PixelUnshuffle(2)),
])
def test_layers_equal_torchs(layer, module):
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 6))
    node = Input("x", ("batch", 4, 4, 6), dtype="float64")
    with nn.names():
        made = layer()
        out = made(node)
    assert made.params == [] and made.buffers == []
    np.testing.assert_allclose(evaluate(out, {"x": x}), module()(torch.tensor(x)).numpy(), rtol=1e-12, atol=1e-12)


@needs_torch
def test_a_decoder_trains_through_upsampling():
    """Conv -> Upsample -> Conv -> PixelShuffle: compiled gradients equal torch's."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 4, 4))
    node = Input("x", ("batch", 2, 4, 4), dtype="float64")
    with nn.names():
        model = nn.Sequential(nn.Conv2d(4, 3, padding=1, activation="relu"),
                              nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(8, 3, padding=1),
                              nn.PixelShuffle(2))
        out = model(node)
    weights = {p.name: rng.normal(size=p.shape) * 0.3 for p in model.params}
    loss = (out * out).mean()
    values = C.compile([loss, *grad(loss, model.params)])(x=x, **weights)

    reference = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
                                    torch.nn.Upsample(scale_factor=2, mode="bilinear"),
                                    torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.PixelShuffle(2)).double()
    tensors = [reference[0].weight, reference[0].bias, reference[3].weight, reference[3].bias]
    with torch.no_grad():
        for t, p in zip(tensors, model.params):
            t.copy_(torch.tensor(weights[p.name]))
    expected = (reference(torch.tensor(x)) ** 2).mean()
    expected.backward()
    np.testing.assert_allclose(values[0], expected.item(), rtol=1e-12)
    for got, t in zip(values[1:], tensors):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12)


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, kwargs, words", [
    ((2, 3, 4), dict(size=3, scale_factor=2), ["size, scale_factor", "exactly one", "both"]),
    ((2, 3, 4), dict(), ["size, scale_factor", "exactly one", "neither"]),
    ((2, 3, 4), dict(scale_factor=2, align_corners=True), ["align_corners", "None", "'nearest'", "True"]),
    ((2, 3, 4), dict(scale_factor=2, mode="bilinear"), ["mode 'bilinear'", "4-d", "(2, 3, 4)"]),
    ((2, 3, 4, 4), dict(scale_factor=2, mode="linear"), ["mode 'linear'", "3-d", "(2, 3, 4, 4)"]),
    ((2, 3), dict(scale_factor=2), ["x", "3-d, 4-d or 5-d", "(2, 3)"]),
    ((2, 3, 4), dict(scale_factor=2, mode="bicubic"), ["mode", "'nearest'", "'bicubic'"]),
    ((2, 3, 4), dict(size=(3, 4)), ["size", "1 value", "(3, 4)"]),
    ((2, 3, 4), dict(size=0), ["size", "int >= 1", "got 0"]),
    ((2, 3, 4), dict(scale_factor=-1.0), ["scale_factor", "number > 0", "-1.0"]),
    ((2, 3, 4), dict(scale_factor=0.1), ["scale_factor", "empty output", "(0,)"]),
    ((2, 3, 4), dict(scale_factor=2, mode="linear", align_corners="yes"), ["align_corners", "True, False", "'yes'"]),
])
def test_interpolate_errors(shape, kwargs, words):
    with pytest.raises(GraphError) as error:
        C.interpolate(Input("x", shape), **kwargs)
    message = str(error.value)
    assert message.startswith("interpolate") and all(w in message for w in words), message


@pytest.mark.parametrize("op, shape, r, words", [
    (C.pixel_shuffle, (2, 6, 3, 3), 2, ["channel count divisible by upscale_factor^2 = 4", "got 6"]),
    (C.pixel_shuffle, (6, 3), 1, ["x", "(*, C, H, W)", "(6, 3)"]),
    (C.pixel_shuffle, (2, 4, 3, 3), 0, ["upscale_factor", "int >= 1", "got 0"]),
    (C.pixel_unshuffle, (2, 1, 4, 5), 2, ["divisible by downscale_factor 2", "4 and 5"]),
    (C.pixel_unshuffle, (2, 1, 4, 4), 1.5, ["downscale_factor", "int >= 1", "1.5"]),
])
def test_pixel_shuffle_errors(op, shape, r, words):
    with pytest.raises(GraphError) as error:
        op(Input("x", shape), r)
    assert all(w in str(error.value) for w in words), str(error.value)


def test_layer_errors():
    with pytest.raises(GraphError, match="Upsample 'upsample': align_corners: expected None"):
        with nn.names():
            nn.Upsample(scale_factor=2, align_corners=False)
    with pytest.raises(GraphError, match="size, scale_factor: expected exactly one"):
        with nn.names():
            nn.Upsample()
    with pytest.raises(GraphError, match="upscale_factor: expected an int >= 1, got 0"):
        with nn.names():
            nn.PixelShuffle(0)
    with nn.names():
        layer = nn.Upsample(scale_factor=2, mode="bilinear")
    with pytest.raises(GraphError, match=r"4-d input \(N, C, H, W\), got shape \(2, 3, 4\)"):
        layer(Input("x", (2, 3, 4)))


# ---- regressions from the independent sweep ---------------------------------------------------------


def test_linear_modes_read_an_unchanged_axis_as_torch_does_inf_becomes_nan():
    """torch's linear kernels read an axis whose length does not change as 1 * x[i] + 0 * x[i]: an inf there
    is nan in every output reading it (the other axes interpolated or not). The copy kept the inf; the
    gradient stays the copy's."""
    inf, nan = np.inf, np.nan
    row = np.array([1.0, -inf, 2.0, inf, nan])
    cases = [(Input("x", (1, 1, 5), "float64"), row[None, None], dict(size=5, mode="linear"),
              np.array([1.0, nan, 2.0, nan, nan])[None, None]),
             (Input("x", (1, 1, 5), "float64"), row[None, None], dict(scale_factor=1.0, mode="linear", align_corners=True),
              np.array([1.0, nan, 2.0, nan, nan])[None, None]),
             (Input("x", (1, 1, 2, 5), "float64"), np.stack([row, row])[None, None],
              dict(size=(4, 5), mode="bilinear", align_corners=True),
              np.broadcast_to(np.array([1.0, nan, 2.0, nan, nan]), (1, 1, 4, 5)))]
    for x, value, kwargs, expected in cases:
        y = C.interpolate(x, **kwargs)
        outputs = [y] + grad(C.sum(y), [x])
        for got, gradient in (evaluate(outputs, {"x": value}), C.compile(outputs)(x=value)):
            np.testing.assert_array_equal(got, expected)
            assert np.isfinite(gradient).all() and (gradient > 0).all()


@needs_torch
@pytest.mark.parametrize("shape, kwargs", [
    ((2, 3, 6), dict(scale_factor=1.0, mode="linear")),
    ((1, 2, 4, 5), dict(size=(4, 9), mode="bilinear")),
    ((1, 2, 4, 5), dict(size=(7, 5), mode="bilinear", align_corners=True)),
    ((1, 1, 3, 4, 5), dict(scale_factor=(2.5, 1.0, 1.5), mode="trilinear")),
])
def test_linear_modes_with_an_unchanged_axis_equal_torch_on_infs(shape, kwargs):
    rng = np.random.default_rng(0)
    value = rng.integers(-1, 2, shape).astype(np.float64)
    value[rng.random(shape) < 0.2] = -np.inf
    value[rng.random(shape) < 0.1] = np.inf
    expected = F.interpolate(torch.tensor(value), **kwargs).numpy()
    x = Input("x", ("batch",) + shape[1:], "float64")
    y = C.interpolate(x, **kwargs)
    for got in (evaluate(y, {"x": value}), C.compile(y)(x=value)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, equal_nan=True)


def test_linear_zero_weight_taps_are_read_in_compiled_code():
    """An axis resampled to one output (or from one input) has weights that are size-1 constants, one of them
    0: written into the kernel body, sympy's algebra dropped x[i1] * 0, so an inf there stayed inf (torch
    and evaluate: nan). The scheduler now keeps such a product."""
    value = np.zeros((1, 1, 7, 5))
    value[0, 0, 4, :] = np.inf  # read with weight 0 by the single output row (source position 3)
    x = Input("x", (1, 1, 7, 5), "float64")
    y = C.interpolate(x, size=(1, 5), mode="bilinear")
    for got in (evaluate(y, {"x": value}), C.compile(y)(x=value)):
        assert np.isnan(got).all()
