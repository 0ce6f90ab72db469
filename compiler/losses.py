"""Losses: mean squared error, softmax cross-entropy (class labels or class probabilities, with torch's
ignore_index, label_smoothing and reduction) and binary cross-entropy with logits. Served as
``compiler.ops`` names; written on the ops, so their gradients are derived like any other."""
from __future__ import annotations

import numpy as np

from . import scalar_functions as sf
from .dtypes import is_float
from .errors import fail
from .graph import as_node, const, scalar_symbol
from .label_ranges import require as require_labels
from .layout import static_size
from .ops import (Elementwise, _is_number, astype, log_softmax, logsumexp, mean, not_equal, sum)
from .primitives import make_map, make_reshape
from .primitives.gathers import make_gather
from .primitives.layouts import make_surrogate


def mse(prediction, target):
    """Mean over every element of (prediction - target)**2."""
    prediction, target = as_node(prediction), as_node(target, prediction)
    return mean((prediction - target) ** 2)


def cross_entropy(logits, labels, ignore_index=None, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy of logits (..., classes) with integer labels (...), mean over every label.

    labels may also be class probabilities of the logits' shape (torch's soft targets).
    ``ignore_index``, ``label_smoothing`` and ``reduction`` ("mean", "sum", "none") are torch's: a label
    equal to ignore_index adds nothing and is not counted by the mean (which is nan if every label is
    ignored, as torch's); label_smoothing = e mixes the one-hot target with the uniform one, (1 - e)
    of the label's loss plus e of the mean over classes of -log p. One difference on purpose: torch's
    default ignore_index is -100, symprop's None, so a -100 label raises unless asked for.

    The class axis is last (the transformer convention; a sequence model's (batch, time, classes) logits
    go in as they are). torch puts it at dim 1 for N-d input: this is
    ``torch.nn.functional.cross_entropy(logits.movedim(-1, 1), labels)``, the same thing for (batch,
    classes) and for unbatched (classes,) logits with a 0-d label. A label outside [0, classes) raises
    IndexError: labels given as an Input are checked before the program runs, labels computed in the
    graph after it (``label_ranges``). When the logits are stored anyway (a product, a leaf), each
    label's logit is read by a gather; the gradient is the one-hot selection's either way.
    """
    logits, labels = as_node(logits), as_node(labels)
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer))):
        raise fail("cross_entropy", f"ignore_index must be an int or None, got {ignore_index!r}")
    if isinstance(label_smoothing, bool) or not _is_number(label_smoothing) or not 0 <= label_smoothing <= 1:
        raise fail("cross_entropy", f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    if reduction not in ("mean", "sum", "none"):
        raise fail("cross_entropy", f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if is_float(labels.dtype) and labels.shape == logits.shape and logits.ndim >= 1:
        if ignore_index is not None:
            raise fail("cross_entropy", "ignore_index applies to class labels, not to class probabilities")
        return _cross_entropy_soft(logits, labels, float(label_smoothing), reduction)
    if logits.ndim < 1 or labels.shape != logits.shape[:-1] or labels.dtype not in ("int32", "int64"):
        raise fail("cross_entropy", f"expected logits (..., classes) and integer labels (...) of the leading "
                   f"shape, or class probabilities of the logits' shape, got {logits.shape} {logits.dtype} and "
                   f"{labels.shape} {labels.dtype}")
    if ignore_index is not None or label_smoothing or reduction != "mean":
        return _cross_entropy_options(logits, labels, ignore_index, float(label_smoothing), reduction)
    logp = log_softmax(logits, -1)
    classes = const(np.arange(static_size(logits, logits.ndim - 1, "cross_entropy"), dtype=labels.dtype))
    picked = make_map(sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), scalar_symbol(2), 0),
                      [make_reshape(labels, labels.shape + (1,)), classes, logp], logp.dtype, "pick")
    require_labels(picked, labels, classes.shape[0], "cross_entropy")
    loss = -mean(sum(picked, axis=-1))
    if not _in_memory(logits):
        return loss
    # logits already stored: the forward reads each label's logit (a gather) instead of comparing every
    # class; the gradient stays the one-hot selection's (a fused map, no scatter), the same numbers
    column = make_reshape(labels, labels.shape + (1,))
    gathered = make_gather(logits, column, logits.ndim - 1, "cross_entropy", ids_name="labels")
    return make_surrogate(-mean(make_reshape(gathered - logsumexp(logits, -1, keepdims=True), labels.shape)), loss)


def _cross_entropy_soft(logits, probabilities, smoothing: float, reduction: str):
    """cross_entropy against class probabilities (torch's soft targets, as in distillation or mixup):
    -sum(p log softmax(logits)) over the classes; label_smoothing mixes p with the uniform distribution."""
    logp = log_softmax(logits, -1)
    if smoothing:
        probabilities = (1 - smoothing) * probabilities + smoothing / logits.shape[-1]
    losses = -sum(probabilities * logp, axis=-1)
    return {"mean": mean, "sum": sum, "none": lambda x: x}[reduction](losses)


def _cross_entropy_options(logits, labels, ignore_index, smoothing: float, reduction: str):
    """cross_entropy with torch's options, on the one-hot selection (an ignored label selects no class)."""
    logp = log_softmax(logits, -1)
    classes = const(np.arange(static_size(logits, logits.ndim - 1, "cross_entropy"), dtype=labels.dtype))
    picked = make_map(sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), scalar_symbol(2), 0),
                      [make_reshape(labels, labels.shape + (1,)), classes, logp], logp.dtype, "pick")
    require_labels(picked, labels, classes.shape[0], "cross_entropy",
                   ignored=None if ignore_index is None else int(ignore_index))
    losses = -sum(picked, axis=-1)
    if smoothing:
        losses = (1 - smoothing) * losses - smoothing * mean(logp, axis=-1)
    if ignore_index is None:
        return {"mean": mean, "sum": sum, "none": lambda x: x}[reduction](losses)
    kept = astype(not_equal(labels, int(ignore_index)), losses.dtype)
    losses = losses * kept
    return {"mean": lambda x: sum(x) / sum(kept), "sum": sum, "none": lambda x: x}[reduction](losses)


def _in_memory(x) -> bool:
    """Whether x is a value a program stores anyway (a leaf, a product, a reduction, through layout ops)."""
    while x.op in ("reshape", "transpose", "broadcast", "slice", "stop_gradient"):
        x = x.args[0]
    return x.is_leaf or x.op in ("einsum", "bmm", "sum", "max")


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of softplus(x) - x*y: stable for any logit magnitude."""
    logits, targets = as_node(logits), as_node(targets, logits)
    return mean(Elementwise(lambda x, y: sf.Softplus(x) - x * y, "bce_with_logits", float_only=True)(logits, targets))
