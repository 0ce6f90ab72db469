"""Small real data sets shipped with the package, so examples and tests need no network.

python_docs: the text of Python's documentation topics, a character corpus
that ships with CPython (``char_corpus``; ``load_python_docs()``).

digits: the UCI optical recognition of handwritten digits test set as
distributed with scikit-learn (8x8 images of 0..16 gray levels, 1,797
samples, 10 classes), stored in `data/digits.npz` as X (uint8, 1797x64) and
y (uint8). It was extracted once; the runtime never imports scikit-learn:

    import numpy as np, sklearn.datasets
    digits = sklearn.datasets.load_digits()
    np.savez_compressed("runtime/data/digits.npz",
                        X=digits.data.astype(np.uint8), y=digits.target.astype(np.uint8))
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from .char_corpus import CharCorpus, load_python_docs

__all__ = ["load_digits", "DIGITS_TRAIN_SIZE", "DIGITS_TEST_SIZE", "load_python_docs", "CharCorpus"]

DIGITS_TRAIN_SIZE = 1438
DIGITS_TEST_SIZE = 359
_TEST_PERCENT = 20
_SPLIT_SEED = 0


@functools.cache
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
    with resources.files(__package__).joinpath("data", "digits.npz").open("rb") as file:
        with np.load(file) as archive:
            images, labels = archive["X"], archive["y"]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


@functools.cache
def _digits_test_mask() -> np.ndarray:
    """Per class, in class order: permute its indices with one default_rng(0) and
    put the first round(20% of the class) into the test split."""
    _, labels = _digits_raw()
    rng = np.random.default_rng(_SPLIT_SEED)
    test = np.zeros(labels.shape, dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_count = (len(members) * _TEST_PERCENT + 50) // 100
        test[members[:test_count]] = True
    test.setflags(write=False)
    return test


def load_digits(split: str = "train", dtype: str | np.dtype = "float32") -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits as (X, y): X of shape (n, 64) scaled to [0, 1], y int64 labels 0..9.

    Splits are fixed and stratified: "test" holds 20% of each class (359
    samples), "train" the other 1438, "all" all 1797 in the original order.
    Within a split, samples keep their original order. Arrays are fresh
    C-contiguous copies the caller may modify.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"load_digits: dtype must be a floating type, got {dtype}")
    images, labels = _digits_raw()
    if split == "all":
        rows = slice(None)
    elif split == "test":
        rows = _digits_test_mask()
    elif split == "train":
        rows = ~_digits_test_mask()
    else:
        raise ValueError(f"load_digits: split must be 'train', 'test' or 'all', got {split!r}")
    X = np.ascontiguousarray(images[rows].astype(dtype) / dtype.type(16))
    y = np.ascontiguousarray(labels[rows], dtype=np.int64)
    return X, y
