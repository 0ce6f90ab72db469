"""Losses, with torch.nn.functional's names, arguments and gradients: mse; softmax cross-entropy (class
labels or class probabilities, with ignore_index, label_smoothing, per-class weight and reduction) and
nll_loss, class axis last; binary cross-entropy on probabilities and on logits; kl_div; l1, smooth l1 and
huber. Served as ``compiler.ops`` names; written on the ops, so their gradients are derived like any other."""
from __future__ import annotations

import numpy as np
import sympy
from sympy.codegen.cfunctions import log1p as _log1p

from . import scalar_functions as sf
from .dtypes import is_float
from .errors import GraphError, fail
from .graph import Node, as_node, const, scalar_symbol
from .label_ranges import require as require_labels
from .layout import static_size
from .shapes import broadcast_shapes
from .ops import (Elementwise, _is_number, _sympy_number, astype, equal, log_softmax, logsumexp, mean, not_equal, sum,
                  where)
from .primitives import make_map, make_reshape, make_stop_gradient, size_of
from .primitives.gathers import make_gather
from .primitives.layouts import make_surrogate


def mse(prediction, target):
    """Mean over every element of (prediction - target)**2."""
    prediction, target = as_node(prediction), as_node(target, prediction)
    return mean((prediction - target) ** 2)


def cross_entropy(logits, labels, weight=None, ignore_index=None, label_smoothing=0.0, reduction="mean"):
    """Softmax cross-entropy of logits (..., classes) with integer labels (...), mean over every label.

    labels may also be class probabilities of the logits' shape (torch's soft targets).
    ``weight``, ``ignore_index``, ``label_smoothing`` and ``reduction`` ("mean", "sum", "none") are torch's: a
    label equal to ignore_index adds nothing and is not counted by the mean (which is nan if every label is
    ignored, as torch's); label_smoothing = e mixes the one-hot target with the uniform one, (1 - e)
    of the label's loss plus e of the mean over classes of -log p. weight (classes,) scales each class's
    terms, and the mean over labels divides by the sum of the labels' weights (over the labels' count for
    class probabilities), as torch's does. One difference on purpose: torch's default ignore_index is -100,
    symprop's None, so a -100 label raises unless asked for.

    The class axis is last (the transformer convention; a sequence model's (batch, time, classes) logits
    go in as they are). torch puts it at dim 1 for N-d input: this is
    ``torch.nn.functional.cross_entropy(logits.movedim(-1, 1), labels)``, the same thing for (batch,
    classes) and for unbatched (classes,) logits with a 0-d label. A label outside [0, classes) raises
    IndexError: labels given as an Input are checked before the program runs, labels computed in the
    graph after it (``label_ranges``). When the logits are stored anyway (a product, a leaf), each
    label's logit is read by a gather; the gradient is the one-hot selection's either way.
    """
    logits, labels = as_node(logits), as_node(labels)
    _check_ignore_index("cross_entropy", ignore_index)
    if isinstance(label_smoothing, bool) or not _is_number(label_smoothing) or not 0 <= label_smoothing <= 1:
        raise fail("cross_entropy", f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    _check_reduction("cross_entropy", reduction)
    if is_float(labels.dtype) and labels.shape == logits.shape and logits.ndim >= 1:
        if ignore_index is not None:
            raise fail("cross_entropy", "ignore_index applies to class labels, not to class probabilities")
        weight = None if weight is None else _class_weight("cross_entropy", weight, logits)
        return _cross_entropy_soft(logits, labels, weight, float(label_smoothing), reduction)
    _check_labels("cross_entropy", logits, labels, "logits", ", or class probabilities of the logits' shape")
    if weight is not None or ignore_index is not None or label_smoothing or reduction != "mean":
        weight = None if weight is None else _class_weight("cross_entropy", weight, logits)
        return _label_losses("cross_entropy", log_softmax(logits, -1), labels, weight, ignore_index,
                             float(label_smoothing), reduction)
    loss = -mean(sum(_pick("cross_entropy", log_softmax(logits, -1), labels), axis=-1))
    if not _in_memory(logits):
        return loss
    # logits already stored: the forward reads each label's logit (a gather) instead of comparing every
    # class; the gradient stays the one-hot selection's (a fused map, no scatter), the same numbers
    gathered = _gathered(logits, labels, "cross_entropy")
    return make_surrogate(-mean(make_reshape(gathered - logsumexp(logits, -1, keepdims=True), labels.shape)), loss)


def nll_loss(log_probs, labels, weight=None, ignore_index=None, reduction="mean"):
    """Negative log-likelihood of log-probabilities (..., classes) at integer labels (...): torch's nll_loss,
    class axis last as in ``cross_entropy`` (which is nll_loss of log_softmax), with its weight, ignore_index
    (None by default, not torch's -100) and reduction; the weighted mean is sum(w_y * loss) / sum(w_y)."""
    log_probs, labels = as_node(log_probs), as_node(labels)
    _check_ignore_index("nll_loss", ignore_index)
    _check_reduction("nll_loss", reduction)
    if not is_float(log_probs.dtype):
        raise fail("nll_loss", f"log_probs must be a float tensor, got {log_probs.dtype}")
    _check_labels("nll_loss", log_probs, labels, "log_probs")
    if weight is not None or ignore_index is not None or reduction != "mean":
        weight = None if weight is None else _class_weight("nll_loss", weight, log_probs)
        return _label_losses("nll_loss", log_probs, labels, weight, ignore_index, 0.0, reduction)
    loss = -mean(sum(_pick("nll_loss", log_probs, labels), axis=-1))
    if not _in_memory(log_probs):
        return loss
    return make_surrogate(-mean(make_reshape(_gathered(log_probs, labels, "nll_loss"), labels.shape)), loss)


def _check_ignore_index(op: str, ignore_index) -> None:
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer))):
        raise fail(op, f"ignore_index must be an int or None, got {ignore_index!r}")


def _check_reduction(op: str, reduction, allowed=("mean", "sum", "none")) -> None:
    if not isinstance(reduction, str) or reduction not in allowed:
        names = ", ".join(repr(r) for r in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise fail(op, f"reduction must be {names}, got {reduction!r}")


def _reduce(losses, reduction: str):
    return {"mean": mean, "sum": sum, "none": lambda x: x}[reduction](losses)


def _check_labels(op: str, values, labels, name: str, alternative: str = "") -> None:
    if values.ndim < 1 or labels.shape != values.shape[:-1] or labels.dtype not in ("int32", "int64"):
        raise fail(op, f"expected {name} (..., classes) and integer labels (...) of the leading shape{alternative}, "
                   f"got {values.shape} {values.dtype} and {labels.shape} {labels.dtype}")


def _class_weight(op: str, weight, values):
    """A per-class weight (classes,) of the values' dtype (an array or number is cast to it; a node must
    have it, as torch requires)."""
    weight = weight if isinstance(weight, Node) else const(np.asarray(weight), values.dtype)
    if weight.shape != values.shape[-1:] or weight.dtype != values.dtype:
        raise fail(op, f"weight must be a {values.dtype} vector of the {values.shape[-1]} classes "
                   f"{values.shape[-1:]}, got {weight.shape} {weight.dtype}")
    return weight


def _pick(op: str, values, labels, ignored: int | None = None):
    """values (..., classes) where the class is the label, else 0: a one-hot selection that fuses into the
    loop computing the values, and records the labels' range (an ignored label selects no class)."""
    classes = const(np.arange(static_size(values, values.ndim - 1, op), dtype=labels.dtype))
    picked = make_map(sf.Where(sf.Equal(scalar_symbol(0), scalar_symbol(1)), scalar_symbol(2), 0),
                      [make_reshape(labels, labels.shape + (1,)), classes, values],
                      values.dtype, "pick")
    return require_labels(picked, labels, classes.shape[0], op, ignored=ignored)


def _gathered(values, labels, op: str):
    """values[..., label] (..., 1) read by a gather: one read per label, where a selection compares every class."""
    column = make_reshape(labels, labels.shape + (1,))
    return make_gather(values, column, values.ndim - 1, op, ids_name="labels")


def _cross_entropy_soft(logits, probabilities, weight, smoothing: float, reduction: str):
    """cross_entropy against class probabilities (torch's soft targets, as in distillation or mixup):
    -sum(w p log softmax(logits)) over the classes; label_smoothing mixes p with the uniform distribution."""
    logp = log_softmax(logits, -1)
    if smoothing:
        probabilities = (1 - smoothing) * probabilities + smoothing / logits.shape[-1]
    terms = probabilities * logp if weight is None else probabilities * logp * weight
    return _reduce(-sum(terms, axis=-1), reduction)


def _label_losses(op: str, logp, labels, weight, ignore_index, smoothing: float, reduction: str):
    """-w_y log p_y per label (mixed with label smoothing as torch mixes it), on the one-hot selection;
    an ignored label adds 0 and counts 0, the weighted mean divides by the labels' weights."""
    ignored = None if ignore_index is None else int(ignore_index)
    weighted = logp if weight is None else logp * weight
    losses = -sum(_pick(op, weighted, labels, ignored), axis=-1)
    if smoothing:
        losses = (1 - smoothing) * losses - smoothing * mean(weighted, axis=-1)
    counts = None if weight is None else sum(_pick(op, weight, labels, ignored), axis=-1)
    if ignored is not None:
        kept = astype(not_equal(labels, ignored), losses.dtype)
        losses = losses * kept
        counts = kept if counts is None else counts * kept
    if reduction == "mean" and counts is not None:
        total, count = sum(losses), sum(counts)
        if ignored is None:
            return total / count
        # every label ignored: the mean is 0 / 0 = nan, as torch's, but torch's gradient is 0 (no label passes
        # one), where the quotient's would be nan; it is read from total / 1 there
        divisor = where(equal(sum(kept), 0), const(np.asarray(1, dtype=count.dtype)), count)
        return make_surrogate(total / count, total / divisor)
    return _reduce(losses, reduction)


def _in_memory(x) -> bool:
    """Whether x is a value a program stores anyway (a leaf, a product, a reduction, through layout ops)."""
    while x.op in ("reshape", "transpose", "broadcast", "slice", "stop_gradient"):
        x = x.args[0]
    return x.is_leaf or x.op in ("einsum", "bmm", "sum", "max")


def binary_cross_entropy_with_logits(logits, targets):
    """Mean of softplus(x) - x*y: stable for any logit magnitude."""
    logits, targets = as_node(logits), as_node(targets, logits)
    return mean(Elementwise(lambda x, y: sf.Softplus(x) - x * y, "bce_with_logits", float_only=True)(logits, targets))


# ---- elementwise losses: input against a target of a broadcasting shape ----------------------------

def _input_and_target(op: str, input, target):
    """input and target as float nodes of shapes that broadcast (torch broadcasts them, with a warning)."""
    input = as_node(input)
    target = as_node(target, input)
    for name, x in (("input", input), ("target", target)):
        if not is_float(x.dtype):
            raise fail(op, f"{name} must be a float tensor, got {x.dtype}")
    try:
        broadcast_shapes(op, input.shape, target.shape)
    except GraphError:
        raise fail(op, f"input {input.shape} and target {target.shape} do not broadcast") from None
    return input, target


def _broadcasts_to(shape, target) -> bool:
    try:
        return broadcast_shapes("", shape, target) == tuple(target)
    except GraphError:
        return False


def _elementwise_weight(op: str, weight, input):
    """A weight of the input's shape and dtype (torch: "Weights and input must have the same size")."""
    weight = weight if isinstance(weight, Node) else const(np.asarray(weight), input.dtype)
    if weight.shape != input.shape or not is_float(weight.dtype):
        raise fail(op, f"weight must be a float tensor of the input's shape {input.shape}, "
                   f"got {weight.shape} {weight.dtype}")
    return weight


def _positive_number(op: str, name: str, value, allow_zero: bool) -> float:
    if isinstance(value, bool) or not _is_number(value) or not (value >= 0 if allow_zero else value > 0) \
            or not np.isfinite(value):
        raise fail(op, f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


_absolute_error = Elementwise(lambda x, y: sympy.Abs(x - y), "l1_loss", float_only=True)


def l1_loss(input, target, reduction="mean", weight=None):
    """Mean absolute error |input - target| (torch's l1_loss; the two broadcast). The gradient at input ==
    target is 0, torch's sign(0). With weight (the input's shape) the mean is sum(w * loss) / sum(w), as torch's."""
    input, target = _input_and_target("l1_loss", input, target)
    _check_reduction("l1_loss", reduction)
    losses = _absolute_error(input, target)
    if weight is None:
        return _reduce(losses, reduction)
    weight = _elementwise_weight("l1_loss", weight, input)
    losses = losses * weight
    return sum(losses) / sum(weight) if reduction == "mean" else _reduce(losses, reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """torch's smooth_l1_loss: (x - y)**2 / (2 beta) where |x - y| < beta, else |x - y| - beta / 2; beta = 0 is
    l1_loss. Value and gradient are continuous at |x - y| = beta (gradient +-1), the gradient is 0 at x = y and
    +-1 at an infinite x - y (a Where's derivative selects its branches' derivatives)."""
    beta = _positive_number("smooth_l1_loss", "beta", beta, allow_zero=True)
    if beta == 0:
        return l1_loss(input, target, reduction)
    input, target = _input_and_target("smooth_l1_loss", input, target)
    _check_reduction("smooth_l1_loss", reduction)
    b = _sympy_number(beta)
    body = lambda x, y: sf.Where(sf.Less(sympy.Abs(x - y), b), (x - y) ** 2 / (2 * b), sympy.Abs(x - y) - b / 2)
    return _reduce(Elementwise(body, "smooth_l1_loss", float_only=True)(input, target), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """torch's huber_loss (DQN's loss): (x - y)**2 / 2 where |x - y| < delta, else delta (|x - y| - delta / 2),
    i.e. delta * smooth_l1_loss with beta = delta. With weight (the input's shape) the mean is mean(w * loss),
    as torch's (not l1_loss's normalised one)."""
    delta = _positive_number("huber_loss", "delta", delta, allow_zero=False)
    input, target = _input_and_target("huber_loss", input, target)
    _check_reduction("huber_loss", reduction)
    d = _sympy_number(delta)
    body = lambda x, y: sf.Where(sf.Less(sympy.Abs(x - y), d), (x - y) ** 2 / 2, d * (sympy.Abs(x - y) - d / 2))
    losses = Elementwise(body, "huber_loss", float_only=True)(input, target)
    if weight is not None:
        losses = losses * _elementwise_weight("huber_loss", weight, input)
    return _reduce(losses, reduction)


# xlogy(t, t) - t x: a zero target adds 0 whatever the input (torch's xlogy), its own gradient there is nan
# as torch's (the derivative of t log t has no finite limit at 0): a Where's derivative selects its branches'
# (0 there), so the gradient is carried by a surrogate whose zero-target branch is (t - t_) nan, t_ = t held
_kl_terms = Elementwise(lambda x, t: sf.Where(sf.Equal(t, 0), 0, t * sympy.log(t)) - t * x, "kl_div", float_only=True)
_kl_gradient = Elementwise(lambda x, t, t_, nan: sf.Where(sf.Equal(t_, 0), (t - t_) * nan, t * sympy.log(t)) - t * x,
                          "kl_div_gradient", float_only=True)
_kl_log_terms = Elementwise(lambda x, t: sympy.exp(t) * (t - x), "kl_div", float_only=True)


def kl_div(input, target, reduction="mean", log_target=False):
    """torch's kl_div: KL(target || p) for log-probabilities input, pointwise target (log target - input).
    reduction "batchmean" (the KL divergence proper) divides the sum by the input's first dimension; "mean",
    torch's default, by the number of elements."""
    input, target = _input_and_target("kl_div", input, target)
    _check_reduction("kl_div", reduction, ("mean", "batchmean", "sum", "none"))
    if not isinstance(log_target, (bool, np.bool_)):
        raise fail("kl_div", f"log_target must be a bool, got {log_target!r}")
    if log_target:
        losses = _kl_log_terms(input, target)
    else:
        nan = const(np.asarray(np.nan, dtype=input.dtype))
        losses = make_surrogate(_kl_terms(input, target),
                                _kl_gradient(input, target, make_stop_gradient(target), nan))
    if reduction != "batchmean":
        return _reduce(losses, reduction)
    total = sum(losses)
    if input.ndim == 0:
        return total
    count = size_of(input.shape, (0,), total.dtype)
    return total / count


# ---- binary cross-entropy on probabilities --------------------------------------------------------

_EPSILON = float(np.float32(1e-12))  # torch's floor on x (1 - x) in the gradient, a float even for double


def _bce_body(x, t):
    """torch's forward: each log clamped at -100, so a probability of exactly 0 or 1 gives a finite loss."""
    return (t - 1) * sf.Maximum(_log1p(-x), -100) - t * sf.Maximum(sympy.log(x), -100)


def _bce_gradient_body(x, t, x_, t_):
    """An expression whose derivatives are torch's binary_cross_entropy_backward: (x - t) / max(x (1 - x), 1e-12)
    for x and -logit(x) for t. Where x (1 - x) > 1e-12 it is the loss itself (read at a safe x elsewhere, so no
    inf leaks into the selection's derivative); at the edges the loss at x_, t_ (x and t without gradient) plus
    terms of value 0 carrying torch's derivatives (0 * inf where x is exactly 0 or 1: a surrogate's value is
    never computed, only its derivatives)."""
    epsilon = _sympy_number(_EPSILON)
    interior = sf.Greater(x * (1 - x), epsilon)
    safe = sf.Where(interior, x, sympy.S.Half)
    edge = (_bce_body(x_, t_) + (x - x_) * (x_ - t_) / sf.Maximum(x_ * (1 - x_), epsilon)
            + (t - t_) * (_log1p(-x_) - sympy.log(x_)))
    return sf.Where(interior, (t - 1) * _log1p(-safe) - t * sympy.log(safe), edge)


_bce = Elementwise(_bce_body, "binary_cross_entropy", float_only=True)
_bce_gradient = Elementwise(_bce_gradient_body, "binary_cross_entropy_gradient", float_only=True)


def binary_cross_entropy(probs, target, weight=None, reduction="mean"):
    """torch's binary_cross_entropy: -w (t log p + (1 - t) log(1 - p)) with each log clamped at -100, target of
    the probabilities' shape and dtype, weight broadcasting to it; the mean is over elements, not weights.
    Gradients are torch's, also where p is 0 or 1 (``_bce_gradient_body``). Prefer
    binary_cross_entropy_with_logits on logits: it never saturates."""
    probs = as_node(probs)
    target = as_node(target, probs)
    if not is_float(probs.dtype) or target.dtype != probs.dtype or target.shape != probs.shape:
        raise fail("binary_cross_entropy", f"expected float probs and a target of their shape and dtype, got "
                   f"probs {probs.shape} {probs.dtype} and target {target.shape} {target.dtype}")
    _check_reduction("binary_cross_entropy", reduction)
    losses = make_surrogate(_bce(probs, target),
                            _bce_gradient(probs, target, make_stop_gradient(probs), make_stop_gradient(target)))
    if weight is not None:
        weight = weight if isinstance(weight, Node) else const(np.asarray(weight), probs.dtype)
        if weight.dtype != probs.dtype or not _broadcasts_to(weight.shape, probs.shape):
            raise fail("binary_cross_entropy", f"weight must be a {probs.dtype} tensor broadcasting to the probs' "
                       f"shape {probs.shape}, got {weight.shape} {weight.dtype}")
        losses = losses * weight
    return _reduce(losses, reduction)
