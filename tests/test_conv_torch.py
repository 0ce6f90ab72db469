"""conv1d, conv2d, max_pool2d and avg_pool2d equal torch.nn.functional's, values and gradients.

Runs when PyTorch is installed (it is not a dependency). Hypothesis draws shapes and arguments
(conv_reference.py's strategies: strides, paddings as ints, pairs, "same" with even kernels and
"valid", dilations, groups up to one per channel; pooling kernels, strides, paddings and
count_include_pad both ways), and values in float64: normal ones, or for max pooling small
integers with ties, where the gradient must go to the first maximum of each window as PyTorch's
does. For each example the value of the op and the gradient of ``sum(out * g)`` with respect to
x, w and b (random ``g``) come from ``compiler.evaluate`` (many examples) or from one
``compiler.compile`` (fewer: each compiles), and must equal PyTorch's to 1e-10 of their magnitude.
Beyond the drawn examples: convolutions at sizes with full GEMM tiles and remainders, max pooling
at -inf and NaN maxima, a small network end to end, and two SGD-momentum steps of the anchor CNN.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import compiler as C
import conv_reference as CR
from compiler import Input, evaluate, grad

torch = pytest.importorskip("torch")
F = torch.nn.functional
# PyTorch's own note that it copies the input for an even "same" kernel
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

EVALUATED_EXAMPLES = 60
COMPILED_EXAMPLES = 8
RTOL = 1e-10

SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def torch_results(op, arrays, kwargs, seed_array):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = op(*tensors, **kwargs)
    out.backward(torch.tensor(seed_array))
    return [out.detach().numpy()] + [t.grad.numpy() for t in tensors]


def symprop_results(op, arrays, kwargs, seed_array, compiled: bool):
    nodes = [Input(f"operand{i}", a.shape, dtype="float64") for i, a in enumerate(arrays)]
    out = op(*nodes, **kwargs)
    weights = Input("weights", out.shape, dtype="float64")
    graph = [out] + grad((out * weights).sum(), nodes)
    values = {f"operand{i}": a for i, a in enumerate(arrays)}
    values["weights"] = seed_array
    if compiled:
        return list(C.compile(graph)(**values))
    return [np.asarray(v) for v in evaluate(graph, values)]


def check(name, shapes, kwargs, seed, compiled, ties=False):
    rng = np.random.default_rng(seed)
    if ties:
        arrays = [rng.integers(-1, 2, s).astype(np.float64) for s in shapes]
    else:
        arrays = [rng.normal(size=s) for s in shapes]
    torch_op, symprop_op = getattr(F, name), getattr(C, name)
    with torch.no_grad():
        out_shape = torch_op(*[torch.tensor(a) for a in arrays], **kwargs).shape
    seed_array = rng.normal(size=tuple(out_shape))
    expected = torch_results(torch_op, arrays, kwargs, seed_array)
    actual = symprop_results(symprop_op, arrays, kwargs, seed_array, compiled)
    what = ["value"] + [f"gradient wrt {n}" for n in ("x", "w", "b")[:len(arrays)]]
    for label, a, e in zip(what, actual, expected):
        scale = max(1.0, float(np.abs(e).max()) if e.size else 0.0)
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=RTOL * scale,
                                   err_msg=f"{name} {label} {'compiled' if compiled else 'evaluated'} "
                                           f"{shapes} {kwargs}")


# ---- convolutions ----------------------------------------------------------------------------------

CONV2D_EXAMPLES = [
    (((2, 3, 5, 6), (4, 3, 2, 4), (4,)), {"padding": "same"}),                  # even kernel: more padding high
    (((1, 2, 6, 5), (2, 2, 4, 2)), {"padding": "same", "dilation": (1, 3)}),
    (((2, 4, 5, 5), (4, 1, 3, 3), (4,)), {"groups": 4, "padding": 1}),           # depthwise
    (((1, 3, 7, 6), (6, 1, 3, 3)), {"groups": 3, "stride": 2}),                  # depthwise, multiplier 2
    (((2, 4, 7, 7), (6, 2, 3, 2), (6,)), {"stride": (2, 1), "padding": (1, 0), "dilation": (2, 1), "groups": 2}),
    (((1, 1, 4, 4), (2, 1, 4, 4)), {"padding": "valid"}),                        # one window
]
CONV1D_EXAMPLES = [
    (((2, 3, 7), (2, 3, 4), (2,)), {"padding": "same"}),
    (((1, 2, 9), (2, 2, 2)), {"padding": "same", "dilation": 3}),
    (((2, 3, 6), (3, 1, 3)), {"groups": 3, "padding": 2, "stride": 2}),        # depthwise
    (((1, 4, 8), (2, 2, 3), (2,)), {"groups": 2, "dilation": 2, "stride": 3}),
]


def _with_examples(test, cases):
    for case in cases:
        test = example(case=case, seed=0)(test)
    return test


def _conv_test(name, spatial, cases, compiled):
    strategy = CR.conv_case(spatial, max_groups=4, max_kernel=4, max_extra=4)

    @settings(max_examples=COMPILED_EXAMPLES if compiled else EVALUATED_EXAMPLES, **SETTINGS)
    @given(case=strategy, seed=st.integers(0, 2 ** 32 - 1))
    def test(case, seed):
        shapes, kwargs = case
        check(name, shapes, kwargs, seed, compiled)

    return _with_examples(test, cases)


test_conv2d_evaluated = _conv_test("conv2d", 2, CONV2D_EXAMPLES, compiled=False)
test_conv2d_compiled = _conv_test("conv2d", 2, CONV2D_EXAMPLES[:3], compiled=True)
test_conv1d_evaluated = _conv_test("conv1d", 1, CONV1D_EXAMPLES, compiled=False)
test_conv1d_compiled = _conv_test("conv1d", 1, CONV1D_EXAMPLES[:2], compiled=True)

CONV_TRANSPOSE_EXAMPLES = [
    (((2, 3, 4, 5), (3, 2, 3, 3), (2,)), {"stride": 2, "padding": 1, "output_padding": 1}),  # a decoder's upsampling
    (((1, 4, 3, 3), (4, 1, 2, 3)), {"stride": (1, 2), "groups": 2, "dilation": 2}),
    (((1, 1, 1, 1), (1, 1, 1, 1)), {"dilation": (2, 1), "output_padding": (1, 0)}),  # output_padding >= stride
]


@pytest.mark.parametrize("compiled", [False, True])
@settings(max_examples=EVALUATED_EXAMPLES, **SETTINGS)
@given(case=CR.conv_transpose_case(), seed=st.integers(0, 2 ** 32 - 1))
@example(case=CONV_TRANSPOSE_EXAMPLES[0], seed=0)
@example(case=CONV_TRANSPOSE_EXAMPLES[1], seed=0)
@example(case=CONV_TRANSPOSE_EXAMPLES[2], seed=0)
def test_conv_transpose2d_equals_torch(compiled, case, seed):
    """conv_transpose2d (the conv's input gradient, built as that VJP) against torch: value and the gradients
    of x, w and b, over strides, paddings, output paddings, dilations and groups."""
    shapes, kwargs = case
    check("conv_transpose2d", shapes, kwargs, seed, compiled)


# ---- pooling ---------------------------------------------------------------------------------------

MAX_POOL_EXAMPLES = [
    ((((2, 2, 5, 6),), {"kernel_size": 3, "stride": 2, "padding": 1}), True),      # overlapping windows, ties
    ((((1, 3, 4, 4),), {"kernel_size": 2}), True),
    ((((1, 1, 6, 5),), {"kernel_size": (3, 2), "stride": (1, 2), "padding": (1, 0)}), True),
    ((((2, 2, 7, 6),), {"kernel_size": (5, 4), "stride": (2, 1), "padding": (2, 1)}), True),     # 20 taps: reduced
    ((((1, 2, 6, 6),), {"kernel_size": 5, "stride": 1}), False),
]
AVG_POOL_EXAMPLES = [
    ((((2, 2, 5, 6),), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": True}), False),
    ((((2, 2, 5, 6),), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}), False),
    ((((1, 1, 4, 7),), {"kernel_size": (2, 4), "stride": 1, "padding": (1, 2), "count_include_pad": False}), False),
    ((((2, 1, 6, 7),), {"kernel_size": (4, 5), "stride": 2, "padding": 2, "count_include_pad": False}), False),
    ((((1, 2, 6, 6),), {"kernel_size": 5, "stride": 1, "padding": 1}), False),
]


def _pool_test(name, cases, compiled):
    average = name == "avg_pool2d"
    strategy = CR.pool_case(average=average, max_kernel=6, max_extra=4, max_channels=3)  # up to 36 taps

    @settings(max_examples=COMPILED_EXAMPLES if compiled else EVALUATED_EXAMPLES, **SETTINGS)
    @given(case=strategy, ties=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
    def test(case, ties, seed):
        shapes, kwargs = case
        check(name, shapes, kwargs, seed, compiled, ties=ties)

    for case, ties in cases:
        test = example(case=case, ties=ties, seed=0)(test)
    return test


test_max_pool2d_evaluated = _pool_test("max_pool2d", MAX_POOL_EXAMPLES, compiled=False)
test_max_pool2d_compiled = _pool_test("max_pool2d", MAX_POOL_EXAMPLES[:2] + MAX_POOL_EXAMPLES[3:4], compiled=True)
test_avg_pool2d_evaluated = _pool_test("avg_pool2d", AVG_POOL_EXAMPLES, compiled=False)
test_avg_pool2d_compiled = _pool_test("avg_pool2d", AVG_POOL_EXAMPLES[:2] + AVG_POOL_EXAMPLES[3:4], compiled=True)


# ---- a small network, end to end ---------------------------------------------------------------------


def test_conv_relu_pool_dense_gradients_equal_torch():
    """conv 3x3 pad 1, ReLU, max-pool 2, conv 3x3 stride 2, avg-pool, flatten, dense, cross-entropy:
    the loss and every parameter's gradient, compiled, equal PyTorch's autograd (float64)."""
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=(4, 2, 12, 12)), "w1": rng.normal(size=(6, 2, 3, 3)) / 3,
              "b1": rng.normal(size=6), "w2": rng.normal(size=(4, 6, 3, 3)) / 4, "b2": rng.normal(size=4),
              "dense": rng.normal(size=(4, 5)) / 2}
    labels = rng.integers(0, 5, 4)

    def network(ops, x, w1, b1, w2, b2, dense, flatten):
        h = ops.max_pool2d(ops.relu(ops.conv2d(x, w1, b1, padding=1)), 2)
        h = ops.avg_pool2d(ops.conv2d(h, w2, b2, stride=2, padding=1), 2, count_include_pad=False)
        return flatten(h) @ dense

    nodes = {k: Input(k, v.shape, dtype="float64") for k, v in arrays.items()}
    label_node = Input("labels", (4,), dtype="int64")
    logits = network(C, **nodes, flatten=C.flatten)
    loss = C.cross_entropy(logits, label_node)
    params = [nodes[k] for k in ("w1", "b1", "w2", "b2", "dense")]
    results = C.compile([loss] + grad(loss, params))(**arrays, labels=labels)

    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    t_logits = network(_TorchOps, **tensors, flatten=lambda h: torch.flatten(h, 1))
    t_loss = F.cross_entropy(t_logits, torch.tensor(labels))
    t_loss.backward()
    np.testing.assert_allclose(results[0], t_loss.item(), rtol=1e-12)
    for name, got in zip(("w1", "b1", "w2", "b2", "dense"), results[1:]):
        np.testing.assert_allclose(got, tensors[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


class _TorchOps:
    conv1d = staticmethod(F.conv1d)
    conv2d = staticmethod(F.conv2d)
    tanh = staticmethod(torch.tanh)
    relu = staticmethod(F.relu)
    max_pool2d = staticmethod(F.max_pool2d)
    avg_pool2d = staticmethod(F.avg_pool2d)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shapes,kwargs", [
    (((3, 16, 14, 14), (32, 16, 3, 3), (32,)), {"padding": 1}),                   # the anchor CNN's second conv
    (((2, 7, 13, 11), (5, 7, 3, 2), (5,)), {"stride": (2, 1), "padding": (1, 0)}),  # remainders everywhere
    (((2, 12, 9, 10), (12, 1, 3, 3), None), {"padding": "same", "groups": 12}),     # depthwise
], ids=["anchor", "odd", "depthwise"])
def test_compiled_conv_at_larger_sizes_equals_torch(shapes, kwargs, dtype):
    """Sizes where the register-tiled product has full tiles and remainders: value and gradients (x, w, b)
    of conv2d followed by ReLU and 2x2 max pooling, compiled, against PyTorch in float64."""
    rng = np.random.default_rng(11)
    arrays = [rng.normal(size=s).astype(dtype) for s in shapes if s is not None]

    def network(ops, *xs):
        return ops.max_pool2d(ops.relu(ops.conv2d(*xs, **kwargs)), 2)

    tensors = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in arrays]
    t_out = network(_TorchOps, *tensors)
    seed_array = rng.normal(size=tuple(t_out.shape))
    t_out.backward(torch.tensor(seed_array))
    nodes = [Input(f"operand{i}", a.shape, dtype=dtype) for i, a in enumerate(arrays)]
    out = network(C, *nodes)
    weights = Input("weights", out.shape, dtype=dtype)
    fn = C.compile([out] + grad((out * weights).sum(), nodes))
    got = fn(**{f"operand{i}": a for i, a in enumerate(arrays)}, weights=seed_array.astype(dtype))
    rtol = 1e-4 if dtype == "float32" else 1e-10
    expected = [t_out.detach().numpy()] + [t.grad.numpy() for t in tensors]
    for label, a, e in zip(["value", "x", "w", "b"], got, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * float(np.abs(e).max()), err_msg=label)


# ---- max pooling where the maximum is not a finite number --------------------------------------------

def _max_pool_gradients(x, kernel_size, stride, padding):
    node = Input("nonfinite", x.shape, dtype="float64")
    gradient = grad(C.max_pool2d(node, kernel_size, stride, padding).sum(), node)
    tensor = torch.tensor(x, requires_grad=True)
    F.max_pool2d(tensor, kernel_size, stride, padding).sum().backward()
    return [evaluate(gradient, {"nonfinite": x}), C.compile(gradient)(nonfinite=x)], tensor.grad.numpy()


def test_max_pool2d_gradient_of_minus_infinity_stays_inside_the_input():
    x = np.full((1, 1, 2, 2), -np.inf)
    expected = CR.max_pool2d_backward(x, np.ones((1, 1, 2, 2)), 3, 1, 1)  # [[4, 0], [0, 0]]
    got, from_torch = _max_pool_gradients(x, 3, 1, 1)
    np.testing.assert_array_equal(expected, from_torch)  # the reference is PyTorch's
    for g in got:
        np.testing.assert_array_equal(g, expected)


def test_max_pool2d_gradient_goes_to_a_nan_maximum():
    x = np.array([[[[1.0, np.nan, 0.5], [2.0, 0.0, -1.0], [0.0, 3.0, 1.0]]]])
    got, expected = _max_pool_gradients(x, 2, 1, 0)
    for g in got:
        np.testing.assert_array_equal(g, expected)


def test_anchor_cnn_training_steps_equal_torch_sgd_momentum():
    """Two compiled SGD-momentum steps of the anchor CNN (float32, batch 16 of a symbolic batch) move every
    parameter as two steps of torch.optim.SGD do, from the same starting values."""
    from test_cnn_kernels import anchor_cnn

    loss, params = anchor_cnn()
    step = C.compile_step(loss, C.optim.SGD(lr=0.05, momentum=0.9))
    rng = np.random.default_rng(5)
    start = {name: (rng.normal(size=array.shape) * (0.3 if array.ndim > 1 else 0.1)).astype(np.float32)
             for name, array in step.params.items()}
    for name, array in start.items():
        np.copyto(step.params[name], array)
    tensors = {name: torch.tensor(array.astype(np.float64), requires_grad=True) for name, array in start.items()}
    optimizer = torch.optim.SGD(list(tensors.values()), lr=0.05, momentum=0.9)
    for _ in range(2):
        images = rng.normal(size=(16, 1, 28, 28)).astype(np.float32)
        labels = rng.integers(0, 10, 16)
        value = step(images=images, labels=labels)
        optimizer.zero_grad()
        t = tensors
        h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(images, dtype=torch.float64), t["conv1_weight"],
                                         t["conv1_bias"], padding=1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, t["conv2_weight"], t["conv2_bias"], padding=1)), 2)
        t_loss = F.cross_entropy(torch.flatten(h, 1) @ t["dense_weight"] + t["dense_bias"], torch.tensor(labels))
        t_loss.backward()
        optimizer.step()
        np.testing.assert_allclose(value, t_loss.item(), rtol=1e-4)
    for name, tensor in tensors.items():  # the parameters' moves, to float32 rounding of the parameters
        moved, expected = step.params[name] - start[name], tensor.detach().numpy() - start[name]
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(moved, expected, rtol=2e-3, atol=2e-3 * float(np.abs(expected).max()), err_msg=name)


def test_compiled_hessian_vector_product_equals_torch_double_backward():
    """Second order: grad(sum(grad(L, [x, w]) * v), [x, w]) of a conv-tanh-pool network, compiled with a
    symbolic batch, equals PyTorch's double backward."""
    rng = np.random.default_rng(8)
    shapes = {"x": (3, 2, 7, 6), "w": (4, 2, 3, 3), "w2": (2, 2, 3)}
    arrays = {k: rng.normal(size=s) for k, s in shapes.items()}
    directions = {k: rng.normal(size=s) for k, s in shapes.items()}

    def loss(ops, x, w, w2):
        h = ops.tanh(ops.conv2d(x, w, stride=(1, 2), padding=1, dilation=(2, 1)))
        h = ops.max_pool2d(h, 3, 1, 1) + ops.avg_pool2d(h, 3, 1, 1, count_include_pad=False)  # (N, 4, 5, 3)
        return (ops.conv1d(h.reshape(-1, 4, 15), w2, stride=2, groups=2) ** 2).sum()

    nodes = {k: Input(k, ("batch",) + s[1:] if k == "x" else s, dtype="float64") for k, s in shapes.items()}
    vs = {k: Input(f"v_{k}", n.shape, dtype="float64") for k, n in nodes.items()}
    first = grad(loss(C, **nodes), list(nodes.values()))
    inner = sum((g * vs[k]).sum() for k, g in zip(nodes, first))
    hvp = C.compile(grad(inner, list(nodes.values())))(**arrays, **{f"v_{k}": v for k, v in directions.items()})

    tensors = {k: torch.tensor(a, requires_grad=True) for k, a in arrays.items()}
    t_first = torch.autograd.grad(loss(_TorchOps, **tensors), list(tensors.values()), create_graph=True)
    t_inner = sum((g * torch.tensor(directions[k])).sum() for k, g in zip(tensors, t_first))
    t_hvp = torch.autograd.grad(t_inner, list(tensors.values()))
    for name, got, expected in zip(tensors, hvp, t_hvp):
        expected = expected.numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * float(np.abs(expected).max()), err_msg=name)


@pytest.mark.parametrize("kernel_size,stride,padding", [(2, 2, 0), (3, 1, 1), (5, 1, 2)])  # 5x5: the reduction path
def test_max_pool2d_gradient_goes_to_the_last_of_several_nans(kernel_size, stride, padding):
    rng = np.random.default_rng(kernel_size)
    x = np.round(rng.standard_normal((2, 1, 6, 6)), 0)
    x[rng.random(x.shape) < 0.3] = np.nan
    got, expected = _max_pool_gradients(x, kernel_size, stride, padding)
    assert np.isnan(x).sum() >= 4
    for g in got:
        np.testing.assert_array_equal(g, expected)


def test_conv_transpose2d_layer_loads_torch_weights_and_initialises_as_torch():
    """nn.ConvTranspose2d: Params named and laid out as torch's (weight (in, out/groups, kh, kw)), the same
    output as torch's layer with its weights, and torch's default bounds (fan_in = out/groups x taps)."""
    from compiler import nn
    from compiler.initializers import initial_values
    x = Input("x", ("batch", 4, 5, 5), dtype="float64")
    with nn.names():
        layer = nn.ConvTranspose2d(6, 3, stride=2, padding=1, output_padding=1, groups=2)
        out = layer(x)
    reference = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2).double()
    assert [(p.name, p.shape) for p in layer.params] == [
        ("conv_transpose2d.weight", tuple(reference.weight.shape)), ("conv_transpose2d.bias", (6,))]
    array = np.random.default_rng(0).standard_normal((2, 4, 5, 5))
    values = {"x": array, "conv_transpose2d.weight": reference.weight.detach().numpy(),
              "conv_transpose2d.bias": reference.bias.detach().numpy()}
    np.testing.assert_allclose(C.compile(out)(**values), reference(torch.tensor(array)).detach().numpy(), rtol=1e-12)
    bound = 1 / np.sqrt(3 * 9)
    initial = initial_values(layer.params, seed=0)
    assert all(0.8 * bound < np.abs(v).max() <= bound for v in initial.values())
