"""The anchor CNN's compiled training step: how many kernels it runs (a pin) and that it computes the loss.

The network of the convolution benchmark: a batch of 1x28x28 images, conv 16 3x3 pad 1, ReLU, max-pool 2,
conv 32 3x3 pad 1, ReLU, max-pool 2, dense 1568 -> 10, cross-entropy, SGD with momentum 0.9, float32.
"""
from __future__ import annotations

import collections
import re

import numpy as np

import compiler as C
import conv_reference as CR

# A PIN, not a requirement: the number of kernels the compiled training step (forward, backward and
# update) runs today. Fusing more (bias, ReLU and pooling into the convolution's loop nest) lowers it;
# whoever lowers it updates the number here. A higher count is a regression in fusion.
KERNELS = 25


def anchor_cnn():
    x = C.Input("images", ("batch", 1, 28, 28), dtype="float32")
    labels = C.Input("labels", ("batch",), dtype="int64")
    params = {"w1": C.Param("conv1_weight", (16, 1, 3, 3)), "b1": C.Param("conv1_bias", (16,)),
              "w2": C.Param("conv2_weight", (32, 16, 3, 3)), "b2": C.Param("conv2_bias", (32,)),
              "wd": C.Param("dense_weight", (1568, 10)), "bd": C.Param("dense_bias", (10,))}
    h = C.max_pool2d(C.relu(C.conv2d(x, params["w1"], params["b1"], padding=1)), 2)
    h = C.max_pool2d(C.relu(C.conv2d(h, params["w2"], params["b2"], padding=1)), 2)
    logits = C.flatten(h) @ params["wd"] + params["bd"]
    return C.cross_entropy(logits, labels), params


def numpy_loss(images, labels, p):
    """The same network in float64 NumPy (conv_reference.py)."""
    h = CR.max_pool2d(np.maximum(CR.conv2d(images, p["conv1_weight"], p["conv1_bias"], padding=1), 0), 2)
    h = CR.max_pool2d(np.maximum(CR.conv2d(h, p["conv2_weight"], p["conv2_bias"], padding=1), 0), 2)
    logits = h.reshape(len(h), -1) @ p["dense_weight"] + p["dense_bias"]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probabilities[np.arange(len(labels)), labels].mean()


def test_anchor_cnn_training_step_kernel_count_is_pinned():
    loss, _ = anchor_cnn()
    step = C.compile_step(loss, C.optim.SGD(lr=0.01, momentum=0.9))
    kernels = step.kernels()
    kinds = dict(collections.Counter(k["kind"] for k in kernels))
    assert len(kernels) == KERNELS, f"{len(kernels)} kernels ({kinds}), pinned at {KERNELS}"

    # and the step computes the network's loss, on the parameters as they were before it updates them
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    before = {name: array.astype(np.float64) for name, array in step.params.items()}
    value = step(images=images, labels=labels)
    np.testing.assert_allclose(value, numpy_loss(images.astype(np.float64), labels, before), rtol=1e-4)
    assert all(not np.array_equal(step.params[name], before[name].astype(np.float32)) for name in before)


def test_anchor_cnn_recomputes_the_first_relu_and_stores_the_second():
    """conv1's ReLU of its bias add is recomputed by the pooling and by its derivative from the
    product it reads in order, so no (batch, 16, 28, 28) activation is stored; conv2's product is
    positions-major, read transposed, so its ReLU is stored once in (batch, 32, 14, 14) order."""
    loss, _ = anchor_cnn()
    step = C.compile_step(loss, C.optim.SGD(lr=0.01, momentum=0.9))
    bodies = " | ".join(k["body"] for k in step.kernels())
    assert not re.search(r"\bt\d+ = Relu\(conv1_bias", bodies), bodies  # never stored ...
    assert len(re.findall(r"Relu\(conv1_bias", bodies)) >= 5  # ... but computed by the pooling and the derivative
    assert re.search(r"\bt\d+ = Relu\(conv2_bias", bodies), bodies


def _rolled_loops(function) -> int:
    """How many loops of a compiled function's IR are marked not to be unrolled (loops.keep_rolled)."""
    return len(re.findall(r"!llvm\.loop !\d+", function.llvm_ir()))


def test_short_pooled_rows_stay_rolled_and_equal_the_reference():
    """A 2x2 max pooling of 14x14 maps reads its 7-wide rows at stride 2: that loop is kept rolled for the
    vectoriser (wide loads and a shuffle, not gathers around an unrolled row). A transposing read, a long
    row and a contiguous short row are left to LLVM. Values equal the evaluator either way."""
    rng = np.random.default_rng(0)
    x = C.Input("x", ("batch", 3, 14, 14))
    pooled = C.ops.max_pool2d(x, 2)
    values = {"x": rng.standard_normal((5, 3, 14, 14)).astype(np.float32)}
    f = C.compile(pooled)
    np.testing.assert_array_equal(f(**values), C.evaluate(pooled, values))
    assert _rolled_loops(f) == 1
    wide = C.Input("w", ("batch", 3, 64, 64))
    assert _rolled_loops(C.compile(C.ops.max_pool2d(wide, 2))) == 0
    assert _rolled_loops(C.compile(C.ops.transpose(x, (0, 1, 3, 2)) * 2.0)) == 0
    assert _rolled_loops(C.compile(x[:, :, :, 1:8] * 2.0)) == 0
