"""The JIT: compiled code agrees with NumPy, vectorises for the host, and refuses unsafe loads."""

import ctypes
import threading
import uuid

import numpy as np
import pytest

from runtime.engine import DuplicateSymbolError, Engine, InvalidIRError, UnresolvedSymbolError

AXPB_SIGNATURE = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_float
)


def unique(name):
    """Symbols share one namespace per process: tests prefix them as programs do."""
    return f"test_{uuid.uuid4().hex[:12]}_{name}"


def axpb_ir(name, noalias=""):
    """y[i] = x[i] * a + b over n float32s."""
    return f"""
define void @{name}(ptr {noalias} %x, ptr {noalias} %y, i64 %n, float %a, float %b) {{
entry:
  %nonempty = icmp sgt i64 %n, 0
  br i1 %nonempty, label %loop, label %done
loop:
  %i = phi i64 [0, %entry], [%next, %loop]
  %px = getelementptr inbounds float, ptr %x, i64 %i
  %v = load float, ptr %px, align 4
  %scaled = fmul float %v, %a
  %shifted = fadd float %scaled, %b
  %py = getelementptr inbounds float, ptr %y, i64 %i
  store float %shifted, ptr %py, align 4
  %next = add i64 %i, 1
  %finished = icmp eq i64 %next, %n
  br i1 %finished, label %done, label %loop
done:
  ret void
}}
"""


def test_compiled_loop_matches_numpy():
    engine = Engine.instance()
    name = unique("axpb")
    addresses, objects = engine.compile(axpb_ir(name, "noalias"), [name])
    assert len(objects) == 1 and isinstance(objects[0], bytes) and objects[0]
    axpb = AXPB_SIGNATURE(addresses[name])
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 64, 1001):  # remainders around any vector width
        x = rng.standard_normal(n).astype(np.float32)
        y = np.full(n, np.nan, dtype=np.float32)
        axpb(x.ctypes.data, y.ctypes.data, n, 1.5, -0.25)
        expected = x * np.float32(1.5) + np.float32(-0.25)
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_unaligned_buffers_are_safe():
    """Explicit `align 4` lets vector code run on arrays that start at any float."""
    engine = Engine.instance()
    name = unique("axpb_unaligned")
    addresses, _ = engine.compile(axpb_ir(name, "noalias"), [name])
    axpb = AXPB_SIGNATURE(addresses[name])
    storage = np.arange(1003, dtype=np.float32)
    x, y = storage[1:501], np.zeros(503, dtype=np.float32)[3:]
    axpb(x.ctypes.data, y.ctypes.data, 500, 2.0, 1.0)
    np.testing.assert_array_equal(y, x * 2 + 1)


def test_noalias_float_loop_uses_host_vector_registers():
    engine = Engine.instance()
    module = engine.optimize(axpb_ir(unique("axpb_asm"), "noalias"))
    assembly = engine.emit_assembly(module)
    features = engine.cpu_features.split(",")
    wide = "zmm" if "+avx512f" in features else "ymm" if "+avx" in features else None
    if wide is None:
        pytest.skip(f"host {engine.cpu_name} has no 256-bit vectors")
    assert ("ymm" in assembly) or ("zmm" in assembly), assembly[:2000]
    assert "<4 x float>" in str(module) or "<8 x float>" in str(module) or "<16 x float>" in str(module)


def test_unresolved_external_raises_before_any_call():
    engine = Engine.instance()
    missing = unique("nowhere_to_be_found")
    name = unique("calls_missing")
    ir = f"""
declare float @{missing}(float)
define float @{name}(float %x) {{
  %r = call float @{missing}(float %x)
  ret float %r
}}
"""
    with pytest.raises(UnresolvedSymbolError, match=missing):
        engine.compile(ir, [name])
    module = engine.optimize(ir)
    with pytest.raises(RuntimeError, match=missing):
        engine.add_object(engine.emit_object(module), [name], externals=[missing])


def test_resolvable_external_is_accepted():
    engine = Engine.instance()
    name = unique("calls_sqrt")
    ir = f"""
declare double @sqrt(double)
define double @{name}(double %x) {{
  %r = call double @sqrt(double %x)
  ret double %r
}}
"""
    addresses, _ = engine.compile(ir, [name], externals=["sqrt"])
    root = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(addresses[name])
    assert root(2.0) == np.sqrt(2.0)


@pytest.mark.parametrize(
    "ir, message",
    [
        ("define i32 @f( {", "expected type"),
        ("define i32 @f() {\nentry:\n  ret i32 %missing\n}", "undefined value '%missing'"),
        (
            "define i32 @f(i1 %c) {\nentry:\n  br i1 %c, label %a, label %b\n"
            "a:\n  %x = add i32 1, 2\n  br label %b\nb:\n  ret i32 %x\n}",
            "does not dominate",
        ),
    ],
)
def test_bad_ir_raises_readable_error(ir, message):
    with pytest.raises(InvalidIRError, match=message):
        Engine.instance().optimize(ir)


def test_symbol_defined_twice_is_refused():
    engine = Engine.instance()
    name = unique("twice")
    engine.compile(axpb_ir(name), [name])
    with pytest.raises(DuplicateSymbolError, match=name):
        engine.compile(axpb_ir(name), [name])


def test_symbol_defined_but_not_requested_still_counts_as_taken():
    engine = Engine.instance()
    requested, bystander = unique("requested"), unique("bystander")
    engine.compile(axpb_ir(requested) + axpb_ir(bystander), [requested])
    with pytest.raises(DuplicateSymbolError, match=bystander):
        engine.compile(axpb_ir(bystander), [bystander])


def test_requested_symbol_absent_from_object_raises():
    engine = Engine.instance()
    defined, absent = unique("defined"), unique("absent")
    with pytest.raises(RuntimeError, match=absent):
        engine.compile(axpb_ir(defined), [defined, absent])


def test_bytes_that_are_not_an_object_are_refused():
    with pytest.raises(ValueError, match="object file"):
        Engine.instance().add_object(b"garbage" * 10, [unique("anything")])


def test_reloading_an_object_gives_working_code():
    """The cache's path: emit once, load the same bytes under a fresh name later."""
    engine = Engine.instance()
    name = unique("reloaded")
    obj = engine.emit_object(engine.optimize(axpb_ir(name, "noalias")))
    addresses = engine.add_object(obj, [name])
    x = np.linspace(-1, 1, 33, dtype=np.float32)
    y = np.empty_like(x)
    AXPB_SIGNATURE(addresses[name])(x.ctypes.data, y.ctypes.data, x.size, -3.0, 0.5)
    np.testing.assert_allclose(y, x * np.float32(-3) + np.float32(0.5), rtol=1e-6)


def test_instance_is_one_engine_per_process(monkeypatch):
    monkeypatch.setattr(Engine, "_instance", None)  # race the first creation
    start = threading.Barrier(8)
    found = []

    def fetch():
        start.wait()
        found.append(Engine.instance())

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8
    assert all(engine is found[0] for engine in found)
    assert Engine.instance() is found[0]


def test_identity_names_versions_and_cpu():
    engine = Engine.instance()
    assert engine.cpu_name and engine.cpu_name in engine.identity
    assert engine.cpu_features in engine.identity
    assert engine.llvm_version in engine.identity
