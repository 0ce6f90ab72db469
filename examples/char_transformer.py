"""A character-level transformer trained on the text of Python's own documentation.

The corpus is ``pydoc_data.topics`` (what ``help("with")`` shows), which every CPython ships:
about 465,000 characters, the last 10 % held out for validation (``runtime.datasets.load_python_docs``).
The model is GPT-shaped: token and learned position embeddings, two pre-norm causal transformer
blocks (4 heads, d = 64, GELU MLP of 256), a final LayerNorm and a linear head to the ~100
characters. Adam trains it on random windows of 64 characters with a cross-entropy at every
position; the validation loss is measured on every non-overlapping window of the held-out text.
It falls below 0.6x the unigram entropy (3.25 nats/char, so 1.95) within a few hundred steps
(1.78 after 400, 1.44 after 1,000: the default, about 35 s of CPU time on two cores, compilation
included); then the example samples text from a prompt with a temperature.

    python examples/char_transformer.py [steps]
"""
from __future__ import annotations

import sys
import time

import numpy as np

import compiler as sp
from compiler import nn, optim
from runtime import datasets, fit

CONTEXT, DIM, HEADS, LAYERS = 64, 64, 4, 2


def build(vocab_size: int, context: int = CONTEXT, dim: int = DIM, heads: int = HEADS, layers: int = LAYERS):
    """(ids, logits, model): ids (batch, context) int64 -> next-character logits (batch, context, vocab)."""
    ids = sp.Input("ids", ("batch", context), "int64")
    with nn.names():
        tokens = nn.Embedding(vocab_size, dim, name="token_embedding")
        model = nn.Sequential(tokens, nn.PositionEmbedding(context),
                              *[nn.TransformerBlock(heads, mlp_ratio=4, causal=True) for _ in range(layers)],
                              nn.LayerNorm(), nn.Dense(vocab_size, name="head"))
        logits = model(ids)
    return ids, logits, model


def mean_loss(loss_function, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """The mean per-character loss over all windows (x, y), computed batch_size windows at a time."""
    total = 0.0
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        total += float(loss_function(ids=x[rows], targets=y[rows])) * len(x[rows])
    return total / len(x)


def sample(predict, corpus, prompt: str, length: int, temperature: float = 0.8, rng=None,
           context: int = CONTEXT) -> str:
    """`prompt` followed by `length` characters drawn one at a time from softmax(logits / temperature)
    (temperature 0: the most likely character). `predict` is the compiled inference function
    ids (1, context) -> logits (1, context, vocab). The model is causal, so a prompt shorter than the
    context sits at the start of the window and the logits at its last character ignore the rest."""
    if not prompt:
        raise ValueError("sample: the prompt must hold at least one character")
    if not temperature >= 0:
        raise ValueError(f"sample: temperature must be >= 0, got {temperature!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    ids = list(corpus.encode(prompt))
    window = np.zeros((1, context), np.int64)
    for _ in range(length):
        recent = ids[-context:]
        window[0, :len(recent)] = recent
        logits = predict(ids=window)[0, len(recent) - 1].astype(np.float64)
        if temperature == 0:
            ids.append(int(np.argmax(logits)))
            continue
        p = np.exp((logits - logits.max()) / temperature)
        ids.append(int(rng.choice(len(p), p=p / p.sum())))
    return corpus.decode(ids)


def main(steps: int = 1000, batch_size: int = 32, lr: float = 3e-3, eval_every: int = 250, seed: int = 0,
         prompt: str = "The with statement ", sample_length: int = 300, temperature: float = 0.8,
         progress: bool = True) -> dict:
    started = time.perf_counter()
    corpus = datasets.load_python_docs()
    ids, logits, model = build(corpus.vocab_size)
    targets = sp.Input("targets", ("batch", CONTEXT), "int64")
    loss = sp.cross_entropy(logits, targets)
    step = sp.compile_step(loss, optim.Adam(lr=lr), seed=seed)
    validation_loss = step.function(loss)   # the same loss on the live parameters, no update
    predict = step.function(logits)
    compiled = time.perf_counter() - started
    params = model.params
    print(f"{corpus}; unigram entropy {corpus.unigram_entropy:.3f} nats/char")
    print(f"{sum(int(np.prod(p.shape)) for p in params):,} parameters; compiled in {compiled:.1f} s "
          f"({len(step.kernels())} kernels)")

    x_val, y_val = corpus.windows("validation", CONTEXT)
    rng = np.random.default_rng(seed)

    def windows(epoch):  # each "epoch" is eval_every steps on fresh random windows
        x, y = corpus.random_windows("train", eval_every * batch_size, CONTEXT, rng)
        return {"ids": x, "targets": y}

    def validate():
        return {"val_loss": mean_loss(validation_loss, x_val, y_val)}

    rounds = max(steps // eval_every, 1)
    history = fit(step, windows, epochs=rounds, batch_size=batch_size, validate=validate, shuffle=False,
                  seed=seed, progress=progress)
    trained = time.perf_counter() - started
    val_loss = history["val_loss"][-1]
    ratio = val_loss / corpus.unigram_entropy
    print(f"validation loss {val_loss:.3f} nats/char ({ratio:.2f}x the unigram entropy) after "
          f"{rounds * eval_every} steps of {batch_size} windows; {trained:.1f} s wall time, compilation included")
    text = sample(predict, corpus, prompt, sample_length, temperature, np.random.default_rng(seed))
    print(f"--- sample (temperature {temperature}) ---\n{text}\n---")
    return {"val_loss": val_loss, "unigram_entropy": corpus.unigram_entropy, "ratio": ratio, "seconds": trained,
            "compile_seconds": compiled, "sample": text, "params": [p.name for p in params]}


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
