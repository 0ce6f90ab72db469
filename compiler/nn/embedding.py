"""Embedding: a lookup table of vectors indexed by integer ids (torch.nn.Embedding); PositionEmbedding:
learned vectors added by position."""
from __future__ import annotations

from .. import ops
from ..errors import fail
from ..graph import Node
from .dense import check_count
from .init import Normal
from .layer import Layer, check_same_dim, concrete_dim, float_dtype

FLOAT_DTYPES = ("float32", "float64")


class Embedding(Layer):
    """``Embedding(num_embeddings, embedding_dim)(ids)``: row ``ids[...]`` of weight, shape (..., embedding_dim).

    weight is (num_embeddings, embedding_dim), drawn from N(0, 1) as torch.nn.Embedding's, unless `init`
    is a callable (shape, rng) -> ndarray. ids is an integer node of any shape; an id outside
    [0, num_embeddings) raises IndexError (``compiler.ops.embedding``). The gradient of weight adds the
    cotangent rows of equal ids (a scatter-add). ``padding_idx`` is torch's: that row starts as zeros and
    gets no gradient (it stays what it is), so padding tokens embed to a fixed vector.
    """

    kind = "embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: str = "float32", name: str | None = None,
                 init=None, *, padding_idx: int | None = None):
        super().__init__(name)
        layer = self.describe()
        self.num_embeddings = check_count(num_embeddings, "num_embeddings", layer)
        self.embedding_dim = check_count(embedding_dim, "embedding_dim", layer)
        self.padding_idx = _padding_index(padding_idx, self.num_embeddings, layer)
        if dtype not in FLOAT_DTYPES:
            raise fail(layer, f"dtype: expected one of {', '.join(FLOAT_DTYPES)}, got {dtype!r}")
        if init is not None and not callable(init):
            raise fail(layer, f"init: expected None (N(0, 1), as torch's) or a callable (shape, rng) -> ndarray, "
                              f"got {init!r}")
        self.dtype, self.init = dtype, init
        self.weight = None

    def build(self, ids: Node) -> None:
        init = Normal(1.0) if self.init is None else self.init
        if self.padding_idx is not None:
            init = _zero_row(init, self.padding_idx)
        self.weight = self.param("weight", (self.num_embeddings, self.embedding_dim), init, self.dtype)

    def check_reuse(self, ids: Node) -> None:
        pass

    def forward(self, ids: Node) -> Node:
        if ids.dtype not in ("int32", "int64"):
            raise fail(self.describe(), f"expected integer ids (int32 or int64), got dtype {ids.dtype}")
        rows = ops.embedding(self.weight, ids)
        if self.padding_idx is None:
            return rows
        # the padding row is read as it is but never learns: its positions pass no gradient back
        padding = ops.reshape(ops.equal(ids, self.padding_idx), ids.shape + (1,))
        return ops.where(padding, ops.stop_gradient(rows), rows)


def _padding_index(value, count: int, layer: str) -> int | None:
    """torch's padding_idx: None, or an id in [-count, count) (a negative one counts from the end)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -count <= value < count:
        raise fail(layer, f"padding_idx: expected None or an int in [{-count}, {count}), got {value!r}")
    return value % count


def _zero_row(init, row: int):
    """`init` with one row set to zeros, as torch.nn.Embedding starts its padding row."""
    def initialise(shape, rng):
        values = init(shape, rng).copy()
        values[row] = 0
        return values
    return initialise


class PositionEmbedding(Layer):
    """Learned positions: ``x + weight[:T]`` for x of shape (..., T, E), weight (max_length, E) drawn
    from N(0, 1) as an Embedding's (GPT's ``wpe``: the embedding of the ids 0..T-1, added). E comes
    from the first input; T may be any length up to max_length."""

    kind = "position_embedding"

    def __init__(self, max_length: int, name: str | None = None, init=None):
        super().__init__(name)
        self.max_length = check_count(max_length, "max_length", self.describe())
        if init is not None and not callable(init):
            raise fail(self.describe(), f"init: expected None (N(0, 1)) or a callable (shape, rng) -> ndarray, "
                                        f"got {init!r}")
        self.init = init
        self.weight = None

    def build(self, x: Node) -> None:
        if x.ndim < 2:
            raise fail(self.describe(), f"expected an input of shape (..., T, E), got shape {x.shape}")
        dtype = float_dtype(self, x)
        features = concrete_dim(self, x, -1, "features")
        self.weight = self.param("weight", (self.max_length, features),
                                 Normal(1.0) if self.init is None else self.init, dtype)

    def check_reuse(self, x: Node) -> None:
        check_same_dim(self, x, -1, "features")

    def forward(self, x: Node) -> Node:
        length = x.shape[-2]
        if not isinstance(length, int) or length > self.max_length:
            raise fail(self.describe(), f"expected at most max_length = {self.max_length} positions (axis -2), "
                                        f"got {length!r} in shape {x.shape}")
        return x + self.weight[:length]
