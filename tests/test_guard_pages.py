"""Compiled code reads no byte past an argument: each input lies flush against an inaccessible page, so a
read beyond its last element kills the process (a child, here, so that the test fails instead). Covers the
reads LLVM vectorises with masks, shuffles or gathers: pooled short rows at stride 2 (masked interleaved
accesses, rolled short rows), strided and reversed slices, windows with padding, and gathers."""
from __future__ import annotations

from child_python import last_json, run_python

CHILD = r"""
import ctypes, json, mmap
import numpy as np
import compiler as C

PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
mappings = []

def at_page_end(array):
    pages = -(-array.nbytes // PAGE) + 1
    mapping = mmap.mmap(-1, (pages + 1) * PAGE)
    mappings.append(mapping)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
    assert libc.mprotect(base + pages * PAGE, PAGE, 0) == 0  # PROT_NONE
    out = np.frombuffer(mapping, array.dtype, array.size, pages * PAGE - array.nbytes).reshape(array.shape)
    out[...] = array
    return out

rng = np.random.default_rng(0)
checked = 0
for shape in [(1, 1, 14, 14), (2, 3, 7, 7), (1, 2, 28, 28), (3, 1, 6, 10), (1, 1, 15, 15), (2, 1, 5, 3)]:
    for dtype in ("float32", "float64"):
        x = C.Input("x", shape, dtype)
        nodes = [C.ops.max_pool2d(x, 2), C.ops.avg_pool2d(x, 2), C.ops.max_pool2d(x, 3, 2, 1),
                 x[:, :, ::2, 1::2] * 2.0, x[:, :, ::-1, ::-2] + 1.0, C.ops.flip(x, (3,)) * x,
                 C.ops.conv2d(x, C.Param("w", (2, shape[1], 3, 3), dtype=dtype), padding=1)]
        ids = C.Input("ids", (5,), "int64")
        nodes.append(C.ops.take(x, ids, 3))
        for node in nodes:
            values = {"x": at_page_end(rng.standard_normal(shape).astype(dtype)),
                      "ids": at_page_end(rng.integers(0, shape[3], 5)),
                      "w": at_page_end(rng.standard_normal((2, shape[1], 3, 3)).astype(dtype))}
            f = C.compile(node)
            arguments = {b["name"]: values[b["name"]] for b in f.plan["arguments"]}
            got = f(**arguments)
            expected = C.evaluate(node, {k: np.array(v) for k, v in arguments.items()})
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            checked += 1
print(json.dumps({"checked": checked}))
"""


def test_no_read_past_an_argument_at_a_page_end():
    result = run_python(CHILD, timeout=600)
    assert last_json(result)["checked"] == 6 * 2 * 8
