"""Run a piece of Python in a child process: for probes that could crash the interpreter, kill
it, or need a fresh process (a program cache to load from, a MemoryError to survive)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cache_dir=None, timeout=300, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if cache_dir is not None:
        environment["SYMPROP_CACHE_DIR"] = str(cache_dir)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=environment, timeout=timeout, cwd=ROOT)


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, f"exit status {result.returncode} (negative: killed by a signal)\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])
