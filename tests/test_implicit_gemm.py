"""Convolutions whose product reads the im2col matrix through offset tables (an implicit GEMM).

From DEEP_PRODUCT channels x taps on, a convolution's product runs positions x out channels with
the im2col matrix as A; that matrix, and the weight gradient's, are then read from the (padded)
input through row and depth offset tables (``schedule._indexed_matrix``), never stored. These
cases are all that deep: the values and gradients must equal the NumPy reference and the
evaluator, and the plan must show the tables and no buffer the size of the matrix.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import compiler as C
import conv_reference as CR
from compiler import Input, evaluate, grad
from compiler.conv import DEEP_PRODUCT

B = "batch"


def _tolerance(dtype, scale):
    return (1e-10 if dtype == "float64" else 2e-4) * max(1.0, scale)


def _compile_deep(name, shapes, kwargs, dtype):
    nodes = [Input(f"operand{i}", (B,) + s[1:] if i == 0 else s, dtype=dtype) for i, s in enumerate(shapes)]
    out = getattr(C, name)(*nodes, **kwargs)
    weights = Input("weights", out.shape, dtype=dtype)
    outputs = [out] + grad((out * weights).sum(), nodes)
    return outputs, C.compile(outputs)


def _one_stride(digits) -> bool:
    digits = [(size, stride) for size, stride in digits if size != 1]
    return all(outer == inner * size for (_, outer), (size, inner) in zip(digits, digits[1:]))


def _one_stride_windows(shapes, kwargs) -> bool:
    """Whether the im2col matrix's positions and its depths (channel x taps) each walk the padded
    input with one stride: then a plain strided read serves and no tables are needed."""
    (_, channels, *size), kernel = shapes[0], shapes[1][2:]
    pads = CR.conv_padding(kwargs["padding"], kernel, kwargs["dilation"])
    padded = [n + low + high for n, (low, high) in zip(size, pads)]
    strides = [math.prod(padded[j + 1:]) for j in range(len(padded))]
    out = [CR.output_length(n, k, s, d, low, high) for n, k, s, d, (low, high)
           in zip(size, kernel, kwargs["stride"], kwargs["dilation"], pads)]
    positions = [(o, s * e) for o, s, e in zip(out, kwargs["stride"], strides)]
    depths = [(channels, math.prod(padded))] + [(k, d * e) for k, d, e in zip(kernel, kwargs["dilation"], strides)]
    return _one_stride(positions) and _one_stride(depths)


@st.composite
def _deep_case(draw):
    """conv1d/conv2d of at least DEEP_PRODUCT channels x taps, at least 4 out channels and output
    positions (narrower products are loops, not GEMMs: contraction.py), with drawn kernels,
    strides, dilations and paddings (an int, a tuple, "same", "valid")."""
    spatial = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1 if spatial == 2 else 2, 4)) for _ in range(spatial))
    channels = -(-DEEP_PRODUCT // math.prod(kernel)) + draw(st.integers(0, 3))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    kind = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
    stride = (1,) * spatial if kind == "same" else tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    padding = {"int": draw(st.integers(0, 2)), "tuple": tuple(draw(st.integers(0, 2)) for _ in range(spatial)),
               "same": "same", "valid": "valid"}[kind]
    pads = CR.conv_padding(padding, kernel, dilation)
    sizes = tuple(max(1, d * (k - 1) + 1 - low - high) + s * draw(st.integers(3 if spatial == 1 else 1, 6))
                  for k, d, s, (low, high) in zip(kernel, dilation, stride, pads))
    shapes = ((2, channels, *sizes), (draw(st.integers(4, 8)), channels, *kernel), None)
    if draw(st.booleans()):
        shapes = shapes[:2] + ((shapes[1][0],),)
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation}
    return f"conv{spatial}d", tuple(x for x in shapes if x is not None), kwargs, draw(st.sampled_from(["float32", "float64"]))


@settings(max_examples=25, deadline=None, database=None)
@given(case=_deep_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_deep_convolutions_read_the_input_through_offset_tables(case, seed):
    name, shapes, kwargs, dtype = case
    outputs, fn = _compile_deep(name, shapes, kwargs, dtype)
    assume(math.prod(outputs[0].shape[2:]) >= 4)
    products = [k for k in fn.kernels() if k["kind"] == "bmm"]
    plain = _one_stride_windows(shapes, kwargs)
    tabled = sum("rows " in k["body"] for k in products)  # the forward product and the weight gradient's
    assert tabled == (0 if plain else 2), [k["body"] for k in products]
    rng = np.random.default_rng(seed)
    for batch in (1, 3):
        arrays = [rng.normal(size=(batch,) + s[1:] if i == 0 else s).astype(dtype) for i, s in enumerate(shapes)]
        values = {f"operand{i}": a for i, a in enumerate(arrays)}
        values["weights"] = rng.normal(size=(batch,) + outputs[0].shape[1:]).astype(dtype)
        got = fn(**values)
        reference = getattr(CR, name)(*[a.astype(np.float64) for a in arrays], **kwargs)
        scale = float(np.abs(reference).max()) if reference.size else 1.0
        np.testing.assert_allclose(got[0], reference, atol=_tolerance(dtype, scale) * shapes[1][1] * 4, rtol=0)
        for k, (a, e) in enumerate(zip(got[1:], evaluate(outputs[1:], values))):
            e = np.asarray(e)
            scale = float(np.abs(e).max()) if e.size else 1.0
            np.testing.assert_allclose(a, e, atol=_tolerance(dtype, scale) * 8, rtol=0, err_msg=f"gradient {k}")


def test_anchor_cnn_second_convolution_stores_its_padded_input_not_its_im2col_matrix():
    """The benchmark CNN's conv 16 -> 32 (144 deep): its padded input (16 x 16 x 16 per sample) is
    stored, and both its product and its weight gradient read it through the tables."""
    from test_cnn_kernels import anchor_cnn
    loss, _ = anchor_cnn()
    step = C.compile_step(loss, C.optim.SGD(lr=0.01, momentum=0.9))
    shapes = {tuple(b["shape"]) for b in step._executable.plan["buffers"]}
    assert ("batch", 1, 16, 16, 16) in shapes and ("batch", 1, 16, 3, 3, 14, 14) not in shapes
    bodies = [k["body"] for k in step.kernels() if k["kind"] == "bmm" and "rows " in k["body"]]
    positions, taps = "16*[14]+1*[14]", "256*[16]+16*[3]+1*[3]"  # 14 x 14 in rows of 16; 16 channels x 3 x 3
    assert len(bodies) == 2 and f"rows {positions}; depths {taps}" in bodies[0], bodies  # forward: positions x taps
    assert f"rows {taps}; depths {positions}" in bodies[1], bodies  # weight gradient: taps x positions


def test_above_the_table_limit_the_matrix_is_stored_and_still_right(monkeypatch):
    """More output positions than TABLE_LIMIT: no tables (the im2col matrix is stored, as before),
    the same values. The limit is lowered so that a small image crosses it."""
    from compiler.codegen import schedule
    monkeypatch.setattr(schedule, "TABLE_LIMIT", 50)
    monkeypatch.setenv("SYMPROP_CACHE", "0")  # the cache key does not know the patched limit
    shapes, kwargs = ((2, 4, 9, 9), (5, 4, 3, 3)), {"stride": (1, 1), "padding": 1, "dilation": (1, 1)}
    outputs, fn = _compile_deep("conv2d", shapes, kwargs, "float64")  # 81 positions > 50; 36 deep <= 50
    bodies = [k["body"] for k in fn.kernels() if k["kind"] == "bmm"]
    assert not any("rows " in b for b in bodies), bodies
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    weights = rng.normal(size=(2,) + outputs[0].shape[1:])
    got = fn(operand0=x, operand1=w, weights=weights)
    np.testing.assert_allclose(got[0], CR.conv2d(x, w, **kwargs), atol=1e-12)
    for a, e in zip(got[1:], evaluate(outputs[1:], {"operand0": x, "operand1": w, "weights": weights})):
        np.testing.assert_allclose(a, np.asarray(e), atol=1e-12)
