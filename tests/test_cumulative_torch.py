"""cummax, cummin, logcumsumexp, cosine_similarity and normalize against torch: values (and cummax's
indices) and the gradients of a random-weighted sum, evaluated and compiled, in float64 and float32, over
shapes, axes and broadcasting, with ties, zeros, zero vectors, +-inf and NaN where torch defines the
result. Bad arguments are GraphErrors naming the argument (those checks run without torch)."""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
from compiler.errors import GraphError

from optional_torch import F, needs_torch, torch

TOLERANCE = {"float64": 1e-12, "float32": 2e-5}


def check(build, theirs, arrays: dict, wrt, seed=0, tolerance=None):
    """build(**nodes) and theirs(**tensors) (an output or a tuple of them) agree: float outputs in value
    and in the gradient of a random-weighted sum with respect to each operand in `wrt`, integer outputs
    exactly; evaluated and compiled; nan where torch's is nan."""
    nodes = {name: C.Input(name, a.shape, str(a.dtype)) for name, a in arrays.items()}
    outs, rng = build(**nodes), np.random.default_rng(seed)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    tensors = {name: torch.tensor(a, requires_grad=name in wrt) for name, a in arrays.items()}
    theirs_outs = theirs(**tensors)
    theirs_outs = list(theirs_outs) if isinstance(theirs_outs, tuple) else [theirs_outs]
    outputs, expected, names = [], [], []
    for k, (out, their) in enumerate(zip(outs, theirs_outs, strict=True)):
        outputs.append(out), expected.append(their.detach().numpy()), names.append(f"output {k}")
        if wrt and out.dtype.startswith("float"):
            w = rng.normal(size=out.shape).astype(out.dtype)
            outputs += C.grad((out * C.const(w)).sum(), [nodes[n] for n in wrt])
            grads = torch.autograd.grad((their * torch.tensor(w)).sum(), [tensors[n] for n in wrt], retain_graph=True)
            expected += [g.numpy() for g in grads]
            names += [f"output {k} d/d{n}" for n in wrt]
    for how, got in (("evaluate", C.evaluate(outputs, arrays)), ("compile", C.compile(outputs)(**arrays))):
        for what, a, e in zip(names, got, expected, strict=True):
            a = np.asarray(a)
            assert a.shape == e.shape and a.dtype == e.dtype, (how, what, a.shape, e.shape, a.dtype, e.dtype)
            if not e.dtype.kind == "f":
                np.testing.assert_array_equal(a, e, err_msg=f"{how} {what}")
                continue
            tol = tolerance or TOLERANCE[str(e.dtype)]
            finite = np.abs(e[np.isfinite(e)])
            scale = float(finite.max()) if finite.size else 0.0
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol * max(scale, 1.0), err_msg=f"{how} {what}")


def sample(shape, kind, dtype, seed=0):
    """Normal values; 'ties': small integers (every cummax has ties); 'special': ties with -inf, +inf and
    NaN sprinkled in."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(size=shape).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if kind == "special":
        x[rng.uniform(size=shape) < 0.15] = -np.inf
        x[rng.uniform(size=shape) < 0.1] = np.inf
        x[rng.uniform(size=shape) < 0.1] = np.nan
    return x


# ---- cummax and cummin -----------------------------------------------------------------------

SCANS = [((7,), 0), ((3, 6), 1), ((3, 6), -2), ((2, 3, 5), -1), ((2, 5, 3), 1), ((), 0), ((2, 9), 1), ((4, 1), 1)]


@needs_torch
@pytest.mark.parametrize("extreme", ["cummax", "cummin"])
@pytest.mark.parametrize("kind", ["normal", "ties", "special"])
@pytest.mark.parametrize("shape,axis", SCANS)
def test_cummax_cummin_float64(extreme, kind, shape, axis):
    x = sample(shape, kind, "float64", seed=len(shape) + axis)
    check(lambda x: getattr(C, extreme)(x, axis), lambda x: tuple(getattr(torch, extreme)(x, axis)), {"x": x}, ["x"])


@needs_torch
@pytest.mark.parametrize("extreme", ["cummax", "cummin"])
@pytest.mark.parametrize("kind", ["normal", "special"])
def test_cummax_cummin_float32(extreme, kind):
    x = sample((3, 8), kind, "float32", seed=3)
    check(lambda x: getattr(C, extreme)(x, 1), lambda x: tuple(getattr(torch, extreme)(x, 1)), {"x": x}, ["x"])


@needs_torch
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
@pytest.mark.parametrize("extreme", ["cummax", "cummin"])
def test_cummax_cummin_integers(dtype, extreme):
    x = np.random.default_rng(1).integers(-3, 4, (3, 7))
    x = (x > 0) if dtype == "bool" else x.astype(dtype)
    check(lambda x: getattr(C, extreme)(x, -1), lambda x: tuple(getattr(torch, extreme)(x, -1)), {"x": x}, [])


@needs_torch
def test_cummax_nan_and_tie_rules():
    """The cases torch's sequential rule decides: ties go to the later index, a NaN is the maximum and
    the later of two NaNs wins; -0.0 ties 0.0."""
    x = np.array([[1, np.nan, 2, np.nan, 5], [3, 1, 3, 2, 3], [0.0, -0.0, 0.0, -0.0, 0.0],
                  [np.nan, 1, np.nan, 1, 1], [-np.inf, -np.inf, 1, np.inf, np.inf]])
    for extreme in ("cummax", "cummin"):
        check(lambda x: getattr(C, extreme)(x, 1), lambda x: tuple(getattr(torch, extreme)(x, 1)), {"x": x}, ["x"])


# ---- logcumsumexp ------------------------------------------------------------------------------


def log_sample(shape, kind, dtype, seed=0):
    """'normal'; 'large': values near +-1000 (exp overflows); 'neg_inf': -inf in leading runs and inside;
    'special': also +inf and NaN (torch's gradient is nan there)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * (3 if kind != "large" else 1) + (1000 * rng.choice([-1, 1], shape) if kind == "large"
                                                                    else 0)
    x = np.asarray(x, dtype=np.float64)
    if kind in ("neg_inf", "special"):
        x[rng.uniform(size=shape) < 0.3] = -np.inf
        if x.ndim:
            x[(slice(None),) * (x.ndim - 1) + (slice(0, 2),)] = -np.inf
    if kind == "special":
        x[rng.uniform(size=shape) < 0.1] = np.inf
        x[rng.uniform(size=shape) < 0.05] = np.nan
    return x.astype(dtype)


@needs_torch
@pytest.mark.parametrize("kind", ["normal", "large", "neg_inf", "special"])
@pytest.mark.parametrize("shape,axis", SCANS)
def test_logcumsumexp_float64(kind, shape, axis):
    x = log_sample(shape, kind, "float64", seed=7 + axis)
    check(lambda x: C.logcumsumexp(x, axis), lambda x: torch.logcumsumexp(x, axis), {"x": x}, ["x"])


@needs_torch
@pytest.mark.parametrize("kind", ["normal", "large", "special"])
def test_logcumsumexp_float32(kind):
    x = log_sample((3, 9), kind, "float32", seed=2)
    check(lambda x: C.logcumsumexp(x, 1), lambda x: torch.logcumsumexp(x, 1), {"x": x}, ["x"])


@needs_torch
def test_logcumsumexp_edge_rows():
    """All -inf (the value stays -inf), +inf then finite, equal infinities, a NaN: torch's values and
    gradients (nan along a leading -inf run, at +inf, over a row with a NaN; 0 for -inf after a finite)."""
    x = np.array([[-np.inf, -np.inf, -np.inf, -np.inf], [-np.inf, -np.inf, 1, -np.inf], [1, np.inf, 2, np.inf],
                  [np.inf, np.inf, -np.inf, 0], [1, np.nan, 2, 3], [1000, 1, 1001, -1000], [0, 0, 0, 0]])
    check(lambda x: C.logcumsumexp(x, 1), lambda x: torch.logcumsumexp(x, 1), {"x": x}, ["x"])


# ---- cosine_similarity and normalize -----------------------------------------------------------

PAIRS = [((3, 4), (3, 4), 1), ((2, 1, 4), (3, 4), -1), ((2, 1, 4), (3, 4), 1), ((5,), (5,), 0),
         ((2, 3, 5), (2, 3, 5), 0), ((1, 3), (3,), -1), ((4, 3), (1, 3), 0), ((), (), 0)]


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape1,shape2,dim", PAIRS)
def test_cosine_similarity(shape1, shape2, dim, dtype):
    rng = np.random.default_rng(len(shape1) + dim)
    x1, x2 = rng.normal(size=shape1).astype(dtype), rng.normal(size=shape2).astype(dtype)
    check(lambda a, b: C.cosine_similarity(a, b, dim), lambda a, b: F.cosine_similarity(a, b, dim), {"a": x1, "b": x2},
          ["a", "b"])


@needs_torch
@pytest.mark.parametrize("eps", [1e-8, 0.5])
def test_cosine_similarity_zero_and_short_vectors(eps):
    """Rows of zeros and rows shorter than eps: torch clamps each norm without gradient, so the gradient
    still flows through the norm (0 at a zero vector)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    a[0], b[1], a[2], b[2] = 0, 0, 0, 0
    a[3] *= 0.05
    b[4] *= 0.1
    check(lambda a, b: C.cosine_similarity(a, b, eps=eps), lambda a, b: F.cosine_similarity(a, b, eps=eps),
          {"a": a, "b": b}, ["a", "b"], tolerance=1e-10 if eps == 1e-8 else None)


@needs_torch
@pytest.mark.parametrize("p", [2.0, 1, 3, 0.5, 1.5, np.inf, -np.inf, 0, -1.0])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_normalize(p, dtype):
    """Rows with zeros, a zero row (the gradient is the upstream's / eps), ties for the inf-norms."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(3, 4)), [[0.0, 1, -2, 0], [0, 0, 0, 0], [3, -3, 1, 2]]]).astype(dtype)
    check(lambda x: C.normalize(x, p), lambda x: F.normalize(x, p), {"x": x}, ["x"],
          tolerance=1e-4 if dtype == "float32" else None)  # (a zero row's gradient is ~1e12 of ~1 terms)


@needs_torch
@pytest.mark.parametrize("shape,dim,eps", [((2, 3, 4), 0, 1e-12), ((2, 3, 4), -1, 0.7), ((5,), 0, 1e-12), ((), 0, 0.5)])
def test_normalize_dims_and_eps(shape, dim, eps):
    x = np.random.default_rng(2).normal(size=shape)
    check(lambda x: C.normalize(x, dim=dim, eps=eps), lambda x: F.normalize(x, dim=dim, eps=eps), {"x": x}, ["x"])


# ---- bad arguments (without torch) -----------------------------------------------------------


@pytest.mark.parametrize("build,words", [
    (lambda x: C.cummax(x, 2), ["axis 2", "rank 2"]),
    (lambda x: C.cummin(x, 1.0), ["axis must be an int", "1.0"]),
    (lambda x: C.logcumsumexp(x, -3), ["axis -3", "rank 2"]),
    (lambda x: C.normalize(x, p="fro"), ["p must be a real number", "'fro'"]),
    (lambda x: C.normalize(x, p=float("nan")), ["p must be a real number", "nan"]),
    (lambda x: C.normalize(x, dim=2), ["dim must be an int in [-2, 2)", "got 2"]),
    (lambda x: C.normalize(x, eps=-1), ["eps must be a number >= 0", "-1"]),
    (lambda x: C.cosine_similarity(x, C.Input("y", (3, 5))), ["do not broadcast", "(3, 4)", "(3, 5)"]),
    (lambda x: C.cosine_similarity(x, x, dim=-3), ["dim must be an int in [-2, 2)", "got -3"]),
    (lambda x: C.cosine_similarity(x, x, eps=None), ["eps must be a number >= 0", "None"]),
])
def test_bad_arguments(build, words):
    with pytest.raises(GraphError) as error:
        build(C.Input("x", (3, 4)))
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_scans_need_a_concrete_axis():
    with pytest.raises(GraphError, match="cummax"):
        C.cummax(C.Input("x", ("batch", 3)), 0)
