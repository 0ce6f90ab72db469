"""Fused elementwise kernels vectorise for the host CPU.

The assembly of a float32 tanh chain must use the host's wide vector
registers: ``ymm`` (AVX2) or ``zmm`` (AVX-512), whichever this machine has.
No width is assumed: either register file counts.
"""
from __future__ import annotations

import re

import llvmlite.binding as llvm
import numpy as np
import pytest

import compiler as C
from compiler import Input, Param

WIDE_REGISTER = re.compile(r"%?\b[yz]mm\d+\b")
VECTOR_TYPE = re.compile(r"<(\d+) x (float|double)>")


@pytest.fixture(scope="module")
def tanh_chain():
    x = Input("asm_x", (4096, 256), dtype="float32")
    w, b = Param("asm_w", (256,), dtype="float32"), Param("asm_b", (256,), dtype="float32")
    h = x
    for _ in range(3):
        h = h + 0.1 * C.tanh(h * w + b)
    return C.compile(h)


def host_has_wide_vectors() -> bool:
    features = llvm.get_host_cpu_features()
    return bool(features.get("avx2") or features.get("avx512f"))


def test_fused_chain_is_one_elementwise_kernel(tanh_chain):
    assert [k["kind"] for k in tanh_chain.kernels()] == ["elementwise"]


@pytest.mark.skipif(not host_has_wide_vectors(), reason="host without AVX2 or AVX-512")
def test_fused_float32_kernel_uses_wide_vector_registers(tanh_chain):
    asm = tanh_chain.asm()
    registers = set(WIDE_REGISTER.findall(asm))
    assert registers, "no ymm/zmm register in the assembly of a fused float32 tanh chain"


def test_optimised_ir_has_vector_arithmetic(tanh_chain):
    optimised = tanh_chain.llvm_ir(optimized=True)
    widths = {int(n) for n, ty in VECTOR_TYPE.findall(optimised) if ty == "float"}
    assert widths and max(widths) >= 4, "the loop was not vectorised"


def test_the_vectorised_code_computes_the_chain():
    rng = np.random.default_rng(3)
    x = Input("asm_small_x", ("batch", 37), dtype="float32")  # 37: a vector body and a scalar remainder
    fn = C.compile(C.tanh(C.tanh(x) * 1.5 + 0.25))
    xs = rng.normal(size=(5, 37)).astype(np.float32) * 3
    np.testing.assert_allclose(fn(asm_small_x=xs), np.tanh(np.tanh(xs.astype(np.float64)) * 1.5 + 0.25),
                               rtol=2e-6, atol=2e-7)
