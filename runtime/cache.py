"""The on-disk cache of compiled programs: named byte blobs under a content key.

A compiled program is stored as a few named blobs ("object", "plan", ...) in
one file per key. Loading machine code from here takes milliseconds where
compiling takes tens to hundreds, but machine code is only as trustworthy as
its file: every file carries a checksum, and anything truncated, corrupted or
foreign is deleted and reported as a miss, never handed back.

File layout (integers little-endian):
    magic b"SYMPROP\\0" | format u32 | payload length u64 | sha256(payload) 32 bytes | payload
    payload = entry count u32, then per entry: name length u32, name (utf-8),
              data length u64, data

Environment, read when `ObjectCache.default()` builds a cache:
    SYMPROP_CACHE_DIR  directory (default: $XDG_CACHE_HOME/symprop or ~/.cache/symprop)
    SYMPROP_CACHE=0    disable: load always misses, store does nothing
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import warnings
from pathlib import Path

__all__ = ["ObjectCache", "default_cache_dir"]

_MAGIC = b"SYMPROP\0"
_FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIQ32s")
_COUNT = struct.Struct("<I")
_NAME_LENGTH = struct.Struct("<I")
_DATA_LENGTH = struct.Struct("<Q")
_SUFFIX = ".symprop"


class _CorruptEntry(ValueError):
    """The file is not a complete, intact cache entry of this format."""


def default_cache_dir() -> Path:
    """$SYMPROP_CACHE_DIR, else the user cache directory's `symprop` folder."""
    explicit = os.environ.get("SYMPROP_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symprop"


class ObjectCache:
    """Compiled programs on disk, keyed by content and by the machine that compiled them."""

    def __init__(self, directory: str | os.PathLike, enabled: bool = True, identity: str | None = None):
        """`identity` is what machine code depends on; default: the host's (`engine.host_identity`)."""
        self.directory = Path(directory)
        self.enabled = enabled
        self._identity = identity

    @classmethod
    def default(cls) -> ObjectCache:
        """A cache configured from the environment as it is now (cheap: touches no file)."""
        enabled = os.environ.get("SYMPROP_CACHE", "1").strip() != "0"
        return cls(default_cache_dir(), enabled=enabled)

    @property
    def identity(self) -> str:
        if self._identity is None:
            from .engine import host_identity  # imports llvmlite, but builds no JIT

            self._identity = host_identity()
        return self._identity

    def key(self, *parts: str | bytes) -> str:
        """sha256 hex of the parts (order and boundaries matter) and the host identity."""
        digest = hashlib.sha256()
        for part in (self.identity, *parts):
            if isinstance(part, str):
                tag, data = b"s", part.encode("utf-8")
            elif isinstance(part, (bytes, bytearray, memoryview)):
                tag, data = b"b", bytes(part)
            else:
                raise TypeError(f"cache key parts must be str or bytes, not {type(part).__name__}")
            digest.update(tag + _DATA_LENGTH.pack(len(data)) + data)
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry for `key` lives."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key (64 lowercase hex digits): {key!r}")
        return self.directory / (key + _SUFFIX)

    def load(self, key: str) -> dict[str, bytes] | None:
        """The entries stored under `key`, or None on a miss (absent, disabled or damaged)."""
        if not self.enabled:
            return None
        path = self.path(key)
        try:
            with open(path, "rb") as file:
                identity = os.fstat(file.fileno())
                data = file.read()
        except OSError:
            return None
        try:
            return _decode(data)
        except _CorruptEntry:
            _remove_if_same_file(path, identity)
            return None

    def store(self, key: str, entries: dict[str, bytes]) -> None:
        """Write entries under `key`, atomically: readers see the old file or the new one.

        A cache that cannot be written (read-only disk, full disk) warns and
        carries on: the program is already compiled.
        """
        if not self.enabled:
            return
        data = _encode(entries)
        path = self.path(key)
        temporary = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=self.directory)
            with open(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
            temporary = None
        except OSError as error:
            warnings.warn(f"symprop cache: could not write {path}: {error}", RuntimeWarning, stacklevel=2)
        finally:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass


def _encode(entries: dict[str, bytes]) -> bytes:
    chunks = [_COUNT.pack(len(entries))]
    for name, blob in entries.items():
        if not isinstance(name, str):
            raise TypeError(f"cache entry names must be str, not {type(name).__name__}")
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache entry {name!r} must be bytes, not {type(blob).__name__}")
        encoded_name = name.encode("utf-8")
        blob = bytes(blob)
        chunks += [_NAME_LENGTH.pack(len(encoded_name)), encoded_name, _DATA_LENGTH.pack(len(blob)), blob]
    payload = b"".join(chunks)
    header = _HEADER.pack(_MAGIC, _FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    return header + payload


def _decode(data: bytes) -> dict[str, bytes]:
    if len(data) < _HEADER.size:
        raise _CorruptEntry("shorter than the header")
    magic, version, length, checksum = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _FORMAT_VERSION:
        raise _CorruptEntry("not a cache entry of this format")
    payload = memoryview(data)[_HEADER.size :]
    if len(payload) != length:
        raise _CorruptEntry("length does not match the header")
    if hashlib.sha256(payload).digest() != checksum:
        raise _CorruptEntry("checksum mismatch")
    reader = _Reader(payload)
    count = reader.unpack(_COUNT)
    entries = {}
    for _ in range(count):
        try:
            name = reader.take(reader.unpack(_NAME_LENGTH)).decode("utf-8")
        except UnicodeDecodeError:
            raise _CorruptEntry("entry name is not utf-8") from None
        entries[name] = reader.take(reader.unpack(_DATA_LENGTH))
    if reader.offset != len(payload):
        raise _CorruptEntry("trailing bytes after the last entry")
    return entries


class _Reader:
    """Bounds-checked sequential reads from a payload."""

    def __init__(self, payload: memoryview):
        self.payload = payload
        self.offset = 0

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.payload):
            raise _CorruptEntry("entry runs past the end of the payload")
        chunk = bytes(self.payload[self.offset : self.offset + size])
        self.offset += size
        return chunk

    def unpack(self, layout: struct.Struct) -> int:
        (value,) = layout.unpack(self.take(layout.size))
        return value


def _remove_if_same_file(path: Path, opened: os.stat_result) -> None:
    """Delete a damaged entry, unless a writer has just replaced it with a new one."""
    try:
        current = os.stat(path)
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            os.remove(path)
    except OSError:
        pass
