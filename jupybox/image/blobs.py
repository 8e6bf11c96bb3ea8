"""``images/blobs/sha256/``: content-addressed blobs (manifests, configs, layer tars).

A blob is written to a file of ``tmp/`` (see :mod:`.scratch`), hashed as it goes, fsync'ed and
renamed into place: a blob file is complete and matches its name, or does not exist. Blobs are
immutable, so parsed JSON blobs are cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import DigestMismatch, StoreError
from . import digest as dg
from . import scratch


def canonical_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def fsync_dir(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextmanager
def renamed_into_place(tmp: str, dest) -> Iterator[None]:
    """The body fills ``tmp``; then it replaces ``dest`` by one rename, or on error is removed:
    ``dest`` is never seen half-written."""
    try:
        yield
        os.rename(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write(path, data: bytes, tmp_dir) -> None:
    """Replace ``path`` with ``data``: a temp file of ``tmp_dir``, fsync'ed, renamed over it."""
    tmp, fd = scratch.new_file(tmp_dir, "index")
    with renamed_into_place(tmp, path):
        try:
            write_all(fd, data)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(os.path.dirname(path))


class BlobWriter:
    """A blob being written: ``.write(b)``, then ``.commit() -> digest``. Used as a context manager,
    an exception (or leaving without commit) removes the temporary file."""

    def __init__(self, blobs: "Blobs", expected_digest: str | None = None, expected_size: int | None = None):
        if expected_digest is not None:
            dg.validate(expected_digest)
        self._blobs = blobs
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.path, self._fd = scratch.new_file(blobs.tmp, "blob")
        self._h = hashlib.sha256()
        self.size = 0
        self.committed: str | None = None

    def write(self, data) -> int:
        if self._fd is None:
            raise StoreError("blob writer is closed")
        n = len(data)
        if self.expected_size is not None and self.size + n > self.expected_size:
            self.abort()
            raise DigestMismatch(f"blob larger than expected size {self.expected_size}")
        self._h.update(data)
        try:
            write_all(self._fd, data)
        except BaseException:
            self.abort()
            raise
        self.size += n
        return n

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def commit(self) -> str:
        if self.committed:
            return self.committed
        if self._fd is None:
            raise StoreError("blob writer is closed")
        d = self.digest
        try:
            if self.expected_size is not None and self.size != self.expected_size:
                raise DigestMismatch(f"blob size mismatch: expected {self.expected_size}, got {self.size}")
            if self.expected_digest is not None and d != self.expected_digest:
                raise DigestMismatch(f"blob digest mismatch: expected {self.expected_digest}, got {d}")
            os.fsync(self._fd)
        except BaseException:
            self.abort()
            raise
        fd, self._fd = self._fd, None
        try:
            self._blobs.adopt(self.path, d, fd)  # closes fd
        except BaseException:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            raise
        self.committed = d
        return d

    def abort(self) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


class Blobs:
    """The blob directory of one store; ``tmp`` is where blobs are written first."""

    def __init__(self, directory: Path, tmp: Path):
        self.dir = directory
        self.tmp = tmp
        self._json: dict[str, dict] = {}

    def path(self, digest: str) -> Path:
        return self.dir / dg.hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        """The blob's bytes, verified against its digest."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} not found in the store") from None
        actual = dg.sha256_bytes(data)
        if actual != digest:
            raise DigestMismatch(f"blob {digest} is corrupt (content hashes to {actual}); run check(repair=True)")
        return data

    def read_json(self, digest: str) -> dict:
        """A JSON blob (manifest, config), verified and cached."""
        obj = self._json.get(digest)
        if obj is None:
            try:
                obj = json.loads(self.read(digest))
            except ValueError:
                raise StoreError(f"blob {digest} is not valid JSON") from None
            if not isinstance(obj, dict):
                raise StoreError(f"blob {digest} is not a JSON object")
            self._json[digest] = obj
        return obj

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected_digest, expected_size)

    def write(self, data: bytes) -> str:
        d = dg.sha256_bytes(data)
        if self.has(d):
            return d
        with self.writer(d, len(data)) as w:
            w.write(data)
            return w.commit()

    def adopt(self, tmp_path: str, digest: str, fd: int | None = None) -> None:
        """Move a complete, fsync'ed temp file into place (dropped if the blob is already there);
        closes ``fd``."""
        try:
            dest = self.path(digest)
            if dest.exists():
                os.unlink(tmp_path)
            else:
                if fd is not None:
                    os.fchmod(fd, 0o644)
                os.rename(tmp_path, dest)
                fsync_dir(self.dir)
        finally:
            if fd is not None:
                os.close(fd)

    def remove(self, digest_or_hex: str) -> None:
        hexd = digest_or_hex[7:] if digest_or_hex.startswith("sha256:") else digest_or_hex
        self._json.pop("sha256:" + hexd, None)
        try:
            os.unlink(self.dir / hexd)
        except FileNotFoundError:
            pass

    def names(self) -> list[str]:
        try:
            return sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
