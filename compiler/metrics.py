"""Classification metrics as graph nodes: accuracy, top-k accuracy and the confusion matrix.

Each is a composite of existing ops (argmax, comparisons, sums, a product of one-hot matrices), so it
evaluates with ``evaluate`` and compiles with the rest of a program into one native call: a validation
accuracy is one call of ``step.function(accuracy(logits, labels))`` over the whole validation set. None
has a gradient worth taking (they are counts); they read the logits through ``stop_gradient``.

Logits are ``(..., classes)`` with the class axis last, as ``cross_entropy`` takes them, and labels
integers of the leading shape. In a compiled program a label outside [0, classes) raises IndexError as
cross_entropy's does (``label_ranges``): labels given as an Input before the program runs, labels
computed in the graph after it (``evaluate``, the reference, counts such a row as wrong). Ties go to
the lower class index, as NumPy's argmax and symprop's ``topk``; a NaN logit is the largest, as there.
"""
from __future__ import annotations

import numpy as np

from .derived_reductions import _BEFORE_DESCENDING, argmax
from .errors import fail
from .graph import Node, as_node, const, scalar_symbol
from .label_ranges import require
from .layout import static_size
from .ops import astype, einsum, equal, mean, reshape, stop_gradient, sum, where
from .primitives import make_map, make_reshape
from . import scalar_functions as sf

__all__ = ["accuracy", "top_k_accuracy", "confusion_matrix"]


def accuracy(logits, labels) -> Node:
    """The fraction of rows whose argmax equals the label: a scalar of the logits' dtype.

    ``mean(argmax(logits, -1) == labels)``; a tie goes to the lower class index (NumPy's argmax), so
    this is ``top_k_accuracy(logits, labels, k=1)``."""
    logits, labels, classes = _classification(logits, labels, "accuracy")
    correct = require(equal(argmax(logits, -1), labels), labels, classes, "accuracy")
    return mean(astype(correct, logits.dtype))


def top_k_accuracy(logits, labels, k: int = 5) -> Node:
    """The fraction of rows whose label is among the k largest logits: a scalar of the logits' dtype.

    A label counts when fewer than k classes come before it in ``topk``'s order: a larger logit, or an
    equal one at a lower index (a NaN first). So ties go to the lower index, as in symprop's topk and
    the argmax of ``accuracy`` (k=1 is accuracy); sklearn's ``top_k_accuracy_score`` gives them to the
    higher index, and ``torch.topk`` leaves their order unspecified; without ties all agree. k >= classes
    counts every row (sklearn warns)."""
    logits, labels, classes = _classification(logits, labels, "top_k_accuracy")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise fail("top_k_accuracy", f"k must be an int >= 1, got {k!r}")
    key = stop_gradient(logits)
    column = make_reshape(labels, labels.shape + (1,))
    chosen = require(equal(column, _class_indices(classes, labels.dtype)), labels, classes, "top_k_accuracy")
    label_logit = sum(where(chosen, key, 0.0), -1, keepdims=True)
    ahead = make_map(_BEFORE_DESCENDING, [key, label_logit, _class_indices(classes, labels.dtype), column],
                     "bool", "top_k_accuracy")
    return mean(astype(sum(ahead, -1) < int(k), logits.dtype))


def confusion_matrix(logits_or_predictions, labels, num_classes: int) -> Node:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class (sklearn's).

    The first argument is either logits ``(..., num_classes)`` (a float tensor; the prediction is the
    argmax, ties to the lower index) or integer predictions of the labels' shape. Predictions given
    as integers are range-checked like the labels. The counts are a product of one-hot matrices
    (float64: exact to 2**53 rows)."""
    op = "confusion_matrix"
    scores, labels = as_node(logits_or_predictions), _labels(labels, op)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise fail(op, f"num_classes must be an int >= 1, got {num_classes!r}")
    if scores.dtype in ("int32", "int64") and scores.shape == labels.shape:
        predictions = require(_one_hot(scores, num_classes), scores, num_classes, op, "predictions")
    elif scores.dtype in ("float32", "float64") and scores.shape == labels.shape + (num_classes,):
        predictions = _one_hot(argmax(scores, -1), num_classes)
    else:
        raise fail(op, f"expected logits {labels.shape + (num_classes,)} (float) or integer predictions "
                       f"{labels.shape} for labels {labels.shape}, got {scores.dtype} {scores.shape}")
    truth = require(_one_hot(labels, num_classes), labels, num_classes, op)
    rows = (-1, num_classes)
    return astype(einsum("ni,nj->ij", reshape(truth, rows), reshape(predictions, rows)), "int64")


def _classification(logits, labels, op: str) -> tuple[Node, Node, int]:
    """(logits, labels, classes), checked: float logits (..., classes), integer labels (...)."""
    logits, labels = as_node(logits), _labels(labels, op)
    if logits.ndim < 1 or logits.dtype not in ("float32", "float64") or labels.shape != logits.shape[:-1]:
        raise fail(op, f"expected float logits (..., classes) and integer labels (...) of the leading shape, "
                       f"got {logits.dtype} {logits.shape} and {labels.dtype} {labels.shape}")
    return logits, labels, static_size(logits, logits.ndim - 1, op)


def _labels(labels, op: str) -> Node:
    labels = as_node(labels)
    if labels.dtype not in ("int32", "int64"):
        raise fail(op, f"labels must be int32 or int64, got {labels.dtype} {labels.shape} "
                       f"(convert with .astype('int64'))")
    return labels


def _class_indices(classes: int, dtype: str) -> Node:
    return const(np.arange(classes, dtype=dtype))


def _one_hot(values: Node, classes: int) -> Node:
    """float64 (..., classes): 1 where the class index equals the value (a count's operand)."""
    hit = sf.Equal(scalar_symbol(0), scalar_symbol(1))
    return make_map(hit, [make_reshape(values, values.shape + (1,)), _class_indices(classes, values.dtype)],
                    "float64", "one_hot")
