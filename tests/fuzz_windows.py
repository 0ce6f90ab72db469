"""The fuzzer's window family: the window primitive, convolution, pooling and flatten in random
programs, each step with its NumPy transcription."""
from __future__ import annotations

import math

import numpy as np

import conv_reference as CR
from compiler import ops
from compiler.primitives.layouts import make_window
from fuzz_programs import MAX_RANK, Op, fits, tie_distance


# ---- windows: the window primitive, convolution, pooling, flatten ---------------------------------

def _window_ref(a, axis, size, stride, dilation):
    """a[..., i*stride + k*dilation, ...] with i in place of `axis` and k as a new last axis."""
    count = (a.shape[axis] - dilation * (size - 1) - 1) // stride + 1
    index = np.arange(count)[:, None] * stride + np.arange(size)[None, :] * dilation
    return np.moveaxis(np.take(a, index, axis=axis), axis + 1, -1)


def _as_rank(shape, rank):
    """`shape` as `rank` dims: size-1 dims in front, or the leading dims merged; None if nothing changes."""
    if len(shape) == rank:
        return None
    if len(shape) < rank:
        return (1,) * (rank - len(shape)) + tuple(shape)
    return (math.prod(shape[:len(shape) - rank + 1]),) + tuple(shape[len(shape) - rank + 1:])


def _operand_from(ch, prog, size, shape):
    """A value with at least `size` elements, flattened, cut to `size` and reshaped to `shape` (the weights of a
    convolution, so that gradients flow into them), or a constant when no value is large enough."""
    options = [j for j, w in enumerate(prog.values) if math.prod(w.shape) >= size]
    if not options or ch.boolean(0.15):
        text = f"ops.const(((np.arange({size}) % 5 - 2) * 0.25).reshape({shape}))"
        array = ((np.arange(size) % 5 - 2) * 0.25).reshape(shape)
        return None, (lambda: ops.const(array)), (lambda: array), (lambda: text), 0.5
    j = ch.choice(options)
    n = math.prod(prog.values[j].shape)
    if n == size:
        return (j, lambda a: ops.reshape(a, shape), lambda a: np.reshape(a, shape),
                lambda a: f"ops.reshape({a}, {shape})", prog.values[j].bound)
    return (j, lambda a: ops.reshape(ops.reshape(a, (-1,))[:size], shape), lambda a: np.reshape(a, -1)[:size].reshape(shape),
            lambda a: f"ops.reshape(ops.reshape({a}, (-1,))[:{size}], {shape})", prog.values[j].bound)


def _kernel_axis(ch, length, allow_same=True):
    """(kernel, stride, dilation, padding (low, high), padding as the user writes it) for one spatial axis."""
    kind = ch.choice(["zero", "int", "int", "same"] if allow_same else ["zero", "int", "int"])
    pad = ch.integer(1, 2) if kind == "int" else 0
    dilation = ch.choice([1, 1, 2])
    room = length + 2 * pad
    k = ch.integer(1, max(1, min(3, (room - 1) // dilation + 1)))
    if dilation * (k - 1) + 1 > room:
        k, dilation = 1, 1
    if kind == "same":
        total = dilation * (k - 1)
        return k, 1, dilation, (total // 2, total - total // 2), "same"
    return k, ch.choice([1, 1, 2]), dilation, (pad, pad), pad


def _max_pool_decide(kernel, stride, padding):
    def decide(a):
        padded = np.pad(a, [(0, 0), (0, 0)] + [(p, p) for p in padding], constant_values=-np.inf)
        rows = (padded.shape[2] - kernel[0]) // stride[0] + 1
        cols = (padded.shape[3] - kernel[1]) // stride[1] + 1
        windows = np.stack([padded[:, :, i * stride[0]:i * stride[0] + kernel[0], j * stride[1]:j * stride[1] + kernel[1]]
                            .reshape(a.shape[0], a.shape[1], -1) for i in range(rows) for j in range(cols)], -2)
        if windows.shape[-1] < 2:
            return np.zeros(windows.shape[:-1], dtype=np.int64), math.inf
        top = np.sort(windows, axis=-1)
        gaps = top[..., -1] - top[..., -2]
        return np.argmax(windows, axis=-1), tie_distance(gaps[np.isfinite(gaps)])
    return decide


def fam_window(ch, prog, x):
    """One of: the window primitive on any axis, conv1d, conv2d (weights and bias cut from other values),
    max_pool2d, avg_pool2d, flatten; x is first reshaped to the rank the op takes when it has another."""
    v = prog.values[x]
    kind = ch.choice(["window", "conv1d", "conv2d", "conv2d", "max_pool2d", "avg_pool2d", "flatten"])
    if kind == "flatten":
        r = len(v.shape)
        if r < 2:
            return None
        start = ch.integer(0, r - 2)
        end = ch.integer(start + 1, r - 1)
        start_text, end_text = (start - r if ch.boolean(0.3) else start), (end - r if ch.boolean(0.3) else end)
        return Op("window", lambda a: ops.flatten(a, start_text, end_text),
                  lambda a: CR.flatten(a, start_text, end_text),
                  lambda a: f"ops.flatten({a}, {start_text}, {end_text})"), (x,), v.bound
    if kind == "window":
        r = len(v.shape)
        if r == 0 or r >= MAX_RANK:
            return None
        axis = ch.integer(0, r - 1)
        length = v.shape[axis]
        dilation = ch.choice([1, 1, 2]) if length > 2 else 1
        size = ch.integer(1, min(3, (length - 1) // dilation + 1))
        stride = ch.choice([1, 1, 2, 3])
        count = (length - dilation * (size - 1) - 1) // stride + 1
        shape = v.shape[:axis] + (count,) + v.shape[axis + 1:] + (size,)
        if not fits(shape):
            return None
        return Op("window", lambda a: make_window(a, axis, size, stride, dilation),
                  lambda a: _window_ref(a, axis, size, stride, dilation),
                  lambda a: f"make_window({a}, {axis}, {size}, {stride}, {dilation})"), (x,), v.bound

    spatial = 1 if kind == "conv1d" else 2
    target = _as_rank(v.shape, 2 + spatial)
    shape = v.shape if target is None else target
    into = (lambda a: a) if target is None else (lambda a: ops.reshape(a, target))
    into_ref = (lambda a: a) if target is None else (lambda a: np.reshape(a, target))
    into_text = (lambda a: a) if target is None else (lambda a: f"ops.reshape({a}, {target})")
    n, channels, sizes = shape[0], shape[1], shape[2:]

    if kind in ("max_pool2d", "avg_pool2d"):
        if ch.boolean(0.3):  # windows of more than 16 taps pool by a reduction over the taps, smaller ones by maps
            kernel = tuple(min(5, d + 2) for d in sizes)
        else:
            kernel = tuple(ch.integer(1, min(3, d + 2)) for d in sizes)
        padding = tuple(ch.integer(0, k // 2) for k in kernel)
        if any(d + 2 * p < k for d, p, k in zip(sizes, padding, kernel)):
            padding = tuple(k // 2 for k in kernel)
            if any(d + 2 * p < k for d, p, k in zip(sizes, padding, kernel)):
                return None
        stride = tuple(ch.integer(1, 2) for _ in kernel) if ch.boolean(0.5) else None
        steps = kernel if stride is None else stride
        out = (n, channels) + tuple((d + 2 * p - k) // s + 1 for d, p, k, s in zip(sizes, padding, kernel, steps))
        if not fits(out):
            return None
        shown_kernel = kernel[0] if kernel[0] == kernel[1] and ch.boolean(0.5) else kernel
        shown_padding = padding[0] if padding[0] == padding[1] and ch.boolean(0.5) else padding
        if kind == "max_pool2d":
            decide = _max_pool_decide(kernel, steps, padding)
            return Op("window", lambda a: ops.max_pool2d(into(a), shown_kernel, stride, shown_padding),
                      lambda a: CR.max_pool2d(into_ref(a), shown_kernel, stride, shown_padding),
                      lambda a: f"ops.max_pool2d({into_text(a)}, {shown_kernel}, {stride}, {shown_padding})",
                      lambda a: decide(into_ref(a))), (x,), v.bound
        include = ch.boolean(0.5)
        return Op("window", lambda a: ops.avg_pool2d(into(a), shown_kernel, stride, shown_padding, count_include_pad=include),
                  lambda a: CR.avg_pool2d(into_ref(a), shown_kernel, stride, shown_padding, include),
                  lambda a: f"ops.avg_pool2d({into_text(a)}, {shown_kernel}, {stride}, {shown_padding}, count_include_pad={include})"), \
            (x,), v.bound

    # a convolution
    axes = [_kernel_axis(ch, d) for d in sizes]
    if any(a[4] == "same" for a in axes) and not all(a[4] == "same" for a in axes):
        axes = [_kernel_axis(ch, d, allow_same=False) if a[4] == "same" else a for a, d in zip(axes, sizes)]
    kernel, stride, dilation = (tuple(a[i] for a in axes) for i in range(3))
    pads = [a[3] for a in axes]
    padding = "same" if axes[0][4] == "same" else tuple(a[4] for a in axes)
    if padding != "same" and ch.boolean(0.2) and all(p == 0 for p in padding):
        padding = "valid"
    divisors = [g for g in range(1, channels + 1) if channels % g == 0]
    groups = ch.choice(divisors) if ch.boolean(0.4) else 1
    out_channels = groups * ch.integer(1, max(1, 4 // groups))
    out_sizes = tuple((d + lo + hi - dl * (k - 1) - 1) // s + 1
                      for d, (lo, hi), k, s, dl in zip(sizes, pads, kernel, stride, dilation))
    if min(out_sizes) < 1 or not fits((n, out_channels) + out_sizes):
        return None
    w_shape = (out_channels, channels // groups) + kernel
    weights = _operand_from(ch, prog, math.prod(w_shape), w_shape)
    bias = _operand_from(ch, prog, out_channels, (out_channels,)) if ch.boolean(0.5) else None
    pieces = [p for p in (weights, bias) if p is not None]
    args = (x,) + tuple(p[0] for p in pieces if p[0] is not None)
    kwargs = {}
    if stride != (1,) * spatial:
        kwargs["stride"] = stride
    if padding != (0,) * spatial:
        kwargs["padding"] = padding
    if dilation != (1,) * spatial:
        kwargs["dilation"] = dilation
    if groups > 1:
        kwargs["groups"] = groups
    sym_op, ref_op = getattr(ops, kind), getattr(CR, kind)

    def split(values):
        """x, w, b (None) from the step's arguments (constants take none)."""
        it = iter(values[1:])
        got = [next(it) if p[0] is not None else None for p in pieces]
        return values[0], got

    def sym(*a):
        first, got = split(a)
        made = [p[1](t) if p[0] is not None else p[1]() for p, t in zip(pieces, got)]
        return sym_op(into(first), *made, **kwargs) if bias is not None else sym_op(into(first), made[0], **kwargs)

    def ref(*a):
        first, got = split(a)
        made = [p[2](t) if p[0] is not None else p[2]() for p, t in zip(pieces, got)]
        return ref_op(into_ref(first), *made, **kwargs)

    def code(*names):
        first, got = split(names)
        made = [p[3](t) if p[0] is not None else p[3]() for p, t in zip(pieces, got)]
        extra = "".join(f", {k}={val!r}" for k, val in kwargs.items())
        return f"ops.{kind}({into_text(first)}, {', '.join(made)}{extra})"

    taps = (channels // groups) * math.prod(kernel)
    bound = v.bound * weights[4] * taps + (bias[4] if bias is not None else 0.0)
    return Op("window", sym, ref, code), args, bound
