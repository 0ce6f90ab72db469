"""Model files for recurrent networks: the ``rnn``, ``lstm`` and ``gru`` layer types.

    [model]
    input_shape = [8, 8]                    # T steps of features: the digits as 8 rows of 8 pixels
    layers = [{ type = "lstm", units = 64 },                   # the last step's output: (batch, 64)
              { type = "dense", units = 10 }]

``model_file`` reads everything else and calls in here for these layer types (keys, defaults as in
torch.nn):

- ``rnn``: units, num_layers = 1, nonlinearity = "tanh" (or "relu"), bias = true, bidirectional = false,
  dropout = 0.0 (between the layers of the stack, while training), return_sequences = false
- ``lstm``, ``gru``: the same keys but nonlinearity

A recurrent layer reads (batch, T, features) -- ``input_shape = [T, features]``, or the sequences a
layer with ``return_sequences = true`` gives -- and returns the last layer's hidden state at the last
step, (batch, units), or with ``return_sequences = true`` at every step, (batch, T, units); a
bidirectional layer gives 2 * units, both directions' states after reading the whole sequence (or at
every step). Its Params
are named as torch.nn.LSTM's state dict under the layer's name: ``layer_0.weight_ih_l0`` (4 * units,
features), ``layer_0.bias_hh_l1``, ...
"""
from __future__ import annotations


from . import nn, ops
from .graph import Node
from .nn.recurrent import NONLINEARITIES
from .model_file_values import is_count, is_flag, is_probability

RECURRENT_LAYER_TYPES = ("rnn", "lstm", "gru")
RECURRENT_INPUT_LAYOUTS = {kind: ((3,), "(batch, steps, features): set model.input_shape = [T, features]")
                           for kind in RECURRENT_LAYER_TYPES}
LAYERS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def read_recurrent_layer(kind: str, entry) -> dict:
    """The arguments of a recurrent layer entry (a model_file.Table)."""
    arguments = {"hidden_size": entry.take("units", "a positive integer (the hidden state's size)", is_count),
                 "num_layers": entry.take("num_layers", "a positive integer", is_count, default=1),
                 "bias": entry.take("bias", "true or false", is_flag, default=True),
                 "bidirectional": entry.take("bidirectional", "true or false", is_flag, default=False),
                 "dropout": entry.take("dropout", "a probability in [0, 1)", is_probability, default=0.0),
                 "return_sequences": entry.take("return_sequences", "true (the output at every step) or false (the "
                                                "last step's)", is_flag, default=False)}
    if kind == "rnn":
        arguments["nonlinearity"] = entry.choice("nonlinearity", tuple(NONLINEARITIES), default="tanh")
    return arguments


class SequenceLayer:
    """A recurrent nn layer over (batch, T, features) as a model file uses it: one output node,
    the last step's hidden state (batch, units) or, with return_sequences, every step's (batch, T, units)
    (2 * units when bidirectional). Its Params are the recurrent layer's, named after it."""

    def __init__(self, kind: str, arguments: dict, name: str):
        arguments = dict(arguments)
        self.return_sequences = arguments.pop("return_sequences")
        self.recurrent = LAYERS[kind](batch_first=True, name=name, **arguments)
        self.units = self.recurrent.hidden_size

    @property
    def params(self) -> list:
        return self.recurrent.params

    @property
    def buffers(self) -> list:
        return []

    def __call__(self, x: Node) -> Node:
        output, final = self.recurrent(x)
        if self.return_sequences:
            return output
        h_n = final[0] if isinstance(final, tuple) else final
        if self.recurrent.bidirectional:  # the last layer's two directions, each after reading the whole sequence
            return ops.concat([h_n[-2], h_n[-1]], axis=1)
        return h_n[-1]  # the last layer's state after the last step


def make_recurrent_layer(kind: str, arguments: dict, name: str) -> SequenceLayer:
    return SequenceLayer(kind, arguments, name)
