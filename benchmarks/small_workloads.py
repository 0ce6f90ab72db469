"""Two small anchor workloads, written once per implementation: symprop, NumPy by hand, PyTorch eager, jax.jit.

  uat       1-64-1 tanh regression of sin(3x) (one hidden layer, the universal approximation theorem's
            network), batch 256, mean squared error, SGD(lr=0.05)
  residual  an 8-layer tanh residual MLP: 64 inputs, h = h + tanh(h @ W_i + b_i) eight times at width 64,
            then dense 64->10, batch 64, softmax cross-entropy, Adam(lr=1e-3)

Weights are passed around as a dict in symprop's layout (products as ``x @ W``), so every implementation
starts from symprop's seeded initial values; a step takes (x, y) and returns the loss before the update.
"""
from __future__ import annotations

import numpy as np

import compiler as sp
from common import jitted_step, optax_adam_step
from numpy_training import AdamBaseline, softmax_cross_entropy

UAT_BATCH, UAT_HIDDEN, UAT_LR = 256, 64, 0.05
RES_BATCH, RES_WIDTH, RES_LAYERS, RES_CLASSES = 64, 64, 8, 10
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8
LABELS = {"uat": "1-64-1 tanh regression batch 256, SGD",
          "residual": "8-layer tanh residual MLP width 64 batch 64, Adam"}
BATCH = {"uat": UAT_BATCH, "residual": RES_BATCH}


def data(name: str, rows: int, seed: int = 0):
    """Inputs and targets: x in [-pi, pi] and sin(3x) for uat, Gaussian rows and labels for residual."""
    rng = np.random.default_rng(seed)
    if name == "uat":
        x = rng.uniform(-np.pi, np.pi, (rows, 1)).astype(np.float32)
        return x, np.sin(3 * x).astype(np.float32)
    x = rng.standard_normal((rows, RES_WIDTH)).astype(np.float32)
    return x, rng.integers(0, RES_CLASSES, rows).astype(np.int64)


# ---- symprop -------------------------------------------------------------------------------------


def symprop_loss(name: str):
    """The workload's loss node."""
    if name == "uat":
        x, y = sp.Input("x", ("batch", 1)), sp.Input("y", ("batch", 1))
        w1, b1 = sp.Param("w1", (1, UAT_HIDDEN)), sp.Param("b1", (UAT_HIDDEN,))
        w2, b2 = sp.Param("w2", (UAT_HIDDEN, 1)), sp.Param("b2", (1,), init="zeros")
        return sp.mse(sp.tanh(x @ w1 + b1) @ w2 + b2, y)
    x, y = sp.Input("x", ("batch", RES_WIDTH)), sp.Input("y", ("batch",), "int64")
    h = x
    for i in range(RES_LAYERS):
        w = sp.Param(f"w{i}", (RES_WIDTH, RES_WIDTH), init="glorot_uniform")
        h = h + sp.tanh(h @ w + sp.Param(f"b{i}", (RES_WIDTH,), init="zeros"))
    out = h @ sp.Param("w_out", (RES_WIDTH, RES_CLASSES)) + sp.Param("b_out", (RES_CLASSES,), init="zeros")
    return sp.cross_entropy(out, y)


def symprop_optimizer(name: str):
    return sp.optim.SGD(lr=UAT_LR) if name == "uat" else sp.optim.Adam(lr=LR, betas=BETAS, eps=EPS)


def symprop_step(name: str, seed: int = 0):
    """The workload's compiled training step."""
    return sp.compile_step(symprop_loss(name), symprop_optimizer(name), seed=seed)


# ---- NumPy by hand ---------------------------------------------------------------------------------


class NumpySmall(AdamBaseline):
    """Forward, backward and the update written with NumPy."""

    def __init__(self, name: str, weights: dict):
        super().__init__(weights)
        self.name = name

    def __call__(self, x, y):
        return self._uat(x, y) if self.name == "uat" else self._residual(x, y)

    def _uat(self, x, y):
        w = self.params
        h = np.tanh(x @ w["w1"] + w["b1"])
        diff = h @ w["w2"] + w["b2"] - y
        loss = float(np.mean(diff * diff))
        d_out = (2.0 / diff.size) * diff
        d_pre = (d_out @ w["w2"].T) * (1 - h * h)
        grads = {"w2": h.T @ d_out, "b2": d_out.sum(0), "w1": x.T @ d_pre, "b1": d_pre.sum(0)}
        for k, g in grads.items():
            w[k] -= UAT_LR * g
        return loss

    def _residual(self, x, y):
        w = self.params
        hs, ts = [x], []
        for i in range(RES_LAYERS):
            ts.append(np.tanh(hs[-1] @ w[f"w{i}"] + w[f"b{i}"]))
            hs.append(hs[-1] + ts[-1])
        loss, d_out = softmax_cross_entropy(hs[-1] @ w["w_out"] + w["b_out"], y)
        grads = {"w_out": hs[-1].T @ d_out, "b_out": d_out.sum(0)}
        dh = d_out @ w["w_out"].T
        for i in reversed(range(RES_LAYERS)):
            d_pre = dh * (1 - ts[i] * ts[i])
            grads[f"w{i}"], grads[f"b{i}"] = hs[i].T @ d_pre, d_pre.sum(0)
            dh = dh + d_pre @ w[f"w{i}"].T
        self.adam(grads, LR, BETAS, EPS)
        return loss


# ---- PyTorch eager ---------------------------------------------------------------------------------


def torch_step(torch, name: str, weights: dict):
    """torch.optim's SGD or Adam over the same weights, eager autograd."""
    w = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    if name == "uat":
        optimizer = torch.optim.SGD(w.values(), lr=UAT_LR)

        def loss_fn(x, y):
            return torch.mean((torch.tanh(x @ w["w1"] + w["b1"]) @ w["w2"] + w["b2"] - y) ** 2)
    else:
        optimizer = torch.optim.Adam(w.values(), lr=LR, betas=BETAS, eps=EPS)

        def loss_fn(x, y):
            h = x
            for i in range(RES_LAYERS):
                h = h + torch.tanh(h @ w[f"w{i}"] + w[f"b{i}"])
            return torch.nn.functional.cross_entropy(h @ w["w_out"] + w["b_out"], y)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


# ---- jax.jit ---------------------------------------------------------------------------------------


def jax_step(jax, optax, name: str, weights: dict):
    """One jitted function per step: value_and_grad and the update (optax if installed)."""
    jnp = jax.numpy

    def loss_fn(p, x, y):
        if name == "uat":
            return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2)
        h = x
        for i in range(RES_LAYERS):
            h = h + jnp.tanh(h @ p[f"w{i}"] + p[f"b{i}"])
        log_p = jax.nn.log_softmax(h @ p["w_out"] + p["b_out"])
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    params = {k: jnp.asarray(v) for k, v in weights.items()}
    if name != "uat":
        if optax is None:
            raise RuntimeError("the residual workload's jax.jit step needs optax")
        return optax_adam_step(jax, optax, loss_fn, params, LR, BETAS, EPS), "optax.adam"

    def update(p, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        return loss, jax.tree_util.tree_map(lambda w, g: w - UAT_LR * g, p, grads), state

    return jitted_step(jax, update, params, ()), "SGD in jax.numpy"
