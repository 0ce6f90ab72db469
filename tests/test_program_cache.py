"""The on-disk program cache across processes: hit, miss, disabled, and damaged files rebuilt.

Each compile runs in a fresh interpreter (so nothing is reused from memory)
sharing one SYMPROP_CACHE_DIR. The child reports whether its program came from
the cache (``fn.from_cache``), how long compiling took (printed, never asserted), and the results,
which are checked against NumPy.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import compiler as C

    x = C.Input("x", ("batch", 16), dtype="float64")
    labels = C.Input("labels", ("batch",), dtype="int64")
    w1 = C.Param("w1", (16, 32), dtype="float64")
    w2 = C.Param("w2", (32, 4), dtype="float64")
    loss = C.cross_entropy(C.tanh(x @ w1) @ w2, labels)
    outputs = [loss] + C.grad(loss, [w1, w2])

    start = time.perf_counter()
    fn = C.compile(outputs)
    seconds = time.perf_counter() - start

    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=(8, 16)), "labels": rng.integers(0, 4, 8),
              "w1": rng.normal(size=(16, 32)) * 0.3, "w2": rng.normal(size=(32, 4)) * 0.3}
    results = fn(**values)
    print(json.dumps({"from_cache": fn.from_cache, "seconds": seconds,
                      "results": [np.asarray(r).tolist() for r in results]}))
""")


def numpy_reference():
    """Loss and gradients of the child's model, by hand-written NumPy backprop."""
    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(8, 16)), rng.integers(0, 4, 8)
    w1, w2 = rng.normal(size=(16, 32)) * 0.3, rng.normal(size=(32, 4)) * 0.3
    hidden = np.tanh(x @ w1)
    logits = hidden @ w2
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(8), labels].mean()
    dlogits = np.exp(logp)
    dlogits[np.arange(8), labels] -= 1
    dlogits /= 8
    dw2 = hidden.T @ dlogits
    dw1 = x.T @ ((dlogits @ w2.T) * (1 - hidden ** 2))
    return [loss, dw1, dw2]


EXPECTED = numpy_reference()


def run_child(cache_dir, **env):
    environment = {**os.environ, "SYMPROP_CACHE_DIR": str(cache_dir), **env}
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=environment,
                            timeout=300)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for actual, expected in zip(report["results"], EXPECTED):
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
    return report


def cache_files(cache_dir):
    return sorted(p for p in cache_dir.iterdir() if p.suffix == ".symprop")


def test_second_process_loads_from_the_cache(tmp_path):
    cold = run_child(tmp_path)
    warm = run_child(tmp_path)
    print(f"\ncompile: cold {cold['seconds'] * 1e3:.1f} ms, cached {warm['seconds'] * 1e3:.1f} ms, "
          f"{cold['seconds'] / warm['seconds']:.1f}x")
    assert not cold["from_cache"]
    assert warm["from_cache"]
    assert len(cache_files(tmp_path)) == 1


def test_cache_disabled_by_environment(tmp_path):
    first = run_child(tmp_path, SYMPROP_CACHE="0")
    second = run_child(tmp_path, SYMPROP_CACHE="0")
    assert not first["from_cache"] and not second["from_cache"]
    assert not tmp_path.exists() or not cache_files(tmp_path)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_bytes_in_the_middle(path):
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 16):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def empty(path):
    path.write_bytes(b"")


def garbage_with_a_valid_magic(path):
    data = path.read_bytes()
    path.write_bytes(data[:8] + os.urandom(len(data) - 8))


@pytest.mark.parametrize("damage", [truncate, flip_bytes_in_the_middle, flip_last_byte, empty,
                                    garbage_with_a_valid_magic])
def test_damaged_cache_file_is_rebuilt(tmp_path, damage):
    run_child(tmp_path)
    (entry,) = cache_files(tmp_path)
    intact = entry.read_bytes()
    damage(entry)
    assert entry.read_bytes() != intact
    rebuilt = run_child(tmp_path)  # the results are checked inside run_child
    assert not rebuilt["from_cache"]
    (entry,) = cache_files(tmp_path)
    assert len(entry.read_bytes()) == len(intact)
    assert run_child(tmp_path)["from_cache"]
