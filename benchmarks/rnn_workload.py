"""The anchor recurrent workloads, written once per implementation: symprop, NumPy by hand, PyTorch eager, jax.jit.

A tanh RNN ("rnn") or an LSTM ("lstm"): sequences of T=32 steps, batch 32, 32 inputs, hidden size
128, h0 = c0 = 0; the last step's hidden state -> dense 128->10 -> softmax cross-entropy;
Adam(lr=1e-3); float32. The equations, gate order (LSTM: i, f, g, o) and the two biases are
torch.nn.RNN's / torch.nn.LSTM's; every Param starts uniform(+-1/sqrt(128)), as torch initialises
both layers.

Every implementation but PyTorch computes the input projection of all steps as one matrix product
before the loop, ``x.reshape(T * batch, I) @ W_ih + b_ih + b_hh``, and loops only over
``h @ W_hh`` plus that step's slice and the cell's elementwise arithmetic (torch.nn.RNN / LSTM do
their own thing on CPU). Weights are passed around as a dict in symprop's layout, products as
``x @ W``: weight_ih (I, gates*H), weight_hh (H, gates*H) -- torch's weight_ih_l0 transposed --
bias_ih, bias_hh (gates*H,), dense.weight (H, 10), dense.bias (10,). A step takes (x, y) and
returns the loss before the update.

Layouts: symprop's step takes x batch first, (batch, T, I), so that ``run_epoch`` can cut batches
from the first axis, and transposes it to time-major inside the step (a 128 KB copy, counted in its
time); the others take the same values time-major, (T, batch, I), their native layout.
"""
from __future__ import annotations

import math

import numpy as np

import compiler as sp
from common import jitted_step, optax_adam_step
from numpy_training import AdamBaseline, softmax_cross_entropy

STEPS, BATCH, INPUTS, HIDDEN, CLASSES = 32, 32, 32, 128, 10
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8
GATES = {"rnn": 1, "lstm": 4}
LABELS = {"rnn": "tanh RNN T=32 batch 32 32->128->10", "lstm": "LSTM T=32 batch 32 32->128->10"}


def params(cell: str) -> dict:
    """name -> shape, in symprop's layout."""
    rows = GATES[cell] * HIDDEN
    return {"weight_ih": (INPUTS, rows), "weight_hh": (HIDDEN, rows), "bias_ih": (rows,), "bias_hh": (rows,),
            "dense.weight": (HIDDEN, CLASSES), "dense.bias": (CLASSES,)}


def data(rows: int, seed: int = 0):
    """Sequences (rows, T, I) float32, batch first, and labels (rows,) int64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, STEPS, INPUTS)).astype(np.float32)
    y = rng.integers(0, CLASSES, rows).astype(np.int64)
    return x, y


def time_major(x: np.ndarray) -> np.ndarray:
    """(batch, T, I) -> a contiguous (T, batch, I)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2))


# ---- symprop -------------------------------------------------------------------------------------


def symprop_step(cell: str, seed: int = 0):
    """The model declared with compiler.ops, Params and one compiler.scan, compiled to one training step."""
    return sp.compile_step(symprop_loss(cell), symprop_optimizer(), seed=seed)


def symprop_optimizer():
    return sp.optim.Adam(lr=LR, betas=BETAS, eps=EPS)


def symprop_loss(cell: str):
    """The model's loss node, declared with compiler.ops, Params and one compiler.scan."""
    ops = sp.ops
    bound = 1.0 / math.sqrt(HIDDEN)
    p = {name: sp.Param(name, shape, init=lambda shape, rng: rng.uniform(-bound, bound, shape))
         for name, shape in params(cell).items()}
    x = sp.Input("x", ("batch", STEPS, INPUTS))
    y = sp.Input("y", ("batch",), "int64")
    rows = ops.reshape(ops.transpose(x, (1, 0, 2)), (-1, INPUTS))  # (T * batch, I), time-major
    projected = rows @ p["weight_ih"] + (p["bias_ih"] + p["bias_hh"])
    projected = ops.reshape(projected, (STEPS, -1, GATES[cell] * HIDDEN))
    zeros = ops.broadcast_to(sp.const(np.zeros((1, HIDDEN), np.float32)), ("batch", HIDDEN))
    w_hh, H = p["weight_hh"], HIDDEN

    if cell == "rnn":
        def body(h, z_t):
            h = ops.tanh(z_t + h @ w_hh)
            return h, None
        h, _ = sp.scan(body, zeros, projected)
    else:
        def body(carry, z_t):
            h, c = carry
            z = z_t + h @ w_hh
            i, f = ops.sigmoid(z[:, :H]), ops.sigmoid(z[:, H:2 * H])
            g, o = ops.tanh(z[:, 2 * H:3 * H]), ops.sigmoid(z[:, 3 * H:])
            c = f * c + i * g
            return (o * ops.tanh(c), c), None
        (h, _), _ = sp.scan(body, (zeros, zeros), projected)
    logits = h @ p["dense.weight"] + p["dense.bias"]
    return ops.cross_entropy(logits, y)


# ---- NumPy by hand --------------------------------------------------------------------------------


def _sigmoid(z, out):
    """1 / (1 + exp(-z)) as 0.5 * tanh(z / 2) + 0.5, in place into `out` (one transcendental, no overflow)."""
    np.multiply(z, np.float32(0.5), out=out)
    np.tanh(out, out=out)
    out *= np.float32(0.5)
    out += np.float32(0.5)
    return out


class NumpyRNN(AdamBaseline):
    """Forward, backprop through time and Adam in NumPy.

    The loop over time holds only the (batch, H) x (H, gates*H) product and the cell's elementwise
    work; the weight gradients are three products over all T * batch rows after the loop."""

    def __init__(self, cell: str, weights: dict):
        super().__init__(weights)
        self.cell = cell

    def __call__(self, x, y):
        steps, batch, _ = x.shape
        p, H = self.params, HIDDEN
        rows = x.reshape(steps * batch, INPUTS)
        z = rows @ p["weight_ih"]
        z += p["bias_ih"] + p["bias_hh"]
        z = z.reshape(steps, batch, -1)  # pre-activations; the loop adds h @ W_hh, then stores the activations
        hs = np.zeros((steps + 1, batch, H), np.float32)  # hs[t] is the hidden state before step t
        if self.cell == "rnn":
            for t in range(steps):
                zt = z[t]
                zt += hs[t] @ p["weight_hh"]
                np.tanh(zt, out=hs[t + 1])
        else:
            cs = np.zeros((steps + 1, batch, H), np.float32)
            tanh_c = np.empty((steps, batch, H), np.float32)
            for t in range(steps):
                zt = z[t]
                zt += hs[t] @ p["weight_hh"]
                np.tanh(zt[:, 2 * H:3 * H], out=zt[:, 2 * H:3 * H])
                _sigmoid(zt[:, :2 * H], out=zt[:, :2 * H])
                _sigmoid(zt[:, 3 * H:], out=zt[:, 3 * H:])  # zt now holds i, f, g, o
                c = cs[t + 1]
                np.multiply(zt[:, H:2 * H], cs[t], out=c)
                c += zt[:, :H] * zt[:, 2 * H:3 * H]
                np.tanh(c, out=tanh_c[t])
                np.multiply(zt[:, 3 * H:], tanh_c[t], out=hs[t + 1])
        logits = hs[steps] @ p["dense.weight"]
        logits += p["dense.bias"]
        loss, g = softmax_cross_entropy(logits, y)
        grads = {"dense.weight": hs[steps].T @ g, "dense.bias": g.sum(axis=0)}
        dh = g @ p["dense.weight"].T
        dz = np.empty_like(z)  # the pre-activations' gradients, step by step backwards
        if self.cell == "rnn":
            for t in reversed(range(steps)):
                h = hs[t + 1]
                np.multiply(h, h, out=dz[t])
                np.subtract(np.float32(1), dz[t], out=dz[t])
                dz[t] *= dh
                if t:
                    dh = dz[t] @ p["weight_hh"].T
        else:
            dc = np.zeros((batch, H), np.float32)
            for t in reversed(range(steps)):
                gates, d = z[t], dz[t]
                i, f, gg, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
                th = tanh_c[t]
                np.multiply(dh, th, out=d[:, 3 * H:])           # d o
                dc += dh * o * (1 - th * th)
                np.multiply(dc, gg, out=d[:, :H])               # d i
                np.multiply(dc, cs[t], out=d[:, H:2 * H])       # d f
                np.multiply(dc, i, out=d[:, 2 * H:3 * H])       # d g
                dc *= f
                for lo, hi in ((0, H), (H, 2 * H), (3 * H, 4 * H)):  # through the sigmoids
                    s = gates[:, lo:hi]
                    d[:, lo:hi] *= s * (1 - s)
                d[:, 2 * H:3 * H] *= 1 - gg * gg               # through the tanh
                if t:
                    dh = d @ p["weight_hh"].T
        flat = dz.reshape(steps * batch, -1)
        grads["weight_hh"] = hs[:steps].reshape(steps * batch, H).T @ flat
        grads["weight_ih"] = rows.T @ flat
        grads["bias_ih"] = flat.sum(axis=0)
        grads["bias_hh"] = grads["bias_ih"].copy()
        self.adam(grads, LR, BETAS, EPS)
        return loss


# ---- PyTorch eager, jax.jit ------------------------------------------------------------------------


def torch_step(torch, cell: str, weights: dict):
    """torch.nn.RNN / torch.nn.LSTM (time-major) with the weights copied in, addmm, torch.optim.Adam, one thread."""
    torch.set_num_threads(1)
    layer = (torch.nn.RNN(INPUTS, HIDDEN, nonlinearity="tanh") if cell == "rnn"
             else torch.nn.LSTM(INPUTS, HIDDEN))
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.from_numpy(weights["weight_ih"].T.copy()))
        layer.weight_hh_l0.copy_(torch.from_numpy(weights["weight_hh"].T.copy()))
        layer.bias_ih_l0.copy_(torch.from_numpy(weights["bias_ih"]))
        layer.bias_hh_l0.copy_(torch.from_numpy(weights["bias_hh"]))
    dense_w = torch.tensor(weights["dense.weight"], requires_grad=True)
    dense_b = torch.tensor(weights["dense.bias"], requires_grad=True)
    optimizer = torch.optim.Adam([*layer.parameters(), dense_w, dense_b], lr=LR, betas=BETAS, eps=EPS)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        _, state = layer(x)
        h = state[0] if cell == "lstm" else state
        loss = torch.nn.functional.cross_entropy(torch.addmm(dense_b, h[0], dense_w), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def jax_step(jax, optax, cell: str, weights: dict):
    """One jitted function per step: the projection, lax.scan over the cell, value_and_grad and Adam
    (optax.adam if installed, otherwise the same update in jax.numpy)."""
    jnp, lax = jax.numpy, jax.lax
    H = HIDDEN

    def loss_fn(p, x, y):
        steps, batch, _ = x.shape
        z = x.reshape(steps * batch, INPUTS) @ p["weight_ih"] + p["bias_ih"] + p["bias_hh"]
        z = z.reshape(steps, batch, -1)
        zeros = jnp.zeros((batch, H), x.dtype)
        if cell == "rnn":
            h, _ = lax.scan(lambda h, z_t: (jnp.tanh(z_t + h @ p["weight_hh"]), None), zeros, z)
        else:
            def body(carry, z_t):
                h, c = carry
                g = z_t + h @ p["weight_hh"]
                i, f, o = (jax.nn.sigmoid(g[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
                c = f * c + i * jnp.tanh(g[:, 2 * H:3 * H])
                return (o * jnp.tanh(c), c), None
            (h, _), _ = lax.scan(body, (zeros, zeros), z)
        logits = h @ p["dense.weight"] + p["dense.bias"]
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    params = {name: jnp.asarray(w) for name, w in weights.items()}
    if optax is not None:
        return optax_adam_step(jax, optax, loss_fn, params, LR, BETAS, EPS), "optax.adam"
    else:
        def update(p, state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
            m, v, t = state
            t = t + 1
            m = jax.tree_util.tree_map(lambda a, g: BETAS[0] * a + (1 - BETAS[0]) * g, m, grads)
            v = jax.tree_util.tree_map(lambda a, g: BETAS[1] * a + (1 - BETAS[1]) * g * g, v, grads)
            step_size, correction = LR / (1 - BETAS[0] ** t), jnp.sqrt(1 - BETAS[1] ** t)
            p = jax.tree_util.tree_map(lambda w, a, b: w - step_size * a / (jnp.sqrt(b) / correction + EPS), p, m, v)
            return loss, p, (m, v, t)

        def zeros():  # m and v each get buffers of their own: both are donated
            return jax.tree_util.tree_map(jnp.zeros_like, params)

        state, kind = (zeros(), zeros(), jnp.float32(0)), "Adam in jax.numpy"
    return jitted_step(jax, update, params, state), kind
