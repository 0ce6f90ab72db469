"""Pooling equals torch.nn.functional's, values and input gradients: max and average pooling in 1-d
and 2-d (strides, paddings, dilations, ceil_mode, count_include_pad, divisor_override) and adaptive
pooling (torch's bins, None sizes, global pooling).

Hypothesis draws shapes and arguments, a dtype (float64, or float32 against torch in float64) and
values: normal ones, small integers (ties: the gradient goes to each window's first maximum, as
torch's), or small integers with -inf and NaN. For each example the op's value and the gradient of
``sum(out * g)`` (random ``g``) come from ``compiler.evaluate`` (many examples) or one
``compiler.compile`` (fewer: each compiles). A fixed table adds the cases an argument's rule turns on
(ceil_mode's last window, its divisor, global and non-uniform adaptive bins). The comparisons need
PyTorch; the declaration errors and the lowering checks at the end run without it.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import compiler as C
from compiler import Input, evaluate, grad, nn
from compiler.traversal import topological_order
from declaration_errors import assert_names_shapes_and_line

from optional_torch import F, needs_torch, torch

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
RTOL = {"float64": 1e-12, "float32": 2e-6}
POOLS = ["max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d"]
ADAPTIVE = ["adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool1d"]


# ---- torch's side --------------------------------------------------------------------------------

def torch_op(name: str, kwargs: dict):
    """torch's function; avg_pool1d with divisor_override (which torch's lacks) as avg_pool2d over height 1."""
    if name == "avg_pool1d" and kwargs.get("divisor_override") is not None:
        def one(v, first):
            return (first,) + tuple(v) if isinstance(v, (tuple, list)) else (first, v)
        first = {"kernel_size": 1, "stride": 1, "padding": 0}
        args = {k: one(v, first[k]) if k in first and v is not None else v for k, v in kwargs.items()}
        return lambda t: F.avg_pool2d(t[:, :, None], **args)[:, :, 0]
    return lambda t: getattr(F, name)(t, **kwargs)


def values_of(kind: str, rng, shape) -> np.ndarray:
    if kind == "normal":
        return rng.normal(size=shape)
    x = rng.integers(-1, 2, shape).astype(np.float64)
    if kind == "nonfinite":  # -inf often (whole windows of it), NaN sometimes
        x[rng.random(shape) < 0.4] = -np.inf
        x[rng.random(shape) < 0.1] = np.nan
    return x


def check(name, shape, kwargs, dtype="float64", kind="normal", seed=0, compiled=False):
    rng = np.random.default_rng(seed)
    x = values_of(kind, rng, shape).astype(dtype)
    tensor = torch.tensor(x.astype(np.float64), requires_grad=True)
    out = torch_op(name, kwargs)(tensor)
    g = rng.normal(size=tuple(out.shape))
    out.backward(torch.tensor(g))
    expected = [out.detach().numpy(), tensor.grad.numpy()]

    node = Input("x", (("batch",) if compiled else shape[:1]) + shape[1:], dtype=dtype)
    y = getattr(C, name)(node, **kwargs)
    weights = Input("g", y.shape, dtype=dtype)
    graph = [y] + grad((y * weights).sum(), [node])
    if compiled:
        got = C.compile(graph)(x=x, g=g.astype(dtype))
    else:
        got = evaluate(graph, {"x": x, "g": g.astype(dtype)})
    rtol = RTOL[dtype]
    for label, a, e in zip(("value", "gradient"), got, expected):
        assert a.shape == e.shape, (label, a.shape, e.shape)
        finite = np.abs(e[np.isfinite(e)])
        scale = max(1.0, float(finite.max()) if finite.size else 0.0)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale,
                                   err_msg=f"{name} {label} {dtype} {kind} {'compiled' if compiled else 'evaluated'} "
                                           f"{shape} {kwargs}")


# ---- drawn cases -----------------------------------------------------------------------------------

def _spelled(draw, values: tuple):
    """A size as torch takes it: an int when every axis agrees (sometimes), else a tuple."""
    if len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


def _output_length(length, k, s, p, d, ceil_mode):
    count = (length + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    return count - 1 if ceil_mode and (count - 1) * s >= length + p else count


@st.composite
def pool_case(draw, name: str):
    spatial, average = int(name[-2]), name.startswith("avg")
    axes = range(spatial)
    kernel = tuple(draw(st.integers(1, 4)) for _ in axes)
    stride = tuple(draw(st.integers(1, 3)) for _ in axes)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (1,) * spatial if average else tuple(draw(st.integers(1, 3)) for _ in axes)
    ceil_mode = draw(st.booleans())
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    shortest = [max(1, span - 2 * p) for span, p in zip(spans, padding)]
    lengths = tuple(draw(st.integers(low, low + 5)) for low in shortest)
    for length, k, s, p, d in zip(lengths, kernel, stride, padding, dilation):
        # a window of padding only (dilated taps that skip the input) has no first maximum: torch's
        # gradient then lands outside the input
        n = _output_length(length, k, s, p, d, ceil_mode)
        assume(all(any(0 <= i * s - p + t * d < length for t in range(k)) for i in range(n)))
    kwargs = {"kernel_size": _spelled(draw, kernel)}
    if draw(st.booleans()) or stride != kernel:
        kwargs["stride"] = _spelled(draw, stride)
    if any(padding) or draw(st.booleans()):
        kwargs["padding"] = _spelled(draw, padding)
    if any(d != 1 for d in dilation):
        kwargs["dilation"] = _spelled(draw, dilation)
    if ceil_mode or draw(st.booleans()):
        kwargs["ceil_mode"] = ceil_mode
    if average:
        kwargs["count_include_pad"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            kwargs["divisor_override"] = draw(st.sampled_from([1, 2, 3, 7, -2]))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + lengths
    return shape, kwargs


@st.composite
def adaptive_case(draw, name: str):
    spatial = int(name[-2])
    lengths = tuple(draw(st.integers(1, 10)) for _ in range(spatial))
    sizes = tuple(draw(st.one_of(st.integers(1, 10), st.just(length))) for length in lengths)
    if spatial == 2 and draw(st.integers(0, 4)) == 0:
        sizes = (None, sizes[1]) if draw(st.booleans()) else (sizes[0], None)
    output_size = sizes[0] if spatial == 1 and draw(st.booleans()) else _spelled(draw, sizes)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + lengths
    return shape, {"output_size": output_size}


def case_for(name):
    return pool_case(name) if name in POOLS else adaptive_case(name)


def _value_kinds(name):
    return ["normal", "ties", "nonfinite"] if "max" in name else ["normal", "nonfinite"]


@needs_torch
@pytest.mark.parametrize("name", POOLS + ADAPTIVE)
@settings(max_examples=60, **SETTINGS)
@given(data=st.data())
def test_evaluated_pooling_equals_torch(name, data):
    shape, kwargs = data.draw(case_for(name), label="shape and arguments")
    kind = data.draw(st.sampled_from(_value_kinds(name)), label="values")
    dtype = data.draw(st.sampled_from(["float64", "float32"]), label="dtype")
    check(name, shape, kwargs, dtype, kind, data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))


@needs_torch
@pytest.mark.parametrize("name", POOLS + ADAPTIVE)
@settings(max_examples=4, **SETTINGS)
@given(data=st.data())
def test_compiled_pooling_equals_torch(name, data):
    shape, kwargs = data.draw(case_for(name), label="shape and arguments")
    kind = data.draw(st.sampled_from(_value_kinds(name)), label="values")
    dtype = data.draw(st.sampled_from(["float64", "float32"]), label="dtype")
    check(name, shape, kwargs, dtype, kind, data.draw(st.integers(0, 2 ** 32 - 1), label="seed"), compiled=True)


# ---- the cases an argument's rule turns on ---------------------------------------------------------

CASES = [
    # ceil_mode: one more window, starting inside the input, reading past it; none starting in the padding only
    ("max_pool2d", (2, 2, 5, 7), {"kernel_size": 3, "stride": 2, "ceil_mode": True}, "ties"),
    ("max_pool2d", (1, 2, 6, 6), {"kernel_size": 2, "stride": 4, "padding": 1, "ceil_mode": True}, "ties"),
    ("max_pool2d", (1, 1, 2, 5), {"kernel_size": 3, "stride": 2, "ceil_mode": True}, "normal"),  # kernel > input
    ("max_pool2d", (2, 2, 7, 6), {"kernel_size": (5, 4), "stride": 2, "padding": 2, "ceil_mode": True},
     "ties"),  # 20 taps: a reduction
    ("max_pool2d", (1, 2, 8, 9), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": (2, 3)}, "nonfinite"),
    ("max_pool2d", (1, 1, 9, 9), {"kernel_size": 5, "dilation": 2, "stride": 1, "ceil_mode": True}, "ties"),  # reduced
    ("max_pool1d", (2, 3, 10), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True}, "ties"),
    ("max_pool1d", (1, 2, 11), {"kernel_size": 4, "stride": 3, "ceil_mode": True}, "nonfinite"),
    # ceil_mode's last window: its divisor counts only the padded input (count_include_pad) or the input
    ("avg_pool2d", (2, 2, 5, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, "normal"),
    ("avg_pool2d", (2, 2, 5, 7), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
                                  "count_include_pad": False}, "normal"),
    ("avg_pool2d", (1, 2, 6, 7), {"kernel_size": (2, 4), "stride": (3, 2), "ceil_mode": True, "divisor_override": 3},
     "normal"),
    ("avg_pool2d", (1, 1, 9, 8), {"kernel_size": (5, 4), "stride": 3, "padding": 2, "ceil_mode": True,
                                  "count_include_pad": False}, "normal"),  # 20 taps: a reduction
    ("avg_pool1d", (2, 3, 9), {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True,
                               "count_include_pad": False}, "normal"),
    ("avg_pool1d", (1, 2, 8), {"kernel_size": 3, "padding": 1, "divisor_override": 2}, "normal"),
    # adaptive: global, tiling bins, non-uniform (overlapping) bins, more bins than elements, None sizes
    ("adaptive_avg_pool2d", (2, 3, 7, 5), {"output_size": 1}, "normal"),
    ("adaptive_avg_pool2d", (2, 3, 8, 6), {"output_size": (4, 3)}, "normal"),
    ("adaptive_avg_pool2d", (2, 3, 13, 10), {"output_size": (7, None)}, "normal"),
    ("adaptive_avg_pool2d", (1, 2, 3, 4), {"output_size": (5, 7)}, "normal"),
    ("adaptive_max_pool2d", (2, 3, 7, 5), {"output_size": 1}, "ties"),
    ("adaptive_max_pool2d", (2, 3, 13, 10), {"output_size": (7, 4)}, "ties"),
    ("adaptive_max_pool2d", (1, 2, 9, 9), {"output_size": (2, 2)}, "nonfinite"),  # 25 taps: a reduction
    ("adaptive_max_pool2d", (1, 2, 3, 4), {"output_size": (None, 7)}, "ties"),
    ("adaptive_avg_pool1d", (2, 3, 10), {"output_size": 7}, "normal"),
    ("adaptive_avg_pool1d", (2, 3, 12), {"output_size": (1,)}, "normal"),
]


@needs_torch
@pytest.mark.parametrize("compiled", [False, True], ids=["evaluated", "compiled"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name,shape,kwargs,kind", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_pooling_case_equals_torch(name, shape, kwargs, kind, dtype, compiled):
    check(name, shape, kwargs, dtype, kind, seed=len(shape) + sum(shape), compiled=compiled)


LAYERS = [  # (layer, positional arguments, keyword arguments, input shape): the same for both libraries
    ("MaxPool2d", (3, 2, 1, 2), {"ceil_mode": True}, (2, 3, 9, 8)),
    ("AvgPool2d", (3, 2, 1, True, False), {}, (2, 3, 8, 7)),
    ("AvgPool2d", (2,), {"divisor_override": 3}, (1, 2, 4, 6)),
    ("MaxPool1d", (2, 1, 1, 2), {"ceil_mode": True}, (2, 3, 7)),
    ("AvgPool1d", (3, 2, 1, True), {}, (2, 3, 8)),
    ("AdaptiveAvgPool2d", ((3, None),), {}, (2, 3, 7, 5)),
    ("AdaptiveMaxPool2d", (3,), {}, (2, 3, 7, 5)),
    ("AdaptiveAvgPool1d", (4,), {}, (2, 3, 9)),
]


@needs_torch
@pytest.mark.parametrize("layer,args,kwargs,shape", LAYERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(LAYERS)])
def test_layer_equals_torch_module(layer, args, kwargs, shape):
    x = np.random.default_rng(1).normal(size=shape)
    with nn.names():
        out = getattr(nn, layer)(*args, **kwargs)(Input("x", ("batch",) + shape[1:], dtype="float64"))
    expected = getattr(torch.nn, layer)(*args, **kwargs)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(evaluate(out, {"x": x}), expected, rtol=1e-12)


# ---- lowering: global average pooling is a mean, other bins a plain pooling or gathered windows ----

def _ops_of(node) -> list:
    return [n.op for n in topological_order(node)]


def test_global_average_pooling_is_a_mean_over_the_spatial_axes():
    x = Input("x", ("batch", 8, 7, 5), dtype="float32")
    ops = _ops_of(C.adaptive_avg_pool2d(x, 1))
    assert ops.count("sum") == 1 and "einsum" not in ops and "window" not in ops


def test_adaptive_bins_lower_to_a_pooling_or_gathered_windows():
    x = Input("x", ("batch", 8, 12, 10), dtype="float32")
    assert "gather" not in _ops_of(C.adaptive_avg_pool2d(x, (4, 5)))  # tiling bins: a plain pooling
    assert "gather" not in _ops_of(C.adaptive_max_pool2d(x, (3, 1)))
    assert _ops_of(C.adaptive_avg_pool2d(x, (5, 3))).count("gather") == 2
    assert _ops_of(C.adaptive_avg_pool2d(x, (5, None))).count("gather") == 1
    assert _ops_of(C.adaptive_max_pool2d(x, (5, 3))).count("gather") == 2
    assert C.adaptive_avg_pool2d(x, (None, 10)) is x and C.adaptive_max_pool2d(x, (12, None)) is x


# ---- declaration errors: the op, x's shape, the argument and the value ------------------------------

def x(*shape):
    return Input("x", shape, dtype="float64")


ERRORS = [
    ("max_pool2d_dilation_zero", lambda: C.max_pool2d(x(1, 1, 4, 4), 2, dilation=0),
     ["max_pool2d", "(1, 1, 4, 4)", "dilation", "(0, 0)"]),
    ("max_pool2d_dilated_kernel_too_large", lambda: C.max_pool2d(x(1, 1, 4, 6), 2, dilation=(4, 1)),
     ["max_pool2d", "(1, 1, 4, 6)", "spans 5", "kernel_size (2, 2)", "dilation (4, 1)"]),
    ("max_pool2d_ceil_mode_int", lambda: C.max_pool2d(x(1, 1, 4, 4), 2, ceil_mode=1), ["max_pool2d", "ceil_mode", "1"]),
    ("avg_pool2d_divisor_zero", lambda: C.avg_pool2d(x(1, 1, 4, 4), 2, divisor_override=0),
     ["avg_pool2d", "(1, 1, 4, 4)", "divisor_override", "nonzero int", "got 0"]),
    ("avg_pool2d_divisor_float", lambda: C.avg_pool2d(x(1, 1, 4, 4), 2, divisor_override=2.0),
     ["avg_pool2d", "divisor_override", "2.0"]),
    ("avg_pool2d_count_include_pad_none", lambda: C.avg_pool2d(x(1, 1, 4, 4), 2, count_include_pad=None),
     ["avg_pool2d", "count_include_pad", "None"]),
    ("avg_pool2d_no_dilation", lambda: C.avg_pool2d(x(1, 1, 4, 4), 2, dilation=2), None),  # torch has none
    ("max_pool1d_x_rank", lambda: C.max_pool1d(x(1, 1, 4, 4), 2), ["max_pool1d", "(N, C, L)", "(1, 1, 4, 4)"]),
    ("max_pool1d_kernel_pair", lambda: C.max_pool1d(x(1, 2, 6), (2, 2)), ["max_pool1d", "(1, 2, 6)", "kernel_size",
                                                                            "(2, 2)"]),
    ("avg_pool1d_kernel_too_large", lambda: C.avg_pool1d(x(1, 2, 3), 4), ["avg_pool1d", "(1, 2, 3)", "spans 4"]),
    ("avg_pool1d_padding_over_half", lambda: C.avg_pool1d(x(1, 2, 8), 3, padding=2),
     ["avg_pool1d", "(1, 2, 8)", "padding", "(2,)"]),
    ("adaptive_avg_pool2d_zero", lambda: C.adaptive_avg_pool2d(x(1, 2, 5, 5), (3, 0)),
     ["adaptive_avg_pool2d", "(1, 2, 5, 5)", "output_size", "(3, 0)"]),
    ("adaptive_avg_pool2d_one_size", lambda: C.adaptive_avg_pool2d(x(1, 2, 5, 5), (3,)),
     ["adaptive_avg_pool2d", "output_size", "(3,)"]),
    ("adaptive_max_pool2d_word", lambda: C.adaptive_max_pool2d(x(1, 2, 5, 5), "3"),
     ["adaptive_max_pool2d", "output_size", "'3'"]),
    ("adaptive_max_pool2d_x_rank", lambda: C.adaptive_max_pool2d(x(2, 5, 5), 2),
     ["adaptive_max_pool2d", "(N, C, H, W)", "(2, 5, 5)"]),
    ("adaptive_avg_pool1d_pair", lambda: C.adaptive_avg_pool1d(x(1, 2, 5), (2, 2)),
     ["adaptive_avg_pool1d", "(1, 2, 5)", "output_size", "(2, 2)"]),
    ("adaptive_avg_pool1d_symbolic_length", lambda: C.adaptive_avg_pool1d(x(1, 2, "L"), 2),
     ["adaptive_avg_pool1d", "symbolic"]),
]


@pytest.mark.parametrize("declare,fragments", [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
def test_bad_arguments_name_the_op_shape_argument_and_value(declare, fragments):
    if fragments is None:  # not an argument of the op at all
        with pytest.raises(TypeError):
            declare()
        return
    assert_names_shapes_and_line(declare, fragments)


LAYER_ERRORS = [
    (lambda: nn.MaxPool2d(2, return_indices=True), "return_indices: expected False"),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices=True), "return_indices: expected False"),
    (lambda: nn.MaxPool1d(2, dilation=0), "dilation: expected an int >= 1, got 0"),
    (lambda: nn.MaxPool1d(2, ceil_mode=1), "ceil_mode: expected True or False, got 1"),
    (lambda: nn.AvgPool1d(3, divisor_override=0), "divisor_override: expected a nonzero int or None, got 0"),
    (lambda: nn.AvgPool1d((3, 3)), "kernel_size: expected an int >= 1, got (3, 3)"),
    (lambda: nn.AdaptiveAvgPool2d((2, 0)), "output_size: expected an int >= 1 or 2 of them"),
    (lambda: nn.AdaptiveAvgPool1d(None), "output_size: expected an int >= 1, got None"),
    (lambda: nn.MaxPool1d(2)(x(1, 2, 4, 4)), r"expected an input of shape (N, C, L), got shape (1, 2, 4, 4)"),
    (lambda: nn.AdaptiveAvgPool2d(1)(x(2, 4, 4)), r"expected an input of shape (N, C, H, W), got shape (2, 4, 4)"),
]


@pytest.mark.parametrize("make,message", LAYER_ERRORS, ids=[f"layer_error{i}" for i in range(len(LAYER_ERRORS))])
def test_layer_arguments_are_checked_when_the_layer_is_made(make, message):
    with pytest.raises(C.GraphError) as info:
        with nn.names():
            make()
    assert message in str(info.value)
