"""sha256 digests (``sha256:<64 hex>``) and streaming readers/writers that hash and count as they go."""

from __future__ import annotations

import hashlib
import os
import re

from ..errors import DigestMismatch, StoreError

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


def is_digest(text: object) -> bool:
    return isinstance(text, str) and bool(_DIGEST_RE.match(text))


def validate(digest: str) -> str:
    """Return ``digest`` if it is a well-formed ``sha256:<64 lowercase hex>``; else raise StoreError."""
    if not is_digest(digest):
        if isinstance(digest, str) and ":" in digest and not digest.startswith("sha256:"):
            raise StoreError(f"unsupported digest algorithm: {digest.split(':', 1)[0]!r} (only sha256)")
        raise StoreError(f"invalid digest: {digest!r}")
    return digest


def hex_of(digest: str) -> str:
    """``sha256:abc...`` → ``abc...`` (validated)."""
    return validate(digest)[7:]


def from_hex(hexpart: str) -> str:
    if not _HEX_RE.match(hexpart):
        raise StoreError(f"invalid digest: {hexpart!r}")
    return "sha256:" + hexpart


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> tuple[str, int]:
    """(digest, size) of a file, streamed."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return "sha256:" + h.hexdigest(), size


def verify(actual: str, expected: str | None, what: str = "blob") -> None:
    if expected is not None and actual != expected:
        raise DigestMismatch(f"{what}: digest mismatch: expected {expected}, got {actual}")


class HashingReader:
    """Wraps a binary file object; every byte read is hashed and counted (``.digest``, ``.size``)."""

    def __init__(self, fileobj):
        self._f = fileobj
        self._h = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            self._h.update(data)
            self.size += len(data)
        return data

    def readinto(self, b) -> int:
        if hasattr(self._f, "readinto"):
            n = self._f.readinto(b)
        else:
            data = self._f.read(len(b))
            n = len(data)
            b[:n] = data
        if n:
            self._h.update(memoryview(b)[:n])
            self.size += n
        return n

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) everything that is left."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()


class HashingWriter:
    """Wraps a binary file object (or None to only hash); every byte written is hashed and counted."""

    def __init__(self, fileobj=None):
        self._f = fileobj
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        n = len(data)
        if n:
            self._h.update(data)
            self.size += n
            if self._f is not None:
                self._f.write(data)
        return n

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()
