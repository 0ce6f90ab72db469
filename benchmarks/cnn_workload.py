"""The anchor CNN, written once per implementation: symprop, NumPy by hand, PyTorch eager, jax.jit.

batch 64 of 1x28x28 -> conv 16 3x3 pad 1 -> ReLU -> max-pool 2 -> conv 32 3x3 pad 1 -> ReLU
-> max-pool 2 -> flatten -> dense 1568->10 -> softmax cross-entropy; SGD, lr 0.01, momentum 0.9;
float32. Every implementation takes the weights as a dict in symprop's layout (conv weights
(O, C, kh, kw), the dense weight (1568, 10) as in ``x @ W``) so all start from symprop's seeded
initial values; a step takes (x, y) and returns the loss before the update.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import compiler as sp
from common import jitted_step
from numpy_training import softmax_cross_entropy

BATCH, IMAGE, CLASSES = 64, (1, 28, 28), 10
LR, MOMENTUM = 0.01, 0.9
LABEL = "CNN conv16-pool-conv32-pool-dense batch 64"
# name -> (shape, fan_in); PyTorch's default initialisation draws U(-1/sqrt(fan_in), 1/sqrt(fan_in))
PARAMS = {
    "conv1.weight": ((16, 1, 3, 3), 9), "conv1.bias": ((16,), 9),
    "conv2.weight": ((32, 16, 3, 3), 144), "conv2.bias": ((32,), 144),
    "dense.weight": ((1568, 10), 1568), "dense.bias": ((10,), 1568),
}


def data(rows: int, seed: int = 0):
    """Images (rows, 1, 28, 28) float32 and labels (rows,) int64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, *IMAGE)).astype(np.float32)
    y = rng.integers(0, CLASSES, rows).astype(np.int64)
    return x, y


def _uniform(fan_in: int):
    """PyTorch's default layer initialisation, as a symprop init callable (shape, rng) -> array."""
    bound = 1.0 / math.sqrt(fan_in)
    return lambda shape, rng: rng.uniform(-bound, bound, shape)


# ---- symprop -------------------------------------------------------------------------------------


def symprop_step(seed: int = 0):
    """The CNN declared with compiler.ops and Params, compiled to one training step."""
    return sp.compile_step(symprop_loss(), symprop_optimizer(), seed=seed)


def symprop_optimizer():
    return sp.optim.SGD(lr=LR, momentum=MOMENTUM)


def symprop_loss():
    """The CNN's loss node, declared with compiler.ops and Params."""
    ops = sp.ops
    p = {name: sp.Param(name, shape, init=_uniform(fan_in)) for name, (shape, fan_in) in PARAMS.items()}
    x = sp.Input("x", ("batch", *IMAGE))
    y = sp.Input("y", ("batch",), "int64")
    h = ops.max_pool2d(ops.relu(ops.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1)), 2)
    h = ops.max_pool2d(ops.relu(ops.conv2d(h, p["conv2.weight"], p["conv2.bias"], padding=1)), 2)
    logits = ops.flatten(h) @ p["dense.weight"] + p["dense.bias"]
    return ops.cross_entropy(logits, y)


# what each matrix product of the step computes, by its output's (rows, columns) per sample, in either order
PRODUCTS = {frozenset(pair): what for pair, what in [
    ((16, 784), "conv1 forward"), ((16, 9), "conv1 weight gradient"),
    ((32, 196), "conv2 forward"), ((144, 196), "conv2 input gradient"), ((32, 144), "conv2 weight gradient"),
    (("batch", 10), "dense forward"), (("batch", 1568), "dense input gradient"), ((1568, 10), "dense weight gradient"),
]}


def describe_product(kernel: dict, flops: float, dims: dict) -> tuple:
    """(what it computes, (M, N, K) of one plain GEMM doing the same work) for a matrix-product kernel
    of the compiled step (an entry of ``step.kernels()``). A batched product over samples is one GEMM
    whose N (or M, when the rows are the positions) gathers the samples, or whose K does for a
    weight gradient (summed over samples)."""
    shape = list(kernel["shape"])
    rows, columns = shape[-2:]
    samples = math.prod(dims.get(d, d) if isinstance(d, str) else d for d in shape[:-2])
    what = PRODUCTS.get(frozenset((rows, columns)), f"product {kernel['out']}")
    rows, columns = (dims.get(d, d) if isinstance(d, str) else d for d in (rows, columns))
    depth = round(flops / (2 * rows * columns * samples))
    if "weight gradient" in what and samples > 1:
        return what, (rows, columns, depth * samples)
    if rows > columns:  # positions-major (a deep convolution's forward product): the rows gather the samples
        return what, (rows * samples, columns, depth)
    return what, (rows, columns * samples, depth)


# ---- NumPy by hand --------------------------------------------------------------------------------


class NumpyCNN:
    """Forward, backward and momentum SGD in NumPy: im2col with sliding_window_view, GEMMs with `@`.

    Activations stay channels-last (N, H, W, C) between layers, the layout the im2col product
    yields, and the im2col columns are ordered (kh, kw, c) so that every copy moves runs of
    contiguous channels; the max-pool gradient goes to the first maximum of each window, as
    PyTorch's does.
    """

    def __init__(self, weights: dict):
        self.params = {name: w.copy() for name, w in weights.items()}
        self.buffers = {}

    @staticmethod
    def im2col(h):
        """(N, H, W, C) -> (N*H*W, 9*C): the 3x3 windows (padding 1) of every position, (kh, kw, c) order."""
        n, height, width, channels = h.shape
        padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
        windows = sliding_window_view(padded, (3, 3), axis=(1, 2))  # (N, H, W, C, 3, 3), a view
        return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * height * width, 9 * channels)

    @staticmethod
    def col2im(cols, shape):
        """The adjoint of im2col: (N*H*W, 9*C) window cotangents summed into (N, H, W, C)."""
        n, height, width, channels = shape
        windows = cols.reshape(n, height, width, 3, 3, channels)
        padded = np.zeros((n, height + 2, width + 2, channels), np.float32)
        for i in range(3):
            for j in range(3):
                padded[:, i:i + height, j:j + width] += windows[:, :, :, i, j]
        return padded[:, 1:-1, 1:-1]

    @staticmethod
    def max_pool(h):
        """2x2 max-pool of (N, H, W, C): the maxima and which of the four taps (row-major) first holds each."""
        taps = [h[:, i::2, j::2] for i in range(2) for j in range(2)]
        peak = np.maximum(np.maximum(taps[0], taps[1]), np.maximum(taps[2], taps[3]))
        first = np.where(taps[2] == peak, np.int8(2), np.int8(3))
        for k in (1, 0):
            first = np.where(taps[k] == peak, np.int8(k), first)
        return peak, first

    @staticmethod
    def max_pool_backward(g, first):
        """The pooled cotangent (N, H/2, W/2, C) placed at each window's first maximum: (N, H, W, C)."""
        n, height, width, channels = g.shape
        spread = np.empty((n, 2 * height, 2 * width, channels), np.float32)
        for k in range(4):
            np.multiply(g, first == k, out=spread[:, k // 2::2, k % 2::2])
        return spread

    @staticmethod
    def weight_matrix(w):
        """(O, C, 3, 3) -> (O, 9*C) in the columns' (kh, kw, c) order."""
        return w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1)

    def conv_relu_pool(self, h, layer):
        w, b = self.params[f"{layer}.weight"], self.params[f"{layer}.bias"]
        cols = self.im2col(h)
        z = cols @ self.weight_matrix(w).T
        z += b
        np.maximum(z, 0, out=z)
        z = z.reshape(*h.shape[:3], w.shape[0])
        pooled, first = self.max_pool(z)
        return pooled, (cols, z, first)

    def conv_relu_pool_backward(self, g, layer, saved, grads, input_gradient=True):
        cols, z, first = saved
        w = self.params[f"{layer}.weight"]
        g = self.max_pool_backward(g, first)
        g *= z > 0
        g = g.reshape(-1, w.shape[0])
        out_channels, in_channels = w.shape[:2]
        grads[f"{layer}.weight"] = (g.T @ cols).reshape(out_channels, 3, 3, in_channels).transpose(0, 3, 1, 2)
        grads[f"{layer}.bias"] = g.sum(axis=0)
        if input_gradient:
            n, height, width, _ = z.shape
            return self.col2im(g @ self.weight_matrix(w), (n, height, width, in_channels))
        return None

    def __call__(self, x, y):
        n = len(y)
        h1, saved1 = self.conv_relu_pool(x.transpose(0, 2, 3, 1), "conv1")
        h2, saved2 = self.conv_relu_pool(h1, "conv2")
        flat = h2.transpose(0, 3, 1, 2).reshape(n, -1)  # PyTorch's (C, H, W) order
        logits = flat @ self.params["dense.weight"]
        logits += self.params["dense.bias"]
        loss, g = softmax_cross_entropy(logits, y)
        grads = {"dense.weight": flat.T @ g, "dense.bias": g.sum(axis=0)}
        g = (g @ self.params["dense.weight"].T).reshape(h2.shape[0], h2.shape[3], *h2.shape[1:3])
        g = self.conv_relu_pool_backward(g.transpose(0, 2, 3, 1), "conv2", saved2, grads)
        self.conv_relu_pool_backward(g, "conv1", saved1, grads, input_gradient=False)
        self.sgd(grads)
        return loss

    def sgd(self, grads):
        """torch.optim.SGD(momentum=0.9): the buffer starts as the first gradient."""
        for name, g in grads.items():
            buffer = self.buffers.get(name)
            if buffer is None:
                buffer = self.buffers[name] = g.copy()
            else:
                buffer *= np.float32(MOMENTUM)
                buffer += g
            self.params[name] -= np.float32(LR) * buffer


# ---- PyTorch eager, jax.jit ------------------------------------------------------------------------


def torch_step(torch, weights: dict, threads: int = 1):
    """torch.nn.functional and torch.optim.SGD on `threads` threads."""
    functional = torch.nn.functional
    torch.set_num_threads(threads)
    p = {name: torch.tensor(w, requires_grad=True) for name, w in weights.items()}
    optimizer = torch.optim.SGD(list(p.values()), lr=LR, momentum=MOMENTUM)

    def conv_relu_pool(h, layer):
        h = functional.conv2d(h, p[f"{layer}.weight"], p[f"{layer}.bias"], padding=1)
        return functional.max_pool2d(functional.relu(h), 2)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        h = conv_relu_pool(conv_relu_pool(x, "conv1"), "conv2")
        logits = torch.addmm(p["dense.bias"], h.flatten(1), p["dense.weight"])
        loss = functional.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def jax_step(jax, optax, weights: dict):
    """One jitted function per step: value_and_grad and the momentum update (optax.sgd if installed)."""
    jnp, lax = jax.numpy, jax.lax

    def conv_relu_pool(h, w, b):
        h = lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + b[None, :, None, None])
        return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(p, x, y):
        h = conv_relu_pool(x, p["conv1.weight"], p["conv1.bias"])
        h = conv_relu_pool(h, p["conv2.weight"], p["conv2.bias"])
        logits = h.reshape(h.shape[0], -1) @ p["dense.weight"] + p["dense.bias"]
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, y[:, None], axis=1))

    params = {name: jnp.asarray(w) for name, w in weights.items()}
    if optax is not None:
        transform = optax.sgd(LR, momentum=MOMENTUM)

        def update(p, state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
            updates, state = transform.update(grads, state, p)
            return loss, optax.apply_updates(p, updates), state

        state, kind = transform.init(params), "optax.sgd(momentum=0.9)"
    else:
        def update(p, buffers, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
            buffers = jax.tree_util.tree_map(lambda b, g: MOMENTUM * b + g, buffers, grads)
            return loss, jax.tree_util.tree_map(lambda w, b: w - LR * b, p, buffers), buffers

        state, kind = jax.tree_util.tree_map(jnp.zeros_like, params), "momentum SGD in jax.numpy"
    return jitted_step(jax, update, params, state), kind
