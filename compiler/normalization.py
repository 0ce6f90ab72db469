"""Batch normalisation with running statistics: one graph that holds both behaviours.

``batch_norm`` is a ``training`` node (``primitives.modes``): in a training step
it normalises with the batch's mean and biased variance, and the step writes
PyTorch's running estimates into the two Buffers in place; after
``compiler.inference`` (or with ``training=False``) it normalises with those
running statistics. Everything is written with ordinary ops, so the gradient
is derived like any other and ``symprop inspect`` shows it.
"""
from __future__ import annotations

import numbers

from .dtypes import is_float
from .errors import fail
from .graph import Node, is_buffer
from .ops import astype, mean, reshape, sqrt
from .derived_reductions import var
from .primitives import size_of
from .primitives.modes import make_training
from .size_requirements import require_size


def batch_norm(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5) -> Node:
    """``torch.nn.functional.batch_norm`` over axis 1 of x (N, C, ...): (x - mean) / sqrt(var + eps)
    * gamma + beta, per channel.

    training=True: the batch's mean and biased variance over every axis but 1; a training step
    updates running_mean = (1 - momentum) * running_mean + momentum * mean and running_var likewise
    with the unbiased variance (n / (n - 1)). training=False, or after ``compiler.inference``: the
    running statistics. gamma, beta: (C,) nodes or None (no affine transform); running_mean,
    running_var: ``compiler.Buffer`` of shape (C,), or both None for batch statistics only.
    """
    if not isinstance(x, Node):
        raise fail("batch_norm", f"x must be a graph node of shape (N, C, ...), got {type(x).__name__}")
    if x.ndim < 2:
        raise fail("batch_norm", f"x must have shape (N, C), (N, C, L) or (N, C, H, W), got {x.shape}")
    if not is_float(x.dtype):
        raise fail("batch_norm", f"x must be a float tensor, got dtype {x.dtype}")
    channels = x.shape[1]
    if not isinstance(channels, int):
        raise fail("batch_norm", f"the channel axis (1) of x {x.shape} must have a concrete size, got {channels!r}")
    for name, value in (("gamma", gamma), ("beta", beta)):
        _check_per_channel(name, value, x)
    if (running_mean is None) != (running_var is None):
        raise fail("batch_norm", "running_mean and running_var must both be Buffers or both None, got "
                                 f"{_describe(running_mean)} and {_describe(running_var)}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and not (isinstance(value, Node) and is_buffer(value)):
            raise fail("batch_norm", f"{name} must be a compiler.Buffer (state a training step updates), got {value!r}")
        _check_per_channel(name, value, x)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise fail("batch_norm", f"momentum must be a number in [0, 1], got {momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise fail("batch_norm", f"eps must be a positive number, got {eps!r}")
    if not isinstance(training, bool):
        raise fail("batch_norm", f"training must be True or False, got {training!r}")

    def per_channel(vector):  # (C,) -> (C, 1, ...) broadcasting against x
        return reshape(vector, (channels,) + (1,) * (x.ndim - 2))

    def affine(normalised):
        if gamma is not None:
            normalised = normalised * per_channel(gamma)
        if beta is not None:
            normalised = normalised + per_channel(beta)
        return normalised

    inference_value = None
    if running_mean is not None:
        inference_value = affine((x - per_channel(astype(running_mean, x.dtype)))
                                 / sqrt(per_channel(astype(running_var, x.dtype)) + eps))
    if not training:
        if inference_value is None:
            raise fail("batch_norm", "training=False normalises with running statistics: give running_mean "
                                     "and running_var (compiler.Buffer)")
        return inference_value
    axes = (0,) + tuple(range(2, x.ndim))
    count = size_of(x.shape, axes, x.dtype)
    if isinstance(count, int) and count == 1:
        raise fail("batch_norm", f"x {x.shape} has one value per channel; training needs more than one "
                                 f"to estimate a variance")
    batch_mean = mean(x, axes, keepdims=True)
    batch_var = var(x, axes, correction=0, keepdims=True)
    if not isinstance(count, int):  # a symbolic batch: the runtime checks it holds more than one value
        require_size(batch_var, tuple(x.shape[a] for a in axes), 2, "batch_norm",
                     "the number of values per channel in training (N x spatial)")
    train_value = affine((x - batch_mean) / sqrt(batch_var + eps))
    if running_mean is None:
        return train_value
    new_mean = (1 - momentum) * running_mean + momentum * reshape(batch_mean, (channels,))
    unbiased = reshape(batch_var, (channels,)) * (count / (count - 1))
    new_var = (1 - momentum) * running_var + momentum * unbiased
    return make_training(train_value, inference_value, updates=[(running_mean, new_mean), (running_var, new_var)])


def _describe(value) -> str:
    if isinstance(value, Node) and is_buffer(value):
        return f"Buffer {value.name!r} {value.shape} {value.dtype}"
    return repr(value)


def _check_per_channel(name: str, value, x: Node) -> None:
    """None or a float node of shape (C,), C = x.shape[1]; else an error naming both shapes."""
    if value is None:
        return
    if not isinstance(value, Node):
        raise fail("batch_norm", f"{name} must be a graph node of shape ({x.shape[1]},) or None, "
                                 f"got {type(value).__name__}")
    if value.shape != (x.shape[1],):
        raise fail("batch_norm", f"{name} has shape {value.shape}, but x {x.shape} has {x.shape[1]} channels "
                                 f"(axis 1): expected ({x.shape[1]},)")
    if not is_float(value.dtype):
        raise fail("batch_norm", f"{name} must be a float tensor, got dtype {value.dtype}")
