"""Reading an archive for ``load``: its regular files, small ones in memory, big ones read in place
(a seekable tar) or streamed straight into the store as blobs (stdin: one pass)."""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import zlib

from ...errors import DigestMismatch, StoreError, UnsafeArchive, UsageError
from .common import CHUNK, sha256, sniff

SMALL = 1 << 20  # while streaming, members up to this size are kept in memory; bigger ones go to the store


def _norm(name: str) -> str:
    """An archive path, normalized; hostile paths raise UnsafeArchive."""
    n = name.replace("\\", "/")
    while n.startswith("./"):
        n = n[2:]
    if n.startswith("/"):
        raise UnsafeArchive(f"archive member with an absolute path: {name!r}")
    n = posixpath.normpath(n) if n else n
    if n == ".." or n.startswith("../"):
        raise UnsafeArchive(f"archive member escapes the archive: {name!r}")
    return "" if n == "." else n


class Members:
    """The regular files of an archive: small ones in memory, big ones either
    read in place (a seekable tar) or already turned into store blobs
    (a stream, read once)."""

    def __init__(self, store):
        self.store = store
        self.small: dict[str, bytes] = {}
        self.blobs: dict[str, tuple[str, int]] = {}  # name -> (digest, size), already in the store
        self.infos: dict[str, tarfile.TarInfo] = {}  # name -> member of a seekable tar
        self.links: dict[str, str] = {}  # name -> archive path it points to
        self.tf: tarfile.TarFile | None = None
        self.created: list[str] = []  # blobs this load added to the store

    def _resolve(self, name: str) -> str:
        name = _norm(name)
        for _ in range(32):
            if name in self.links:
                name = self.links[name]
            else:
                return name
        raise UnsafeArchive(f"archive: too many levels of links at {name!r}")

    def has(self, name: str) -> bool:
        n = self._resolve(name)
        return n in self.small or n in self.blobs or n in self.infos

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        n = self._resolve(name)
        if n in self.small:
            return self.small[n]
        if n in self.infos:
            ti = self.infos[n]
            if ti.size > limit:
                raise StoreError(f"archive member {name} is too large ({ti.size} bytes)")
            return self.tf.extractfile(ti).read()
        if n in self.blobs:
            return self.store.read_blob(self.blobs[n][0])
        raise StoreError(f"archive: {name} is missing")

    def open(self, name: str):
        n = self._resolve(name)
        if n in self.small:
            return io.BytesIO(self.small[n])
        if n in self.infos:
            return self.tf.extractfile(self.infos[n])
        if n in self.blobs:
            return open(self.store.blob_path(self.blobs[n][0]), "rb")
        raise StoreError(f"archive: {name} is missing")

    def head(self, name: str, n: int = 8) -> bytes:
        f = self.open(name)
        try:
            return f.read(n)
        finally:
            f.close()

    def to_blob(self, name: str, expected: str | None = None, media_type: str | None = None) -> tuple[str, int]:
        """Put a member into the store; (digest, size)."""
        n = self._resolve(name)
        if n in self.blobs:
            d, size = self.blobs[n]
            if expected and d != expected:
                raise DigestMismatch(f"archive: {name} has digest {d}, expected {expected}")
            return d, size
        if n in self.small:
            data = self.small[n]
            d = sha256(data)
            if expected and d != expected:
                raise DigestMismatch(f"archive: {name} has digest {d}, expected {expected}")
            if not self.store.has_blob(d):
                self.store.write_blob(data, media_type=media_type)
                self.created.append(d)
            self.blobs[n] = (d, len(data))
            return d, len(data)
        if n not in self.infos:
            raise StoreError(f"archive: {name} is missing")
        ti = self.infos[n]
        if expected and self.store.has_blob(expected):
            self.blobs[n] = (expected, ti.size)
            return expected, ti.size
        src = self.tf.extractfile(ti)
        d = copy_to_store(self.store, src, ti.size, expected, name)
        if d not in self.created:
            self.created.append(d)
        self.blobs[n] = (d, ti.size)
        return d, ti.size


def copy_to_store(store, src, size: int, expected: str | None, what: str) -> str:
    try:
        with store.open_blob_writer(expected_digest=expected, expected_size=size) as wr:
            left = size
            while left > 0:
                b = src.read(min(CHUNK, left))
                if not b:
                    raise StoreError(f"archive: {what} is truncated")
                wr.write(b)
                left -= len(b)
            return wr.commit()
    except DigestMismatch as e:
        raise DigestMismatch(f"archive: {what}: {e}") from None


def open_in(src):
    if isinstance(src, (str, os.PathLike)):
        try:
            return open(src, "rb"), True
        except FileNotFoundError:
            raise UsageError(f"load: {src}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"load: {src} is a directory (expected a tar archive)") from None
    if not hasattr(src, "read"):
        raise UsageError("load: the source must be a path or a binary file")
    if isinstance(src, io.TextIOBase):
        src = src.buffer
    return src, False


def _seekable(f) -> bool:
    try:
        if not f.seekable():
            return False
        f.tell()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def read_members(store, f) -> Members:
    m = Members(store)
    if _seekable(f):
        start = f.tell()
        head = f.read(512)
        f.seek(start)
        kind = sniff(head)
        if kind == "tar":
            try:
                m.tf = tarfile.open(fileobj=f, mode="r:")
            except tarfile.TarError as e:
                raise StoreError(f"load: not a tar archive ({e})") from None
            try:
                for ti in m.tf:
                    _index_member(m, ti, None)
            except tarfile.TarError as e:
                raise StoreError(f"load: damaged tar archive ({e})") from None
            return m
    # a stream (or a compressed archive): one pass, big members straight into the store
    try:
        tf = tarfile.open(fileobj=f, mode="r|*")
    except tarfile.TarError as e:
        raise StoreError(f"load: not a tar archive ({e})") from None
    try:
        for ti in tf:
            _index_member(m, ti, tf)
    except tarfile.TarError as e:
        raise StoreError(f"load: damaged tar archive ({e})") from None
    except (EOFError, zlib.error, OSError) as e:
        if isinstance(e, StoreError):
            raise
        raise StoreError(f"load: damaged archive ({e})") from None
    return m


def _index_member(m: Members, ti: tarfile.TarInfo, stream: tarfile.TarFile | None) -> None:
    name = _norm(ti.name)
    if not name:
        return
    if ti.issym():
        target = ti.linkname
        if target.startswith("/"):
            target = target.lstrip("/")
        else:
            target = posixpath.join(posixpath.dirname(name), target)
        m.links[name] = _norm(target)
        return
    if ti.islnk():
        m.links[name] = _norm(ti.linkname)
        return
    if not ti.isreg():
        return
    if stream is None:
        m.infos[name] = ti
        return
    src = stream.extractfile(ti)
    if ti.size <= SMALL:
        m.small[name] = src.read()
        return
    expected = None
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256" and len(parts[2]) == 64:
        expected = "sha256:" + parts[2]
    if expected and m.store.has_blob(expected):
        m.blobs[name] = (expected, ti.size)  # tarfile skips the data itself
        return
    d = copy_to_store(m.store, src, ti.size, expected, name)
    m.created.append(d)
    m.blobs[name] = (d, ti.size)
