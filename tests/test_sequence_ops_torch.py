"""layer_norm, rms_norm and scaled_dot_product_attention equal torch.nn.functional's, values and gradients.

Runs when PyTorch is installed (it is not a dependency). Hypothesis draws shapes (broadcasting leading
dims of q, k and v; masks of (Tq, Tk), of a broadcast row or column, or with q's leading dims; causal or
not), eps, and values in float64; bool masks have rows where every key is masked, additive masks -inf
entries and whole rows of them. For each example the value and the gradient of ``sum(out * g)`` (random
``g``) with respect to every float input (x, gamma, beta; q, k, v and an additive mask) come from
``compiler.evaluate`` (many examples) or from one ``compiler.compile`` (fewer: each compiles), and must
equal PyTorch's to 1e-10 of their magnitude.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import compiler as C
from compiler import Input, evaluate, grad

torch = pytest.importorskip("torch")
F = torch.nn.functional

EVALUATED_EXAMPLES = 40
COMPILED_EXAMPLES = 4
RTOL = 1e-10
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def norm_case(draw):
    name = draw(st.sampled_from(["layer_norm", "rms_norm"]))
    x = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)) + (draw(st.integers(1, 6)),)
    affine = draw(st.sampled_from(["none", "gamma", "both"] if name == "layer_norm" else ["none", "gamma"]))
    shapes = (x,) + {"none": (), "gamma": ((x[-1],),), "both": ((x[-1],), (x[-1],))}[affine]
    return name, shapes, {"eps": draw(st.sampled_from([1e-5, 1e-6, 0.1]))}


@st.composite
def attention_case(draw):
    leads = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=2, max_side=3)).input_shapes
    tq, tk, d, dv = (draw(st.integers(1, 5)) for _ in range(4))
    shapes = (leads[0] + (tq, d), leads[1] + (tk, d), leads[2] + (tk, dv))
    kind = draw(st.sampled_from([None, "bool", "additive"]))
    causal = draw(st.booleans()) if kind is None else False  # torch refuses a mask with is_causal
    if kind is not None:
        shapes += (draw(st.sampled_from([(tq, tk), (1, tk), (tq, 1), leads[0] + (tq, tk)])),)
    return shapes, kind, causal


def _arrays(shapes, kind, rng):
    arrays = [rng.normal(size=s) for s in shapes[:3]]
    if kind is not None:
        shape = shapes[3]
        row_masked = rng.uniform(size=shape[:-1] + (1,)) < 0.2
        if kind == "bool":
            arrays.append((rng.uniform(size=shape) < 0.7) & ~row_masked)
        else:
            masked = (rng.uniform(size=shape) < 0.25) | row_masked
            arrays.append(np.where(masked, -np.inf, rng.normal(size=shape)))
    return arrays


def _torch(op, arrays, seed_array):
    tensors = [torch.tensor(a, requires_grad=a.dtype != bool) for a in arrays]
    out = op(*tensors)
    out.backward(torch.tensor(seed_array))
    return [out.detach().numpy()] + [t.grad.numpy() for t in tensors if t.requires_grad]


def _symprop(op, arrays, seed_array, compiled: bool):
    nodes = [Input(f"operand{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
    out = op(*nodes)
    weights = Input("weights", out.shape, dtype="float64")
    graph = [out] + grad((out * weights).sum(), [x for x in nodes if x.dtype == "float64"])
    values = {f"operand{i}": a for i, a in enumerate(arrays)}
    values["weights"] = seed_array
    if compiled:
        return list(C.compile(graph)(**values))
    return [np.asarray(value) for value in evaluate(graph, values)]


def _compare(symprop_op, torch_op, arrays, rng, compiled, what):
    with torch.no_grad():
        shape = tuple(torch_op(*[torch.tensor(a) for a in arrays]).shape)
    seed_array = rng.normal(size=shape)
    expected = _torch(torch_op, arrays, seed_array)
    actual = _symprop(symprop_op, arrays, seed_array, compiled)
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert np.all(np.isfinite(e)), f"{what}: torch gave a non-finite result"
        scale = max(1.0, float(np.abs(e).max()) if e.size else 0.0)
        label = "value" if k == 0 else f"gradient {k - 1}"
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=RTOL * scale,
                                   err_msg=f"{what} {label} {'compiled' if compiled else 'evaluated'}")


def check_norm(case, seed, compiled):
    name, shapes, kwargs = case
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s) for s in shapes]
    d = shapes[0][-1]
    if name == "layer_norm":
        def torch_op(x, *affine):
            return F.layer_norm(x, (d,), *affine, eps=kwargs["eps"])
    else:
        def torch_op(x, *gamma):
            return F.rms_norm(x, (d,), *gamma, eps=kwargs["eps"])

    def symprop_op(x, *affine):
        return getattr(C, name)(x, *affine, eps=kwargs["eps"])

    _compare(symprop_op, torch_op, arrays, rng, compiled, f"{name} {shapes} {kwargs}")


def check_attention(case, seed, compiled):
    shapes, kind, causal = case
    rng = np.random.default_rng(seed)
    arrays = _arrays(shapes, kind, rng)

    def torch_op(q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)

    def symprop_op(q, k, v, mask=None):
        return C.scaled_dot_product_attention(q, k, v, mask, causal=causal)

    _compare(symprop_op, torch_op, arrays, rng, compiled, f"attention {shapes} mask={kind} causal={causal}")


@settings(max_examples=EVALUATED_EXAMPLES, **SETTINGS)
@given(case=norm_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_norms_equal_torch_evaluated(case, seed):
    check_norm(case, seed, compiled=False)


@settings(max_examples=COMPILED_EXAMPLES, **SETTINGS)
@given(case=norm_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_norms_equal_torch_compiled(case, seed):
    check_norm(case, seed, compiled=True)


@settings(max_examples=EVALUATED_EXAMPLES, **SETTINGS)
@given(case=attention_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_attention_equals_torch_evaluated(case, seed):
    check_attention(case, seed, compiled=False)


@settings(max_examples=COMPILED_EXAMPLES, **SETTINGS)
@given(case=attention_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_attention_equals_torch_compiled(case, seed):
    check_attention(case, seed, compiled=True)


@pytest.mark.parametrize("compiled", [False, True], ids=["evaluated", "compiled"])
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_fully_masked_rows_give_zero_as_torch(kind, compiled):
    """A query whose every key is masked gets output 0 and no gradient, as torch's (no NaN anywhere);
    causal attention with more queries than keys and fewer, and a row masked by causal and mask alike."""
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 2))
    allowed = np.ones((4, 5), dtype=bool)
    allowed[1] = False
    allowed[3, ::2] = False
    mask = allowed if kind == "bool" else np.where(allowed, 0.5, -np.inf)
    _compare(lambda *xs: C.scaled_dot_product_attention(*xs),
             lambda *xs: F.scaled_dot_product_attention(*xs[:3], attn_mask=xs[3]),
             [q, k, v, mask], rng, compiled, f"fully masked row, {kind} mask")
    result = _symprop(lambda *xs: C.scaled_dot_product_attention(*xs), [q, k, v, mask],
                      np.ones((2, 4, 2)), compiled)
    np.testing.assert_array_equal(result[0][:, 1], 0.0)
    np.testing.assert_array_equal(result[1][:, 1], 0.0)  # no gradient reaches q through the masked row
    for tq, tk in ((5, 3), (3, 5)):
        q, k, v = rng.normal(size=(tq, 4)), rng.normal(size=(tk, 4)), rng.normal(size=(tk, 2))
        _compare(lambda *xs: C.scaled_dot_product_attention(*xs, causal=True),
                 lambda *xs: F.scaled_dot_product_attention(*xs, is_causal=True),
                 [q, k, v], rng, compiled, f"causal {tq}x{tk}")


def test_attention_in_float32_matches_torch_compiled():
    """One float32 program: the value and gradients agree with torch's float32 to its rounding."""
    rng = np.random.default_rng(5)
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in ((2, 3, 6, 8), (2, 3, 7, 8), (2, 3, 7, 4)))
    nodes = [Input(n, a.shape, dtype="float32") for n, a in zip("qkv", (q, k, v))]
    out = C.scaled_dot_product_attention(*nodes, causal=True)
    got = C.compile([out] + grad(out.sum(), nodes))(q=q, k=k, v=v)
    tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    expected = F.scaled_dot_product_attention(*tensors, is_causal=True)
    expected.sum().backward()
    for a, e in zip(got, [expected.detach().numpy()] + [t.grad.numpy() for t in tensors]):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(e).max())))
