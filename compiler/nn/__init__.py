"""Layers for users who think in layers, not Params (``compiler.nn``).

A layer is a callable made once and applied to graph nodes: its first call
infers the input sizes and creates its Params, named ``<layer>.<param>``
(``conv2d.weight``, ``dense_1.bias``); later calls reuse them (weight sharing).
Constructors follow ``torch.nn`` with the input size left out
(``Conv2d(out_channels, kernel_size, ...)``, ``Dense(units, ...)``), and Params
start as PyTorch's do unless ``init=`` says otherwise.

Names: an unnamed layer is named after its kind, numbered within the current
naming scope (``dense``, ``dense_1``, ...). Build a model inside
``with compiler.nn.names():`` to give it the same names every time it is built
(see ``naming``).

    import compiler as sp
    from compiler import nn
    x = sp.Input("x", ("batch", 1, 8, 8))
    with nn.names():
        model = nn.Sequential(nn.Conv2d(16, 3, padding=1, activation="relu"), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Dense(10))
        logits = model(x)
    model.params   # [conv2d.weight, conv2d.bias, dense.weight, dense.bias]
"""
from .activations import ACTIVATIONS, GELU, ReLU, Sigmoid, Tanh
from .attention import MultiHeadAttention
from .convolution import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from .dense import Dense, Linear
from .dropout import Dropout
from .embedding import Embedding, PositionEmbedding
from .flatten import Flatten
from .init import WEIGHT_INITS, Normal, Uniform
from .layer import Layer
from .layer_norm import LayerNorm, RMSNorm
from .naming import names
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, InstanceNorm1d, InstanceNorm2d
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d,
                      MaxPool2d)
from .recurrent import GRU, LSTM, RNN
from .resampling import PixelShuffle, PixelUnshuffle, Upsample
from .sequential import Sequential
from .transformer import TransformerBlock

__all__ = ["Layer", "Dense", "Linear", "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "MaxPool1d", "AvgPool1d",
           "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AdaptiveAvgPool1d", "BatchNorm1d", "BatchNorm2d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Dropout",
           "Flatten", "ReLU", "Tanh", "GELU", "Sigmoid", "Sequential", "Embedding", "PositionEmbedding", "LayerNorm",
           "RMSNorm", "MultiHeadAttention", "TransformerBlock", "RNN", "LSTM", "GRU", "names", "ACTIVATIONS", "WEIGHT_INITS", "Uniform", "Normal"]
__all__ += ["Upsample", "PixelShuffle", "PixelUnshuffle", "ConvTranspose1d"]
