"""The anchor MLPs, written once per implementation: symprop, NumPy by hand, PyTorch eager, jax.jit, PyTensor.

  small   64-128-10, batch 64     (``SIZES``)
  large   784-1024-1024-10, batch 256

ReLU hidden layers, softmax cross-entropy over integer labels, Adam(lr=1e-3), float32. symprop's
model is ``compiler.mlp`` (Params mlp_0_w, mlp_0_b, ...); every other implementation takes those
weights as a list [w0, b0, w1, b1, ...] in symprop's layout (products as ``x @ W``), so all start
from symprop's seeded initial values. A step takes (x, y) and returns the loss before the update.
"""
from __future__ import annotations

import numpy as np

import compiler as sp
from common import jitted_step, optional_module
from numpy_training import adam_update, softmax_cross_entropy

SIZES = {"small": ((64, 128, 10), 64), "large": ((784, 1024, 1024, 10), 256)}  # widths, batch
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def data(widths, batch, rows, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, widths[0])).astype(np.float32)
    y = rng.integers(0, widths[-1], rows).astype(np.int64)
    return x, y


def symprop_loss(widths):
    """The MLP's loss node (sp.mlp: ReLU layers, Params mlp_0_w, mlp_0_b, mlp_1_w, ...)."""
    x, logits, params = sp.mlp(widths[0], list(widths[1:-1]), widths[-1])
    return sp.cross_entropy(logits, sp.Input("y", ("batch",), "int64"))


def symprop_optimizer():
    return sp.optim.Adam(lr=LR, betas=BETAS, eps=EPS)


def symprop_step(widths):
    step = sp.compile_step(symprop_loss(widths), symprop_optimizer(), seed=0)
    layers = len(widths) - 1
    return step, [f"mlp_{i}_{kind}" for i in range(layers) for kind in ("w", "b")]


# ---- NumPy by hand ---------------------------------------------------------------------------------


class NumpyMLP:
    """Forward, backward and Adam written with NumPy, in place where NumPy allows."""

    def __init__(self, weights: list):
        self.params = [w.copy() for w in weights]
        self.m = [np.zeros_like(w) for w in weights]
        self.v = [np.zeros_like(w) for w in weights]
        self.t = 0

    def __call__(self, x, y):
        params, layers = self.params, len(self.params) // 2
        activations, h = [x], x
        for i in range(layers):
            z = h @ params[2 * i]
            z += params[2 * i + 1]
            if i < layers - 1:
                np.maximum(z, 0, out=z)
            h = z
            activations.append(h)
        loss, g = softmax_cross_entropy(h, y)
        grads = [None] * len(params)
        for i in reversed(range(layers)):
            grads[2 * i] = activations[i].T @ g
            grads[2 * i + 1] = g.sum(axis=0)
            if i > 0:
                g = g @ params[2 * i].T
                g *= activations[i] > 0
        self.adam(grads)
        return loss

    def adam(self, grads):
        self.t += 1
        adam_update(zip(self.params, grads, zip(self.m, self.v)), self.t, LR, BETAS, EPS)


# ---- PyTorch, JAX, PyTensor ------------------------------------------------------------------------


def torch_step(torch, weights: list, threads: int = 1):
    torch.set_num_threads(threads)
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    optimizer = torch.optim.Adam(params, lr=LR, betas=BETAS, eps=EPS)
    layers = len(params) // 2

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        h = x
        for i in range(layers):
            h = torch.addmm(params[2 * i + 1], h, params[2 * i])
            if i < layers - 1:
                h = torch.relu(h)
        loss = torch.nn.functional.cross_entropy(h, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def jax_step(jax, weights: list):
    jnp = jax.numpy
    optax = optional_module("optax")
    layers = len(weights) // 2

    def loss_fn(params, x, y):
        h = x
        for i in range(layers):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < layers - 1:
                h = jax.nn.relu(h)
        log_p = jax.nn.log_softmax(h)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    if optax is not None:
        transform = optax.adam(LR, b1=BETAS[0], b2=BETAS[1], eps=EPS)

        def update(params, state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, state = transform.update(grads, state, params)
            return loss, optax.apply_updates(params, updates), state

        state = transform.init([jnp.asarray(w) for w in weights])
        kind = "optax.adam"
    else:
        def update(params, state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            m, v, t = state
            t = t + 1
            m = [BETAS[0] * mi + (1 - BETAS[0]) * g for mi, g in zip(m, grads)]
            v = [BETAS[1] * vi + (1 - BETAS[1]) * g * g for vi, g in zip(v, grads)]
            step_size = LR / (1 - BETAS[0] ** t)
            correction = jnp.sqrt(1 - BETAS[1] ** t)
            params = [p - step_size * mi / (jnp.sqrt(vi) / correction + EPS) for p, mi, vi in zip(params, m, v)]
            return loss, params, (m, v, t)

        state = ([jnp.zeros_like(w) for w in weights], [jnp.zeros_like(w) for w in weights], jnp.float32(0))
        kind = "Adam in jax.numpy"
    return jitted_step(jax, update, [jnp.asarray(w) for w in weights], state), kind


def pytensor_step(pytensor, weights: list):
    pt = pytensor.tensor
    params = [pytensor.shared(w.copy()) for w in weights]
    x, y = pt.matrix("x", dtype="float32"), pt.vector("y", dtype="int64")
    layers = len(params) // 2
    h = x
    for i in range(layers):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < layers - 1:
            h = pt.maximum(h, 0)
    log_p = h - pt.logsumexp(h, axis=1, keepdims=True)
    loss = -pt.mean(log_p[pt.arange(y.shape[0]), y])
    grads = pytensor.grad(loss, params)
    t = pytensor.shared(np.float32(0))
    t_new = t + 1
    updates = [(t, t_new)]
    for p, g in zip(params, grads):
        m, v = pytensor.shared(np.zeros_like(p.get_value())), pytensor.shared(np.zeros_like(p.get_value()))
        m_new, v_new = BETAS[0] * m + (1 - BETAS[0]) * g, BETAS[1] * v + (1 - BETAS[1]) * g * g
        step_size = LR / (1 - BETAS[0] ** t_new)
        p_new = p - step_size * m_new / (pt.sqrt(v_new) / pt.sqrt(1 - BETAS[1] ** t_new) + EPS)
        updates += [(m, m_new), (v, v_new), (p, p_new.astype("float32"))]
    function = pytensor.function([x, y], loss, updates=updates)
    return lambda x_value, y_value: float(function(x_value, y_value))
