"""The compile cache runs only code this user wrote: private and authenticated.

The cache directory, its secret and its entries are private; an entry, a
directory or a secret that others own, can write or can read is refused or
replaced; an entry copied under another key, forged with recomputed checksums,
or authentic but damaged is a miss and is compiled again. Part of the reliability probes (issue 9): one test per probe, each able to fail.
"""
from __future__ import annotations

import json
import os
import stat
import warnings
from pathlib import Path

import pytest

from child_python import last_json, run_python
from runtime.cache import SECRET_NAME, ObjectCache


# ---- the cache: private and authenticated -----------------------------------------------------------

def test_the_cache_directory_and_secret_are_private(tmp_path):
    cache = ObjectCache(tmp_path / "made" / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache.directory / SECRET_NAME).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache.path(key)).st_mode) & 0o077 == 0
    assert cache.load(key) == {"object": b"data"}


def test_an_entry_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    if os.geteuid() == 0:
        os.chown(cache.path(key), 65534, 65534)
    else:  # cannot chown: this process pretends to be someone else for the entry check
        real = os.stat(cache.directory).st_uid
        monkeypatch.setattr(os, "fstat", lambda fd, _f=os.fstat: _owned_by(_f(fd), real + 1))
    with pytest.warns(RuntimeWarning, match="owned by uid"):
        assert cache.load(key) is None


def _owned_by(info, uid):
    values = list(info)
    values[stat.ST_UID] = uid
    return os.stat_result(values)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")
def test_a_directory_owned_by_another_user_is_refused(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    os.chown(cache.directory, 65534, 65534)
    with pytest.warns(RuntimeWarning, match="owned by uid 65534"):
        assert cache.load(key) is None


def test_a_secret_others_can_read_is_replaced(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    secret = cache.directory / SECRET_NAME
    old = secret.read_bytes()
    os.chmod(secret, 0o644)
    with pytest.warns(RuntimeWarning, match="secret.key cannot be trusted"):
        assert cache.load(key) is None  # signed with a secret others could read
    cache.store(key, {"object": b"data"})
    assert secret.read_bytes() != old and stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert cache.load(key) == {"object": b"data"}


@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_a_directory_others_can_write_is_refused(tmp_path, mode):
    cache = ObjectCache(tmp_path / f"cache{mode:o}", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    os.chmod(cache.directory, mode)
    with pytest.warns(RuntimeWarning, match="writable by"):
        assert cache.load(key) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per directory and process, not on every use
        cache.store(cache.key("y"), {"object": b"other"})  # nor written to
    assert not cache.path(cache.key("y")).exists()


def test_an_entry_others_can_write_is_refused(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    key = cache.key("x")
    cache.store(key, {"object": b"data"})
    os.chmod(cache.path(key), 0o666)
    with pytest.warns(RuntimeWarning, match="writable by others"):
        assert cache.load(key) is None


def test_an_entry_copied_under_another_key_is_a_miss(tmp_path):
    cache = ObjectCache(tmp_path / "cache", identity="test")
    tanh_key, sigmoid_key = cache.key("tanh"), cache.key("sigmoid")
    cache.store(tanh_key, {"object": b"tanh code"})
    cache.path(sigmoid_key).write_bytes(cache.path(tanh_key).read_bytes())
    os.chmod(cache.path(sigmoid_key), 0o600)
    assert cache.load(sigmoid_key) is None
    assert cache.load(tanh_key) == {"object": b"tanh code"}


MODEL_CHILD = """
    import json, sys
    import numpy as np
    import compiler as sp
    import os
    activation = os.environ.get("ACTIVATION", "tanh")
    x = sp.Input("x", ("batch", 3), "float64")
    w = sp.Param("w", (3, 2), dtype="float64")
    fn = sp.compile(getattr(sp, activation)(x @ w))
    xv, wv = np.arange(6.0).reshape(2, 3) / 6, np.linspace(-1, 1, 6).reshape(3, 2)
    out = fn(x=xv, w=wv)
    expected = np.tanh(xv @ wv) if activation == "tanh" else 1 / (1 + np.exp(-(xv @ wv)))
    print(json.dumps({"from_cache": fn.from_cache, "key": fn.key, "error": float(np.abs(out - expected).max())}))
"""


def run_model(cache_dir, activation="tanh") -> dict:
    report = last_json(run_python(MODEL_CHILD, cache_dir, ACTIVATION=activation))
    assert report["error"] < 1e-12
    return report


def entry_of(cache_dir):
    (path,) = [p for p in Path(cache_dir).iterdir() if p.suffix == ".symprop"]
    return path


def foreign_object(plan: dict, marker: Path) -> bytes:
    """An object defining every symbol the plan asks for, each calling system("touch MARKER")."""
    from runtime.engine import Engine
    from runtime.programs import entry_symbols
    command = f"touch {marker}\0".encode()
    escaped = "".join("\\%02X" % b for b in command)
    lines = [f'@cmd = private constant [{len(command)} x i8] c"{escaped}"',
             "declare i32 @system(i8*)"]
    for name in entry_symbols(plan):
        lines += [f"define void @{name}(i8** %t, i64* %d) {{",
                  f"  %p = getelementptr [{len(command)} x i8], [{len(command)} x i8]* @cmd, i64 0, i64 0",
                  "  %r = call i32 @system(i8* %p)", "  ret void", "}"]
    engine = Engine.instance()
    return engine.emit_object(engine.optimize("\n".join(lines)))


def test_a_rewritten_object_with_a_recomputed_checksum_never_runs(tmp_path):
    import hashlib
    import hmac
    import struct
    cache_dir, marker = tmp_path / "cache", tmp_path / "pwned"
    first = run_model(cache_dir)
    entries = ObjectCache(cache_dir).load(first["key"])
    entries["object"] = foreign_object(json.loads(entries["plan"]), marker)
    # the attacker knows the format and recomputes every checksum, but not this user's secret
    payload = first["key"].encode() + struct.pack("<I", len(entries))
    for name, blob in entries.items():
        payload += struct.pack("<I", len(name)) + name.encode() + struct.pack("<Q", len(blob)) + blob
    prefix = struct.pack("<8sIQ", b"SYMPROP\0", 2, len(payload))
    old_payload = payload[len(first["key"]):]  # format 1: no key, a SHA-256 of the payload in the header
    forgeries = [struct.pack("<8sIQ", b"SYMPROP\0", 1, len(old_payload)) + hashlib.sha256(old_payload).digest()
                 + old_payload,
                 prefix + hashlib.sha256(payload).digest() + payload,
                 prefix + hmac.new(b"guess", prefix + payload, hashlib.sha256).digest() + payload]
    for forgery in forgeries:
        entry_of(cache_dir).write_bytes(forgery)
        report = run_model(cache_dir)
        assert not report["from_cache"] and not marker.exists()
    assert run_model(cache_dir)["from_cache"]  # rebuilt and stored again


def test_an_entry_of_another_model_under_this_key_is_a_miss(tmp_path):
    tanh_dir, sigmoid_dir = tmp_path / "tanh", tmp_path / "sigmoid"
    run_model(tanh_dir, "tanh")
    sigmoid = run_model(sigmoid_dir, "sigmoid")
    (sigmoid_dir / SECRET_NAME).write_bytes((tanh_dir / SECRET_NAME).read_bytes())  # even with the same secret
    entry_of(sigmoid_dir).write_bytes(entry_of(tanh_dir).read_bytes())
    report = run_model(sigmoid_dir, "sigmoid")  # checks its answer is the sigmoid's
    assert report["key"] == sigmoid["key"] and not report["from_cache"]


def rewrite(cache_dir, key, change):
    """Change an entry and store it again with a valid MAC (as a bug in the writer might)."""
    cache = ObjectCache(cache_dir)
    entries = cache.load(key)
    change(entries)
    cache.store(key, entries)


def truncate_object(entries):
    entries["object"] = entries["object"][: len(entries["object"]) // 2]


def damage_plan(entries):
    entries["plan"] = entries["plan"][:-7]


def plan_of_wrong_types(entries):
    plan = json.loads(entries["plan"])
    plan["buffers"][0]["shape"] = ["no such dim"]
    entries["plan"] = json.dumps(plan).encode()


def damage_consts(entries):
    entries["consts"] = b"PK\x03\x04" + entries["consts"][4:40]


def drop_symbols(entries):
    plan = json.loads(entries["plan"])
    plan["entry"] = "sp_not_defined_entry"
    entries["plan"] = json.dumps(plan).encode()


@pytest.mark.parametrize("damage", [truncate_object, damage_plan, plan_of_wrong_types, damage_consts, drop_symbols])
def test_an_authentic_entry_that_does_not_parse_or_link_is_a_miss(tmp_path, damage):
    first = run_model(tmp_path)
    rewrite(tmp_path, first["key"], damage)
    assert ObjectCache(tmp_path).load(first["key"]) is not None  # it authenticates
    report = run_model(tmp_path)  # no crash, no traceback: compiled again, right answer
    assert not report["from_cache"]
    assert run_model(tmp_path)["from_cache"]
