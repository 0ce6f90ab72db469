"""The fused ``attention`` primitive: scaled_dot_product_attention(..., fused=True) equals torch's, values and
gradients, evaluated and compiled, at every size (forced below FLASH_MIN_T too), and its forward program stores
no Tq x Tk matrix.

Hypothesis draws the small cases of test_sequence_ops_torch (broadcast leading dims, bool and additive masks of
every broadcastable shape with fully masked rows, causal, Tq != Tk) with the fused path forced; fixed cases
cross the kernel's query and key blocks (partial last blocks, causal diagonals, Tq > Tk and Tq < Tk). Float64
to 1e-10 of the magnitude, float32 to torch's float32 rounding, finite differences of the VJP in float64, and
the compiled program against ``compiler.evaluate``.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import compiler as C
from compiler import Input, evaluate, grad
from compiler import sequence_ops
from compiler.codegen import attention_kernel
from compiler.traversal import topological_order
from test_sequence_ops_torch import SETTINGS, _arrays, _compare, _symprop, attention_case

torch = pytest.importorskip("torch")
F = torch.nn.functional

EVALUATED_EXAMPLES = 30
COMPILED_EXAMPLES = 4
BLOCK_Q, BLOCK_K = attention_kernel.BLOCK_Q, attention_kernel.BLOCK_K


def fused(q, k, v, mask=None, causal=False):
    return C.scaled_dot_product_attention(q, k, v, mask, causal=causal, fused=True)


def check_case(shapes, kind, causal, seed, compiled):
    rng = np.random.default_rng(seed)
    arrays = _arrays(shapes, kind, rng)

    def torch_op(q, k, v, mask=None):
        if mask is not None and causal:  # torch refuses the pair: the causal mask folded into the mask
            lower = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
            mask = mask & lower if mask.dtype == torch.bool else mask.masked_fill(~lower, -np.inf)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)

    _compare(lambda *xs: fused(*xs, causal=causal), torch_op, arrays, rng, compiled,
             f"fused attention {shapes} mask={kind} causal={causal}")


@settings(max_examples=EVALUATED_EXAMPLES, **SETTINGS)
@given(case=attention_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_fused_equals_torch_evaluated(case, seed):
    check_case(*case, seed, compiled=False)


@settings(max_examples=COMPILED_EXAMPLES, **SETTINGS)
@given(case=attention_case(), seed=st.integers(0, 2 ** 32 - 1))
def test_fused_equals_torch_compiled(case, seed):
    check_case(*case, seed, compiled=True)


# (q shape, k length, v features, mask kind and shape, causal): across blocks, partial last blocks, causal
# diagonals inside and across blocks, more queries than keys and fewer, broadcast leading dims
BLOCK_CASES = [
    ((2, BLOCK_Q + 7, 8), BLOCK_K + 9, 5, None, None, False),
    ((2, BLOCK_Q + 7, 8), BLOCK_K + 9, 5, None, None, True),
    ((1, 2 * BLOCK_Q + 3, 4), BLOCK_K // 2 + 1, 3, None, None, True),
    ((1, 5, 4), 2 * BLOCK_K + 3, 6, None, None, True),
    ((2, BLOCK_Q + 1, 4), BLOCK_K + 1, 3, "additive", (BLOCK_Q + 1, BLOCK_K + 1), False),
    ((2, BLOCK_Q + 1, 4), BLOCK_K + 1, 3, "bool", (1, BLOCK_K + 1), True),
    ((2, BLOCK_Q + 1, 4), BLOCK_K + 1, 3, "bool", (2, BLOCK_Q + 1, BLOCK_K + 1), False),
]


def _block_shapes(case):
    q, tk, dv, kind, mask, causal = case
    shapes = (q, q[:-2] + (tk, q[-1]), q[:-2] + (tk, dv)) + ((mask,) if kind else ())
    return shapes, kind, causal


@pytest.mark.parametrize("compiled", [False, True], ids=["evaluated", "compiled"])
@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: f"{c[0]}x{c[1]}-{c[3]}-{'causal' if c[5] else 'full'}")
def test_fused_across_blocks_equals_torch(case, compiled):
    check_case(*_block_shapes(case), seed=7, compiled=compiled)


def test_fully_masked_rows_give_zero_and_no_nan_compiled():
    """Rows masked whole (by the mask, in a block of their own and in a block with attended rows) give output 0
    and no gradient; keys masked whole give no gradient to k and v; nothing is NaN."""
    rng = np.random.default_rng(11)
    tq, tk = BLOCK_Q + 5, BLOCK_K + 5
    q, k, v = rng.normal(size=(tq, 4)), rng.normal(size=(tk, 4)), rng.normal(size=(tk, 3))
    allowed = rng.uniform(size=(tq, tk)) < 0.5
    allowed[[0, 3, BLOCK_Q + 2]] = False
    allowed[:, [1, BLOCK_K + 1]] = False
    for mask in (allowed, np.where(allowed, rng.normal(size=(tq, tk)), -np.inf)):
        _compare(fused, lambda *xs: F.scaled_dot_product_attention(*xs[:3], attn_mask=xs[3]), [q, k, v, mask],
                 rng, True, f"fully masked rows, {mask.dtype} mask")
        out, g_q, g_k, g_v = _symprop(fused, [q, k, v, mask], np.ones((tq, 3)), True)[:4]
        assert all(np.isfinite(x).all() for x in (out, g_q, g_k, g_v))
        np.testing.assert_array_equal(out[[0, 3, BLOCK_Q + 2]], 0.0)
        np.testing.assert_array_equal(g_q[[0, 3, BLOCK_Q + 2]], 0.0)
        np.testing.assert_array_equal(g_k[[1, BLOCK_K + 1]], 0.0)
        np.testing.assert_array_equal(g_v[[1, BLOCK_K + 1]], 0.0)


def test_fused_float32_matches_torch_compiled():
    """Float32 across blocks with a causal mask and an additive mask: torch's float32 to its rounding."""
    rng = np.random.default_rng(5)
    shapes = ((2, 3, BLOCK_Q + 9, 16), (2, 3, BLOCK_K + 20, 16), (2, 3, BLOCK_K + 20, 8))
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in shapes)
    bias = np.where(rng.uniform(size=(BLOCK_Q + 9, BLOCK_K + 20)) < 0.2, -np.inf,
                    rng.normal(size=(BLOCK_Q + 9, BLOCK_K + 20))).astype(np.float32)
    nodes = [Input(n, a.shape, dtype="float32") for n, a in zip(("q", "k", "v", "bias"), (q, k, v, bias))]
    out = C.scaled_dot_product_attention(*nodes, causal=True, fused=True)
    got = C.compile([out] + grad(out.sum(), nodes))(q=q, k=k, v=v, bias=bias)
    tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v, bias)]
    causal = torch.tensor(np.tril(np.ones(bias.shape, dtype=bool)))
    expected = F.scaled_dot_product_attention(*tensors[:3], attn_mask=tensors[3].masked_fill(~causal, -np.inf))
    expected.sum().backward()
    for a, e in zip(got, [expected.detach().numpy()] + [t.grad.numpy() for t in tensors]):
        assert a.dtype == np.float32 and np.isfinite(a).all()
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(e).max())))


@pytest.mark.parametrize("dtype, masked", [("float64", -1e20), ("float32", -1e9),
                                           ("float32", float(np.finfo(np.float32).min))])
def test_rows_masked_by_a_large_finite_number_have_torchs_gradients(dtype, masked):
    """A row masked whole by a large finite number (the common -1e9 mask) attends uniformly: each key weighs
    1/Tk in the gradients too. Probabilities rebuilt as exp(s - lse) weighed each 1 (lse rounds to the shift)."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(size=s).astype(dtype) for s in ((3, 4), (5, 4), (5, 4)))
    mask = np.where(rng.uniform(size=(3, 5)) < 0.4, masked, 0.0).astype(dtype)
    mask[0] = masked
    nodes = [Input(n, a.shape, dtype=dtype) for n, a in zip(("q", "k", "v", "mask"), (q, k, v, mask))]
    out = C.scaled_dot_product_attention(*nodes, fused=True)
    grads = grad((out * out).sum(), nodes)
    tensors = [torch.tensor(a, requires_grad=True) for a in (q, k, v, mask)]
    expected = F.scaled_dot_product_attention(*tensors[:3], attn_mask=tensors[3])
    (expected * expected).sum().backward()
    values = dict(q=q, k=k, v=v, mask=mask)
    tolerance = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    for got in (evaluate(grads, values), C.compile(grads)(**values)):
        for a, t in zip(got, tensors):
            np.testing.assert_allclose(a, t.grad.numpy(), **tolerance)


@pytest.mark.parametrize("causal", [False, True])
def test_fused_gradients_equal_finite_differences(causal):
    """The VJP (recomputed probabilities, the log-sum-exp column's cotangent included) against central
    differences of the NumPy reference in float64, with respect to q, k, v and an additive mask; the loss
    reads the log-sum-exp column too, so its cotangent is checked."""
    rng = np.random.default_rng(2)
    tq, tk, d, dv = 4, 6, 3, 2
    arrays = {"q": rng.normal(size=(2, tq, d)), "k": rng.normal(size=(2, tk, d)), "v": rng.normal(size=(2, tk, dv)),
              "bias": np.where(rng.uniform(size=(tq, tk)) < 0.2, -np.inf, rng.normal(size=(tq, tk)))}
    arrays["bias"][1] = -np.inf  # a fully masked row
    nodes = {name: Input(name, a.shape, dtype="float64") for name, a in arrays.items()}
    from compiler.primitives.attention import make_attention
    from compiler.primitives.layouts import make_broadcast
    node = make_attention(nodes["q"], nodes["k"], nodes["v"], make_broadcast(nodes["bias"], (2, tq, tk)),
                          causal, 0.7)
    weights = rng.normal(size=node.shape)
    lse_finite = C.where(node > -np.inf, node, 0.0)  # the fully masked row's log-sum-exp is -inf
    loss = (lse_finite * C.const(weights)).sum()
    gradients = evaluate(grad(loss, list(nodes.values())), arrays)
    step = 1e-6
    for (name, array), g in zip(arrays.items(), gradients):
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            if not np.isfinite(array[index]):
                continue
            values = []
            for sign in (1, -1):
                moved = dict(arrays, **{name: array.copy()})
                moved[name][index] += sign * step
                values.append(float(evaluate(loss, moved)))
            numeric[index] = (values[0] - values[1]) / (2 * step)
        finite = np.isfinite(array)
        np.testing.assert_allclose(g[finite], numeric[finite], rtol=1e-6, atol=1e-7, err_msg=name)


def test_compiled_equals_evaluate_with_a_symbolic_batch():
    """One program for two batch sizes: the kernel's leading loop reads the batch from the dimensions; the
    output and the log-sum-exp column equal the NumPy reference."""
    from compiler.primitives.attention import make_attention
    q, k, v = (Input(n, ("batch", t, 8), dtype="float64") for n, t in (("q", BLOCK_Q + 3), ("k", BLOCK_K + 2),
                                                                          ("v", BLOCK_K + 2)))
    node = make_attention(q, k, v, None, True, 0.3)
    program = C.compile(node)
    rng = np.random.default_rng(4)
    for batch in (1, 3):
        arrays = {"q": rng.normal(size=(batch, BLOCK_Q + 3, 8)), "k": rng.normal(size=(batch, BLOCK_K + 2, 8)),
                  "v": rng.normal(size=(batch, BLOCK_K + 2, 8))}
        np.testing.assert_allclose(program(**arrays), evaluate(node, arrays), rtol=1e-12, atol=1e-12)


def _matrix_buffers(plan, tq, tk) -> list:
    return [b for b in plan["buffers"] if b["shape"][-2:] in ([tq, tk], [tk, tq])]


@pytest.mark.parametrize("mask", [None, "bool"])
def test_the_fused_forward_stores_no_score_matrix(mask):
    """Causal attention of 4 heads of (T, 16) read in place from (B, T, H*16) projections: the forward program
    has one attention kernel, no (Tq, Tk) buffer (the composite's has them), and no copy of q, k or v."""
    batch, heads, t = 2, 4, 96
    x = Input("x", (batch, t, heads * 16), dtype="float32")
    allowed = Input("allowed", (t, t), dtype="bool") if mask else None

    def split(z):
        return C.transpose(C.reshape(z, (batch, t, heads, 16)), (0, 2, 1, 3))

    q, k, v = split(x * 0.5), split(C.tanh(x)), split(x)
    for use_fused in (True, False):
        out = C.scaled_dot_product_attention(q, k, v, allowed, causal=True, fused=use_fused)
        plan = C.compile(out).plan
        stored = _matrix_buffers(plan, t, t)
        stored = [b for b in stored if b["role"] != "input"]
        if use_fused:
            assert stored == [], stored
            assert [k["kind"] for k in plan["kernels"]].count("attention") == 1
            assert not [b for b in plan["buffers"] if b["role"] == "temp" and b["shape"] == [batch, heads, t, 16]]
        else:
            assert stored


def test_the_threshold_chooses_the_form():
    """From FLASH_MIN_T keys on the graph has the attention primitive, below it the composite; fused forces."""
    def ops_of(tk, **kwargs):
        q, k, v = Input("q", (3, 4), dtype="float64"), Input("k", (tk, 4), dtype="float64"), Input("v", (tk, 2), dtype="float64")
        return {n.op for n in topological_order([C.scaled_dot_product_attention(q, k, v, **kwargs)])}

    threshold = sequence_ops.FLASH_MIN_T
    assert "attention" in ops_of(threshold) and "attention" not in ops_of(threshold - 1)
    assert "attention" in ops_of(2, fused=True) and "attention" not in ops_of(threshold, fused=False)


def test_the_threshold_can_be_moved(monkeypatch):
    monkeypatch.setattr(sequence_ops, "FLASH_MIN_T", 3)
    q, k, v = (Input(n, (3, 4), dtype="float64") for n in "qkv")
    assert "attention" in {n.op for n in topological_order([C.scaled_dot_product_attention(q, k, v)])}


def test_fused_must_be_a_flag():
    q = Input("q", (3, 4))
    with pytest.raises(C.GraphError, match="fused must be None, True or False"):
        C.scaled_dot_product_attention(q, q, q, fused="yes")


def test_second_order_gradients_equal_the_composite():
    """Gradients of gradients go through the attention node's VJP again (its log-sum-exp column included):
    equal to the composite's, evaluated and compiled."""
    rng = np.random.default_rng(0)
    q, k, v = (Input(n, (2, 5, 3), dtype="float64") for n in "qkv")
    arrays = {n: rng.normal(size=(2, 5, 3)) for n in "qkv"}
    results = []
    for use_fused in (True, False):
        out = C.scaled_dot_product_attention(q, k, v, causal=True, fused=use_fused)
        g_q, g_k = grad((C.tanh(out) * out).sum(), [q, k])
        second = grad((g_q * g_q).sum() + g_k.sum(), [q, k, v])
        results.append(evaluate(second, arrays))
        if use_fused:
            for a, e in zip(C.compile(second)(**arrays), results[0]):
                np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)
    for a, e in zip(*results):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("compiled", [False, True])
def test_a_transformer_block_on_the_fused_path_equals_torch(compiled, monkeypatch):
    """Every attention of a causal TransformerBlock fused (heads read in place from the projections)."""
    from compiler import nn
    from test_nn_transformer import TorchBlock, compare_with_torch
    monkeypatch.setattr(sequence_ops, "FLASH_MIN_T", 1)
    torch.manual_seed(0)
    with nn.names():
        layer = nn.TransformerBlock(num_heads=2, mlp_ratio=2, causal=True)
    module = TorchBlock(8, 2, 2, True)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = np.random.default_rng(0).normal(size=(2, 7, 8))
    compare_with_torch(layer, module, x, compiled, "transformer_block.")


def test_transposed_and_broadcast_operands_are_read_in_place():
    """q, k and v stored transposed (unit stride along the sequence) and broadcast along a leading dim: the
    GEMMs read them with transposed flags and stride 0, no copy; the result equals the NumPy reference."""
    rng = np.random.default_rng(8)
    tq, tk, d, dv = BLOCK_Q + 2, BLOCK_K + 3, 5, 3
    arrays = {"qt": rng.normal(size=(2, d, tq)), "kt": rng.normal(size=(1, d, tk)), "vt": rng.normal(size=(2, dv, tk))}
    qt, kt, vt = (Input(name, a.shape, dtype="float64") for name, a in arrays.items())
    q, k, v = (C.transpose(x, (0, 2, 1)) for x in (qt, kt, vt))
    out = C.scaled_dot_product_attention(q, k, v, causal=True, fused=True)
    outputs = [out] + grad((out * out).sum(), [qt, kt, vt])
    forward = C.compile(out).plan
    assert [b["shape"] for b in forward["buffers"] if b["role"] == "temp"] == [[2, tq, dv + 1]]  # the node alone
    for a, e in zip(C.compile(outputs)(**arrays), evaluate(outputs, arrays)):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)
