"""The on-disk cache of compiled programs: named byte blobs under a content key.

A compiled program is stored as a few named blobs ("object", "plan", ...) in
one file per key. Loading machine code from here takes milliseconds where
compiling takes tens to hundreds, but the object blob is code this process
will run, so an entry is used only when this user wrote it (docs/cache.md):

- the directory is created 0700; a directory or entry file not owned by the
  current user, or writable by group or others, is refused with a one-line
  warning (a miss: the program is compiled again);
- every entry carries its own key and an HMAC-SHA256 under a per-user secret
  (32 random bytes in `secret.key`, mode 0600, in the cache directory), so an
  entry rewritten by someone who lacks the secret, or copied under another
  key, fails authentication: a miss, the file is removed, never code that runs.

File layout (integers little-endian):
    magic b"SYMPROP\\0" | format u32 | payload length u64 | hmac 32 bytes | payload
    payload = key (64 ascii hex digits), entry count u32, then per entry:
              name length u32, name (utf-8), data length u64, data
    hmac = HMAC-SHA256(secret, magic | format | payload length | payload)

Environment, read when `ObjectCache.default()` builds a cache:
    SYMPROP_CACHE_DIR  directory (default: $XDG_CACHE_HOME/symprop or ~/.cache/symprop)
    SYMPROP_CACHE=0    disable: load always misses, store does nothing
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import struct
import tempfile
import threading
import warnings
from pathlib import Path

__all__ = ["ObjectCache", "default_cache_dir", "SECRET_NAME"]

_MAGIC = b"SYMPROP\0"
_FORMAT_VERSION = 2
_HEADER = struct.Struct("<8sIQ32s")
_PREFIX = struct.Struct("<8sIQ")  # the header without its MAC: what the MAC covers, with the payload
_COUNT = struct.Struct("<I")
_NAME_LENGTH = struct.Struct("<I")
_DATA_LENGTH = struct.Struct("<Q")
_SUFFIX = ".symprop"
_KEY_LENGTH = 64
SECRET_NAME = "secret.key"
_SECRET_BYTES = 32
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

_warned: set = set()  # (directory, reason) already reported in this process
_warned_lock = threading.Lock()


class _CorruptEntry(ValueError):
    """The file is not a complete, intact, authentic cache entry of this format for this key."""


class _Untrusted(Exception):
    """A directory or file others could have written: not to be read or written."""


def default_cache_dir() -> Path:
    """$SYMPROP_CACHE_DIR, else the user cache directory's `symprop` folder."""
    explicit = os.environ.get("SYMPROP_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "symprop"


def _user() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _check_private(what: str, info: os.stat_result) -> None:
    """Raise _Untrusted unless `info` is owned by this user and not writable by group or others."""
    if not hasattr(os, "geteuid"):  # no POSIX ownership (Windows): the user profile's ACLs decide
        return
    if info.st_uid != _user():
        raise _Untrusted(f"{what} is owned by uid {info.st_uid}, not by you (uid {_user()})")
    if info.st_mode & 0o022:
        raise _Untrusted(f"{what} is writable by {'others' if info.st_mode & 0o002 else 'its group'} "
                         f"(mode {stat.S_IMODE(info.st_mode):04o})")


def _warn_once(directory: Path, reason: str) -> None:
    with _warned_lock:
        if (str(directory), reason) in _warned:
            return
        _warned.add((str(directory), reason))
    warnings.warn(f"symprop cache: not using {directory}: {reason}; compiling instead", RuntimeWarning, stacklevel=3)


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
        if len(key) != _KEY_LENGTH or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key (64 lowercase hex digits): {key!r}")
        return self.directory / (key + _SUFFIX)

    # ---- trust ------------------------------------------------------------------------------------

    def _check_directory(self, create: bool) -> bool:
        """True when the directory exists (created 0700 if `create`) and only this user can write it."""
        if create:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.mkdir(self.directory, 0o700)
            except FileExistsError:
                pass
        try:
            info = os.stat(self.directory)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(f"{self.directory} is not a directory")
        _check_private(f"the directory {self.directory}", info)
        return True

    def _secret(self, create: bool) -> bytes | None:
        """The per-user secret, read from `secret.key` (0600); made when absent and `create`.

        A secret file that others could read or write is replaced (every entry it signed
        becomes a miss)."""
        path = self.directory / SECRET_NAME
        for _ in range(3):
            try:
                descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW)
            except FileNotFoundError:
                if not create:
                    return None
                self._make_secret(path)
                continue
            except OSError as error:  # a symlink (ELOOP) or unreadable
                self._replace_bad_secret(path, f"cannot open it ({error.strerror})")
                if not create:
                    return None
                continue
            with open(descriptor, "rb") as file:
                info = os.fstat(file.fileno())
                secret = file.read(_SECRET_BYTES + 1)
            problem = None
            if not stat.S_ISREG(info.st_mode):
                problem = "it is not a regular file"
            elif hasattr(os, "geteuid") and (info.st_uid != _user() or info.st_mode & 0o077):
                problem = f"it is owned by uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):04o}, expected yours, 0600"
            elif len(secret) != _SECRET_BYTES:
                problem = f"it holds {len(secret)} bytes, expected {_SECRET_BYTES}"
            if problem is None:
                return secret
            self._replace_bad_secret(path, problem)
            if not create:
                return None
        return None

    def _replace_bad_secret(self, path: Path, problem: str) -> None:
        _warn_once(self.directory, f"its {SECRET_NAME} cannot be trusted ({problem}); a new one is made")
        try:
            os.unlink(path)
        except OSError:
            pass

    @staticmethod
    def _make_secret(path: Path) -> None:
        """Write a fresh secret whole, then link it into place (another process may win the race)."""
        descriptor, temporary = tempfile.mkstemp(prefix=".secret-", dir=path.parent)  # mode 0600
        try:
            with open(descriptor, "wb") as file:
                file.write(os.urandom(_SECRET_BYTES))
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(temporary)

    # ---- loading and storing --------------------------------------------------------------------------

    def load(self, key: str) -> dict[str, bytes] | None:
        """The entries stored under `key`, or None on a miss (absent, disabled, damaged or untrusted)."""
        if not self.enabled:
            return None
        path = self.path(key)
        try:
            if not self._check_directory(create=False):
                return None
            secret = self._secret(create=False)
            if secret is None:  # no entry here can authenticate
                self.discard(key)
                return None
            try:
                descriptor = os.open(path, os.O_RDONLY | _NOFOLLOW)
            except FileNotFoundError:
                return None
            with open(descriptor, "rb") as file:
                identity = os.fstat(file.fileno())
                if not stat.S_ISREG(identity.st_mode):
                    raise _Untrusted(f"the entry {path.name} is not a regular file")
                _check_private(f"the entry {path.name}", identity)
                data = file.read()
        except _Untrusted as error:
            _warn_once(self.directory, str(error))
            return None
        except OSError:
            return None
        try:
            return _decode(data, key, secret)
        except _CorruptEntry:
            _remove_if_same_file(path, identity)
            return None

    def discard(self, key: str) -> None:
        """Remove the entry under `key` (one that authenticated but does not load)."""
        path = self.path(key)
        try:
            identity = os.stat(path, follow_symlinks=False)
        except OSError:
            return
        _remove_if_same_file(path, identity)

    def store(self, key: str, entries: dict[str, bytes]) -> None:
        """Write entries under `key`, atomically: readers see the old file or the new one.

        A cache that cannot be written (read-only disk, full disk, a directory others
        can write) warns and carries on: the program is already compiled.
        """
        if not self.enabled:
            return
        path = self.path(key)
        temporary = None
        try:
            self._check_directory(create=True)
            secret = self._secret(create=True)
            if secret is None:
                raise OSError("no usable secret")
            data = _encode(entries, key, secret)
            descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=self.directory)  # 0600
            with open(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
            temporary = None
        except _Untrusted as error:
            _warn_once(self.directory, str(error))
        except OSError as error:
            warnings.warn(f"symprop cache: could not write {path}: {error}", RuntimeWarning, stacklevel=2)
        finally:
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass


def _encode(entries: dict[str, bytes], key: str, secret: bytes) -> bytes:
    chunks = [key.encode("ascii"), _COUNT.pack(len(entries))]
    for name, blob in entries.items():
        if not isinstance(name, str):
            raise TypeError(f"cache entry names must be str, not {type(name).__name__}")
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache entry {name!r} must be bytes, not {type(blob).__name__}")
        encoded_name = name.encode("utf-8")
        blob = bytes(blob)
        chunks += [_NAME_LENGTH.pack(len(encoded_name)), encoded_name, _DATA_LENGTH.pack(len(blob)), blob]
    payload = b"".join(chunks)
    prefix = _PREFIX.pack(_MAGIC, _FORMAT_VERSION, len(payload))
    return prefix + hmac.new(secret, prefix + payload, hashlib.sha256).digest() + payload


def _decode(data: bytes, key: str, secret: bytes) -> dict[str, bytes]:
    if len(data) < _HEADER.size:
        raise _CorruptEntry("shorter than the header")
    magic, version, length, mac = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _FORMAT_VERSION:
        raise _CorruptEntry("not a cache entry of this format")
    payload = memoryview(data)[_HEADER.size:]
    if len(payload) != length:
        raise _CorruptEntry("length does not match the header")
    expected = hmac.new(secret, bytes(data[:_PREFIX.size]) + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise _CorruptEntry("does not authenticate under this user's secret")
    reader = _Reader(payload)
    if reader.take(_KEY_LENGTH) != key.encode("ascii"):
        raise _CorruptEntry("stored under another key")
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
        current = os.stat(path, follow_symlinks=False)
        if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            os.remove(path)
    except OSError:
        pass
