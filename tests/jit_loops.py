"""Test helper: JIT small loops ``outs[i] = body(inputs[i])`` over NumPy arrays."""
from __future__ import annotations

import ctypes
import uuid

import numpy as np
from llvmlite import ir

from runtime.engine import Engine

IR_TYPES = {np.float32: ir.FloatType(), np.float64: ir.DoubleType()}


def loop_function(module, name, ty, n_inputs, n_outputs, body):
    """void name(ty* in0, ..., ty* out0, ..., i64 n): [out0[i], ...] = body(builder, [in0[i], ...])."""
    ptr = ty.as_pointer()
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (n_inputs + n_outputs) + [i64]), name)
    for arg in fn.args[:-1]:
        arg.add_attribute("noalias")
    n = fn.args[-1]
    entry, loop, done = (fn.append_basic_block(label) for label in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    align = 4 if isinstance(ty, ir.FloatType) else 8  # NumPy buffers are not 32-byte aligned
    inputs = [b.load(b.gep(p, [i]), align=align) for p in fn.args[:n_inputs]]
    for value, out in zip(body(b, inputs), fn.args[n_inputs:-1]):
        b.store(value, b.gep(out, [i]), align=align)
    following = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("<", following, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return fn


def jit_loops(specs: dict, prefix: str) -> dict:
    """{key: (dtype, n_inputs, n_outputs, body)} compiled in one module ->
    {key: run(*arrays) -> list of outputs}; missing trailing inputs are zeros."""
    module = ir.Module()
    prefix = f"{prefix}_{uuid.uuid4().hex[:12]}"
    symbols = {key: f"{prefix}_{k}" for k, key in enumerate(specs)}
    for key, (dtype, n_inputs, n_outputs, body) in specs.items():
        loop_function(module, symbols[key], IR_TYPES[dtype], n_inputs, n_outputs, body)
    addresses, _ = Engine.instance().compile(str(module), list(symbols.values()))
    runners = {}
    for key, (dtype, n_inputs, n_outputs, _) in specs.items():
        signature = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * (n_inputs + n_outputs), ctypes.c_int64)
        runners[key] = _runner(signature(addresses[symbols[key]]), dtype, n_inputs, n_outputs)
    return runners


def _runner(cfunc, dtype, n_inputs, n_outputs):
    def run(*arrays):
        arrays = [np.ascontiguousarray(a, dtype=dtype) for a in np.broadcast_arrays(*arrays)]
        arrays += [np.zeros_like(arrays[0]) for _ in range(n_inputs - len(arrays))]
        outs = [np.empty_like(arrays[0]) for _ in range(n_outputs)]
        cfunc(*[a.ctypes.data for a in arrays + outs], arrays[0].size)
        return outs
    run.keepalive = cfunc
    return run
