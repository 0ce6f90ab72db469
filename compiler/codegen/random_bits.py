"""Random numbers in a kernel's loop: Philox-4x32-10 as integer IR.

A random node is never stored: a kernel that reads it has a ``RandomDraw``
leaf per uniform it needs, which says which element of the node the
iteration point reads (its linear index, from the index the node is read
at). The loop computes the Philox block of (seed; element, counter, stream)
with the same rounds as ``runtime/philox.py`` -- zero-extended 32x32->64-bit
multiplies, shifts and xors, no calls, so the loop vectorises -- and turns
the lane's bits into a float exactly as NumPy does, so compiled numbers equal
``compiler.evaluate``'s bit for bit (a normal is then a sympy expression of
two uniforms, lowered like any map body).
"""
from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from runtime import philox

from .access import Access, Index, affine_linear, contiguous_strides

I32, I64 = ir.IntType(32), ir.IntType(64)


@dataclass(frozen=True)
class RandomDraw:
    """Uniform number `lane` of the Philox block of one element of a random node of `shape`."""

    stream: int
    shape: tuple
    dtype: str
    index: Index  # the element read, per dimension of the node (validity is guarded by the reader)
    seed: Access
    counter: Access
    lane: int

    def reads(self) -> tuple:
        return self.seed, self.counter

    def linear_form(self, ndim: int):
        """(coefficient per iteration axis, offset) of the element's linear index."""
        return affine_linear(self.index.dims, contiguous_strides(self.shape), ndim)

    def block(self) -> tuple:
        """What the Philox block depends on: draws differing only in lane share it."""
        return self.stream, self.shape, self.dtype, self.index, self.seed, self.counter

    def __str__(self):
        element = ", ".join(str(d) for d in self.index.dims)
        return f"random{self.stream}.{self.dtype}.u{self.lane}[{element}]"


def philox_block(b: ir.IRBuilder, counter: tuple, key: tuple) -> tuple:
    """The four i32 output words of Philox-4x32-10 (ten rounds) of i32 counter and key words."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_ in range(philox.ROUNDS):
        if round_:
            k0, k1 = b.add(k0, I32(philox.W0)), b.add(k1, I32(philox.W1))
        p0 = b.mul(b.zext(c0, I64), I64(philox.M0))
        p1 = b.mul(b.zext(c2, I64), I64(philox.M1))
        hi0, lo0 = b.trunc(b.lshr(p0, I64(32)), I32), b.trunc(p0, I32)
        hi1, lo1 = b.trunc(b.lshr(p1, I64(32)), I32), b.trunc(p1, I32)
        c0, c1, c2, c3 = b.xor(b.xor(hi1, c1), k0), lo1, b.xor(b.xor(hi0, c3), k1), lo0
    return c0, c1, c2, c3


def emit_draw(emitter, draw: RandomDraw, indices, blocks: dict) -> ir.Value:
    """The uniform `draw` reads at this iteration point, in the kernel's float type. `emitter` is the
    KernelEmitter (builder, loop groups, buffer pointers); `blocks` caches each block per point."""
    b = emitter.builder
    words = blocks.get(draw.block())
    if words is None:
        element = emitter.linear_index(draw.linear_form(len(emitter.kernel.space)), indices)
        seed = b.load(emitter.pointers[draw.seed.buffer], align=8)
        counter = b.load(emitter.pointers[draw.counter.buffer], align=8)
        stream_word = b.add(I32(draw.stream), b.trunc(b.shl(b.lshr(counter, I64(32)), I64(16)), I32))
        words = philox_block(b, (b.trunc(element, I32), b.trunc(b.lshr(element, I64(32)), I32),
                                 b.trunc(counter, I32), stream_word),
                             (b.trunc(seed, I32), b.trunc(b.lshr(seed, I64(32)), I32)))
        blocks[draw.block()] = words
    return _uniform(b, words, draw.lane, draw.dtype, emitter.ty)


def _uniform(b: ir.IRBuilder, words: tuple, lane: int, dtype: str, ty: ir.Type) -> ir.Value:
    """As ``philox.uniform_lanes``: float32 from 24 bits, float64 from 27 + 26 bits; every
    conversion is of a value below 2**31, exact, and vectorises (signed i32 to float)."""
    if dtype == "float32":
        bits = b.sitofp(b.lshr(words[lane], I32(8)), ty)
        return b.fmul(bits, ir.Constant(ty, 2.0 ** -24))
    high = b.sitofp(b.lshr(words[2 * lane], I32(5)), ty)
    low = b.sitofp(b.lshr(words[2 * lane + 1], I32(6)), ty)
    return b.fmul(b.fadd(b.fmul(high, ir.Constant(ty, 67108864.0)), low), ir.Constant(ty, 2.0 ** -53))
