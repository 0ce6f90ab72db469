"""Scans, sorting and N-d losses written as composites, and reshape's inferred -1.

cumsum and cumprod (log-depth scans of slices and pads), sort, argsort and topk (pairwise-comparison
permutations), cross_entropy and (log_)softmax over N-d logits with the class axis last, reshape with
-1. One row per op and variant, checked by ``op_table``: the value against NumPy, the gradient against
central differences (float64), the compiled program against NumPy in float32 and float64 at two batch
sizes. Then what random inputs do not reach, exactly: ties, zeros, NaN, where a gradient is routed.
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as C
from compiler import GraphError, Input, const, evaluate, grad
from op_table import (B, F, Row, distinct, integers, real, small_integers, table_tests, with_zeros)


def np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def np_cross_entropy(logits, labels):
    """torch's cross_entropy(logits.movedim(-1, 1), labels): mean over every label of -log p[label]."""
    logp = np_log_softmax(logits, -1)
    return -np.mean(np.take_along_axis(logp, labels[..., None].astype(np.int64), -1))


def descending(x, axis):
    return -np.sort(-x, axis)


def stable_descending_order(x, axis):
    """torch.sort(descending=True, stable=True) / topk indices: larger first, ties in index order."""
    return np.argsort(-x, axis, kind="stable")


ROWS = [
    # scans
    Row("cumsum_axis1", lambda x: C.cumsum(x, 1), lambda x: np.cumsum(x, 1), ((B, 6),)),
    Row("cumsum_batch_is_other_axis", lambda x: C.cumsum(x, 0), lambda x: np.cumsum(x, 0), ((5, B),)),
    Row("cumsum_flat", C.cumsum, np.cumsum, ((2, 3, 2),)),
    Row("cumsum_length_1", lambda x: x.cumsum(axis=-1), lambda x: np.cumsum(x, -1), ((B, 1),)),
    Row("cumsum_length_9", lambda x: C.cumsum(x, -1), lambda x: np.cumsum(x, -1), ((B, 9),)),
    Row("cumsum_middle_axis", lambda x: C.cumsum(x, 1), lambda x: np.cumsum(x, 1), ((2, 5, B),)),
    Row("cumsum_int32", lambda n: C.cumsum(n, 1), lambda n: np.cumsum(n, 1), ((B, 4),), (integers(-9, 9),), ("int32",)),
    Row("cumsum_bool", lambda b: C.cumsum(b, 0), lambda b: np.cumsum(b, 0), ((6, B),), (integers(0, 2),), ("bool",)),
    Row("cumprod_zeros", lambda x: C.cumprod(x, 1), lambda x: np.cumprod(x, 1), ((B, 6),), (with_zeros,)),
    Row("cumprod_axis0", lambda x: x.cumprod(axis=0), lambda x: np.cumprod(x, 0), ((5, B),), (real(-1.5, 1.5),)),
    Row("cumprod_flat_zeros", C.cumprod, np.cumprod, ((2, 4),), (with_zeros,)),
    Row("cumprod_int", lambda n: C.cumprod(n, -1), lambda n: np.cumprod(n, -1), ((B, 5),), (integers(-3, 4),),
        ("int64",)),
    # sorting
    Row("sort_last", C.sort, lambda x: np.sort(x, -1), ((B, 5),), (distinct,)),
    Row("sort_batch_is_other_axis", lambda x: C.sort(x, 0), lambda x: np.sort(x, 0), ((6, B),), (distinct,)),
    Row("sort_descending", lambda x: C.sort(x, 1, descending=True), lambda x: descending(x, 1), ((B, 5),),
        (distinct,)),
    Row("sort_middle_axis", lambda x: C.sort(x, 1), lambda x: np.sort(x, 1), ((2, 4, B),), (distinct,)),
    Row("sort_ties", C.sort, lambda x: np.sort(x, -1), ((B, 6),), (small_integers,), gradient=False),
    Row("sort_int", lambda n: C.sort(n, 0), lambda n: np.sort(n, 0), ((5, B),), (integers(-3, 3),), ("int64",)),
    Row("sort_bool", C.sort, lambda b: np.sort(b, -1), ((B, 4),), (integers(0, 2),), ("bool",)),
    Row("argsort_ties", lambda x: C.argsort(x, 1), lambda x: np.argsort(x, 1, kind="stable"), ((B, 6),),
        (small_integers,)),
    Row("argsort_descending_ties", lambda x: C.argsort(x, 0, descending=True), lambda x: stable_descending_order(x, 0),
        ((6, B),), (small_integers,)),
    Row("topk_values", lambda x: C.topk(x, 3)[0], lambda x: descending(x, -1)[:, :3], ((B, 6),), (distinct,)),
    Row("topk_indices_ties", lambda x: C.topk(x, 3)[1], lambda x: stable_descending_order(x, -1)[:, :3], ((B, 6),),
        (small_integers,)),
    Row("topk_smallest_axis0", lambda x: C.topk(x, 2, axis=0, largest=False)[0], lambda x: np.sort(x, 0)[:2],
        ((5, B),), (distinct,)),
    Row("topk_smallest_indices", lambda x: C.topk(x, 2, axis=0, largest=False)[1],
        lambda x: np.argsort(x, 0, kind="stable")[:2], ((5, B),), (small_integers,)),
    Row("topk_one", lambda x: C.topk(x, 1, axis=1)[0], lambda x: np.max(x, 1, keepdims=True), ((B, 4, 2),),
        (distinct,)),
    # N-d losses and normalisations, the class axis last
    Row("cross_entropy_3d", C.cross_entropy, np_cross_entropy, ((B, 3, 5), (B, 3)), (real(-5, 5), integers(0, 5)),
        (F, "int64")),
    Row("cross_entropy_4d_int32", C.cross_entropy, np_cross_entropy, ((2, B, 2, 4), (2, B, 2)),
        (real(-5, 5), integers(0, 4)), (F, "int32")),
    Row("cross_entropy_2d", C.cross_entropy, np_cross_entropy, ((B, 5), (B,)), (real(-5, 5), integers(0, 5)),
        (F, "int64")),
    Row("cross_entropy_unbatched", C.cross_entropy, np_cross_entropy, ((5,), ()), (real(-5, 5), integers(0, 5)),
        (F, "int64")),
    Row("log_softmax_3d", C.log_softmax, np_log_softmax, ((B, 3, 5),), (real(-5, 5),)),
    Row("softmax_3d_middle_axis", lambda x: C.softmax(x, 1), lambda x: np.exp(np_log_softmax(x, 1)), ((2, 4, B),),
        (real(-5, 5),)),
    Row("logsumexp_3d", lambda x: C.logsumexp(x, (0, 2)), lambda x: np.log(np.sum(np.exp(x), (0, 2))), ((2, B, 3),),
        (real(-5, 5),)),
    # reshape with -1
    Row("reshape_infer_batch", lambda x: x.reshape(-1, 2, 4), lambda x: x.reshape(-1, 2, 4), ((B, 8),)),
    Row("reshape_infer_static", lambda x: C.reshape(x, (3, -1)) * 2, lambda x: x.reshape(3, -1) * 2, ((6, 4),)),
    Row("reshape_infer_middle", lambda x: C.reshape(x, 2, -1, 2), lambda x: x.reshape(2, -1, 2), ((2, 3, 2),)),
    Row("reshape_infer_numpy_ints", lambda x: C.reshape(x, np.int64(-1), np.int64(3)), lambda x: x.reshape(-1, 3),
        ((B, 3),)),
]

test_value_matches_numpy, test_gradient_matches_finite_differences, test_compiled_matches_numpy = table_tests(ROWS)


# ---- gradients routed exactly, at ties and zeros --------------------------------------------------


def _weighted_gradient(build, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """grad of sum(build(x) * weights), from the evaluator, the simplified graph and the compiled program."""
    node = Input("route_x", x.shape, dtype="float64")
    g = grad((build(node) * const(weights)).sum(), node)
    declared = evaluate(g, {"route_x": x})
    np.testing.assert_array_equal(evaluate(C.simplify(g), {"route_x": x}), declared)
    np.testing.assert_array_equal(C.compile(g)(route_x=x), declared)
    return declared


def test_sort_sends_each_output_gradient_to_its_element_ties_in_order():
    weights = np.array([10.0, 20.0, 30.0, 40.0])
    np.testing.assert_array_equal(_weighted_gradient(C.sort, np.array([3.0, 1.0, 4.0, 2.0]), weights),
                                  [30.0, 10.0, 40.0, 20.0])
    np.testing.assert_array_equal(_weighted_gradient(C.sort, np.array([1.0, 1.0, 0.0, 1.0]), weights),
                                  [20.0, 30.0, 10.0, 40.0])
    down = _weighted_gradient(lambda t: C.sort(t, descending=True), np.array([1.0, 1.0, 0.0, 1.0]), weights)
    np.testing.assert_array_equal(down, [10.0, 20.0, 40.0, 30.0])


def test_topk_gradient_reaches_only_the_chosen():
    x = np.array([[0.5, 3.0, -1.0, 3.0, 2.0]])
    g = _weighted_gradient(lambda t: C.topk(t, 2)[0], x, np.array([[1.0, 5.0]]))
    np.testing.assert_array_equal(g, [[0.0, 1.0, 0.0, 5.0, 0.0]])


def test_cumprod_gradient_with_zeros_is_exact():
    """d/dx_i sum_k prod_{j<=k} x_j, also where some x_j = 0."""
    x = np.array([2.0, 0.0, 3.0, 4.0])
    np.testing.assert_array_equal(_weighted_gradient(C.cumprod, x, np.ones(4)), [1.0, 32.0, 0.0, 0.0])
    x = np.array([0.0, 5.0, 0.0])
    np.testing.assert_array_equal(_weighted_gradient(C.cumprod, x, np.ones(3)), [6.0, 0.0, 0.0])


# ---- NaN and infinities, as NumPy (and torch where NumPy has no descending sort) ---------------------

SPECIAL = np.array([[2.0, np.nan, -np.inf, 1.0, np.inf, np.nan, -0.5]])


@pytest.mark.parametrize("name,build,reference", [
    ("sort", C.sort, lambda x: np.sort(x, -1)),
    ("argsort", C.argsort, lambda x: np.argsort(x, -1, kind="stable")),
    ("sort_descending_nan_first", lambda x: C.sort(x, descending=True),
     lambda x: np.array([[np.nan, np.nan, np.inf, 2.0, 1.0, -0.5, -np.inf]])),
    ("topk_nan_largest", lambda x: C.topk(x, 3)[1], lambda x: np.array([[1, 5, 4]])),
    ("cumsum", lambda x: C.cumsum(x, 1), lambda x: np.cumsum(x, 1)),
    ("cumprod", lambda x: C.cumprod(x, 1), lambda x: np.cumprod(x, 1)),
], ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_and_infinities(name, build, reference, dtype):
    """A NaN sorts after everything (first when descending, the largest for topk), and stays where it
    sorts: values are picked with where, so a NaN or an inf does not spread to other positions."""
    x = SPECIAL.astype(dtype)
    node = Input("special_x", x.shape, dtype=dtype)
    out = build(node)
    with np.errstate(all="ignore"):
        expected = reference(x)
    np.testing.assert_array_equal(evaluate(out, {"special_x": x}), expected)
    np.testing.assert_array_equal(C.compile(out)(special_x=x), expected)


# ---- shapes, arguments and errors ---------------------------------------------------------------------


def test_topk_returns_values_and_int64_indices():
    values, indices = C.topk(Input("pair_x", (4, 6), dtype="float32"), 2)
    assert values.shape == indices.shape == (4, 2)
    assert values.dtype == "float32" and indices.dtype == "int64"
    assert C.argsort(Input("pair_y", (3,), dtype="float64")).dtype == "int64"


def test_scans_of_a_0d_tensor_are_one_element_as_numpy():
    x = Input("scan_x", (), dtype="float64")
    for axis in (0, -1, None):
        out = C.cumsum(x, axis)
        assert out.shape == np.cumsum(np.float64(2.0), axis=axis).shape == (1,)
        np.testing.assert_array_equal(evaluate(C.cumprod(x, axis), {"scan_x": np.array(2.0)}), [2.0])
    with pytest.raises(GraphError, match="out of range"):
        C.cumsum(x, 1)


@pytest.mark.parametrize("build,match", [
    (lambda x: C.sort(x, 0), "symbolic dimension 'batch'"),
    (lambda x: C.cumsum(x, 0), "symbolic dimension 'batch'"),
    (lambda x: C.cumsum(x), "symbolic"),
    (lambda x: C.topk(x, 4), r"k must be an int in \[0, 3\]"),
    (lambda x: C.topk(x, -1), r"k must be an int in \[0, 3\]"),
    (lambda x: C.sort(x, (0, 1)), "axis must be an int"),
    (lambda x: C.sort(x.sum()), "0-d tensor has no axis"),
    (lambda x: C.cumprod(x, 2), "out of range"),
])
def test_declaration_errors(build, match):
    with pytest.raises(GraphError, match=match):
        build(Input("errors_x", (B, 3), dtype="float32"))


@pytest.mark.parametrize("logits,labels,dtype", [
    ((4, 5), (5,), "int64"),
    ((2, 3, 5), (3, 2), "int64"),
    ((2, 3, 5), (2, 3), "float32"),
    ((), (), "int64"),
])
def test_cross_entropy_shape_errors_name_both(logits, labels, dtype):
    with pytest.raises(GraphError, match=r"labels \(\.\.\.\) of the leading shape"):
        C.cross_entropy(Input("ce_logits", logits), Input("ce_labels", labels, dtype=dtype))


def test_cross_entropy_needs_a_concrete_class_axis():
    with pytest.raises(GraphError, match="symbolic dimension 'classes'"):
        C.cross_entropy(Input("ce_l", (2, "classes")), Input("ce_y", (2,), dtype="int64"))


@pytest.mark.parametrize("old,new,match", [
    ((B, 6), (-1, 4), "no -1 makes the sizes agree"),
    ((6,), (-1, 4), "no -1 makes the sizes agree"),
    ((2, 3), (-1, -1), "only one -1"),
    ((0, 3), (-1, 0), "no -1 makes the sizes agree"),
    ((2, 3), (-2, 3), "bad dimension -2"),
])
def test_reshape_inference_errors(old, new, match):
    with pytest.raises(GraphError, match=match):
        C.reshape(Input("reshape_x", old), new)


@pytest.mark.parametrize("old,new", [((0, 3), (-1, 3)), ((2, 3), (-1,)), ((), (-1,)), ((4, 1), (1, -1, 1))])
def test_reshape_inference_as_numpy(old, new):
    assert C.reshape(Input("reshape_y", old), new).shape == np.zeros(old).reshape(new).shape
