"""No silent wrong answer: out-of-range input raises.

A symbolic dimension beyond int64 or a buffer whose bytes overflow it is
refused; labels out of range (given, constant, or computed inside the graph by
argmax or astype) raise IndexError naming the argument, for cross_entropy and
one_hot, in a call, a training step and an epoch, also after the program cache
loads the program. Part of the reliability probes (issue 9): one test per probe, each able to fail.
"""
from __future__ import annotations

import numpy as np
import pytest

import compiler as sp
from child_python import last_json, run_python
from compiler import optim
from small_classifier import batch, mlp


# ---- no silent wrong answer ---------------------------------------------------------------------

def free_dimension_program():
    x = sp.Input("x", (3,), "float32")
    return sp.compile(sp.broadcast_to(x, ("n", 3)) * 2.0)


@pytest.mark.parametrize("n", [2**64 + 4, 2**63 + 4])
def test_a_symbolic_dimension_beyond_int64_is_refused(n):
    fn = free_dimension_program()
    with pytest.raises(ValueError, match="'n'.*int64"):
        fn(x=np.ones(3, np.float32), n=n)
    np.testing.assert_array_equal(fn(x=np.ones(3, np.float32), n=2), np.full((2, 3), 2.0, np.float32))


def test_a_buffer_whose_bytes_overflow_int64_is_refused():
    fn = free_dimension_program()
    with pytest.raises(ValueError, match=r"'n' = 2305843009213693952 \(set by n=.*int64"):
        fn(x=np.ones(3, np.float32), n=2**61)  # 2**61 * 3 elements * 4 bytes > 2**63
    assert fn(x=np.ones(3, np.float32), n=1).shape == (1, 3)


@pytest.mark.parametrize("bad", [3, -1, 2**63 - 1, -2**63])
def test_cross_entropy_labels_out_of_range_raise(bad):
    loss, _ = mlp()
    fn = sp.compile(loss)
    W = np.ones((4, 3), np.float32)
    labels = np.array([0, 1, bad, 2])
    with pytest.raises(IndexError, match=rf"argument 'y': value {bad} at index \(2,\).*0 <= y < 3"):
        fn(x=batch()["x"], y=labels, rel_W=W)
    assert np.isfinite(fn(x=batch()["x"], y=np.array([0, 1, 2, 2]), rel_W=W))


def test_one_hot_labels_out_of_range_raise():
    labels = sp.Input("labels", ("batch",), "int64")
    fn = sp.compile(sp.one_hot(labels, 4))
    with pytest.raises(IndexError, match=r"'labels': value 4 .*one_hot.*0 <= labels < 4"):
        fn(labels=np.array([1, 4]))
    np.testing.assert_array_equal(fn(labels=np.array([1, 3])), np.eye(4, dtype=np.float32)[[1, 3]])


@pytest.mark.parametrize("bad", [3, -1, 2**63 - 1])
def test_the_reference_evaluator_refuses_labels_out_of_range_too(bad):
    """evaluate raises as the compiled program does, on every path that selects by labels (cross_entropy
    of a map and of logits, one_hot, accuracy, a label computed in the graph), where it used to return a
    loss that added 0 or an all-zero row."""
    logits = sp.Input("logits", ("batch", 3), "float64")
    y = sp.Input("y", ("batch",), "int64")
    values = {"logits": np.zeros((2, 3)), "y": np.array([0, bad])}
    for node, op in [(sp.cross_entropy(sp.tanh(logits), y), "cross_entropy"), (sp.cross_entropy(logits, y),
                     "cross_entropy"), (sp.one_hot(y, 3), "one_hot"), (sp.accuracy(logits, y), "accuracy"),
                     (sp.one_hot(y * 1, 3), "one_hot")]:
        with pytest.raises(IndexError, match=rf"{op}.*labels value {bad} is out of range.*0 <= labels < 3"):
            sp.evaluate(node, values)
        assert np.isfinite(sp.evaluate(node, {"logits": values["logits"], "y": np.array([0, 2])})).all()


def test_constant_labels_out_of_range_raise_at_declaration():
    logits = sp.Param("rel_logits", (2, 3))
    with pytest.raises(IndexError, match="cross_entropy: labels value 3"):
        sp.cross_entropy(logits, sp.const(np.array([0, 3])))


def test_labels_out_of_range_stop_a_training_step_and_an_epoch_before_any_update():
    loss, _ = mlp()
    step = sp.compile_step(loss, optim.Adam(lr=0.1))
    before = {name: array.copy() for name, array in step.params.items()}
    data = batch(10)
    data["y"][7] = 5
    with pytest.raises(IndexError, match="value 5 at index"):
        step(x=data["x"][:8], y=data["y"][:8])
    with pytest.raises(IndexError, match=r"value 5 at index \(7,\)"):
        step.run_epoch(data, batch_size=4)
    assert step.step_count == 0
    for name, array in step.params.items():
        np.testing.assert_array_equal(array, before[name])


def computed_labels(kind: str, shift: int):
    """(x, labels computed from x): the argmax of x's row (int64), or x's first column (holding a
    whole number as a float) cast with astype; plus `shift`."""
    x = sp.Input("x", ("batch", 3))
    if kind == "argmax":
        return x, sp.argmax(x, axis=1) + shift
    return x, (sp.reshape(x[:, :1], ("batch",)) + float(shift)).astype("int64")


def computed_batch(kind: str, top: int = 2) -> np.ndarray:
    """Rows whose computed labels (shift 0) are 0, 1 and `top`."""
    if kind == "argmax":
        x = np.full((3, 3), -1.0, np.float32)
        x[[0, 1, 2], [0, 1, top]] = 1.0
        return x
    return np.array([[0, 5, 1], [1, 2, 3], [top, 0, 0]], np.float32)


def computed_cross_entropy(kind: str, shift: int):
    x, labels = computed_labels(kind, shift)
    W = sp.Param("rel_W", (3, 3))
    return sp.cross_entropy(x @ W, labels), x, W


@pytest.mark.parametrize("kind", ["argmax", "astype"])
@pytest.mark.parametrize("shift, bad", [(1, 3), (-1, -1)])
def test_computed_labels_out_of_range_raise_after_the_call(kind, shift, bad):
    loss, _, _ = computed_cross_entropy(kind, shift)
    fn = sp.compile(loss)
    W = np.arange(9, dtype=np.float32).reshape(3, 3) / 10
    top = 1 if shift == 1 else 2  # the largest label in range after the shift: 2
    in_range = computed_batch(kind, top) if shift == 1 else computed_batch(kind)[1:]
    out_of_range = computed_batch(kind)
    with pytest.raises(IndexError, match=rf"^cross_entropy: labels value {bad} is out of range \(expected 0 <= labels "
                                         rf"< 3\); the labels were computed inside the graph$"):
        fn(x=out_of_range, rel_W=W)
    # in range: the same loss as with the labels given as an input
    labels = np.argmax(in_range, axis=1) if kind == "argmax" else in_range[:, 0].astype(np.int64)
    reference = sp.compile(sp.cross_entropy(sp.Input("x", ("batch", 3)) @ sp.Param("rel_W", (3, 3)),
                                            sp.Input("y", ("batch",), "int64")))
    expected = reference(x=in_range, y=labels + shift, rel_W=W)
    np.testing.assert_allclose(fn(x=in_range, rel_W=W), expected, rtol=1e-6)
    assert np.isfinite(expected)


def test_computed_labels_of_one_hot_and_of_several_outputs_raise_and_are_not_returned():
    x, labels = computed_labels("argmax", 1)
    fn = sp.compile([sp.one_hot(labels, 3), sp.sum(x)])
    x_value = computed_batch("argmax", top=1)
    hot, total = fn(x=x_value)  # only the user's two outputs
    np.testing.assert_array_equal(hot, np.eye(3, dtype=np.float32)[[1, 2, 2]])
    assert total == pytest.approx(float(x_value.sum()))
    with pytest.raises(IndexError, match=r"^one_hot: labels value 3 is out of range \(expected 0 <= labels < 3\)"):
        fn(x=computed_batch("argmax"))
    single = sp.compile(sp.one_hot(labels, 3))
    assert isinstance(single(x=x_value), np.ndarray)


def test_labels_given_as_inputs_or_constants_add_no_check_to_the_program():
    loss, _ = mlp()
    fn = sp.compile(loss)
    assert not fn.plan.get("index_faults") and len(fn.plan["outputs"]) == 1
    _, labels = computed_labels("argmax", 0)
    assert len(sp.compile(sp.one_hot(labels, 3)).plan["index_faults"]) == 1


@pytest.mark.parametrize("kind", ["argmax", "astype"])
def test_computed_labels_out_of_range_raise_after_a_training_step(kind):
    loss, _, _ = computed_cross_entropy(kind, 1)
    step = sp.compile_step(loss, optim.Adam(lr=0.1))
    x, labels, W = sp.Input("x", ("batch", 3)), sp.Input("y", ("batch",), "int64"), sp.Param("rel_W", (3, 3))
    reference = sp.compile_step(sp.cross_entropy(x @ W, labels), optim.Adam(lr=0.1))
    np.testing.assert_array_equal(step.params["rel_W"], reference.params["rel_W"])
    good = computed_batch(kind, top=1)
    good_labels = (np.argmax(good, axis=1) if kind == "argmax" else good[:, 0].astype(np.int64)) + 1
    assert step(x=good) == pytest.approx(reference(x=good, y=good_labels), rel=1e-6)
    np.testing.assert_allclose(step.params["rel_W"], reference.params["rel_W"], rtol=1e-6)
    before = step.params["rel_W"].copy()
    with pytest.raises(IndexError, match=r"^cross_entropy: labels value 3 is out of range \(expected 0 <= labels < 3\); "
                                         r"the labels were computed inside the graph; step 2 has already updated"):
        step(x=computed_batch(kind))
    assert step.step_count == 2  # the update ran: the count says so
    assert not np.array_equal(step.params["rel_W"], before)
    assert np.isfinite(step(x=good)) and step.step_count == 3
    data = np.concatenate([good, computed_batch(kind)])
    with pytest.raises(IndexError, match="labels value 3 is out of range"):
        step.run_epoch({"x": data}, batch_size=3, shuffle=False)
    assert np.isfinite(step.run_epoch({"x": np.concatenate([good, good])}, batch_size=2))


COMPUTED_LABELS_CHILD = """
    import json
    import numpy as np
    import compiler as sp
    from runtime import programs
    x = sp.Input("x", ("batch", 3))
    fn = sp.compile(sp.cross_entropy(x * 2.0, sp.argmax(x, axis=1) + 1))
    good, bad = np.array([[1, 0, 0]], np.float32), np.array([[0, 0, 1]], np.float32)
    try:
        fn(x=bad)
        error = None
    except IndexError as e:
        error = str(e)
    loaded = programs.load(fn.key)
    try:
        loaded(x=bad)
        loaded_error = None
    except IndexError as e:
        loaded_error = str(e)
    print(json.dumps({"from_cache": fn.from_cache, "error": error, "loaded_error": loaded_error,
                      "good": float(fn(x=good)), "loaded_good": float(loaded(x=good)),
                      "loaded_single": isinstance(loaded(x=good), np.ndarray)}))
"""


def test_computed_label_checks_survive_the_program_cache(tmp_path):
    first = last_json(run_python(COMPUTED_LABELS_CHILD, tmp_path))
    second = last_json(run_python(COMPUTED_LABELS_CHILD, tmp_path))
    assert not first["from_cache"] and second["from_cache"]
    for report in (first, second):
        assert report["error"] == report["loaded_error"] == (
            "cross_entropy: labels value 3 is out of range (expected 0 <= labels < 3); "
            "the labels were computed inside the graph")
        assert report["good"] == report["loaded_good"] == first["good"] and report["loaded_single"]
