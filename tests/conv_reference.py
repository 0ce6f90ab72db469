"""Convolution and pooling in plain NumPy, written from their definitions (PyTorch's layouts and defaults).

The oracle of the conv/pool rows of ``test_grad_ops.py`` and ``test_compile_ops.py`` and of the
fuzzer's window family. Each function pads its input explicitly with ``np.pad`` and then loops:
a convolution over its kernel taps (one strided slice of the padded input per tap, contracted with
that tap's weights), a pooling over its output positions (one window at a time). Nothing here
calls symprop or shares its code.
"""
from __future__ import annotations

import math

import numpy as np


def as_tuple(value, n: int) -> tuple:
    return (int(value),) * n if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)


def conv_padding(padding, kernel: tuple, dilation: tuple) -> list:
    """(low, high) per spatial axis; "same" puts the odd element of the total on the high side, as PyTorch."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in as_tuple(padding, len(kernel))]


def output_length(length: int, kernel: int, stride: int, dilation: int, low: int, high: int) -> int:
    return (length + low + high - dilation * (kernel - 1) - 1) // stride + 1


def conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """N-d cross-correlation: x (N, C, *size), w (O, C/groups, *kernel), b (O,) or None."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    spatial = x.ndim - 2
    kernel = w.shape[2:]
    stride, dilation = as_tuple(stride, spatial), as_tuple(dilation, spatial)
    pads = conv_padding(padding, kernel, dilation)
    padded = np.pad(x, [(0, 0), (0, 0)] + pads)
    sizes = [output_length(x.shape[2 + j], kernel[j], stride[j], dilation[j], *pads[j]) for j in range(spatial)]
    n, channels, out_channels = x.shape[0], x.shape[1], w.shape[0]
    per_group, outs_per_group = channels // groups, out_channels // groups
    out = np.zeros((n, out_channels, *sizes))
    for g in range(groups):
        xs = padded[:, g * per_group:(g + 1) * per_group]
        ws = w[g * outs_per_group:(g + 1) * outs_per_group]
        for tap in np.ndindex(*kernel):
            # the elements this tap reads for every output position: start k*d, step s
            index = tuple(slice(k * d, k * d + s * (m - 1) + 1, s)
                          for k, d, s, m in zip(tap, dilation, stride, sizes))
            slab = xs[(slice(None), slice(None)) + index]                 # (N, C/g, *sizes)
            weights = ws[(slice(None), slice(None)) + tap]                # (O/g, C/g)
            out[:, g * outs_per_group:(g + 1) * outs_per_group] += np.tensordot(
                slab, weights, axes=([1], [1])).transpose(0, spatial + 1, *range(1, spatial + 1))
    if b is not None:
        out += np.asarray(b, np.float64).reshape((out_channels,) + (1,) * spatial)
    return out


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return conv(x, w, b, stride, padding, dilation, groups)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    return conv(x, w, b, stride, padding, dilation, groups)


def _pool_windows(x, kernel_size, stride, padding, fill):
    """(padded x, kernel, stride, output sizes, window origin function) of a 2-D pooling."""
    kernel = as_tuple(kernel_size, 2)
    stride = kernel if stride is None else as_tuple(stride, 2)
    pads = as_tuple(padding, 2)
    padded = np.pad(np.asarray(x, np.float64), [(0, 0), (0, 0)] + [(p, p) for p in pads], constant_values=fill)
    sizes = [output_length(x.shape[2 + j], kernel[j], stride[j], 1, pads[j], pads[j]) for j in range(2)]
    return padded, kernel, stride, pads, sizes


def max_pool2d(x, kernel_size, stride=None, padding=0):
    padded, kernel, stride, _, (ho, wo) = _pool_windows(x, kernel_size, stride, padding, -np.inf)
    out = np.empty(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            window = padded[:, :, i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


def max_pool2d_backward(x, g, kernel_size, stride=None, padding=0):
    """d sum(max_pool2d(x) * g) / dx with each window's cotangent on the FIRST maximum of the window in
    row-major order (PyTorch's convention at ties), among the window's elements inside x (padding never
    receives it, even where x is -inf)."""
    padded, kernel, stride, pads, (ho, wo) = _pool_windows(x, kernel_size, stride, padding, -np.inf)
    grad = np.zeros(padded.shape)
    n, c, height, width = x.shape
    for a in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    rows = [r for r in range(i * stride[0], i * stride[0] + kernel[0]) if pads[0] <= r < pads[0] + height]
                    cols = [q for q in range(j * stride[1], j * stride[1] + kernel[1]) if pads[1] <= q < pads[1] + width]
                    window = padded[a, ch][np.ix_(rows, cols)]
                    first = int(np.argmax(window))  # the first occurrence in row-major order
                    grad[a, ch, rows[first // len(cols)], cols[first % len(cols)]] += g[a, ch, i, j]
    return grad[:, :, pads[0]:pads[0] + height, pads[1]:pads[1] + width]


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    padded, kernel, stride, pads, (ho, wo) = _pool_windows(x, kernel_size, stride, padding, 0.0)
    inside = np.pad(np.ones(x.shape[2:]), [(p, p) for p in pads])
    out = np.empty(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            rows = slice(i * stride[0], i * stride[0] + kernel[0])
            cols = slice(j * stride[1], j * stride[1] + kernel[1])
            divisor = kernel[0] * kernel[1] if count_include_pad else inside[rows, cols].sum()
            out[:, :, i, j] = padded[:, :, rows, cols].sum(axis=(2, 3)) / divisor
    return out


def flatten(x, start_dim=1, end_dim=-1):
    x = np.asarray(x)
    if x.ndim == 0:
        return x.reshape(1)
    start, end = start_dim % x.ndim, end_dim % x.ndim
    return x.reshape(x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])


# ---- hypothesis strategies of arguments: each yields (shapes, kwargs) -------------------------------


def _int_or_tuple(draw, st, values: tuple):
    """An int when every axis has the same value (and a coin says so), else the tuple."""
    return values[0] if len(set(values)) == 1 and draw(st.booleans()) else values


def conv_case(spatial: int, max_groups: int = 3, max_per_group: int = 2, max_kernel: int = 3, max_extra: int = 3,
              max_batch: int = 2, bias=None):
    """Shapes (x, w[, b]) and kwargs of conv1d (spatial=1) or conv2d (spatial=2): strides, paddings (an int,
    a tuple, "same" incl. even kernels, "valid"), dilations and groups (1, several, or one per channel)."""
    from hypothesis import strategies as st

    @st.composite
    def case(draw):
        groups = draw(st.integers(1, max_groups))
        depthwise = groups > 1 and draw(st.booleans())
        channels = groups * (1 if depthwise else draw(st.integers(1, max_per_group)))
        out_channels = groups * draw(st.integers(1, max_per_group))
        kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(spatial))
        dilation = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
        kind = draw(st.sampled_from(["int", "tuple", "same", "valid", "default"]))
        kwargs = {}
        if kind == "same":
            kwargs["padding"] = "same"
            stride = (1,) * spatial
            pads = conv_padding("same", kernel, dilation)
        else:
            stride = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
            if kind == "int":
                kwargs["padding"] = draw(st.integers(0, 2))
            elif kind == "tuple":
                kwargs["padding"] = tuple(draw(st.integers(0, 2)) for _ in range(spatial))
            elif kind == "valid":
                kwargs["padding"] = "valid"
            pads = conv_padding(kwargs.get("padding", 0), kernel, dilation)
        if stride != (1,) * spatial or draw(st.booleans()):
            kwargs["stride"] = _int_or_tuple(draw, st, stride)
        if dilation != (1,) * spatial or draw(st.booleans()):
            kwargs["dilation"] = _int_or_tuple(draw, st, dilation)
        if groups > 1 or draw(st.booleans()):
            kwargs["groups"] = groups
        sizes = []
        for k, d, (low, high) in zip(kernel, dilation, pads):
            smallest = max(1, d * (k - 1) + 1 - low - high)  # the padded input holds one window
            sizes.append(draw(st.integers(smallest, smallest + max_extra)))
        x = (draw(st.integers(1, max_batch)), channels, *sizes)
        w = (out_channels, channels // groups, *kernel)
        with_bias = draw(st.booleans()) if bias is None else bias
        return ((x, w, (out_channels,)) if with_bias else (x, w)), kwargs

    return case()


def pool_case(average: bool, max_kernel: int = 3, max_extra: int = 3, max_batch: int = 2, max_channels: int = 2,
              min_kernel: int = 1):
    """Shape (x,) and kwargs of max_pool2d or avg_pool2d: kernels, strides (default: the kernel) and
    paddings up to half the kernel, as ints or pairs; count_include_pad both ways for the average."""
    from hypothesis import strategies as st

    @st.composite
    def case(draw):
        kernel = (draw(st.integers(min_kernel, max_kernel)), draw(st.integers(min_kernel, max_kernel)))
        kwargs = {"kernel_size": _int_or_tuple(draw, st, kernel)}
        stride = kernel
        if draw(st.booleans()):
            stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
            kwargs["stride"] = _int_or_tuple(draw, st, stride)
        pads = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
        if pads != (0, 0) or draw(st.booleans()):
            kwargs["padding"] = _int_or_tuple(draw, st, pads)
        if average and draw(st.booleans()):
            kwargs["count_include_pad"] = draw(st.booleans())
        sizes = [draw(st.integers(max(1, k - 2 * p), max(1, k - 2 * p) + max_extra)) for k, p in zip(kernel, pads)]
        return ((draw(st.integers(1, max_batch)), draw(st.integers(1, max_channels)), *sizes),), kwargs

    return case()


def flatten_case(max_rank: int = 4, max_side: int = 3):
    """Shape (x,) of rank 0 to max_rank and start_dim/end_dim (negative too; absent for the defaults)."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    @st.composite
    def case(draw):
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_rank, min_side=1, max_side=max_side))
        r = len(shape)
        if r == 0:
            return (shape,), {}
        if r >= 2 and draw(st.booleans()):
            return (shape,), {}  # start_dim=1, end_dim=-1
        start = draw(st.integers(0, r - 1))
        end = draw(st.integers(start, r - 1))
        kwargs = {"start_dim": start - r if draw(st.booleans()) else start}
        if end != r - 1 or draw(st.booleans()):
            kwargs["end_dim"] = end - r if draw(st.booleans()) else end
        return (shape,), kwargs

    return case()


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d in NumPy, in its scatter form: each input element adds
    x * w[c, o] at the positions its taps reach (stride apart, dilation between taps), then the padding
    is cut from both sides."""
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (s0, s1), (p0, p1), (e0, e1), (d0, d1) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    n, channels, h, width = x.shape
    per_group, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    full = np.zeros((n, per_group * groups, (h - 1) * s0 + d0 * (kh - 1) + 1 + e0,
                     (width - 1) * s1 + d1 * (kw - 1) + 1 + e1), dtype=np.result_type(x, w))
    inputs = channels // groups
    for g in range(groups):
        xg, wg = x[:, g * inputs:(g + 1) * inputs], w[g * inputs:(g + 1) * inputs]
        for a in range(kh):
            for c in range(kw):
                full[:, g * per_group:(g + 1) * per_group, a * d0:a * d0 + (h - 1) * s0 + 1:s0,
                     c * d1:c * d1 + (width - 1) * s1 + 1:s1] += np.einsum("nchw,co->nohw", xg, wg[:, :, a, c])
    out = full[:, :, p0:full.shape[2] - p0, p1:full.shape[3] - p1]
    return out if b is None else out + np.reshape(b, (1, -1, 1, 1))


def conv_transpose_case(max_batch: int = 2):
    """Shapes (x, w[, b]) and kwargs of conv_transpose2d: strides, paddings, output paddings (below the
    stride or the dilation), dilations and groups."""
    from hypothesis import strategies as st

    @st.composite
    def case(draw):
        groups = draw(st.integers(1, 2))
        channels, per_group = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
        kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
        padding = tuple(draw(st.integers(0, (d * (k - 1)) // 2)) for k, d in zip(kernel, dilation))
        sizes = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
        kwargs = {"stride": stride, "padding": padding, "output_padding": extra, "dilation": dilation,
                  "groups": groups}
        x = (draw(st.integers(1, max_batch)), channels, *sizes)
        w = (channels, per_group, *kernel)
        return ((x, w, (per_group * groups,)) if draw(st.booleans()) else (x, w)), kwargs

    return case()
