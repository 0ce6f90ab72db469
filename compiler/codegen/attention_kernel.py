"""The ``attention`` primitive as one kernel: blocks of queries against blocks of keys, online softmax.

For every index of the leading dims and every block of at most BLOCK_Q queries:

1. each output row (dv + 1 elements: the row, then its log-sum-exp) is cleared; its last
   element holds the running maximum of the row's scores, a stack array the running sum;
2. for every block of at most BLOCK_K keys (with ``causal``, only keys up to the block's last
   query), the GEMM writes the block's scores Q_b K_b^T into a BLOCK_Q x BLOCK_K stack tile;
   per row, the scale, the mask and the causal -inf are applied and the block's maximum taken;
   the row's accumulated output and sum are rescaled by exp(old max - new max) and the tile
   becomes exp(score - new max) (FlashAttention's rescaling); the GEMM then adds P_b V_b to the
   output rows in place;
3. each row is divided by its sum and its log-sum-exp (max + log(sum)) written; a row whose
   every key is masked has sum 0: output 0, log-sum-exp -inf.

Only the tile is ever stored: no Tq x Tk matrix. Every read is inside the arguments: the GEMMs
see exactly the block's rows of q, k and v, the mask is read at (query, key) of the block, and
keys past Tk (or, causally, past the block's last query) are never visited. A fully masked block
(maximum -inf) shifts by 0, so exp(-inf - 0) = 0 and never exp(-inf + inf) = NaN.

q, k and v are read in place through layout ops (a head's slice of a (B, T, H*dh) projection,
broadcast leading dims with stride 0) when one of their last two axes has unit stride, as a
``bmm`` reads its operands; the mask through any layout op without bounds; anything else is
stored first.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy
from llvmlite import ir

from .access import Access, contiguous_strides, identity_index, linear_form, size_expr
from .gemm import gemm_function
from .loops import I64, counted_loop, loop_nest, range_loop
from .mathlib import math_call
from .schedule import Kernel, _matrix_compatible

BLOCK_Q = 64  # queries per block: rows of the score tile and of the P V product
BLOCK_K = 128  # keys per block: columns of the score tile


@dataclass(eq=False)
class AttentionKernel(Kernel):
    """operands: q, k, v (and the mask) as Accesses over their own shapes; out: (..., Tq, dv + 1)."""

    causal: bool = False
    scale: float = 1.0


def attention_kernel(sched, node, out) -> AttentionKernel:
    """The kernel computing the attention `node` into `out`; its arguments are read in place where
    a GEMM can read them (see the module docstring), else stored first."""
    kernel = AttentionKernel("attention", out, node.shape, node.dtype, nodes=[node], root=node,
                             causal=node.attr("causal"), scale=node.attr("scale"))
    operands = []
    for position, arg in enumerate(node.args):
        access = sched.plain_access(arg, identity_index(arg.ndim))
        if access is None or position < 3 and not _matrix_compatible(access, arg.ndim):
            access = Access(sched.materialize(arg), arg.shape, identity_index(arg.ndim))
        operands.append(access)
    kernel.operands = tuple(operands)
    return kernel


def _matrix(form, transposed_if_rows: bool):
    """(transposed flag, leading dimension) of a GEMM operand whose last two axes have the
    coefficients of `form`: unit column stride reads it as stored, unit row stride transposed.
    `transposed_if_rows` flips the flag (k is used as K^T)."""
    coefs, _ = form
    rows, cols = coefs[-2], coefs[-1]
    if cols == 1:
        return int(transposed_if_rows), rows
    return int(not transposed_if_rows), cols


def emit_attention(module: ir.Module, kernel: AttentionKernel, name: str, dim_names: list) -> ir.Function:
    """``void name(out, <reads>, i64* dims)``: the loops of the module docstring."""
    from .kernels import IR_TYPES, ITEMSIZE, KernelEmitter
    emitter = KernelEmitter(module, kernel, name, dim_names)
    b, ty, pointers = emitter.builder, IR_TYPES[kernel.dtype], emitter.pointers
    align = ITEMSIZE[kernel.dtype]
    q, k, v = kernel.operands[:3]
    mask = kernel.operands[3] if len(kernel.operands) == 4 else None
    lead, rank = kernel.space[:-2], len(kernel.space)
    width = kernel.space[-1]  # dv + 1
    dv = width - 1

    def size(expr):
        return emitter.size(sympy.sympify(expr))

    forms = {access: linear_form(access, rank) for access in kernel.operands}
    q_trans, q_ld = _matrix(forms[q], False)
    k_trans, k_ld = _matrix(forms[k], True)
    v_trans, v_ld = _matrix(forms[v], False)
    gemm = gemm_function(module, kernel.dtype)
    maxnum = module.declare_intrinsic("llvm.maxnum", [ty], ir.FunctionType(ty, [ty, ty]))
    minus_inf, zero = ir.Constant(ty, float("-inf")), ir.Constant(ty, 0.0)
    tq = size(size_expr(kernel.space[-2]))
    tk, depth = (size(size_expr(d)) for d in _arg_shape(kernel, 1)[-2:])
    tile = b.alloca(ty, size=I64(BLOCK_Q * BLOCK_K), name="tile")
    sums = b.alloca(ty, size=I64(BLOCK_Q), name="sums")
    running = b.alloca(ty, name="running")
    bits = ir.IntType(ITEMSIZE[kernel.dtype] * 8)
    top = b.alloca(bits, name="top")
    out_ptr = pointers[kernel.out]
    out_strides = contiguous_strides(kernel.space)

    def element(pointer, index):
        return b.gep(pointer, [index])

    def load(pointer, index):
        return b.load(element(pointer, index), align=align)

    def store(value, pointer, index):
        b.store(value, element(pointer, index), align=align)

    with loop_nest(b, [size(size_expr(d)) for d in lead], "h") as heads:
        base = {}
        for access, (coefs, offset) in forms.items():
            linear = size(offset)
            for index, coef in zip(heads, coefs):
                if coef != 0:
                    linear = b.add(linear, b.mul(index, size(coef)))
            base[access] = linear
        out_base = I64(0)
        for index, stride in zip(heads, out_strides):
            out_base = b.add(out_base, b.mul(index, size(stride)))
        with range_loop(b, I64(0), tq, I64(BLOCK_Q), "qb") as i0:
            rows = _smin(b, I64(BLOCK_Q), b.sub(tq, i0))
            block_out = b.add(out_base, b.mul(i0, I64(width)))
            with counted_loop(b, rows, "init") as r:
                row = b.add(block_out, b.mul(r, I64(width)))
                store(zero, sums, r)
                store(minus_inf, out_ptr, b.add(row, I64(dv)))  # the running maximum, until the end
                with counted_loop(b, I64(dv), "clear") as c:
                    store(zero, out_ptr, b.add(row, c))
            keys = _smin(b, tk, b.add(i0, rows)) if kernel.causal else tk
            with range_loop(b, I64(0), keys, I64(BLOCK_K), "kb") as j0:
                cols = _smin(b, I64(BLOCK_K), b.sub(keys, j0))
                q_block = element(pointers[q.buffer], b.add(base[q], b.mul(i0, size(forms[q][0][-2]))))
                k_block = element(pointers[k.buffer], b.add(base[k], b.mul(j0, size(forms[k][0][-2]))))
                b.call(gemm, [rows, cols, depth, q_block, size(q_ld), I64(q_trans), k_block, size(k_ld), I64(k_trans),
                              tile, I64(BLOCK_K), I64(0)])
                with counted_loop(b, rows, "r") as r:
                    query = b.add(i0, r)
                    scores = b.mul(r, I64(BLOCK_K))
                    row = b.add(block_out, b.mul(r, I64(width)))
                    b.store(_ordered(b, minus_inf, bits), top)
                    with counted_loop(b, cols, "c") as c:
                        key = b.add(j0, c)
                        s = b.fmul(load(tile, b.add(scores, c)), ir.Constant(ty, kernel.scale))
                        if mask is not None:
                            s = _masked(b, emitter, s, mask, forms[mask], base[mask], query, key, size)
                        if kernel.causal:
                            s = b.select(b.icmp_signed(">", key, query), minus_inf, s)
                        store(s, tile, b.add(scores, c))
                        ordered, largest = _ordered(b, s, bits), b.load(top)
                        b.store(b.select(b.icmp_signed(">", ordered, largest), ordered, largest), top)
                    old = load(out_ptr, b.add(row, I64(dv)))
                    new = b.call(maxnum, [old, _unordered(b, b.load(top), ty)])
                    shift = b.select(b.fcmp_ordered(">", new, minus_inf), new, zero)
                    b.store(zero, running)
                    with counted_loop(b, cols, "e") as c:
                        p = math_call(b, "exp", [b.fsub(load(tile, b.add(scores, c)), shift)])
                        store(p, tile, b.add(scores, c))
                        b.store(b.fadd(b.load(running), p, flags=("reassoc", "contract")), running)
                    rescale = math_call(b, "exp", [b.fsub(old, shift)])
                    store(b.fadd(b.fmul(load(sums, r), rescale), b.load(running)), sums, r)
                    store(new, out_ptr, b.add(row, I64(dv)))
                    with counted_loop(b, I64(dv), "rescale") as c:
                        store(b.fmul(load(out_ptr, b.add(row, c)), rescale), out_ptr, b.add(row, c))
                v_block = element(pointers[v.buffer], b.add(base[v], b.mul(j0, size(forms[v][0][-2]))))
                b.call(gemm, [rows, I64(dv), cols, tile, I64(BLOCK_K), I64(0), v_block, size(v_ld), I64(v_trans),
                              element(out_ptr, block_out), I64(width), I64(1)])
            with counted_loop(b, rows, "finish") as r:
                row = b.add(block_out, b.mul(r, I64(width)))
                total = load(sums, r)
                attended = b.fcmp_unordered("!=", total, zero)  # NaN stays NaN; no key at all gives 0
                with counted_loop(b, I64(dv), "divide") as c:
                    value = b.fdiv(load(out_ptr, b.add(row, c)), total)
                    store(b.select(attended, value, zero), out_ptr, b.add(row, c))
                top = load(out_ptr, b.add(row, I64(dv)))
                lse = b.fadd(top, math_call(b, "log", [total]))
                store(b.select(attended, lse, minus_inf), out_ptr, b.add(row, I64(dv)))
    b.ret_void()
    return emitter.function


def _arg_shape(kernel: AttentionKernel, position: int) -> tuple:
    return kernel.nodes[0].args[position].shape


def _ordered(b: ir.IRBuilder, value, bits: ir.IntType):
    """The float's bits as a signed integer that orders as the floats do (negative floats' magnitude
    bits flipped), so a row maximum is an integer max reduction, which vectorises without fast-math
    flags. A NaN orders above +inf (or below -inf with its sign bit set); it reaches the output
    through the row's sum either way."""
    raw = b.bitcast(value, bits)
    flipped = b.xor(raw, ir.Constant(bits, (1 << (bits.width - 1)) - 1))
    return b.select(b.icmp_signed("<", raw, ir.Constant(bits, 0)), flipped, raw)


def _unordered(b: ir.IRBuilder, key, ty: ir.Type):
    """The float whose ``_ordered`` key is `key`."""
    flipped = b.xor(key, ir.Constant(key.type, (1 << (key.type.width - 1)) - 1))
    return b.bitcast(b.select(b.icmp_signed("<", key, ir.Constant(key.type, 0)), flipped, key), ty)


def _smin(b: ir.IRBuilder, x, y):
    return b.select(b.icmp_signed("<", x, y), x, y)


def _masked(b, emitter, s, mask: Access, form, base, query, key, size):
    """The score with the mask applied at (query, key): added, or -inf where a bool mask is False."""
    from .kernels import ITEMSIZE
    coefs, _ = form
    linear = b.add(base, b.add(b.mul(query, size(coefs[-2])), b.mul(key, size(coefs[-1]))))
    value = b.load(b.gep(emitter.pointers[mask.buffer], [linear]), align=ITEMSIZE[mask.buffer.dtype])
    if mask.buffer.dtype == "bool":
        return b.select(b.icmp_unsigned("!=", value, ir.Constant(value.type, 0)), s, ir.Constant(s.type, float("-inf")))
    return b.fadd(s, emitter.convert(value, mask.buffer.dtype, s.type))


def describe_attention(kernel: AttentionKernel, names: dict) -> dict:
    """One line of the cost report: the reads, FLOPs (two products and the softmax) and bytes."""
    from .kernels import ITEMSIZE, kernel_buffers
    q, k, v = (_arg_shape(kernel, p) for p in range(3))
    pairs = sympy.Mul(*[size_expr(d) for d in q[:-1]]) * size_expr(k[-2])
    flops = pairs * (2 * size_expr(q[-1]) + 2 * size_expr(v[-1]) + 6)
    if kernel.causal:
        flops = flops / 2
    touched = sum((sympy.Mul(*[size_expr(d) for d in buffer.shape]) * ITEMSIZE[buffer.dtype]
                   for buffer in kernel_buffers(kernel)), sympy.Integer(0))
    reads = ", ".join(a.describe(names[a.buffer]) for a in kernel.operands[:3])
    if len(kernel.operands) == 4:
        reads += f", mask {kernel.operands[3].describe(names[kernel.operands[3].buffer])}"
    body = (f"{names[kernel.out]} = attention({reads}{', causal' if kernel.causal else ''}, scale {kernel.scale:.6g}): "
            f"rows, then their log-sum-exp (online softmax, no Tq x Tk matrix)")
    return {"kind": "attention", "out": names[kernel.out], "shape": list(kernel.space), "body": body,
            "flops": str(sympy.sympify(flops)), "bytes": str(sympy.sympify(touched)), "nodes": 1}
