"""RNN, LSTM and GRU: torch.nn's recurrent layers, each layer one ``compiler.scan`` over time.

Every layer of the stack (and, when bidirectional, each direction) computes
its input projection for all time steps before its loop, as one matrix product over (T * batch, input_size) rows:
``x @ weight_ih^T + bias_ih`` (and, where the equations allow, ``bias_hh``).
Only ``h @ weight_hh^T`` and the gate arithmetic are inside the loop, so the
loop body is one small product and one fused elementwise kernel per step, and
its reverse (backprop through time) is the same. T and the batch may be
symbolic dimensions.

The equations, gate order and Params are torch's: weight_ih_l<k> is
(gates * H, input size of layer k), weight_hh_l<k> is (gates * H, H), with
the gates stacked in torch's order (LSTM i, f, g, o; GRU r, z, n) and the
reverse direction's Params suffixed ``_reverse``, so a torch state dict loads
by name; every Param starts uniform(+-1/sqrt(H)).
"""
from __future__ import annotations

import math

from .. import ops
from ..errors import fail
from ..graph import Node, const
from ..scan import scan
from .dense import check_count, check_flag, check_probability
from .init import Uniform
from .layer import Layer, concrete_dim, float_dtype

NONLINEARITIES = {"tanh": ops.tanh, "relu": ops.relu}


class Recurrent(Layer):
    """The stack of layers and the call protocol shared by RNN, LSTM and GRU.

    ``layer(x, state=None) -> (output, final_state)``: x is (T, batch, input_size), or (batch, T,
    input_size) when batch_first, or unbatched (T, input_size); output is the last layer's hidden
    state at every step, (T, batch, D * H) (batch first when batch_first); final_state is h_n of shape
    (D * num_layers, batch, H) -- for an LSTM the pair (h_n, c_n) -- and `state` gives the initial one
    in that form (zeros when None). Unbatched input gives (T, D * H) and (D * num_layers, H).

    D is 2 when bidirectional (a second scan per layer runs from the last step to the first, with
    Params suffixed ``_reverse``; the output concatenates both directions' states at each step, and
    h_n holds layer k's directions at 2k and 2k + 1), else 1. `dropout` > 0 drops the outputs of
    every layer but the last during training (``compiler.inference`` turns it off)."""

    gates = 1            # blocks of H rows in each weight
    state_size = 1       # carries per layer: h (and c for an LSTM)

    def __init__(self, hidden_size: int, num_layers: int = 1, batch_first: bool = False, bias: bool = True,
                 dropout: float = 0.0, bidirectional: bool = False, name: str | None = None):
        super().__init__(name)
        layer = self.describe()
        self.hidden_size = check_count(hidden_size, "hidden_size", layer)
        self.num_layers = check_count(num_layers, "num_layers", layer)
        self.batch_first = check_flag(batch_first, "batch_first", layer)
        self.use_bias = check_flag(bias, "bias", layer)
        self.dropout = check_probability(dropout, "dropout", layer)
        self.bidirectional = check_flag(bidirectional, "bidirectional", layer)
        self.directions = 2 if bidirectional else 1
        self.weights = []    # per layer and direction, as h_n orders them: (weight_ih, weight_hh, bias_ih, bias_hh)

    # ---- Params -------------------------------------------------------------------------------

    def build(self, x: Node) -> None:
        dtype = float_dtype(self, x)
        size, rows, init = self.hidden_size, self.gates * self.hidden_size, Uniform(1 / math.sqrt(self.hidden_size))
        features = concrete_dim(self, x, -1, "input size")
        for k in range(self.num_layers):
            fan_in = features if k == 0 else self.directions * size
            for suffix in ("", "_reverse")[:self.directions]:
                weight_ih = self.param(f"weight_ih_l{k}{suffix}", (rows, fan_in), init, dtype)
                weight_hh = self.param(f"weight_hh_l{k}{suffix}", (rows, size), init, dtype)
                bias_ih = self.param(f"bias_ih_l{k}{suffix}", (rows,), init, dtype) if self.use_bias else None
                bias_hh = self.param(f"bias_hh_l{k}{suffix}", (rows,), init, dtype) if self.use_bias else None
                self.weights.append((weight_ih, weight_hh, bias_ih, bias_hh))

    def check_reuse(self, x: Node) -> None:
        first, now = self._built_for[-1], x.shape[-1]
        if now != first:
            raise fail(self.describe(), f"called on an input with {now!r} features (shape {x.shape}); its Params "
                                        f"were made for {first!r} (the first input's shape {self._built_for})")

    # ---- the call -----------------------------------------------------------------------------

    def __call__(self, x: Node, state=None):
        if not isinstance(x, Node):
            raise fail(self.describe(), f"expected a graph node (such as compiler.Input), got {type(x).__name__}")
        layout = "(batch, T, input_size)" if self.batch_first else "(T, batch, input_size)"
        if x.ndim not in (2, 3):
            raise fail(self.describe(), f"expected an input of shape {layout} or unbatched (T, input_size), "
                                        f"got shape {x.shape}")
        if self._built_for is None:
            self.build(x)
            self._built_for = x.shape
        else:
            self.check_reuse(x)
        batched = x.ndim == 3
        if not batched:
            x = ops.reshape(x, (x.shape[0], 1, x.shape[1]))
        elif self.batch_first:
            x = ops.transpose(x, 1, 0, 2)
        states = self._initial_states(x, state, batched)
        finals = []
        for k in range(self.num_layers):
            if k > 0 and self.dropout:
                x = ops.dropout(x, self.dropout, training=True)
            outputs = []
            for d in range(self.directions):
                i = k * self.directions + d
                output, final = self.layer(x, self.weights[i], states[i], reverse=d == 1)
                outputs.append(output)
                finals.append(final)
            x = outputs[0] if self.directions == 1 else ops.concat(outputs, axis=2)
        if self.batch_first and batched:
            x = ops.transpose(x, 1, 0, 2)
        final_state = tuple(ops.stack([f[j] for f in finals]) for j in range(self.state_size))
        if not batched:
            x = ops.reshape(x, (x.shape[0], x.shape[2]))
            final_state = tuple(ops.reshape(s, (s.shape[0], s.shape[2])) for s in final_state)
        return x, (final_state if self.state_size > 1 else final_state[0])

    def _initial_states(self, x: Node, state, batched: bool) -> list:
        """Per layer and direction, the tuple of initial carries, each (batch, H)."""
        batch, size, dtype, count = x.shape[1], self.hidden_size, x.dtype, len(self.weights)
        if state is None:
            zeros = ops.broadcast_to(const(0.0, dtype), (batch, size))
            return [(zeros,) * self.state_size] * count
        parts = (state,) if self.state_size == 1 else state
        what = "h_0" if self.state_size == 1 else "(h_0, c_0)"
        if not isinstance(parts, tuple) or len(parts) != self.state_size or not all(isinstance(p, Node) for p in parts):
            raise fail(self.describe(), f"state: expected {what} as graph nodes, got {state!r}")
        expected = (count, batch, size) if batched else (count, size)
        layout = "(D * num_layers, batch, hidden_size)" if batched else "(D * num_layers, hidden_size)"
        for p in parts:
            if p.shape != expected or p.dtype != dtype:
                raise fail(self.describe(), f"state: expected {what} of shape {expected} and dtype {dtype} "
                                            f"{layout}, got shape {p.shape} {p.dtype}")
        parts = [p if batched else ops.reshape(p, (count, 1, size)) for p in parts]
        return [tuple(p[i] for p in parts) for i in range(count)]

    def layer(self, x: Node, weights: tuple, state: tuple, reverse: bool = False) -> tuple:
        """(outputs (T, batch, H), final carries) of one layer and direction over x (T, batch, features)."""
        weight_ih, weight_hh, bias_ih, bias_hh = weights
        projected = input_projection(x, weight_ih, self.hoisted_bias(bias_ih, bias_hh))
        weight_hh_t = ops.transpose(weight_hh, 1, 0)
        loop_bias = self.loop_bias(bias_hh)

        def step(carry, p_t):
            new = self.cell(carry, p_t, carry[0] @ weight_hh_t, loop_bias)
            return new, new[0]
        final, outputs = scan(step, state, projected, reverse=reverse)
        return outputs, final

    def hoisted_bias(self, bias_ih, bias_hh):
        """The bias added to the input projection before the loop (None: none)."""
        if bias_ih is None:
            return None
        return bias_ih + bias_hh

    def loop_bias(self, bias_hh):
        """A bias the loop body adds itself (GRU's b_hn), None for most."""
        return None

    def cell(self, carry: tuple, projected: Node, recurrent: Node, loop_bias) -> tuple:
        """The new carries from the carries, this step's input projection (batch, gates * H) and h @ W_hh^T."""
        raise NotImplementedError

    def gate(self, value: Node, i: int) -> Node:
        """Block i of H columns of a (batch, gates * H) value."""
        size = self.hidden_size
        return value[:, i * size:(i + 1) * size]


def input_projection(x: Node, weight_ih: Node, bias) -> Node:
    """x @ weight_ih^T + bias for x (T, batch, I): one product over the (T * batch, I) rows, as (T, batch, G)."""
    steps, batch, features = x.shape
    rows = ops.reshape(x, (-1, features)) @ ops.transpose(weight_ih, 1, 0)
    projected = ops.reshape(rows, (steps, batch, weight_ih.shape[0]))
    return projected if bias is None else projected + bias  # the bias joins the loop storing the slices


class RNN(Recurrent):
    """torch.nn.RNN: h_t = nonlinearity(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), "tanh" or "relu".

    See Recurrent for the call: ``output, h_n = rnn(x, h_0=None)``."""

    kind = "rnn"

    def __init__(self, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh", batch_first: bool = False,
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False, name: str | None = None):
        super().__init__(hidden_size, num_layers, batch_first, bias, dropout, bidirectional, name)
        if nonlinearity not in NONLINEARITIES:
            raise fail(self.describe(), f"nonlinearity: expected one of {', '.join(NONLINEARITIES)}, "
                                        f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def cell(self, carry, projected, recurrent, loop_bias):
        return (NONLINEARITIES[self.nonlinearity](projected + recurrent),)


class LSTM(Recurrent):
    """torch.nn.LSTM, gates stacked i, f, g, o:

        i, f, o = sigmoid(.), g = tanh(.)   of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh, block by block
        c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t)

    See Recurrent for the call: ``output, (h_n, c_n) = lstm(x, (h_0, c_0))``."""

    kind = "lstm"
    gates = 4
    state_size = 2

    def cell(self, carry, projected, recurrent, loop_bias):
        h, c = carry
        z = projected + recurrent
        i, f = ops.sigmoid(self.gate(z, 0)), ops.sigmoid(self.gate(z, 1))
        g, o = ops.tanh(self.gate(z, 2)), ops.sigmoid(self.gate(z, 3))
        c = f * c + i * g
        return o * ops.tanh(c), c


class GRU(Recurrent):
    """torch.nn.GRU, gates stacked r, z, n:

        r = sigmoid(x_t W_ir^T + b_ir + h W_hr^T + b_hr),  z = sigmoid(x_t W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x_t W_in^T + b_in + r * (h W_hn^T + b_hn)),  h_t = (1 - z) * n + z * h

    The loop adds b_hn (inside r * (.)); the other biases join the input projection before it.
    See Recurrent for the call: ``output, h_n = gru(x, h_0=None)``."""

    kind = "gru"
    gates = 3

    def hoisted_bias(self, bias_ih, bias_hh):
        if bias_ih is None:
            return None
        size = self.hidden_size
        return bias_ih + ops.concat([bias_hh[:2 * size], ops.broadcast_to(const(0.0, bias_hh.dtype), (size,))])

    def loop_bias(self, bias_hh):
        return None if bias_hh is None else bias_hh[2 * self.hidden_size:]

    def cell(self, carry, projected, recurrent, loop_bias):
        (h,) = carry
        r = ops.sigmoid(self.gate(projected, 0) + self.gate(recurrent, 0))
        z = ops.sigmoid(self.gate(projected, 1) + self.gate(recurrent, 1))
        hn = self.gate(recurrent, 2) if loop_bias is None else self.gate(recurrent, 2) + loop_bias
        n = ops.tanh(self.gate(projected, 2) + r * hn)
        return ((1 - z) * n + z * h,)
