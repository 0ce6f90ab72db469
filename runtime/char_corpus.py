"""A character corpus that ships with CPython: the text of Python's documentation topics.

``pydoc_data.topics.topics`` (the pages ``help("if")``, ``help("with")``, ... show) maps a
topic name to its text; joined in sorted key order they are about 465,000 characters of English
prose and Python code, with about 100 distinct characters. Nothing is downloaded, and every
CPython has it, so a character-level language model can be trained and checked anywhere.

    corpus = load_python_docs()
    corpus.vocab_size, corpus.unigram_entropy          # about 103, 3.25 nats/char
    x, y = corpus.random_windows("train", 32, 64, rng) # (32, 64) ids and the ids one step later
    corpus.decode(corpus.encode("def f():"))

The vocabulary is the sorted set of the text's characters (id i is ``chars[i]``). The last 10 % of
the ids is the validation split, the rest the training split.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["CharCorpus", "load_python_docs", "VALIDATION_FRACTION"]

VALIDATION_FRACTION = 0.1


class CharCorpus:
    """A text as character ids: vocabulary, encode/decode, the training and validation splits, and windows."""

    def __init__(self, text: str, name: str = "text", validation_fraction: float = VALIDATION_FRACTION):
        if not text:
            raise ValueError(f"{name}: the text is empty")
        if not 0 < validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
        self.name, self.text = name, text
        self.chars = "".join(sorted(set(text)))
        self._index = {c: i for i, c in enumerate(self.chars)}
        self.ids = self.encode(text)
        self.ids.setflags(write=False)
        cut = len(self.ids) - int(round(len(self.ids) * validation_fraction))
        self.splits = {"train": self.ids[:cut], "validation": self.ids[cut:]}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.text)

    def encode(self, text: str) -> np.ndarray:
        """The ids of `text`'s characters (int64); a character outside the vocabulary is a ValueError."""
        try:
            return np.fromiter((self._index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as error:
            raise ValueError(f"{self.name}: character {error.args[0]!r} is not in the vocabulary of "
                             f"{self.vocab_size} characters") from None

    def decode(self, ids) -> str:
        """The text of a sequence of ids; an id outside [0, vocab_size) is a ValueError."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"{self.name}: ids must be integers in [0, {self.vocab_size}), got {ids!r}")
        return "".join(self.chars[i] for i in ids.tolist())

    @functools.cached_property
    def unigram_entropy(self) -> float:
        """The entropy of the character frequencies of the whole text, in nats per character: the loss of
        the best model that ignores context."""
        p = np.bincount(self.ids, minlength=self.vocab_size) / len(self.ids)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    def split(self, split: str) -> np.ndarray:
        if split not in self.splits:
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        return self.splits[split]

    def random_windows(self, split: str, count: int, context: int, rng: np.random.Generator) -> tuple:
        """`count` windows of `context` ids at uniformly random offsets of `split`: (x, y), both (count,
        context) int64, y the ids one position after x's (the next-character targets)."""
        ids = self._fitting(split, context)
        starts = rng.integers(0, len(ids) - context, size=count)
        rows = starts[:, None] + np.arange(context)
        return np.ascontiguousarray(ids[rows]), np.ascontiguousarray(ids[rows + 1])

    def windows(self, split: str, context: int) -> tuple:
        """Every non-overlapping window of `context` ids of `split`, in order (the remainder is left out):
        (x, y) as in `random_windows`. Each target of the split (but the first) is in exactly one."""
        ids = self._fitting(split, context)
        count = (len(ids) - 1) // context
        x = ids[:count * context].reshape(count, context)
        y = ids[1:count * context + 1].reshape(count, context)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def _fitting(self, split: str, context: int) -> np.ndarray:
        ids = self.split(split)
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or not 1 <= context < len(ids):
            raise ValueError(f"context must be an int in [1, {len(ids) - 1}] for the {split} split of "
                             f"{self.name}, got {context!r}")
        return ids

    def __repr__(self):
        return (f"<CharCorpus {self.name}: {len(self.text):,} characters, {self.vocab_size} in the vocabulary, "
                f"{len(self.splits['train']):,} train / {len(self.splits['validation']):,} validation>")


@functools.cache
def python_docs_text() -> str:
    """The values of ``pydoc_data.topics.topics`` joined in sorted key order."""
    from pydoc_data.topics import topics
    return "".join(topics[key] for key in sorted(topics))


@functools.cache
def load_python_docs() -> CharCorpus:
    """The text of Python's documentation topics as a CharCorpus (the last 10 % held out for validation)."""
    return CharCorpus(python_docs_text(), "python_docs")
