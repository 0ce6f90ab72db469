"""Normalisation over channels and groups of channels: batch, instance and group norm.

``batch_norm`` and ``instance_norm`` are ``training`` nodes (``primitives.modes``) when
given running statistics: in a training step they normalise with the input's statistics
(per channel over the batch; per sample and channel) and the step writes PyTorch's
running estimates into the two Buffers in place; after ``compiler.inference`` (or with
``training=False`` / ``use_input_stats=False``) they normalise with those running
statistics. ``group_norm`` has none. Group and instance norm take their statistics
over the last axis of a (N, G, C/G x spatial) view of x (G = C for instance norm),
contiguous in memory, so each is one loop over contiguous runs. Everything is written
with ordinary ops, so the gradient is derived like any other and ``symprop inspect``
shows it.
"""
from __future__ import annotations

import numbers

from .dtypes import is_float
from .errors import fail
from .graph import Node, is_buffer
from .ops import astype, broadcast_to, mean, reshape, sqrt
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
    op = "batch_norm"
    _check_input(op, x)
    _check_affine(op, x, {"gamma": gamma, "beta": beta})
    _check_running(op, x, running_mean, running_var, momentum)
    _check_eps(op, eps)
    if not isinstance(training, bool):
        raise fail(op, f"training must be True or False, got {training!r}")
    axes = (0,) + tuple(range(2, x.ndim))
    counted = tuple(x.shape[a] for a in axes)
    if training and counted == (1,) * len(counted):
        raise fail(op, f"x {x.shape} has one value per channel; training needs more than one "
                       f"to estimate a variance")
    return _normalise(op, x, gamma, beta, running_mean, running_var, training, momentum, eps,
                      lambda: (mean(x, axes, keepdims=True), var(x, axes, correction=0, keepdims=True)),
                      counted, "the number of values per channel in training (N x spatial)")


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5) -> Node:
    """``torch.nn.functional.instance_norm`` of x (N, C, ...): each sample's channels normalised
    over their spatial positions, (x - mean) / sqrt(var + eps) * weight + bias (biased variance).

    With running statistics (``compiler.Buffer`` of shape (C,)) a training step updates them as
    torch does: the per-sample statistics averaged over the batch, running_mean = (1 - momentum)
    * running_mean + momentum * mean_n(mean), running_var likewise with the unbiased variance;
    after ``compiler.inference``, or with use_input_stats=False, it normalises with them (torch's
    InstanceNorm with track_running_stats=True in eval mode). weight, bias: (C,) nodes or None.
    """
    op = "instance_norm"
    _check_input(op, x)
    _check_affine(op, x, {"weight": weight, "bias": bias}, same_dtype=True)
    _check_running(op, x, running_mean, running_var, momentum)
    _check_eps(op, eps)
    if not isinstance(use_input_stats, bool):
        raise fail(op, f"use_input_stats must be True or False, got {use_input_stats!r}")
    spatial = x.shape[2:]
    if use_input_stats and spatial == (1,) * len(spatial):
        raise fail(op, f"x {x.shape} has one spatial element per sample and channel; normalising with the "
                       f"input's statistics needs more than one (torch: \"Expected more than 1 spatial element "
                       f"when training\"); use_input_stats=False normalises with the running statistics")
    return _normalise(op, x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                      lambda: _group_statistics(x, x.shape[1]), spatial,
                      "the number of spatial elements per sample and channel")


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5) -> Node:
    """``torch.nn.functional.group_norm`` of x (N, C, ...): the C channels split into num_groups
    groups of C / num_groups consecutive channels, each sample's group normalised over its channels
    and spatial positions with the biased variance, then weight * . + bias per channel.

    weight, bias: (C,) nodes of x's dtype, or None. num_groups=C is instance norm without running
    statistics; num_groups=1 normalises each sample as a whole.
    """
    op = "group_norm"
    channels = _check_input(op, x)
    if isinstance(num_groups, bool) or not isinstance(num_groups, numbers.Integral) or num_groups < 1:
        raise fail(op, f"num_groups must be a positive int, got {num_groups!r}")
    if channels % num_groups:
        raise fail(op, f"num_groups={num_groups} must divide the {channels} channels of x {x.shape} (axis 1)")
    _check_affine(op, x, {"weight": weight, "bias": bias}, same_dtype=True)
    _check_eps(op, eps)
    # groups of one value normalise to 0; torch refuses them in a batch of one sample (its batch-norm check)
    one_value_groups = (channels // num_groups,) + tuple(x.shape[2:]) == (1,) * (x.ndim - 1)
    if one_value_groups and x.shape[0] == 1:
        raise fail(op, f"x {x.shape} with num_groups={num_groups} is one sample whose groups hold one value "
                       f"each; torch refuses it (\"Expected more than 1 value per channel\")")
    group_mean, group_var = _group_statistics(x, num_groups)
    out = _affine((x - group_mean) / sqrt(group_var + eps), weight, bias)
    if one_value_groups and not isinstance(x.shape[0], int):
        require_size(out, x.shape[:1], 2, op, "the batch size when each group holds one value")
    return out


# ---- the shared part: statistics over axes, running estimates, the training node ------------------


def _normalise(op, x, scale, shift, running_mean, running_var, use_input_stats, momentum, eps, statistics,
               counted, what) -> Node:
    """x normalised with the mean and biased variance `statistics()` returns (shaped to broadcast
    against x: (1, C, 1, ...) per channel, or (N, C, 1, ...) per sample and channel), each over a
    number of values that is the product of `counted`, then scaled and shifted per channel. With
    running statistics: a training node whose inference value reads them and whose updates move them
    towards the batch average of the statistics, the variance unbiased; `what` names the count in
    the runtime's error when it is symbolic and turns out to be 1."""
    channels = x.shape[1]
    inference_value = None
    if running_mean is not None:
        inference_value = _affine((x - _per_channel(astype(running_mean, x.dtype), x))
                                  / sqrt(_per_channel(astype(running_var, x.dtype), x) + eps), scale, shift)
    if not use_input_stats:
        if inference_value is None:
            flag = "training=False" if op == "batch_norm" else "use_input_stats=False"
            raise fail(op, f"{flag} normalises with running statistics: give running_mean "
                           "and running_var (compiler.Buffer)")
        return inference_value
    input_mean, input_var = statistics()
    count = size_of(counted, range(len(counted)), x.dtype)
    if not isinstance(count, int):  # symbolic sizes: the runtime checks there is more than one value
        require_size(input_var, counted, 2, op, what)
    train_value = _affine((x - input_mean) / sqrt(input_var + eps), scale, shift)
    if running_mean is None:
        return train_value

    def averaged(statistic):  # -> (C,): torch's mean over the batch of the per-sample updates
        if statistic.shape[0] == 1:
            return reshape(statistic, (channels,))
        return mean(reshape(statistic, (statistic.shape[0], channels)), 0)

    new_mean = (1 - momentum) * running_mean + momentum * averaged(input_mean)
    new_var = (1 - momentum) * running_var + momentum * (averaged(input_var) * (count / (count - 1)))
    return make_training(train_value, inference_value, updates=[(running_mean, new_mean), (running_var, new_var)])


def _group_statistics(x: Node, groups: int) -> tuple:
    """Mean and biased variance of each sample's groups of C / groups consecutive channels, shaped
    (N, C, 1, ...). They are reductions over the last axis of the contiguous view (N, groups,
    C / groups x spatial), one loop each, spread back to the channels before x is normalised in its
    own layout: normalising in the grouped view instead compiles to more passes over x (measured in
    docs/architecture.md, "Normalisation")."""
    n, channels = x.shape[:2]
    grouped = reshape(x, (n, groups, -1))

    def per_channel(statistic):  # (N, groups, 1) -> (N, C, 1, ...)
        if channels != groups:
            statistic = broadcast_to(statistic, (n, groups, channels // groups))
        return reshape(statistic, (n, channels) + (1,) * (x.ndim - 2))
    return (per_channel(mean(grouped, 2, keepdims=True)),
            per_channel(var(grouped, 2, correction=0, keepdims=True)))


def _per_channel(vector: Node, x: Node) -> Node:
    """(C,) -> (C, 1, ...), broadcasting against x (N, C, ...)."""
    return reshape(vector, (x.shape[1],) + (1,) * (x.ndim - 2))


def _affine(normalised: Node, scale, shift) -> Node:
    if scale is not None:
        normalised = normalised * _per_channel(scale, normalised)
    if shift is not None:
        normalised = normalised + _per_channel(shift, normalised)
    return normalised


# ---- argument checks: each error names the op, the argument, what was expected and what came ------


def _check_input(op: str, x) -> int:
    """x: a float node (N, C, ...) with a concrete channel count, which is returned."""
    if not isinstance(x, Node):
        raise fail(op, f"x must be a graph node of shape (N, C, ...), got {type(x).__name__}")
    if x.ndim < 2:
        raise fail(op, f"x must have shape (N, C), (N, C, L) or (N, C, H, W), got {x.shape}")
    if not is_float(x.dtype):
        raise fail(op, f"x must be a float tensor, got dtype {x.dtype}")
    channels = x.shape[1]
    if not isinstance(channels, int):
        raise fail(op, f"the channel axis (1) of x {x.shape} must have a concrete size, got {channels!r}")
    return channels


def _check_affine(op: str, x: Node, affine: dict, same_dtype: bool = False) -> None:
    """The per-channel scale and shift; batch_norm keeps taking any float dtype for them."""
    for name, value in affine.items():
        _check_per_channel(op, name, value, x)
        if same_dtype and value is not None and value.dtype != x.dtype:
            raise fail(op, f"{name} has dtype {value.dtype}, x {x.dtype}: they must be equal")


def _check_running(op: str, x: Node, running_mean, running_var, momentum) -> None:
    if (running_mean is None) != (running_var is None):
        raise fail(op, "running_mean and running_var must both be Buffers or both None, got "
                       f"{_describe(running_mean)} and {_describe(running_var)}")
    for name, value in (("running_mean", running_mean), ("running_var", running_var)):
        if value is not None and not (isinstance(value, Node) and is_buffer(value)):
            raise fail(op, f"{name} must be a compiler.Buffer (state a training step updates), got {value!r}")
        _check_per_channel(op, name, value, x)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise fail(op, f"momentum must be a number in [0, 1], got {momentum!r}")


def _check_eps(op: str, eps) -> None:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not eps > 0:
        raise fail(op, f"eps must be a positive number, got {eps!r}")


def _describe(value) -> str:
    if isinstance(value, Node) and is_buffer(value):
        return f"Buffer {value.name!r} {value.shape} {value.dtype}"
    return repr(value)


def _check_per_channel(op: str, name: str, value, x: Node) -> None:
    """None or a float node of shape (C,), C = x.shape[1]; else an error naming both shapes."""
    if value is None:
        return
    if not isinstance(value, Node):
        raise fail(op, f"{name} must be a graph node of shape ({x.shape[1]},) or None, got {type(value).__name__}")
    if value.shape != (x.shape[1],):
        raise fail(op, f"{name} has shape {value.shape}, but x {x.shape} has {x.shape[1]} channels "
                       f"(axis 1): expected ({x.shape[1]},)")
    if not is_float(value.dtype):
        raise fail(op, f"{name} must be a float tensor, got dtype {value.dtype}")
