"""The python_docs character corpus: the text CPython ships, its vocabulary, splits, windows and entropy."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from pydoc_data.topics import topics

from runtime.char_corpus import CharCorpus
from runtime.datasets import load_python_docs


def test_the_text_is_the_topics_joined_in_sorted_key_order():
    corpus = load_python_docs()
    assert corpus.text == "".join(topics[key] for key in sorted(topics))
    assert 400_000 < len(corpus) < 600_000   # about 465,000 characters in CPython 3.11 to 3.13
    assert corpus.chars == "".join(sorted(set(corpus.text))) and 80 < corpus.vocab_size < 130


def test_the_last_tenth_is_the_validation_split():
    corpus = load_python_docs()
    train, validation = corpus.split("train"), corpus.split("validation")
    assert len(train) + len(validation) == len(corpus)
    assert len(validation) == round(len(corpus) / 10)
    assert corpus.decode(validation) == corpus.text[len(train):]
    with pytest.raises(ValueError, match="split must be"):
        corpus.split("test")


def test_encode_and_decode_round_trip():
    corpus = load_python_docs()
    text = "def f(x):\n    return x ** 2  # squares"
    ids = corpus.encode(text)
    assert ids.dtype == np.int64 and corpus.decode(ids) == text
    assert [corpus.chars[i] for i in ids] == list(text)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        corpus.encode("caf\u00e9\u2603")
    with pytest.raises(ValueError, match="ids must be integers in"):
        corpus.decode([0, corpus.vocab_size])


def test_unigram_entropy_in_nats():
    corpus = load_python_docs()
    counts = Counter(corpus.text)
    expected = -sum(c / len(corpus) * math.log(c / len(corpus)) for c in counts.values())
    assert corpus.unigram_entropy == pytest.approx(expected, rel=1e-12)
    assert 3.0 < corpus.unigram_entropy < 3.5
    assert CharCorpus("abab").unigram_entropy == pytest.approx(math.log(2))


def test_windows_are_followed_by_their_targets():
    corpus = load_python_docs()
    x, y = corpus.random_windows("train", 50, 16, np.random.default_rng(0))
    assert x.shape == y.shape == (50, 16) and x.dtype == y.dtype == np.int64
    train_text = corpus.decode(corpus.split("train"))
    for row_x, row_y in zip(x, y):
        start = train_text.find(corpus.decode(row_x) + corpus.decode(row_y[-1:]))
        assert start >= 0
        np.testing.assert_array_equal(row_x[1:], row_y[:-1])
    x, y = corpus.windows("validation", 64)
    assert x.shape == ((len(corpus.split("validation")) - 1) // 64, 64)
    np.testing.assert_array_equal(x.reshape(-1), corpus.split("validation")[:x.size])
    np.testing.assert_array_equal(y.reshape(-1), corpus.split("validation")[1:x.size + 1])
    with pytest.raises(ValueError, match="context must be an int"):
        corpus.windows("validation", 0)
