"""The object cache returns exactly what was stored, or a miss: never damaged bytes."""

import os
from pathlib import Path

import pytest

from runtime.cache import SECRET_NAME, ObjectCache

IDENTITY = "llvmlite=test;llvm=test;cpu=test;features=+test"
ENTRIES = {"object": b"\x7fELF" + bytes(range(256)) * 4, "plan": b'{"kernels": 3}', "empty": b""}


@pytest.fixture
def cache(tmp_path):
    return ObjectCache(tmp_path / "cache", identity=IDENTITY)


def entries_and_temporaries(cache):
    """Every file in the cache directory but the per-user secret."""
    return sorted(p for p in cache.directory.iterdir() if p.name != SECRET_NAME)


def test_miss_then_hit(cache):
    key = cache.key("program ir", b"\x00\x01")
    assert cache.load(key) is None
    cache.store(key, ENTRIES)
    assert cache.load(key) == ENTRIES
    assert entries_and_temporaries(cache) == [cache.path(key)]  # no temporary left behind


def test_store_replaces_previous_entry(cache):
    key = cache.key("program")
    cache.store(key, {"object": b"old"})
    cache.store(key, {"object": b"new", "plan": b"p"})
    assert cache.load(key) == {"object": b"new", "plan": b"p"}


def test_key_changes_when_any_part_changes(cache):
    base = cache.key("ir text", b"plan bytes", "float32")
    assert base == cache.key("ir text", b"plan bytes", "float32")
    variants = [
        cache.key("ir text!", b"plan bytes", "float32"),
        cache.key("ir text", b"plan bytes!", "float32"),
        cache.key("ir text", b"plan bytes", "float64"),
        cache.key("ir text", b"plan bytes"),
        cache.key("ir tex", b"tplan bytes", "float32"),  # same concatenation, other boundary
        cache.key("ir text", "plan bytes", "float32"),  # str versus bytes
        ObjectCache(cache.directory, identity=IDENTITY + "-avx2").key("ir text", b"plan bytes", "float32"),
    ]
    assert len({base, *variants}) == len(variants) + 1
    assert all(len(key) == 64 for key in variants)


def test_default_identity_is_the_host():
    import llvmlite.binding as llvm

    from runtime.engine import host_identity

    assert llvm.get_host_cpu_name() in host_identity()
    key = ObjectCache("unused").key("x")
    assert key == ObjectCache("unused", identity=host_identity()).key("x")
    assert key != ObjectCache("unused", identity=IDENTITY).key("x")


def test_disabled_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMPROP_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setenv("SYMPROP_CACHE", "0")
    cache = ObjectCache.default()
    assert not cache.enabled
    key = cache.key("anything")
    cache.store(key, ENTRIES)
    assert cache.load(key) is None
    assert not (tmp_path / "env-cache").exists()


def test_default_location_from_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("SYMPROP_CACHE", raising=False)
    monkeypatch.setenv("SYMPROP_CACHE_DIR", str(tmp_path / "explicit"))
    cache = ObjectCache.default()
    assert cache.enabled and cache.directory == tmp_path / "explicit"
    key = cache.key("anything")
    cache.store(key, ENTRIES)
    assert ObjectCache.default().load(key) == ENTRIES

    monkeypatch.delenv("SYMPROP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ObjectCache.default().directory == tmp_path / "xdg" / "symprop"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert ObjectCache.default().directory == Path.home() / ".cache" / "symprop"


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncate_to_header(path):
    path.write_bytes(path.read_bytes()[:20])


def flip_payload_byte(path):
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))


def flip_magic_byte(path):
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def append_byte(path):
    path.write_bytes(path.read_bytes() + b"\x00")


def garbage(path):
    path.write_bytes(os.urandom(5000))


def empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "damage", [truncate, truncate_to_header, flip_payload_byte, flip_magic_byte, append_byte, garbage, empty]
)
def test_damaged_entry_is_a_miss_removed_and_rebuilt(cache, damage):
    key = cache.key("program", damage.__name__)
    cache.store(key, ENTRIES)
    damage(cache.path(key))
    assert cache.load(key) is None
    assert not cache.path(key).exists()
    cache.store(key, ENTRIES)
    assert cache.load(key) == ENTRIES


def test_foreign_file_at_key_is_a_miss(cache):
    key = cache.key("program")
    cache.directory.mkdir(parents=True)
    cache.path(key).write_text("this is somebody else's file\n")
    assert cache.load(key) is None
    assert not cache.path(key).exists()


def test_keys_that_could_escape_the_directory_are_refused(cache):
    with pytest.raises(ValueError):
        cache.load("../" + "0" * 61)
    with pytest.raises(ValueError):
        cache.store("A" * 64, ENTRIES)


def test_unwritable_directory_warns_and_carries_on(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    cache = ObjectCache(blocker / "cache", identity=IDENTITY)
    key = cache.key("program")
    with pytest.warns(RuntimeWarning, match="could not write"):
        cache.store(key, ENTRIES)
    assert cache.load(key) is None


def test_concurrent_writers_leave_one_intact_entry(cache):
    """Many processes storing the same key at once: the survivor is whole."""
    import multiprocessing

    key = cache.key("contended")
    context = multiprocessing.get_context("spawn")
    blobs = [{"object": bytes([i]) * 200_000, "plan": str(i).encode()} for i in range(4)]
    with context.Pool(4) as pool:
        pool.starmap(_store_many, [(str(cache.directory), key, blob) for blob in blobs])
    assert cache.load(key) in blobs
    assert [p.name for p in entries_and_temporaries(cache)] == [cache.path(key).name]


def _store_many(directory, key, entries):
    cache = ObjectCache(directory, identity=IDENTITY)
    for _ in range(20):
        cache.store(key, entries)
        loaded = cache.load(key)
        assert loaded is not None and loaded["object"] == loaded["object"][:1] * 200_000
