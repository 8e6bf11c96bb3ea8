"""A layer blob as a stream of tar bytes: decompression and hashing in a producer thread.

A producer thread (:class:`Pump`) reads the blob, hashes it (the manifest digest), decompresses
it (gzip, zstd, bzip2, xz or plain: detected by magic bytes, never by name), hashes the tar (the
diff_id) and hands 1 MiB chunks to the consumer through a bounded queue; zlib, zstd and sha256
release the GIL, so decompression and hashing run in parallel with extraction. The consumer side
(:class:`Reader`) is the forward-only file object :mod:`tarfile` reads headers from, and whose
member data the extractor writes straight from the decompressed chunks.
"""

from __future__ import annotations

import bz2
import errno
import hashlib
import lzma
import queue
import threading
import zlib

from ..errors import StoreError, UnsafeArchive

MAX_HEADER_READ = 16 << 20  # pax/GNU long-name headers larger than this are refused
CHUNK = 1 << 20
QUEUE_CHUNKS = 16

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


def detect_compression(head: bytes) -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none`` from the first bytes of a stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(BZIP2_MAGIC) and len(head) >= 4 and head[3:4] in b"123456789":
        return "bzip2"
    return "none"



class _Prefixed:
    """A file object with some already-read bytes put back in front; hashes and counts all it gives."""

    def __init__(self, head: bytes, f):
        self._head = head
        self._f = f
        self._h = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0 or n >= len(self._head):
                data = self._head
                self._head = b""
            else:
                data, self._head = self._head[:n], self._head[n:]
        else:
            data = self._f.read(n)
        if data:
            self._h.update(data)
            self.size += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()


class _GzipDecoder:
    """Multi-member gzip with bounded output per call (no decompression bombs in memory)."""

    def __init__(self, raw):
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self._tail = b""  # input not yet consumed by the current member
        self._pending = b""  # input after the end of a member

    def read(self, n: int) -> bytes:
        while True:
            if self._d is None:
                buf = self._pending.lstrip(b"\0")  # zero padding between/after members is allowed
                if len(buf) < 2:
                    more = self._raw.read(CHUNK)
                    if not more:
                        if buf:
                            raise StoreError("invalid gzip stream: trailing garbage")
                        return b""
                    self._pending = buf + more
                    continue
                if buf[:2] != GZIP_MAGIC:
                    raise StoreError("invalid gzip stream: trailing garbage")
                self._d = zlib.decompressobj(31)
                self._tail, self._pending = buf, b""
            data = self._tail or self._raw.read(CHUNK)
            if not data:
                raise StoreError("truncated gzip stream")
            try:
                out = self._d.decompress(data, n)
            except zlib.error as e:
                raise StoreError(f"invalid gzip stream: {e}") from None
            if self._d.eof:
                self._pending, self._tail, self._d = self._d.unused_data, b"", None
            else:
                self._tail = self._d.unconsumed_tail
            if out:
                return out


class _ZstdDecoder:
    def __init__(self, raw):
        try:
            import zstandard
        except ImportError:  # pragma: no cover - dependency missing
            raise StoreError("zstd layers need the 'zstandard' Python package (pip install zstandard)") from None
        self._zstd = zstandard
        self._r = zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK, read_across_frames=True)

    def read(self, n: int) -> bytes:
        try:
            return self._r.read(n)
        except self._zstd.ZstdError as e:
            raise StoreError(f"invalid zstd stream: {e}") from None


class _FileDecoder:
    """bz2/xz through the stdlib's multi-stream readers (rare in layers; correctness over speed)."""

    def __init__(self, raw, kind: str):
        self._kind = kind
        self._f = bz2.BZ2File(raw) if kind == "bzip2" else lzma.LZMAFile(raw)

    def read(self, n: int) -> bytes:
        try:
            return self._f.read(n)
        except (OSError, EOFError, lzma.LZMAError) as e:
            raise StoreError(f"invalid {self._kind} stream: {e}") from None


class _Plain:
    def __init__(self, raw):
        self._raw = raw

    def read(self, n: int) -> bytes:
        return self._raw.read(n)


EOF = object()


class _Stopped(Exception):
    pass


class Pump(threading.Thread):
    """Reads, hashes, decompresses; puts decompressed chunks (or an exception, then EOF) in a queue."""

    def __init__(self, src, head: bytes, kind: str, tee=None):
        super().__init__(name="jupybox-layer-pump", daemon=True)
        self.q: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
        self.stop = threading.Event()
        self.raw = _Prefixed(head, src)
        self.kind = kind
        self.tee = tee
        self.diff = hashlib.sha256() if kind != "none" else None
        self.tar_size = 0

    def _put(self, item) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            kind = self.kind
            if kind == "gzip":
                dec = _GzipDecoder(self.raw)
            elif kind == "zstd":
                dec = _ZstdDecoder(self.raw)
            elif kind in ("bzip2", "xz"):
                dec = _FileDecoder(self.raw, kind)
            else:
                dec = _Plain(self.raw)
            diff = self.diff
            tee = self.tee
            read = dec.read
            put = self._put
            while True:
                out = read(CHUNK)
                if not out:
                    break
                if diff is not None:
                    diff.update(out)
                self.tar_size += len(out)
                if tee is not None:
                    if self.stop.is_set():
                        raise _Stopped
                    tee(out)
                put(out)
            while self.raw.read(CHUNK):  # anything after the end of the compressed stream is hashed too
                pass
            put(EOF)
        except _Stopped:
            return
        except BaseException as e:  # handed to the consumer, which re-raises it
            try:
                self._put(e)
            except _Stopped:
                pass

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.diff.hexdigest() if self.diff is not None else self.raw.digest


class Reader:
    """The consumer side: a forward-only file object over the pump's chunks (what tarfile reads)."""

    def __init__(self, pump: Pump):
        self._q = pump.q
        self._buf = b""
        self._view = memoryview(b"")
        self._pos = 0
        self._off = 0
        self._eof = False
        self.last_block: bytes | None = None  # the last 512-byte header read: tells a clean end

    def _fill(self) -> bool:
        if self._eof:
            return False
        item = self._q.get()
        if item is EOF:
            self._eof = True
            return False
        if isinstance(item, BaseException):
            self._eof = True
            raise item
        self._buf = item
        self._view = memoryview(item)
        self._pos = 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_HEADER_READ:
            raise UnsafeArchive(f"unsafe layer: extended tar header of {n} bytes")
        avail = len(self._buf) - self._pos
        if avail >= n:
            p = self._pos
            out = self._buf[p:p + n]
            self._pos = p + n
        else:
            parts = [self._buf[self._pos:]] if avail else []
            got = avail
            self._pos = len(self._buf)
            while got < n and self._fill():
                take = min(n - got, len(self._buf))
                parts.append(self._buf[:take])
                self._pos = take
                got += take
            out = b"".join(parts)
        self._off += len(out)
        if n == 512:
            self.last_block = out
        return out

    def view(self, n: int) -> memoryview:
        """Up to ``n`` bytes (at least 1 unless at the end) without copying."""
        if self._pos >= len(self._buf):
            if not self._fill():
                return memoryview(b"")
        p = self._pos
        take = min(n, len(self._buf) - p)
        self._pos = p + take
        self._off += take
        return self._view[p:p + take]

    def skip(self, n: int) -> None:
        while n > 0:
            v = self.view(n)
            if not v:
                raise StoreError("truncated layer: unexpected end of tar data")
            n -= len(v)

    def tell(self) -> int:
        return self._off

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self._off
        elif whence != 0:
            raise OSError(errno.ESPIPE, "layer stream is forward-only")
        if offset < self._off:
            raise OSError(errno.ESPIPE, "layer stream is forward-only")
        self.skip(offset - self._off)
        return self._off

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self._fill():
            self._pos = len(self._buf)
