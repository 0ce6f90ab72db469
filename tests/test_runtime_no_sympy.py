"""``runtime`` runs compiled programs in a process where sympy and the compiler cannot be imported.

One child process compiles a program into a private cache directory; a second
child, with ``sympy`` and ``compiler`` blocked in ``sys.modules``, imports
every runtime module, loads the program by its key through
``runtime.programs.load`` and runs it. Its results are checked against NumPy.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

BLOCK = textwrap.dedent("""
    import sys
    for name in ("sympy", "compiler"):
        sys.modules[name] = None  # any import of it, or of a submodule, raises ImportError
""")

COMPILE = textwrap.dedent("""
    import compiler as C
    x = C.Input("x", ("batch", 5), dtype="float32")
    w = C.Param("w", (5, 3), dtype="float32")
    b = C.Param("b", (3,), dtype="float32")
    logits = C.tanh(x @ w + b)
    fn = C.compile([C.softmax(logits), C.logsumexp(logits, axis=1)])
    print(fn.key)
""")

RUN_WITHOUT_COMPILER = BLOCK + textwrap.dedent("""
    import importlib, json, pkgutil
    import numpy as np
    import runtime
    for module in pkgutil.walk_packages(runtime.__path__, "runtime."):
        importlib.import_module(module.name)
    from runtime.programs import ProgramNotCached, load

    fn = load(sys.argv[1])
    assert fn.from_cache
    results = {}
    for batch in (4, 2):
        rng = np.random.default_rng(batch)
        values = {"x": rng.normal(size=(batch, 5)).astype(np.float32),
                  "w": rng.normal(size=(5, 3)).astype(np.float32),
                  "b": rng.normal(size=3).astype(np.float32)}
        probabilities, lse = fn(**values)
        results[batch] = [probabilities.tolist(), lse.tolist()]
    try:
        load("0" * 64)
    except ProgramNotCached as error:
        results["missing"] = str(error)
    leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("sympy", "compiler")
                    and sys.modules[name] is not None)
    print(json.dumps({"results": results, "leaked": leaked}))
""")


def run(code, cache_dir, *args):
    env = {**os.environ, "SYMPROP_CACHE_DIR": str(cache_dir)}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"exit status {result.returncode}\n{result.stderr[-3000:]}"
    return result.stdout.strip().splitlines()[-1]


def test_blocking_works():
    """The block itself: a child that tries to import sympy after it fails."""
    result = subprocess.run([sys.executable, "-c", BLOCK + "import sympy"], capture_output=True, text=True)
    assert result.returncode != 0 and "import of sympy halted" in result.stderr


def test_every_runtime_module_imports_without_sympy_or_compiler(tmp_path):
    code = BLOCK + textwrap.dedent("""
        import importlib, pkgutil
        import runtime
        names = [m.name for m in pkgutil.walk_packages(runtime.__path__, "runtime.")]
        for name in names:
            importlib.import_module(name)
        print(len(names))
    """)
    assert int(run(code, tmp_path)) >= 5


def test_a_cached_program_runs_without_sympy_or_compiler(tmp_path):
    key = run(COMPILE, tmp_path)
    report = json.loads(run(RUN_WITHOUT_COMPILER, tmp_path, key))
    assert report["leaked"] == []
    assert "no compiled program" in report["results"]["missing"]
    for batch in (4, 2):
        rng = np.random.default_rng(batch)
        x = rng.normal(size=(batch, 5)).astype(np.float32).astype(np.float64)
        w = rng.normal(size=(5, 3)).astype(np.float32).astype(np.float64)
        b = rng.normal(size=3).astype(np.float32).astype(np.float64)
        logits = np.tanh(x @ w + b)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities, lse = report["results"][str(batch)]
        np.testing.assert_allclose(probabilities, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lse, np.log(np.exp(logits).sum(axis=1)), rtol=1e-5, atol=1e-6)
