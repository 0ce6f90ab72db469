"""The shipped digits data set: sizes, types, ranges and a fixed stratified split."""

import subprocess
from collections import Counter
from pathlib import Path
import sys
import textwrap

import numpy as np
import pytest

from runtime.datasets import DIGITS_TEST_SIZE, DIGITS_TRAIN_SIZE, load_digits

CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # UCI test set, as published


@pytest.mark.parametrize("split, size", [("train", 1438), ("test", 359), ("all", 1797)])
@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32])
def test_shapes_dtypes_ranges(split, size, dtype):
    X, y = load_digits(split, dtype=dtype)
    assert X.shape == (size, 64) and X.dtype == np.dtype(dtype) and X.flags.c_contiguous
    assert y.shape == (size,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    # pixels are the 17 gray levels 0..16 scaled by 1/16
    np.testing.assert_array_equal(np.unique(X * 16), np.arange(17))
    assert set(np.unique(y)) == set(range(10))


def test_documented_sizes():
    assert (DIGITS_TRAIN_SIZE, DIGITS_TEST_SIZE) == (1438, 359)
    assert DIGITS_TRAIN_SIZE + DIGITS_TEST_SIZE == 1797
    _, y = load_digits("all")
    np.testing.assert_array_equal(np.bincount(y), CLASS_COUNTS)


def test_split_is_disjoint_complete_and_stratified():
    X_all, y_all = load_digits("all")
    X_train, y_train = load_digits("train")
    X_test, y_test = load_digits("test")
    # The two splits partition "all": as multisets of (image, label) rows, train + test == all.
    def rows(X, y):
        return Counter(image.tobytes() + bytes([label]) for image, label in zip(X, y))

    assert rows(X_train, y_train) + rows(X_test, y_test) == rows(X_all, y_all)
    test_counts = np.bincount(y_test, minlength=10)
    train_counts = np.bincount(y_train, minlength=10)
    np.testing.assert_array_equal(train_counts + test_counts, CLASS_COUNTS)
    assert np.all(np.abs(test_counts - 0.2 * np.array(CLASS_COUNTS)) <= 0.5)
    assert train_counts.min() > 0 and test_counts.min() > 0


def test_split_is_fixed_across_calls_and_arrays_are_fresh():
    X1, y1 = load_digits("test")
    X1[:] = -1
    X2, y2 = load_digits("test")
    assert X2.min() == 0.0
    np.testing.assert_array_equal(y1, y2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        load_digits("validation")
    with pytest.raises(ValueError, match="floating"):
        load_digits("train", dtype="int32")


def test_loads_without_scikit_learn():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None  # any import of scikit-learn now fails
        import runtime
        assert "sympy" not in sys.modules, "the runtime must not import sympy"
        from runtime.datasets import load_digits
        X, y = load_digits("all")
        assert X.shape == (1797, 64), X.shape
        assert not [m for m in sys.modules if m.startswith("sklearn.")]
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
