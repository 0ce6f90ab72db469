"""Model files for sequences: the token-id input, the char corpus, and the layers of sequence models.

    [model]
    input_tokens = 64                       # each example: 64 character ids; its labels: the next 64
    layers = [{ type = "embedding", dim = 64 },
              { type = "position_embedding" },
              { type = "transformer_block", num_heads = 4 },
              { type = "layer_norm" },
              { type = "dense", units = 103 }]    # one logit per character of the vocabulary

    [training]
    dataset = "python_docs"

``model_file`` reads everything else and calls in here for these layer types (keys, defaults as in
torch.nn):

- ``embedding``: dim, num_embeddings = the dataset's vocabulary; token ids (batch, T) -> (batch, T, dim)
- ``position_embedding``: learned vectors added by position, one per position of the input
- ``transformer_block``: num_heads, mlp_ratio = 4, causal = true, dropout = 0.0, eps = 1e-5 (pre-norm,
  GELU MLP; its Params named as torch.nn.TransformerEncoderLayer's: ``layer_2.self_attn.in_proj_weight``)
- ``multi_head_attention``: num_heads, causal = false (self-attention, no residual)
- ``layer_norm``: eps = 1e-5; ``rms_norm``: eps = 1e-6 (over the last axis)

A transformer also reads the digits as 8 rows of 8 pixels (``input_shape = [8, 8]``; flatten before the
last dense layer).
"""
from __future__ import annotations

import functools

from . import nn
from .errors import fail
from .model_file_values import is_count, is_flag, is_positive, is_probability

SEQUENCE_LAYER_TYPES = ("embedding", "position_embedding", "transformer_block", "multi_head_attention",
                        "layer_norm", "rms_norm")
SEQUENCE = "(batch, positions, features)"
SEQUENCE_INPUT_LAYOUTS = {  # ranks of (batch, ...) each layer type takes, spelled for errors
    "embedding": ((2,), "(batch, positions) of token ids: set model.input_tokens"),
    "position_embedding": ((3,), SEQUENCE),
    "transformer_block": ((3,), SEQUENCE),
    "multi_head_attention": ((3,), SEQUENCE),
    "layer_norm": ((2, 3, 4), "(batch, ..., features)"),
    "rms_norm": ((2, 3, 4), "(batch, ..., features)"),
}


@functools.cache
def python_docs_sizes() -> tuple:
    """(vocabulary size, characters in the validation split) of the python_docs corpus."""
    from runtime.datasets import load_python_docs
    corpus = load_python_docs()
    return corpus.vocab_size, len(corpus.split("validation"))


def check_input_keys(table, tokens: bool, dataset_name: str) -> None:
    """input_tokens goes with a dataset of token ids, input_features and input_shape with the others."""
    for key in ("input_features", "input_shape") if tokens else ("input_tokens",):
        if key in table.content:
            expected = ("input_tokens = T (each example is T token ids, such as 64)" if tokens
                        else "input_features or input_shape (input_tokens is for token datasets such as python_docs)")
            raise table.error(table.key(key), f"set for dataset \"{dataset_name}\"; expected {expected}")


def read_input_tokens(table, dataset_name: str) -> int:
    """model.input_tokens: the context length T of a text dataset (each example is T token ids)."""
    longest = python_docs_sizes()[1] - 1
    return table.take("input_tokens", f"a positive integer (the ids in each example, such as 64) of at most "
                      f"{longest} (the validation text of dataset \"{dataset_name}\")",
                      lambda v: is_count(v) and v <= longest)


def read_sequence_layer(kind: str, entry, vocabulary: int | None, dtype: str) -> dict:
    """The nn constructor arguments of a sequence layer entry (a model_file.Table)."""
    if kind == "embedding":
        return {"embedding_dim": entry.take("dim", "a positive integer", is_count),
                "num_embeddings": entry.take("num_embeddings", "a positive integer (the vocabulary size)", is_count,
                                             default=vocabulary),
                "dtype": dtype}
    if kind in ("transformer_block", "multi_head_attention"):
        arguments = {"num_heads": entry.take("num_heads", "a positive integer dividing the features", is_count),
                     "causal": entry.take("causal", "true or false", is_flag, default=kind == "transformer_block")}
        if kind == "transformer_block":
            arguments.update(mlp_ratio=entry.take("mlp_ratio", "a number > 0", is_positive, default=4),
                             dropout=entry.take("dropout", "a probability in [0, 1)",
                                                is_probability, default=0.0),
                             eps=entry.take("eps", "a number > 0", is_positive, default=1e-5))
        return arguments
    if kind in ("layer_norm", "rms_norm"):
        return {"eps": entry.take("eps", "a number > 0", is_positive, default=1e-5 if kind == "layer_norm" else 1e-6)}
    return {}  # position_embedding


def make_sequence_layer(kind: str, arguments: dict, x, name: str) -> nn.Layer:
    """The nn layer of a sequence layer entry for its input x."""
    if kind == "embedding":
        if arguments["num_embeddings"] is None:
            raise fail("embedding", "num_embeddings: expected the vocabulary size (the dataset has no vocabulary)")
        return nn.Embedding(name=name, **arguments)
    if kind == "position_embedding":
        return nn.PositionEmbedding(x.shape[1], name=name)
    if kind == "transformer_block":
        return nn.TransformerBlock(name=name, **arguments)
    if kind == "multi_head_attention":
        return nn.MultiHeadAttention(name=name, **arguments)
    if kind == "layer_norm":
        return nn.LayerNorm(name=name, **arguments)
    return nn.RMSNorm(name=name, **arguments)
