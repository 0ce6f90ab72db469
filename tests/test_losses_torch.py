"""torch.nn.functional's losses (l1, smooth l1, huber, nll, weighted cross-entropy, kl_div, binary
cross-entropy): values and gradients against torch, evaluated and compiled, in float64 and float32, on
shapes that broadcast and at the kinks (x - y = 0, |x - y| = beta or delta, probabilities of exactly 0 and
1, zero targets, ignored labels). Bad arguments are GraphErrors naming the argument (these checks and the
ones without torch run where torch is not installed)."""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
from compiler.errors import GraphError

from optional_torch import F, needs_torch, torch

TOLERANCE = {"float64": 1e-12, "float32": 2e-5}
REDUCTIONS = ["mean", "sum", "none"]


def check(build, theirs, arrays: dict, dtype: str, wrt, seed=0):
    """build(**nodes) and theirs(**tensors) (a loss or a list of them: one program for all) agree in value and
    in the gradient of a random-weighted sum with respect to each operand named in `wrt`, evaluated and
    compiled; nan where torch's is nan."""
    nodes = {name: C.Input(name, a.shape, str(a.dtype)) for name, a in arrays.items()}
    outs, rng = build(**nodes), np.random.default_rng(seed)
    outs = outs if isinstance(outs, list) else [outs]
    weights = [rng.normal(size=out.shape).astype(dtype) for out in outs]
    outputs, names = [], []
    for k, (out, w) in enumerate(zip(outs, weights)):
        outputs += [out] + C.grad((out * C.const(w)).sum(), [nodes[n] for n in wrt])
        names += [f"loss {k} value"] + [f"loss {k} d/d{n}" for n in wrt]
    tensors = {name: torch.tensor(a, requires_grad=name in wrt) for name, a in arrays.items()}
    theirs_outs = theirs(**tensors)
    expected = []
    for out, w in zip(theirs_outs if isinstance(theirs_outs, list) else [theirs_outs], weights):
        grads = torch.autograd.grad((out * torch.tensor(w)).sum(), [tensors[n] for n in wrt], retain_graph=True)
        expected += [out.detach().numpy()] + [g.numpy() for g in grads]
    assert len(expected) == len(outputs)
    tolerance = TOLERANCE[dtype]
    for how, got in (("evaluate", C.evaluate(outputs, arrays)), ("compile", C.compile(outputs)(**arrays))):
        for what, a, e in zip(names, got, expected):
            a = np.asarray(a)
            assert a.shape == e.shape and a.dtype == e.dtype, (how, what, a.shape, e.shape, a.dtype, e.dtype)
            finite = np.abs(e[np.isfinite(e)])
            scale = float(finite.max()) if finite.size else 0.0
            np.testing.assert_allclose(a, e, rtol=tolerance, atol=tolerance * max(scale, 1.0),
                                       err_msg=f"{how} {what}")


# ---- l1, smooth l1, huber: targets at the kinks --------------------------------------------------

SHAPES = [((3, 4), (3, 4)), ((), ()), ((2, 3, 4), (3, 1)), ((3, 1), (1, 4))]


def pair(shapes, dtype, kinks, seed=0):
    """input and target where target - input is 0, +-each kink, or random (broadcast targets get random
    values; same-shape ones hit the kinks exactly: the offsets are exact binary fractions)."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(-16, 16, shapes[0]) / 8).astype(dtype)
    if shapes[0] == shapes[1]:
        offsets = np.array([0.0] + [s * k for k in kinks for s in (1, -1)] + list(rng.uniform(-3, 3, 4)))
        y = (x + rng.choice(offsets, shapes[0])).astype(dtype)
    else:
        y = (rng.integers(-16, 16, shapes[1]) / 8).astype(dtype)
    return np.asarray(x), np.asarray(y)


REGRESSION = {  # name: (ours(x, y, reduction, kink), theirs(x, y, reduction, kink))
    "l1_loss": (lambda x, y, r, k: C.l1_loss(x, y, r), lambda x, y, r, k: F.l1_loss(x, y, reduction=r)),
    "smooth_l1_loss": (lambda x, y, r, k: C.smooth_l1_loss(x, y, r, beta=k),
                       lambda x, y, r, k: F.smooth_l1_loss(x, y, reduction=r, beta=k)),
    "huber_loss": (lambda x, y, r, k: C.huber_loss(x, y, r, delta=k),
                   lambda x, y, r, k: F.huber_loss(x, y, reduction=r, delta=k)),
}
KINKS = {"l1_loss": [1.0], "smooth_l1_loss": [1.0, 0.5, 0.0], "huber_loss": [1.0, 2.0]}  # the first is the default


@needs_torch
@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_losses_equal_torch(name, dtype):
    """Every reduction; the first shape pair holds every kink, the others broadcast."""
    ours, theirs = REGRESSION[name]
    for k in KINKS[name]:
        for i, shapes in enumerate(SHAPES if k == KINKS[name][0] else SHAPES[:1]):
            x, y = pair(shapes, dtype, [k, 0.25], seed=i)
            check(lambda x, y: [ours(x, y, r, k) for r in REDUCTIONS],
                  lambda x, y: [theirs(x, y, r, k) for r in REDUCTIONS], {"x": x, "y": y}, dtype, ["x", "y"], seed=i)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_weighted_l1_and_huber_equal_torch(dtype):
    """torch's two weighted means: sum(w l) / sum(w) for l1_loss, mean(w l) for huber_loss."""
    x, y = pair(((3, 4), (3, 4)), dtype, [1.0, 0.5])
    w = np.random.default_rng(1).uniform(0.1, 2, (3, 4)).astype(dtype)
    check(lambda x, y, w: [C.l1_loss(x, y, r, weight=w) for r in REDUCTIONS]
          + [C.huber_loss(x, y, r, 0.5, weight=w) for r in REDUCTIONS],
          lambda x, y, w: [F.l1_loss(x, y, reduction=r, weight=w) for r in REDUCTIONS]
          + [F.huber_loss(x, y, reduction=r, delta=0.5, weight=w) for r in REDUCTIONS],
          {"x": x, "y": y, "w": w}, dtype, ["x", "y"])


def test_smooth_l1_gradient_at_the_kinks_is_torchs():
    """At x - y = 0 the gradient is 0; at |x - y| = beta it is +-1 from either side."""
    x = np.array([0.0, 0.5, -0.5, 0.25, 2.0])
    y = np.zeros(5)
    node = C.Input("x", (5,), "float64")
    gradient = C.grad(C.smooth_l1_loss(node, C.const(y), "sum", beta=0.5), node)
    for got in (C.evaluate(gradient, {"x": x}), C.compile(gradient)(x=x)):
        np.testing.assert_array_equal(got, [0.0, 1.0, -1.0, 0.5, 1.0])


# ---- nll_loss and cross_entropy's weight ---------------------------------------------------------

def torch_classes_at_1(f):
    """torch puts the class axis at dim 1; symprop's is last."""
    return lambda v, labels, **kw: f(v.movedim(-1, 1) if v.dim() > 2 else v, labels, **kw)


LABEL_SHAPES = [(6,), (2, 3)]


def labelled(shape, classes, dtype, ignore_index, seed):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape + (classes,)).astype(dtype)
    labels = rng.integers(0, classes, shape)
    if ignore_index is not None and shape:
        labels = np.where(rng.uniform(size=shape) < 0.3, ignore_index, labels)
    return values, np.asarray(labels, dtype=np.int64)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ignore_index", [None, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_equals_torch(weighted, ignore_index, dtype):
    """Every reduction; with weight, cross_entropy's weight on the same values as logits too."""
    torch_ignore = -100 if ignore_index is None else ignore_index
    for i, shape in enumerate(LABEL_SHAPES):
        values, labels = labelled(shape, 4, dtype, ignore_index, seed=i)
        arrays = {"v": values, "labels": labels}
        if weighted:
            arrays["w"] = np.random.default_rng(i).uniform(0.2, 3, 4).astype(dtype)

        def ours(v, labels, w=None):
            return [C.nll_loss(v, labels, weight=w, ignore_index=ignore_index, reduction=r) for r in REDUCTIONS] + (
                [C.cross_entropy(v, labels, weight=w, ignore_index=ignore_index, reduction=r) for r in REDUCTIONS]
                if weighted else [])

        def theirs(v, labels, w=None):
            return [torch_classes_at_1(F.nll_loss)(v, labels, weight=w, ignore_index=torch_ignore, reduction=r)
                    for r in REDUCTIONS] + (
                [torch_classes_at_1(F.cross_entropy)(v, labels, weight=w, ignore_index=torch_ignore, reduction=r)
                 for r in REDUCTIONS] if weighted else [])
        check(ours, theirs, arrays, dtype, ["v"], seed=i)


@needs_torch
@pytest.mark.parametrize("options", [{}, {"reduction": "none"}, {"ignore_index": -100, "reduction": "sum"},
                                     {"weight": np.array([0.5, 2.0, 1.0])}])
def test_unbatched_nll_loss_equals_torch(options):
    """log_probs (classes,) with a 0-d label, as torch's unbatched input; {} reads the label by a gather."""
    values, labels = labelled((), 3, "float64", None, seed=7)
    check(lambda v, labels: C.nll_loss(v, labels, **options),
          lambda v, labels: F.nll_loss(v, labels, **{k: torch.tensor(o) if k == "weight" else o
                                                      for k, o in options.items()}),
          {"v": values, "labels": labels}, "float64", ["v"])


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ignore_index", [None, 0])
def test_weighted_cross_entropy_with_label_smoothing_equals_torch(ignore_index, dtype):
    values, labels = labelled((5, 3), 4, dtype, ignore_index, seed=3)
    w = np.array([0.5, 2.0, 1.0, 0.25], dtype=dtype)
    check(lambda v, labels, w: [C.cross_entropy(v, labels, weight=w, ignore_index=ignore_index, label_smoothing=0.2,
                                                reduction=r) for r in REDUCTIONS],
          lambda v, labels, w: [torch_classes_at_1(F.cross_entropy)(v, labels, weight=w, label_smoothing=0.2,
                                                                    ignore_index=-100 if ignore_index is None else 0,
                                                                    reduction=r) for r in REDUCTIONS],
          {"v": values, "labels": labels, "w": w}, dtype, ["v"])


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_weighted_cross_entropy_on_class_probabilities_equals_torch(smoothing, dtype):
    """The mean divides by the number of labels, not by weights (torch's soft targets)."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 3, 4)).astype(dtype)
    probabilities = rng.dirichlet(np.ones(4), (2, 3)).astype(dtype)
    w = np.array([0.5, 2.0, 1.0, 0.25], dtype=dtype)
    check(lambda v, p, w: [C.cross_entropy(v, p, weight=w, label_smoothing=smoothing, reduction=r) for r in REDUCTIONS],
          lambda v, p, w: [F.cross_entropy(v.movedim(-1, 1), p.movedim(-1, 1), weight=w, label_smoothing=smoothing,
                                           reduction=r) for r in REDUCTIONS],
          {"v": logits, "p": probabilities, "w": w}, dtype, ["v", "p"])


@needs_torch
def test_nll_loss_mean_of_no_counted_label_is_nan():
    values, _ = labelled((4,), 3, "float64", None, seed=0)
    arrays = {"v": values, "labels": np.ones(4, dtype=np.int64)}
    for kwargs in ({"ignore_index": 1}, {"weight": np.array([1.0, 0.0, 1.0])}):
        loss = C.nll_loss(C.Input("v", values.shape, "float64"), C.Input("labels", (4,), "int64"), **kwargs)
        expected = F.nll_loss(torch.tensor(values), torch.ones(4, dtype=torch.long),
                              **{k: torch.tensor(v) if k == "weight" else v for k, v in kwargs.items()})
        assert np.isnan(expected.item())
        assert np.isnan(C.evaluate(loss, arrays)) and np.isnan(C.compile(loss)(**arrays))


def test_nll_loss_labels_are_checked_as_cross_entropys():
    values = C.Input("v", (3, 4), "float64")
    labels = C.Input("labels", (3,), "int64")
    loss = C.nll_loss(values, labels, ignore_index=-1)
    v = np.zeros((3, 4))
    with pytest.raises(IndexError, match="nll_loss"):
        C.compile(loss)(v=v, labels=np.array([0, 4, 1]))
    with pytest.raises(IndexError, match="nll_loss"):
        C.evaluate(loss, {"v": v, "labels": np.array([0, -2, 1])})
    assert np.isfinite(C.compile(loss)(v=v, labels=np.array([0, -1, 3])))


# ---- kl_div ----------------------------------------------------------------------------------------

@needs_torch
@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_equals_torch(log_target, dtype):
    """Every reduction, batchmean included; targets with exact zeros (each adds 0, its gradient is nan as
    torch's), a target broadcasting to the input and one broadcasting with it."""
    rng = np.random.default_rng(5)
    reductions = ["mean", "batchmean", "sum", "none"]
    for i, (xs, ts) in enumerate([((), ()), ((3, 5), (3, 5)), ((2, 3, 4), (3, 4)), ((3, 1), (1, 4))]):
        x = np.log(rng.dirichlet(np.ones(xs[-1]), xs[:-1]) if xs else np.asarray(0.3)).astype(dtype)
        if log_target:
            t = rng.normal(size=ts).astype(dtype)
        else:
            t = np.where(rng.uniform(size=ts) < 0.3, 0.0, rng.uniform(0, 1, ts)).astype(dtype)
        with np.errstate(invalid="ignore"):
            check(lambda x, t: [C.kl_div(x, t, r, log_target=log_target) for r in reductions],
                  lambda x, t: [F.kl_div(x, t, reduction=r, log_target=log_target) for r in reductions],
                  {"x": np.asarray(x), "t": np.asarray(t)}, dtype, ["x", "t"], seed=i)


@needs_torch
def test_kl_div_zero_target_adds_zero():
    """xlogy(0, 0) = 0 (not 0 log 0 = nan), as torch's; against an input of -inf, 0 * inf is nan in both."""
    x, t = np.log([0.5, 0.5, 0.25]), np.array([0.5, 0.5, 0.0])
    loss = C.kl_div(C.Input("x", (3,), "float64"), C.Input("t", (3,), "float64"), "sum")
    for x in (x, np.array([np.log(0.5), np.log(0.5), -np.inf])):
        expected = F.kl_div(torch.tensor(x), torch.tensor(t), reduction="sum").item()
        assert expected == 0.0 if np.isfinite(x).all() else np.isnan(expected)
        for got in (C.evaluate(loss, {"x": x, "t": t}), C.compile(loss)(x=x, t=t)):
            np.testing.assert_allclose(got, expected, atol=1e-15)


# ---- binary_cross_entropy --------------------------------------------------------------------------

EDGES = np.array([0.0, 1.0, 1e-13, 1 - 2 ** -40, 0.5, 0.25, 1e-30])


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weight_shape", [None, (4,), (3, 1), (3, 4)])
def test_binary_cross_entropy_equals_torch(weight_shape, dtype):
    """Every reduction; probabilities of exactly 0 and 1 (each log clamped at -100, torch's gradient formula
    there), tiny ones, interior ones, against targets 0, 1 and between."""
    rng = np.random.default_rng(6)
    p = np.where(rng.uniform(size=(3, 4)) < 0.5, rng.choice(EDGES, (3, 4)), rng.uniform(0, 1, (3, 4))).astype(dtype)
    t = rng.choice([0.0, 1.0, 0.5, 0.3], (3, 4)).astype(dtype)
    arrays = {"p": p, "t": t}
    if weight_shape:
        arrays["w"] = rng.uniform(0.2, 2, weight_shape).astype(dtype)
    with np.errstate(invalid="ignore"):
        check(lambda p, t, w=None: [C.binary_cross_entropy(p, t, w, r) for r in REDUCTIONS],
              lambda p, t, w=None: [F.binary_cross_entropy(p, t, w, reduction=r) for r in REDUCTIONS], arrays, dtype,
              ["p", "t"])


@needs_torch
def test_binary_cross_entropy_on_every_edge_pair():
    p = np.repeat(EDGES, 4)
    t = np.tile([0.0, 1.0, 0.5, 0.9], len(EDGES))
    with np.errstate(invalid="ignore"):
        check(lambda p, t: C.binary_cross_entropy(p, t, reduction="none"),
              lambda p, t: F.binary_cross_entropy(p, t, reduction="none"), {"p": p, "t": t}, "float64", ["p", "t"])


# ---- bad arguments ---------------------------------------------------------------------------------

X = C.Input("x", (3, 4), "float32")
LABELS = C.Input("labels", (3,), "int64")


@pytest.mark.parametrize("call, match", [
    (lambda: C.l1_loss(X, X, "batchmean"), "l1_loss: reduction must be 'mean', 'sum' or 'none', got 'batchmean'"),
    (lambda: C.l1_loss(X, C.Input("y", (3, 5), "float32")),
     r"l1_loss: input \(3, 4\) and target \(3, 5\) do not broadcast"),
    (lambda: C.l1_loss(X, C.Input("y", (3, 4), "int64")), "l1_loss: target must be a float tensor, got int64"),
    (lambda: C.l1_loss(X, X, weight=np.ones(4)),
     r"l1_loss: weight must be a float tensor of the input's shape \(3, 4\), got \(4,\)"),
    (lambda: C.smooth_l1_loss(X, X, beta=-1), "smooth_l1_loss: beta must be a finite number >= 0, got -1"),
    (lambda: C.huber_loss(X, X, delta=0), "huber_loss: delta must be a finite number > 0, got 0"),
    (lambda: C.huber_loss(X, X, delta="1"), "huber_loss: delta must be a finite number > 0, got '1'"),
    (lambda: C.huber_loss(X, X, reduction=None), "huber_loss: reduction must be .* got None"),
    (lambda: C.kl_div(X, X, "batch"), "kl_div: reduction must be 'mean', 'batchmean', 'sum' or 'none', got 'batch'"),
    (lambda: C.kl_div(X, X, log_target=1), "kl_div: log_target must be a bool, got 1"),
    (lambda: C.nll_loss(X, C.Input("l", (4,), "int64")),
     r"nll_loss: expected log_probs \(..., classes\) .* got \(3, 4\) float32 and \(4,\) int64"),
    (lambda: C.nll_loss(X, C.Input("l", (3,), "float32")),
     r"nll_loss: expected log_probs .* float32 and \(3,\) float32"),
    (lambda: C.nll_loss(X, LABELS, weight=np.ones(3)),
     r"nll_loss: weight must be a float32 vector of the 4 classes \(4,\), got \(3,\) float32"),
    (lambda: C.nll_loss(X, LABELS, weight=C.Input("w", (4,), "float64")),
     "nll_loss: weight must be a float32 vector .* float64"),
    (lambda: C.nll_loss(X, LABELS, ignore_index=1.0), "nll_loss: ignore_index must be an int or None, got 1.0"),
    (lambda: C.nll_loss(C.Input("i", (3, 4), "int64"), LABELS),
     "nll_loss: log_probs must be a float tensor, got int64"),
    (lambda: C.cross_entropy(X, LABELS, weight=np.ones(5)),
     "cross_entropy: weight must be a float32 vector of the 4 classes"),
    (lambda: C.binary_cross_entropy(X, C.Input("t", (4,), "float32")),
     r"binary_cross_entropy: expected float probs and a target of their shape and dtype, got probs \(3, 4\) "
     r"float32 and target \(4,\) float32"),
    (lambda: C.binary_cross_entropy(X, C.Input("t", (3, 4), "float64")),
     r"binary_cross_entropy: .* target \(3, 4\) float64"),
    (lambda: C.binary_cross_entropy(X, X, weight=np.ones((2, 4))),
     r"binary_cross_entropy: weight must be a float32 tensor broadcasting to the probs' shape \(3, 4\), "
     r"got \(2, 4\)"),
    (lambda: C.binary_cross_entropy(X, X, reduction="avg"), "binary_cross_entropy: reduction must be"),
])
def test_bad_arguments_are_graph_errors_naming_them(call, match):
    with pytest.raises(GraphError, match=match):
        call()


# ---- regressions from the independent sweep ---------------------------------------------------------


@pytest.mark.parametrize("op", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_label_ignored_is_nan_with_gradient_zero(op, weighted):
    """A batch whose every label is ignore_index: torch's mean is nan (0 / 0) but its gradient 0 (no label
    passes one); the quotient's gradient was nan here, which a training step would write into the weights."""
    x = C.Input("x", ("batch", 4), "float64")
    labels = C.Input("labels", ("batch",), "int64")
    weight = np.array([0.5, 1.0, 2.0, 1.5]) if weighted else None
    loss = getattr(C, op)(x, labels, weight=weight, ignore_index=-100)
    outputs = [loss] + C.grad(loss, [x])
    values = {"x": np.random.default_rng(0).normal(size=(3, 4)), "labels": np.full(3, -100)}
    for value, gradient in (C.evaluate(outputs, values), C.compile(outputs)(**values)):
        assert np.isnan(value)
        np.testing.assert_array_equal(gradient, np.zeros((3, 4)))
    some = {"x": values["x"], "labels": np.array([-100, 2, -100])}  # one label counted: the ordinary mean
    for value, gradient in (C.evaluate(outputs, some), C.compile(outputs)(**some)):
        assert np.isfinite(value) and np.isfinite(gradient).all() and np.abs(gradient[1]).sum() > 0
        np.testing.assert_array_equal(gradient[[0, 2]], 0)


@needs_torch
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_every_label_ignored_equals_torch(smoothing):
    logits = np.random.default_rng(1).normal(size=(2, 3, 5))
    labels = np.full((2, 3), 1)
    labels[0, 1] = 4
    ignored = np.full((2, 3), 4)
    weight = np.linspace(0.5, 2, 5)
    for y in (labels, ignored):
        check(lambda x, y: C.cross_entropy(x, y, weight=weight, ignore_index=4, label_smoothing=smoothing),
              lambda x, y: F.cross_entropy(x.movedim(-1, 1), y, weight=torch.tensor(weight), ignore_index=4,
                                           label_smoothing=smoothing),
              {"x": logits, "y": y}, "float64", ["x"])


@pytest.mark.parametrize("op, kwargs", [("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.5}),
                                        ("huber_loss", {}), ("huber_loss", {"delta": 2.0})])
def test_smooth_l1_and_huber_gradient_at_an_infinite_difference_is_torchs(op, kwargs):
    """At x - y = +-inf torch's gradient is the linear branch's, +-1 (smooth l1) or +-delta (huber); selecting
    between the branches multiplied the quadratic branch's infinite gradient by 0 and gave nan."""
    scale = kwargs.get("delta", 1.0) if op == "huber_loss" else 1.0
    kink = kwargs.get("beta", kwargs.get("delta", 1.0))
    x = np.array([np.inf, -np.inf, 0.0, np.inf, kink, -kink, 0.25, np.nan])
    y = np.array([0.0, 0.0, np.inf, np.inf, 0.0, 0.0, 0.0, 0.0])
    nx, ny = C.Input("x", (8,), "float64"), C.Input("y", (8,), "float64")
    loss = getattr(C, op)(nx, ny, reduction="none", **kwargs)
    outputs = [loss] + C.grad(C.sum(loss), [nx, ny])
    inner = 0.25 / (kink if op == "smooth_l1_loss" else 1.0)
    dx = np.array([scale, -scale, -scale, np.nan, scale, -scale, inner, np.nan])
    for value, gx, gy in (C.evaluate(outputs, {"x": x, "y": y}), C.compile(outputs)(x=x, y=y)):
        np.testing.assert_array_equal(value[:3], np.inf)
        assert np.isnan(value[3]) and np.isnan(value[7])
        np.testing.assert_array_equal(gx, dx)
        np.testing.assert_array_equal(gy, -dx)


def test_unbatched_cross_entropy_with_its_label_ignored_is_nan_compiled_too():
    """(classes,) logits and a 0-d label equal to ignore_index: the mean (l k) / k with k = 0 compiled to l
    (the scheduler's algebra cancelled k); torch's and evaluate's value is nan, the gradient 0."""
    x, y = C.Input("x", (3,), "float64"), C.Input("y", (), "int64")
    loss = C.cross_entropy(x, y, ignore_index=-100)
    outputs = [loss] + C.grad(loss, [x])
    values = {"x": np.array([0.3, -1.0, 2.0]), "y": np.array(-100)}
    for value, gradient in (C.evaluate(outputs, values), C.compile(outputs)(**values)):
        assert np.isnan(value)
        np.testing.assert_array_equal(gradient, np.zeros(3))
