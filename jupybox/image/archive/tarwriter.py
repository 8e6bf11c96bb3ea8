"""The tar writer of ``save`` (a minimal GNU tar: mtime 0, root-owned), and the gunzip that turns a
stored gzip layer back into the uncompressed tar a docker-archive holds."""

from __future__ import annotations

import hashlib
import io
import os
import queue
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterable

from ...errors import DigestMismatch, StoreError
from .common import CHUNK

BLOCK = 512


class TarWriter:
    """A minimal tar writer (GNU format, mtime 0, root-owned) that can write a
    member whose size is only known afterwards: on a seekable output the
    header is patched in place, else the data is spooled to a temp file."""

    def __init__(self, fileobj, tmpdir: str | None):
        self.f = fileobj
        self.tmpdir = tmpdir
        try:
            self.seekable = bool(fileobj.seekable())
            if self.seekable:
                self.pos = fileobj.tell()
        except (AttributeError, OSError, ValueError):
            self.seekable = False
        if not self.seekable:
            self.pos = 0
        self.names: set[str] = set()
        try:
            self.fd = fileobj.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.fd = None

    def _info(self, name: str, size: int, kind=tarfile.REGTYPE, linkname: str = "", mode: int = 0o644):
        ti = tarfile.TarInfo(name)
        ti.size = size if kind == tarfile.REGTYPE else 0
        ti.type = kind
        ti.linkname = linkname
        ti.mode = 0o755 if kind == tarfile.DIRTYPE else mode
        ti.mtime = 0
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")

    def _write(self, b) -> None:
        self.f.write(b)
        self.pos += len(b)

    def _pad(self, size: int) -> None:
        r = size % BLOCK
        if r:
            self._write(b"\0" * (BLOCK - r))

    def add_bytes(self, name: str, data: bytes) -> None:
        if name in self.names:
            return
        self.names.add(name)
        self._write(self._info(name, len(data)))
        self._write(data)
        self._pad(len(data))

    def add_dir(self, name: str) -> None:
        name = name.rstrip("/") + "/"
        if name in self.names:
            return
        self.names.add(name)
        self._write(self._info(name, 0, tarfile.DIRTYPE))

    def add_symlink(self, name: str, target: str) -> None:
        if name in self.names:
            return
        self.names.add(name)
        self._write(self._info(name, 0, tarfile.SYMTYPE, target, 0o777))

    def add_file(self, name: str, path: str, size: int | None = None) -> None:
        """A member copied from a file (kernel copy when both ends are files)."""
        if name in self.names:
            return
        self.names.add(name)
        if size is None:
            size = os.path.getsize(path)
        self._write(self._info(name, size))
        with open(path, "rb") as src:
            copied = self._copy(src, size)
        if copied != size:
            raise StoreError(f"{path}: changed while being archived")
        self._pad(size)

    def _copy(self, src, size: int) -> int:
        if self.fd is not None and hasattr(os, "copy_file_range"):
            try:
                self.f.flush()
                done = 0
                while done < size:
                    n = os.copy_file_range(src.fileno(), self.fd, size - done)
                    if n == 0:
                        break
                    done += n
                self.pos += done
                if done == size or done > 0:
                    if done < size:  # finish in user space
                        done += self._copy_py(src, size - done)
                    return done
            except OSError:
                pass  # e.g. a pipe on an old kernel, or EXDEV: fall back
        return self._copy_py(src, size)

    def _copy_py(self, src, size: int) -> int:
        done = 0
        while done < size:
            b = src.read(min(CHUNK, size - done))
            if not b:
                break
            self._write(b)
            done += len(b)
        return done

    def add_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """A member whose size is known only at the end; returns the size."""
        if name in self.names:
            for _ in chunks:
                pass
            return -1
        self.names.add(name)
        if self.seekable:
            start = self.pos
            self._write(self._info(name, 0))
            size = 0
            for b in chunks:
                self._write(b)
                size += len(b)
            end = self.pos
            self.f.seek(start)
            self.f.write(self._info(name, size))
            self.f.seek(end)
            self._pad(size)
            return size
        with tempfile.TemporaryFile(dir=self.tmpdir) as tmp:
            size = 0
            for b in chunks:
                tmp.write(b)
                size += len(b)
            tmp.seek(0)
            self._write(self._info(name, size))
            self._copy_py(tmp, size)
        self._pad(size)
        return size

    def close(self) -> None:
        self._write(b"\0" * (BLOCK * 2))
        # round up to a full record like tar does (some readers like it)
        rec = BLOCK * 20
        r = self.pos % rec
        if r:
            self._write(b"\0" * (rec - r))
        self.f.flush()


def _gunzip_raw(path: str):
    """The decompressed chunks of a gzip file (concatenated members allowed)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            if not raw:
                break
            while raw:
                out = d.decompress(raw, 4 * CHUNK)
                if out:
                    yield out
                raw = d.unconsumed_tail
                if d.eof:
                    rest = d.unused_data + raw
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    raw = rest
        out = d.flush()
        if out:
            yield out


def _in_thread(gen, depth: int = 8):
    """Run the generator ``gen`` in a thread, ``depth`` chunks ahead: zlib releases the
    GIL, so decompression overlaps with hashing and writing in the caller."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    _END = object()

    def run():
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=run, name="jupybox-gunzip", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, (zlib.error, EOFError)):
                    raise StoreError(f"corrupt gzip data: {item}")
                raise item
            yield item
    finally:
        stop.set()
        t.join()
        gen.close()


def gunzip_chunks(path: str, want_diff_id: str | None, what: str):
    """Decompress a gzip blob (in a helper thread), verifying the diff_id at the end."""
    h = hashlib.sha256()
    for out in _in_thread(_gunzip_raw(path)):
        h.update(out)
        yield out
    got = "sha256:" + h.hexdigest()
    if want_diff_id and got != want_diff_id:
        raise DigestMismatch(f"{what}: uncompressed digest {got} differs from the diff_id {want_diff_id}")
