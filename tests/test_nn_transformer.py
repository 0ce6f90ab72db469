"""compiler.nn's sequence layers (Embedding, PositionEmbedding, LayerNorm, RMSNorm, MultiHeadAttention,
TransformerBlock) equal torch.nn's modules with the same weights, values and gradients, and their Params
carry torch's state-dict names, shapes and initialisation.

Each comparison loads the torch module's state dict into the layer's Params by name, runs both on the
same float64 input and compares the output and the gradients of ``sum(out * g)`` (random g) with respect
to the input and every Param: through ``compiler.evaluate`` (the NumPy reference) and through one
compiled program. Small cases are also checked against central finite differences.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import compiler as sp
from compiler import nn
from compiler.errors import GraphError
from compiler.initializers import initial_values

torch = pytest.importorskip("torch")

RTOL = 1e-10


def compare_with_torch(layer, module, x_value, compiled: bool, prefix: str, ids: bool = False):
    """Load module's state dict into layer by name (under `prefix`), run both on x_value and compare."""
    x = sp.Input("x", x_value.shape, "int64" if ids else "float64")
    out = layer(x)
    state = {prefix + name: value.detach().numpy().copy() for name, value in module.state_dict().items()}
    assert sorted(p.name for p in layer.params) == sorted(state)
    for p in layer.params:
        assert p.shape == state[p.name].shape, p.name
    rng = np.random.default_rng(1)
    g = rng.normal(size=out.shape)
    weights = sp.Input("g", out.shape, "float64")
    wrt = layer.params if ids else [x] + layer.params
    graph = [out] + sp.grad(sp.sum(out * weights), wrt)
    values = {**state, "x": x_value, "g": g}
    actual = list(sp.compile(graph)(**values)) if compiled else sp.evaluate(graph, values)

    x_torch = torch.tensor(x_value, requires_grad=not ids)
    module.zero_grad()
    expected_out = module(x_torch)
    expected_out.backward(torch.tensor(g))
    grads = dict(module.named_parameters())
    expected = [expected_out.detach().numpy()] + ([] if ids else [x_torch.grad.numpy()])
    expected += [grads[p.name[len(prefix):]].grad.numpy() for p in layer.params]
    names = ["value"] + ([] if ids else ["x"]) + [p.name for p in layer.params]
    for name, a, e in zip(names, actual, expected):
        scale = max(1.0, float(np.abs(e).max()))
        how = "compiled" if compiled else "evaluated"
        np.testing.assert_allclose(a, e, rtol=RTOL, atol=RTOL * scale, err_msg=f"{name} ({how})")


class TorchSelfAttention(torch.nn.Module):
    """torch.nn.MultiheadAttention called as self-attention, batch first, with an optional causal mask."""

    def __init__(self, embed, heads, causal):
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(embed, heads, batch_first=True, dtype=torch.float64)
        self.causal = causal

    def forward(self, x):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[-2], dtype=x.dtype) if self.causal else None
        return self.attention(x, x, x, attn_mask=mask, is_causal=self.causal, need_weights=False)[0]

    def state_dict(self, *args, **kwargs):
        return self.attention.state_dict()

    def named_parameters(self, *args, **kwargs):
        return self.attention.named_parameters()


class TorchBlock(torch.nn.Module):
    """torch.nn.TransformerEncoderLayer, pre-norm, GELU, no dropout, batch first; causal or not."""

    def __init__(self, embed, heads, ratio, causal):
        super().__init__()
        self.layer = torch.nn.TransformerEncoderLayer(embed, heads, ratio * embed, dropout=0.0, activation="gelu",
                                                      batch_first=True, norm_first=True, dtype=torch.float64)
        self.causal = causal

    def forward(self, x):
        if not self.causal:
            return self.layer(x)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[-2], dtype=x.dtype)
        return self.layer(x, src_mask=mask, is_causal=True)

    def state_dict(self, *args, **kwargs):
        return self.layer.state_dict()

    def named_parameters(self, *args, **kwargs):
        return self.layer.named_parameters()


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("compiled", [False, True])
def test_embedding_equals_torch_with_repeated_ids(compiled):
    with nn.names():
        layer = nn.Embedding(7, 5, dtype="float64")
    ids = np.array([[0, 3, 3, 6], [6, 6, 1, 0], [2, 3, 3, 3]])  # repeated ids: their rows' gradients add up
    module = torch.nn.Embedding(7, 5, dtype=torch.float64)
    compare_with_torch(layer, module, ids, compiled, "embedding.", ids=True)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("kind", ["layer_norm", "rms_norm"])
def test_norms_equal_torch(kind, compiled):
    with nn.names():
        layer = nn.LayerNorm(eps=1e-5) if kind == "layer_norm" else nn.RMSNorm(eps=1e-6)
    module = (torch.nn.LayerNorm(6, eps=1e-5, dtype=torch.float64) if kind == "layer_norm"
              else torch.nn.RMSNorm(6, eps=1e-6, dtype=torch.float64))
    with torch.no_grad():  # weights away from their initial ones and zeros
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    x = np.random.default_rng(0).normal(size=(2, 3, 6)) * 3 + 1
    compare_with_torch(layer, module, x, compiled, f"{kind}.")


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_equals_torch(causal, compiled):
    with nn.names():
        layer = nn.MultiHeadAttention(num_heads=2, causal=causal)
    module = TorchSelfAttention(8, 2, causal)
    with torch.no_grad():  # nonzero biases
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = np.random.default_rng(0).normal(size=(3, 5, 8))
    compare_with_torch(layer, module, x, compiled, "multi_head_attention.")


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_transformer_block_equals_torch_encoder_layer(causal, compiled):
    with nn.names():
        layer = nn.TransformerBlock(num_heads=2, mlp_ratio=2, causal=causal)
    module = TorchBlock(8, 2, 2, causal)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = np.random.default_rng(0).normal(size=(2, 4, 8))
    compare_with_torch(layer, module, x, compiled, "transformer_block.")


def test_attention_over_unbatched_and_doubly_batched_inputs():
    with nn.names():
        layer = nn.MultiHeadAttention(num_heads=4, causal=True)
    compare_with_torch(layer, TorchSelfAttention(8, 4, True), np.random.default_rng(2).normal(size=(5, 8)), False,
                       "multi_head_attention.")
    x = np.random.default_rng(3).normal(size=(2, 3, 5, 8))  # two batch axes: as one of 6
    values = {p.name: v for p, v in zip(layer.params, initial_values(layer.params, seed=1).values())}
    twice = sp.evaluate(layer(sp.Input("x4", x.shape, "float64")), {**values, "x4": x})
    once = sp.evaluate(layer(sp.Input("x3", (6, 5, 8), "float64")), {**values, "x3": x.reshape(6, 5, 8)})
    np.testing.assert_allclose(twice.reshape(6, 5, 8), once, rtol=1e-12)


def test_gradients_equal_finite_differences():
    """A small float64 transformer (embedding, positions, a block, a norm, a head): the gradient of a
    cross-entropy with respect to every Param against central differences."""
    ids = sp.Input("ids", (2, 3), "int64")
    targets = sp.Input("targets", (2, 3), "int64")
    with nn.names():
        model = nn.Sequential(nn.Embedding(5, 4, dtype="float64"), nn.PositionEmbedding(3),
                              nn.TransformerBlock(2, mlp_ratio=1), nn.RMSNorm(), nn.Dense(5))
        loss = sp.cross_entropy(model(ids), targets)
    params = model.params
    values = {p.name: np.asarray(v, np.float64) for p, v in zip(params, initial_values(params, seed=3).values())}
    rng = np.random.default_rng(4)
    for name in values:  # away from the initial ones and zeros of norms and biases
        values[name] = values[name] + 0.3 * rng.normal(size=values[name].shape)
    data = {"ids": np.array([[1, 4, 4], [0, 2, 1]]), "targets": np.array([[4, 4, 2], [2, 1, 3]])}
    grads = sp.compile(sp.grad(loss, params))(**values, **data)
    f = sp.compile(loss)
    h = 1e-6
    for p, g in zip(params, grads):
        flat = values[p.name].reshape(-1)
        for i in rng.choice(flat.size, size=min(flat.size, 4), replace=False):
            saved = flat[i]
            flat[i] = saved + h
            up = float(f(**values, **data))
            flat[i] = saved - h
            down = float(f(**values, **data))
            flat[i] = saved
            np.testing.assert_allclose(g.reshape(-1)[i], (up - down) / (2 * h), rtol=1e-5, atol=1e-8,
                                       err_msg=f"{p.name}[{i}]")


# ---- names, layouts and initialisation -------------------------------------------------------------

def test_block_params_are_named_as_torch_state_dict_in_its_order():
    x = sp.Input("x", ("batch", 6, 16))
    with nn.names("encoder"):
        block = nn.TransformerBlock(4)
        block(x)
    torch_layer = torch.nn.TransformerEncoderLayer(16, 4, 64, batch_first=True, norm_first=True)
    expected = [(f"encoder.transformer_block.{name}", tuple(v.shape)) for name, v in torch_layer.state_dict().items()]
    assert [(p.name, p.shape) for p in block.params] == expected
    assert block.self_attn.name == "encoder.transformer_block.self_attn"


def test_initialisation_follows_torch():
    x = sp.Input("x", ("batch", 6, 64))
    ids = sp.Input("ids", ("batch", 6), "int64")
    with nn.names():
        embedding, block = nn.Embedding(1000, 64), nn.TransformerBlock(4)
        embedding(ids)
        block(x)
    values = initial_values(embedding.params + block.params, seed=0)
    table = values["embedding.weight"]
    assert abs(table.mean()) < 0.01 and abs(table.std() - 1) < 0.01   # N(0, 1)
    in_proj = values["transformer_block.self_attn.in_proj_weight"]
    bound = math.sqrt(6 / (64 + 3 * 64))                                # xavier-uniform of (3E, E)
    assert in_proj.shape == (192, 64) and np.abs(in_proj).max() <= bound and np.abs(in_proj).max() > 0.95 * bound
    assert not values["transformer_block.self_attn.in_proj_bias"].any()
    assert not values["transformer_block.self_attn.out_proj.bias"].any()
    assert np.abs(values["transformer_block.self_attn.out_proj.weight"]).max() <= 1 / 8
    assert np.abs(values["transformer_block.linear2.weight"]).max() <= 1 / 16  # uniform(+-1/sqrt(256))
    assert (values["transformer_block.norm1.weight"] == 1).all() and not values["transformer_block.norm1.bias"].any()


def test_position_embedding_adds_the_first_rows():
    x = sp.Input("x", (2, 3, 4), "float64")
    with nn.names():
        positions = nn.PositionEmbedding(5)
        y = positions(x)
    table = np.arange(20.0).reshape(5, 4)
    x_value = np.ones((2, 3, 4))
    np.testing.assert_array_equal(sp.evaluate(y, {"x": x_value, "position_embedding.weight": table}),
                                  x_value + table[:3])


# ---- errors --------------------------------------------------------------------------------------

def test_errors_name_the_layer_and_the_shapes():
    with nn.names():
        with pytest.raises(GraphError, match="divisible by num_heads = 3"):
            nn.MultiHeadAttention(3)(sp.Input("x", ("batch", 5, 8)))
        with pytest.raises(GraphError, match="expected integer ids"):
            nn.Embedding(4, 2)(sp.Input("x", ("batch", 5)))
        with pytest.raises(GraphError, match="at most max_length = 4 positions"):
            nn.PositionEmbedding(4)(sp.Input("x", ("batch", 5, 8)))
        with pytest.raises(GraphError, match="num_heads: expected a positive integer"):
            nn.TransformerBlock(0)
        with pytest.raises(GraphError, match="eps: expected a positive number"):
            nn.LayerNorm(eps=0)
        block = nn.TransformerBlock(2)
        block(sp.Input("x", ("batch", 5, 8)))
        with pytest.raises(GraphError, match="embedding size"):
            block(sp.Input("y", ("batch", 5, 6)))


def test_attention_dropout_drops_the_attention_weights_as_torch():
    """MultiHeadAttention(dropout=p) drops attention weights in training, as torch.nn.MultiheadAttention does,
    and TransformerBlock(dropout=p) passes p to it (torch's four dropout sites). With p = 1 every weight is
    dropped, so the output is out_proj's bias; after compiler.inference it equals the layer without dropout."""
    from compiler.traversal import topological_order
    rng = np.random.default_rng(0)
    x = sp.Input("x", (2, 5, 8), "float64")
    with nn.names():
        dropped, kept = nn.MultiHeadAttention(2, dropout=1.0), nn.MultiHeadAttention(2, name="kept")
        out_dropped, out_kept = dropped(x), kept(x)
        block = nn.TransformerBlock(2, dropout=0.25)
        out_block = block(x)
    values = {"x": rng.standard_normal((2, 5, 8))}
    for layer in (dropped, kept):
        for p in layer.params:
            values[p.name] = rng.standard_normal(p.shape) * 0.3
    for p in dropped.params:
        values[f"kept.{p.name.split('.', 1)[1]}"] = values[p.name]
    bias = values[f"{dropped.name}.out_proj.bias"]
    np.testing.assert_allclose(sp.compile(out_dropped)(**{k: v for k, v in values.items()
                                                         if k == "x" or k.startswith(dropped.name)}),
                               np.broadcast_to(bias, (2, 5, 8)), rtol=1e-12)
    np.testing.assert_allclose(sp.evaluate(sp.inference(out_dropped), values), sp.evaluate(out_kept, values),
                               rtol=1e-12)
    assert sum(node.op == "random" for node in topological_order([out_block])) == 4
