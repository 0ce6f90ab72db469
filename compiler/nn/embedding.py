"""Embedding: a lookup table of vectors indexed by integer ids (torch.nn.Embedding)."""
from __future__ import annotations

from .. import ops
from ..errors import fail
from ..graph import Node
from .dense import check_count
from .init import Normal
from .layer import Layer

FLOAT_DTYPES = ("float32", "float64")


class Embedding(Layer):
    """``Embedding(num_embeddings, embedding_dim)(ids)``: row ``ids[...]`` of weight, shape (..., embedding_dim).

    weight is (num_embeddings, embedding_dim), drawn from N(0, 1) as torch.nn.Embedding's, unless `init`
    is a callable (shape, rng) -> ndarray. ids is an integer node of any shape; an id outside
    [0, num_embeddings) raises IndexError (``compiler.ops.embedding``). The gradient of weight adds the
    cotangent rows of equal ids (a scatter-add).
    """

    kind = "embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: str = "float32", name: str | None = None,
                 init=None):
        super().__init__(name)
        layer = self.describe()
        self.num_embeddings = check_count(num_embeddings, "num_embeddings", layer)
        self.embedding_dim = check_count(embedding_dim, "embedding_dim", layer)
        if dtype not in FLOAT_DTYPES:
            raise fail(layer, f"dtype: expected one of {', '.join(FLOAT_DTYPES)}, got {dtype!r}")
        if init is not None and not callable(init):
            raise fail(layer, f"init: expected None (N(0, 1), as torch's) or a callable (shape, rng) -> ndarray, "
                              f"got {init!r}")
        self.dtype, self.init = dtype, init
        self.weight = None

    def build(self, ids: Node) -> None:
        self.weight = self.param("weight", (self.num_embeddings, self.embedding_dim),
                                 Normal(1.0) if self.init is None else self.init, self.dtype)

    def check_reuse(self, ids: Node) -> None:
        pass

    def forward(self, ids: Node) -> Node:
        if ids.dtype not in ("int32", "int64"):
            raise fail(self.describe(), f"expected integer ids (int32 or int64), got dtype {ids.dtype}")
        return ops.embedding(self.weight, ids)
