"""compiler.metrics: accuracy, top-k accuracy and the confusion matrix as graph nodes.

Compiled (one program per class count, over a symbolic batch), evaluated and a NumPy transcription
(a sort per row, ``np.add.at`` for the counts) agree on random logits drawn from a few integers, so
ties are common, with NaN sometimes; k runs past the class count. Labels out of range raise IndexError
whether given, or computed in the graph; a trained step's accuracy comes from one compiled call.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import compiler as sp
from compiler import GraphError, optim

CLASS_COUNTS = (1, 2, 3, 7)


# ---- the NumPy transcription -------------------------------------------------------------------

def reference_accuracy(logits, labels):
    return float(np.mean(np.argmax(logits, -1) == labels))


def reference_top_k(logits, labels, k):
    """Sort each row's classes: NaN first, then larger logits, equal logits by index; the label is a hit
    in the first k."""
    rows, labels = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    hits = [label in sorted(range(len(row)), key=lambda j: (not math.isnan(row[j]),
                                                            0.0 if math.isnan(row[j]) else -row[j], j))[:k]
            for row, label in zip(rows, labels)]
    return float(np.mean(hits))


def reference_confusion(predictions, labels, classes):
    counts = np.zeros((classes, classes), np.int64)
    np.add.at(counts, (labels.reshape(-1), predictions.reshape(-1)), 1)
    return counts


# ---- compiled == evaluate == reference ---------------------------------------------------------

@functools.cache
def metrics_program(classes: int, dtype: str):
    """(nodes, compiled): accuracy, top-k for k = 1 .. classes + 1, the confusion matrix; batch symbolic."""
    logits = sp.Input("logits", ("batch", classes), dtype)
    labels = sp.Input("labels", ("batch",), "int64")
    nodes = [sp.accuracy(logits, labels), *(sp.top_k_accuracy(logits, labels, k) for k in range(1, classes + 2)),
             sp.confusion_matrix(logits, labels, classes)]
    return nodes, sp.compile(nodes)


@st.composite
def classification_batch(draw):
    classes = draw(st.sampled_from(CLASS_COUNTS))
    batch = draw(st.integers(1, 12))
    values = st.one_of(st.integers(-2, 2).map(float), st.just(math.nan)) if draw(st.booleans()) else \
        st.integers(-2, 2).map(float)
    logits = np.array(draw(st.lists(values, min_size=batch * classes, max_size=batch * classes)))
    labels = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)), np.int64)
    return logits.reshape(batch, classes), labels, draw(st.sampled_from(["float32", "float64"]))


@settings(max_examples=60, deadline=None, database=None)
@given(case=classification_batch())
@example(case=(np.array([[math.nan, 1.0, math.nan]]), np.array([2]), "float32"))  # batch 1, NaNs tied
@example(case=(np.array([[0.0]]), np.array([0]), "float64"))  # one class
def test_compiled_and_evaluated_metrics_match_numpy(case):
    logits, labels, dtype = case
    logits = logits.astype(dtype)
    classes = logits.shape[-1]
    nodes, compiled = metrics_program(classes, dtype)
    expected = [reference_accuracy(logits, labels),
                *(reference_top_k(logits, labels, k) for k in range(1, classes + 2)),
                reference_confusion(np.argmax(logits, -1), labels, classes)]
    values = {"logits": logits, "labels": labels}
    for name, got in (("evaluate", [sp.evaluate(node, values) for node in nodes]), ("compiled", compiled(**values))):
        *fractions, counts = got
        assert all(np.asarray(f).dtype == dtype for f in fractions), name
        np.testing.assert_allclose(np.array(fractions, np.float64), expected[:-1], rtol=1e-6, err_msg=name)
        assert counts.dtype == np.int64 and counts.shape == (classes, classes)
        np.testing.assert_array_equal(counts, expected[-1], err_msg=name)
    assert expected[classes] == 1.0  # k = classes + 1 (past the count) takes every row


def test_ties_go_to_the_lower_class_index():
    """Every logit equal: the prediction is class 0, top-2 holds classes 0 and 1."""
    logits = np.zeros((4, 3), np.float32)
    labels = np.array([0, 1, 2, 2])
    nodes, compiled = metrics_program(3, "float32")
    accuracy, top1, top2, top3, _, counts = compiled(logits=logits, labels=labels)
    assert (accuracy, top1, top2, top3) == (0.25, 0.25, 0.5, 1.0)
    np.testing.assert_array_equal(counts[:, 0], [1, 1, 2])
    assert counts[:, 1:].sum() == 0


def test_leading_axes_and_integer_predictions():
    """Logits (time, batch, classes) count every position; integer predictions count as given."""
    rng = np.random.default_rng(1)
    logits_value = rng.standard_normal((3, 5, 4))
    labels_value = rng.integers(0, 4, (3, 5))
    predictions_value = rng.integers(0, 4, (3, 5))
    logits = sp.Input("seq_logits", ("T", "batch", 4), "float64")
    labels = sp.Input("seq_labels", ("T", "batch"), "int32")
    predictions = sp.Input("seq_predictions", ("T", "batch"), "int64")
    f = sp.compile([sp.accuracy(logits, labels), sp.top_k_accuracy(logits, labels, 2),
                    sp.confusion_matrix(predictions, labels, 4)])
    accuracy, top2, counts = f(seq_logits=logits_value, seq_labels=labels_value.astype(np.int32),
                               seq_predictions=predictions_value)
    assert accuracy == pytest.approx(reference_accuracy(logits_value, labels_value))
    assert top2 == pytest.approx(reference_top_k(logits_value, labels_value, 2))
    np.testing.assert_array_equal(counts, reference_confusion(predictions_value, labels_value, 4))
    assert counts.sum() == 15


# ---- labels out of range -----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [4, -1])
def test_labels_out_of_range_raise_before_the_call(bad):
    _, compiled = metrics_program(4, "float32")
    with pytest.raises(IndexError, match=rf"'labels': value {bad} .*accuracy.*0 <= labels < 4"):
        compiled(logits=np.zeros((2, 4), np.float32), labels=np.array([0, bad]))


def test_predictions_out_of_range_raise():
    predictions = sp.Input("predictions", ("batch",), "int64")
    labels = sp.Input("labels", ("batch",), "int64")
    f = sp.compile(sp.confusion_matrix(predictions, labels, 3))
    with pytest.raises(IndexError, match=r"'predictions': value 3 .*confusion_matrix"):
        f(predictions=np.array([0, 3]), labels=np.array([0, 1]))
    np.testing.assert_array_equal(f(predictions=np.array([0, 2]), labels=np.array([0, 1])),
                                  [[1, 0, 0], [0, 0, 1], [0, 0, 0]])


def test_labels_computed_in_the_graph_are_checked_after_the_call():
    logits = sp.Input("logits", ("batch", 3))
    codes = sp.Input("codes", ("batch",))
    f = sp.compile(sp.accuracy(logits, codes.astype("int64")))
    with pytest.raises(IndexError, match=r"accuracy.*5"):
        f(logits=np.zeros((2, 3), np.float32), codes=np.array([0.0, 5.0], np.float32))
    assert f(logits=np.zeros((2, 3), np.float32), codes=np.array([0.0, 2.0], np.float32)) == 0.5


@pytest.mark.parametrize("build, message", [
    (lambda l, y: sp.accuracy(l, y.astype("float32")), "int32 or int64"),
    (lambda l, y: sp.accuracy(l, sp.stack([y, y])), "leading shape"),
    (lambda l, y: sp.accuracy(l.astype("int64"), y), "float logits"),
    (lambda l, y: sp.top_k_accuracy(l, y, 0), "k must be an int >= 1"),
    (lambda l, y: sp.top_k_accuracy(l, y, True), "k must be an int >= 1"),
    (lambda l, y: sp.confusion_matrix(l, y, 4), r"expected logits \('batch', 4\)"),
    (lambda l, y: sp.confusion_matrix(l, y, 0), "num_classes must be an int >= 1"),
])
def test_declaration_errors(build, message):
    logits = sp.Input("logits", ("batch", 3))
    labels = sp.Input("labels", ("batch",), "int64")
    with pytest.raises(GraphError, match=message):
        build(logits, labels)


# ---- in training -------------------------------------------------------------------------------

def test_a_steps_accuracy_is_one_compiled_call():
    """After a few epochs on the digits, the compiled accuracy and confusion matrix of the live
    parameters equal NumPy's from the logits, and the model has learnt (accuracy well above chance)."""
    from runtime import datasets
    x_train, y_train = datasets.load_digits("train")
    x_test, y_test = datasets.load_digits("test")
    x = sp.Input("x", ("batch", 64))
    y = sp.Input("y", ("batch",), "int64")
    W = sp.Param("metrics_W", (64, 10), init="zeros")
    logits = x @ W
    step = sp.compile_step(sp.cross_entropy(logits, y), optim.Adam(lr=1e-2), seed=0)
    for epoch in range(3):
        step.run_epoch({"x": x_train, "y": y_train}, 64, seed=epoch)
    measure = step.function([sp.accuracy(logits, y), sp.top_k_accuracy(logits, y, 3),
                             sp.confusion_matrix(logits, y, 10)])
    accuracy, top3, counts = measure(x=x_test, y=y_test)
    raw = step.function(logits)(x=x_test)
    assert accuracy == pytest.approx(reference_accuracy(raw, y_test))
    assert top3 == pytest.approx(reference_top_k(raw, y_test, 3))
    np.testing.assert_array_equal(counts, reference_confusion(np.argmax(raw, -1), y_test, 10))
    assert accuracy > 0.8 and top3 >= accuracy
    assert np.trace(counts) == round(accuracy * len(y_test))
