"""Safe, fast application of an OCI layer tar to a directory usable as an overlayfs lower dir.

One pass over the blob:

* a producer thread reads the blob, hashes it (the manifest digest), decompresses it (gzip, zstd,
  bzip2, xz or plain: detected by magic bytes, never by name), hashes the tar (the diff_id) and
  hands 1 MiB chunks to the main thread through a bounded queue; zlib, zstd and sha256 release
  the GIL, so decompression and hashing run in parallel with extraction;
* the main thread parses headers with :mod:`tarfile` (forward-only, never seeking back; member
  data is written straight from the decompressed chunks with ``os.write``) and applies each
  member with its own filter (:class:`_Extractor`), not ``TarFile.extract``.

The filter keeps what an image needs: setuid/setgid/sticky bits, numeric ownership (when root),
xattrs (pax ``SCHILY.xattr.*``; ``trusted.overlay.*``/``user.overlay.*`` from the archive are
dropped), hard links, symlinks, device nodes and fifos (devices only when root), mtimes. It
rejects (:class:`UnsafeArchive`, one line naming the member): absolute member names, any ``..``
component, a member whose parent is a symlink or a non-directory (so nothing is ever written
through a symlink laid by an earlier member: parents are either created by us with ``mkdir`` or
checked with ``lstat``, and that knowledge is invalidated when a later member replaces a path),
hard links to absolute paths, outside the layer, to missing members or to whiteouts, sizes above
:data:`MAX_MEMBER_SIZE`, oversized extended headers, and ``.wh.`` markers naming ``..``/``.``.
A duplicate member replaces the earlier one (later wins; a directory over a directory only
updates its metadata).

OCI whiteouts: ``.wh.NAME`` becomes a 0/0 character device ``NAME`` (unless ``NAME`` is already
content of this same layer: whiteouts only hide lower layers), ``DIR/.wh..wh..opq`` becomes the
opaque xattr on ``DIR`` (applied at the end, so tar order never matters and entries of the same
layer are never deleted); other ``.wh..wh.*`` (aufs metadata) are skipped; markers are never
extracted.

Root store or rootless store (euid != 0): :mod:`.markers` decides. Rootless, the opaque xattr is
``user.overlay.opaque`` (overlayfs mounted with ``userxattr`` in the container's user namespace),
whiteouts are the same 0/0 character devices (an unprivileged ``mknod`` of one is allowed since
Linux 5.8), everything is owned by the user (root inside the user namespace; no chown is tried),
device nodes are skipped and counted (:attr:`LayerInfo.skipped_devices`; a hard link to a skipped
device is skipped too), ``trusted.*``/``security.*`` xattrs are skipped (``user.*`` kept);
modes, setuid/setgid bits included, are kept. The safety checks are the same in both modes.

:func:`unpack_layer` extracts into a fresh directory under ``tmp_dir`` (flock'ed while in use so
a concurrent ``gc`` leaves it alone) and commits it with one ``rename``; on any error the partial
directory is removed. File data is not fsync'ed (like docker's overlay2 and GNU tar): layer
directories are derived from blobs and can be re-created.
"""

from __future__ import annotations

import bz2
import errno
import fcntl
import hashlib
import logging
import lzma
import os
import queue
import shutil
import stat
import struct
import tarfile
import tempfile
import threading
import zlib
from dataclasses import dataclass

from ..errors import DigestMismatch, JupyboxError, StoreError, UnsafeArchive
from . import markers

log = logging.getLogger(__name__)

MAX_MEMBER_SIZE = 1 << 40  # 1 TiB: anything larger in a header is hostile or corrupt
MAX_HEADER_READ = 16 << 20  # pax/GNU long-name headers larger than this are refused
CHUNK = 1 << 20
QUEUE_CHUNKS = 16

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"

WHITEOUT_PREFIX = markers.WHITEOUT_PREFIX
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = markers.OPAQUE_MARKER
OPAQUE_XATTR = markers.TRUSTED_OVERLAY + "opaque"  # root store; rootless: USER_OPAQUE_XATTR
USER_OPAQUE_XATTR = markers.USER_OVERLAY + "opaque"

_XATTR_PREFIX = "SCHILY.xattr."
_IGNORED_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EINVAL}


@dataclass
class LayerInfo:
    """What one pass over a layer blob found."""

    diff_id: str  # sha256 of the uncompressed tar
    digest: str  # sha256 of the blob as read (compressed)
    size: int  # bytes of the blob as read
    tar_size: int  # bytes of the uncompressed tar
    compression: str  # none | gzip | zstd | bzip2 | xz
    entries: int = 0  # tar members seen
    path: str | None = None  # the committed directory (unpack_layer)
    existed: bool = False  # another process committed the same layer first
    skipped_devices: int = 0  # device nodes (and hard links to them) left out: rootless store


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


# --------------------------------------------------------------------------------------------
# decompression, in the producer thread


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


_EOF = object()


class _Stopped(Exception):
    pass


class _Pump(threading.Thread):
    """Reads, hashes, decompresses; puts decompressed chunks (or an exception, then _EOF) in a queue."""

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
            put(_EOF)
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


class _Reader:
    """The consumer side: a forward-only file object over the pump's chunks (what tarfile reads)."""

    def __init__(self, pump: _Pump):
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
        if item is _EOF:
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


# --------------------------------------------------------------------------------------------
# header parsing: tarfile's TarInfo.frombuf costs ~26 us a header (a third of the Python time of
# a 224 MB / 12k-member layer); this fast path for plain octal ustar/GNU headers costs ~7 us and
# falls back to tarfile for everything else (base-256 numbers, old GNU sparse, bad headers).

_HDR = struct.Struct("100s8s8s8s12s12s8s1s100s8x32s32s8s8s155s12x")
_GNU_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE)


class _Slow(Exception):
    pass


def _oct(field: bytes) -> int:
    if field[0] & 0x80:
        raise _Slow
    s = field.split(b"\0", 1)[0].strip()
    return int(s, 8) if s else 0


class _FastTarInfo(tarfile.TarInfo):
    __slots__ = ()

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        if len(buf) != 512 or buf[156:157] == tarfile.GNUTYPE_SPARSE or not buf.count(0) < 512:
            return super().frombuf(buf, encoding, errors)
        (name, mode, uid, gid, size, mtime, chksum, typ, linkname, uname, gname,
         devmajor, devminor, prefix) = _HDR.unpack(buf)
        try:
            chk = _oct(chksum)
            if chk != sum(buf) - sum(chksum) + 256:
                raise _Slow  # maybe a signed-char checksum: let tarfile decide
            obj = cls()
            obj.mode = _oct(mode)
            obj.uid = _oct(uid)
            obj.gid = _oct(gid)
            obj.size = _oct(size)
            obj.mtime = _oct(mtime)
            obj.devmajor = _oct(devmajor)
            obj.devminor = _oct(devminor)
        except (_Slow, ValueError):
            return super().frombuf(buf, encoding, errors)
        obj.chksum = chk
        obj.name = name.split(b"\0", 1)[0].decode(encoding, errors)
        obj.type = typ
        obj.linkname = linkname.split(b"\0", 1)[0].decode(encoding, errors)
        obj.uname = uname.split(b"\0", 1)[0].decode(encoding, errors)
        obj.gname = gname.split(b"\0", 1)[0].decode(encoding, errors)
        if typ == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix[0] and typ not in _GNU_TYPES:
            obj.name = prefix.split(b"\0", 1)[0].decode(encoding, errors) + "/" + obj.name
        return obj


# --------------------------------------------------------------------------------------------
# extraction, in the main thread


def _unsafe(name: str, why: str) -> UnsafeArchive:
    return UnsafeArchive(f"unsafe layer: member {name!r}: {why}")


def _clean(name: str) -> str:
    """The member name as a relative path with no '.', '..' or empty components ('' is the root)."""
    if name.startswith("/"):
        raise _unsafe(name, "absolute path")
    if "\0" in name:
        raise _unsafe(name, "NUL in name")
    parts = name.split("/")
    if "." in parts or "" in parts or ".." in parts:
        if ".." in parts:
            raise _unsafe(name, "path contains '..'")
        parts = [p for p in parts if p and p != "."]
    return "/".join(parts)


def _mtime_ns(t) -> int:
    if isinstance(t, int):
        return t * 1_000_000_000
    return int(round(t * 1e9))


class _Extractor:
    def __init__(self, root: str):
        self.root = root
        self.privileged = markers.privileged()
        self.opaque_xattr = markers.opaque_xattr()
        self.dirs: set[str] = {""}  # relative paths known to be real directories made/checked by us
        self.deferred: dict[str, tarfile.TarInfo] = {}  # directory metadata, applied at the end
        self.opaque: set[str] = set()
        self.whiteouts: set[str] = set()
        self.skipped: set[str] = set()  # device members not created (rootless)
        self.skipped_devices = 0
        self.skipped_log: list[str] = []  # the first few, for the log line
        self.entries = 0

    # ---- paths

    def _path(self, rel: str) -> str:
        return self.root + "/" + rel if rel else self.root

    def _ensure_dir_chain(self, rel: str, name: str) -> None:
        """Make sure every component of ``rel`` is a real directory (create missing ones)."""
        if rel in self.dirs:
            return
        cur = ""
        for comp in rel.split("/"):
            cur = cur + "/" + comp if cur else comp
            if cur in self.dirs:
                continue
            p = self.root + "/" + cur
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                os.mkdir(p, 0o755)
                os.chmod(p, 0o755)  # whatever the umask
                self.dirs.add(cur)
                continue
            if stat.S_ISDIR(st.st_mode):
                self.dirs.add(cur)
            elif stat.S_ISLNK(st.st_mode):
                raise _unsafe(name, f"parent {cur!r} is a symlink")
            else:
                raise _unsafe(name, f"parent {cur!r} is not a directory")

    def _forget(self, rel: str) -> None:
        """``rel`` is being removed: forget what we knew about it and everything below it."""
        prefix = rel + "/"
        for s in (self.dirs, self.opaque, self.whiteouts, self.skipped):
            if rel in s or any(x.startswith(prefix) for x in s):
                s.difference_update([x for x in s if x == rel or x.startswith(prefix)])
        for k in [k for k in self.deferred if k == rel or k.startswith(prefix)]:
            del self.deferred[k]

    def _remove(self, rel: str) -> bool:
        """Remove what is at ``rel`` (a later member wins). Returns True if it was a directory
        (which is left in place)."""
        p = self._path(rel)
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            return True
        os.unlink(p)
        self.whiteouts.discard(rel)
        return False

    def _replace_any(self, rel: str) -> None:
        p = self._path(rel)
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode):
            self._forget(rel)
            shutil.rmtree(p)
        else:
            os.unlink(p)
            self.whiteouts.discard(rel)

    # ---- metadata

    def _xattrs(self, ti: tarfile.TarInfo, target, follow: bool = True) -> None:
        for key, value in ti.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            attr = key[len(_XATTR_PREFIX):]
            if not markers.keep_xattr(attr, self.privileged):
                continue
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                os.setxattr(target, attr, data, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in _IGNORED_XATTR_ERRNOS:
                    raise

    def _chown(self, target, ti, follow: bool = True) -> None:
        if self.privileged:
            if isinstance(target, int):
                os.fchown(target, ti.uid, ti.gid)
            else:
                os.chown(target, ti.uid, ti.gid, follow_symlinks=follow)

    # ---- members

    def apply(self, ti: tarfile.TarInfo, reader: _Reader) -> None:
        name = ti.name
        rel = _clean(name)
        self.entries += 1
        base = rel.rpartition("/")[2]
        if ".wh." in rel:
            parent = rel.rpartition("/")[0]
            if any(c.startswith(WHITEOUT_PREFIX) for c in parent.split("/")):
                raise _unsafe(name, "whiteout marker used as a directory")
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(ti, rel, parent, base)
                return
        size = ti.size
        if size < 0 or size > MAX_MEMBER_SIZE:
            raise _unsafe(name, f"absurd size {size}")
        if rel == "":
            if not ti.isdir():
                raise _unsafe(name, "non-directory at the layer root")
            self.deferred[""] = ti
            return
        if rel.rpartition("/")[0] not in self.dirs:
            self._ensure_dir_chain(rel.rpartition("/")[0], name)
        if self.skipped:
            self.skipped.discard(rel)  # a later member replaces a skipped device
        if ti.isreg():
            self._file(ti, rel, reader)
        elif ti.isdir():
            self._dir(ti, rel)
        elif ti.issym():
            self._symlink(ti, rel)
        elif ti.islnk():
            self._hardlink(ti, rel)
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            self._special(ti, rel)
        # other types (GNU volume headers, ...) are skipped; tarfile skips their data

    def _file(self, ti, rel: str, reader: _Reader) -> None:
        p = self.root + "/" + rel
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(p, flags, 0o600)
        except FileExistsError:
            self._replace_any(rel)
            fd = os.open(p, flags, 0o600)
        try:
            if ti.sparse is not None:
                self._sparse(ti, fd, reader)
            else:
                remaining = ti.size
                view = reader.view
                write = os.write
                while remaining:
                    v = view(remaining)
                    if not v:
                        raise StoreError(f"truncated layer: member {ti.name!r}: unexpected end of data")
                    remaining -= len(v)
                    while v:
                        v = v[write(fd, v):]
            self._chown(fd, ti)
            os.fchmod(fd, ti.mode & 0o7777)
            if ti.pax_headers:
                self._xattrs(ti, fd)
            ns = _mtime_ns(ti.mtime)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _sparse(self, ti, fd: int, reader: _Reader) -> None:
        # GNU sparse: tarfile knows the map; read the stored segments in order, leave holes.
        pos = 0
        for offset, numbytes in ti.sparse:
            if numbytes == 0:
                continue  # the end marker (size, 0) and unused old-GNU slots (0, 0)
            if offset < pos or numbytes < 0 or offset + numbytes > ti.size:
                raise _unsafe(ti.name, "bad sparse map")
            remaining = numbytes
            os.lseek(fd, offset, os.SEEK_SET)
            while remaining:
                v = reader.view(remaining)
                if not v:
                    raise StoreError(f"truncated layer: member {ti.name!r}: unexpected end of data")
                remaining -= len(v)
                while v:
                    v = v[os.write(fd, v):]
            pos = offset + numbytes
        os.ftruncate(fd, ti.size)

    def _dir(self, ti, rel: str) -> None:
        p = self.root + "/" + rel
        try:
            os.mkdir(p, 0o700)
        except FileExistsError:
            if not self._remove(rel):
                os.mkdir(p, 0o700)
        self.dirs.add(rel)
        self.deferred[rel] = ti
        self._chown(p, ti, follow=False)
        if ti.pax_headers:
            self._xattrs(ti, p, follow=False)

    def _symlink(self, ti, rel: str) -> None:
        p = self.root + "/" + rel
        if not ti.linkname:
            raise _unsafe(ti.name, "empty symlink target")
        try:
            os.symlink(ti.linkname, p)
        except FileExistsError:
            self._replace_any(rel)
            os.symlink(ti.linkname, p)
        self._chown(p, ti, follow=False)
        if ti.pax_headers:
            self._xattrs(ti, p, follow=False)
        ns = _mtime_ns(ti.mtime)
        os.utime(p, ns=(ns, ns), follow_symlinks=False)

    def _hardlink(self, ti, rel: str) -> None:
        name = ti.name
        link = ti.linkname
        if link.startswith("/"):
            raise _unsafe(name, f"hard link to absolute path {link!r}")
        try:
            target = _clean(link)
        except UnsafeArchive:
            raise _unsafe(name, f"hard link to {link!r} outside the layer") from None
        if not target:
            raise _unsafe(name, "hard link to the layer root")
        tbase = target.rpartition("/")[2]
        if tbase.startswith(WHITEOUT_PREFIX) or target in self.whiteouts:
            raise _unsafe(name, f"hard link to whiteout {link!r}")
        if target in self.skipped:  # a device node left out (rootless): so is this link to it
            self._skip_device(rel)
            return
        tparent = target.rpartition("/")[0]
        if tparent not in self.dirs:
            # never create directories for a link target: it must be an earlier member
            cur = ""
            for comp in tparent.split("/"):
                cur = cur + "/" + comp if cur else comp
                if cur in self.dirs:
                    continue
                try:
                    st = os.lstat(self.root + "/" + cur)
                except FileNotFoundError:
                    raise _unsafe(name, f"hard link target {link!r} is not in the layer") from None
                if not stat.S_ISDIR(st.st_mode):
                    raise _unsafe(name, f"hard link target {link!r} goes through a symlink")
                self.dirs.add(cur)
        tp = self.root + "/" + target
        try:
            st = os.lstat(tp)
        except FileNotFoundError:
            raise _unsafe(name, f"hard link target {link!r} is not in the layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise _unsafe(name, f"hard link to directory {link!r}")
        if target == rel:
            return
        p = self.root + "/" + rel
        try:
            os.link(tp, p, follow_symlinks=False)
        except FileExistsError:
            self._replace_any(rel)
            os.link(tp, p, follow_symlinks=False)

    def _special(self, ti, rel: str) -> None:
        p = self.root + "/" + rel
        if ti.isfifo():
            mk = lambda: os.mkfifo(p, 0o600)  # noqa: E731
        else:
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
            dev = os.makedev(ti.devmajor, ti.devminor)
            if not (self.privileged or markers.may_mknod(kind, dev)):
                self._skip_device(rel)  # needs CAP_MKNOD: left out rootless (like charliecloud)
                return
            mk = lambda: os.mknod(p, kind | 0o600, dev)  # noqa: E731
        try:
            mk()
        except FileExistsError:
            self._replace_any(rel)
            mk()
        self._chown(p, ti, follow=False)
        os.chmod(p, ti.mode & 0o7777)
        if ti.pax_headers:
            self._xattrs(ti, p)
        ns = _mtime_ns(ti.mtime)
        os.utime(p, ns=(ns, ns), follow_symlinks=False)

    def _skip_device(self, rel: str) -> None:
        """A device member not created (rootless): an earlier member at ``rel`` is still replaced."""
        try:
            self._replace_any(rel)
        except FileNotFoundError:
            pass
        self.skipped.add(rel)
        if len(self.skipped_log) < 5:
            self.skipped_log.append(rel)
        self.skipped_devices += 1

    def _whiteout(self, ti, rel: str, parent: str, base: str) -> None:
        name = ti.name
        if base == OPAQUE_MARKER:
            if parent not in self.dirs:
                self._ensure_dir_chain(parent, name)
            self.opaque.add(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): never extracted
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise _unsafe(name, "whiteout of an invalid name")
        if parent not in self.dirs:
            self._ensure_dir_chain(parent, name)
        target = parent + "/" + victim if parent else victim
        if target in self.skipped:
            return  # a device of this same layer (left out rootless): not a lower layer's entry
        try:
            markers.make_whiteout(self.root + "/" + target)
        except FileExistsError:
            return  # content of this same layer: a whiteout only hides lower layers
        except PermissionError:
            raise StoreError(f"layer: member {name!r}: cannot create a whiteout (a 0/0 character device: "
                             f"needs root or Linux >= 5.8)") from None
        self.whiteouts.add(target)

    def finish(self) -> None:
        for rel in self.opaque:
            p = self._path(rel)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                continue
            os.setxattr(p, self.opaque_xattr, b"y", follow_symlinks=False)
        for rel, ti in self.deferred.items():
            p = self._path(rel)
            if rel == "":
                self._chown(p, ti, follow=False)
                if ti.pax_headers:
                    self._xattrs(ti, p, follow=False)
            os.chmod(p, ti.mode & 0o7777)
            ns = _mtime_ns(ti.mtime)
            os.utime(p, ns=(ns, ns), follow_symlinks=False)


# --------------------------------------------------------------------------------------------
# entry points


def _read_head(f, n: int = 6) -> bytes:
    head = b""
    while len(head) < n:
        b = f.read(n - len(head))
        if not b:
            break
        head += b
    return head


def _is_zero(b: bytes) -> bool:
    return not b.strip(b"\0")


def extract_layer(src, target_dir: str | os.PathLike, *, expected_diff_id: str | None = None,
                  expected_digest: str | None = None, expected_size: int | None = None,
                  tee=None) -> LayerInfo:
    """Extract the layer ``src`` (a path or a binary file object; plain/gzip/zstd/bzip2/xz) into
    the existing, empty directory ``target_dir``. ``tee(chunk)`` is called with every
    uncompressed chunk (in the producer thread). Verifies ``expected_diff_id`` (uncompressed
    sha256), ``expected_digest``/``expected_size`` (the blob as read). Raises UnsafeArchive,
    DigestMismatch or StoreError; the caller removes ``target_dir`` on error."""
    own = not hasattr(src, "read")
    f = open(src, "rb", buffering=0) if own else src
    try:
        head = _read_head(f)
        kind = detect_compression(head)
        pump = _Pump(f, head, kind, tee)
        reader = _Reader(pump)
        ex = _Extractor(os.fspath(target_dir))
        pump.start()
        try:
            try:
                tar = tarfile.TarFile(fileobj=reader, mode="r", tarinfo=_FastTarInfo)
            except tarfile.ReadError as e:
                if str(e) != "empty file":
                    raise StoreError(f"invalid layer: not a tar archive ({e})") from None
                tar = None
            if tar is not None:
                next_member = tar.next
                members = tar.members
                apply = ex.apply
                while True:
                    try:
                        ti = next_member()
                    except tarfile.TarError as e:
                        raise StoreError(f"invalid layer: {e}") from None
                    if ti is None:
                        break
                    try:
                        apply(ti, reader)
                    except JupyboxError:
                        raise
                    except OSError as e:
                        raise StoreError(f"layer: member {ti.name!r}: {e.strerror or e}") from None
                    members.clear()
                lb = reader.last_block
                if lb is not None and lb and not (len(lb) == 512 and _is_zero(lb)):
                    if len(lb) < 512:
                        raise StoreError("truncated layer: unexpected end of tar headers")
                    raise StoreError(f"invalid layer: bad tar header at offset {reader.tell() - 512}")
            reader.drain()
        finally:
            pump.stop.set()
            pump.join()
        info = LayerInfo(pump.diff_id, pump.raw.digest, pump.raw.size, pump.tar_size, kind, ex.entries,
                         skipped_devices=ex.skipped_devices)
        if ex.skipped_devices:
            log.debug("layer %s: %d device node(s) left out (rootless store: no CAP_MKNOD), e.g. %s",
                      info.diff_id[:19], ex.skipped_devices, ", ".join(ex.skipped_log))
        if expected_digest is not None and info.digest != expected_digest:
            raise DigestMismatch(f"layer blob digest mismatch: expected {expected_digest}, got {info.digest}")
        if expected_size is not None and info.size != expected_size:
            raise DigestMismatch(f"layer blob size mismatch: expected {expected_size}, got {info.size}")
        if expected_diff_id is not None and info.diff_id != expected_diff_id:
            raise DigestMismatch(f"layer diff_id mismatch: expected {expected_diff_id}, got {info.diff_id}")
        try:
            ex.finish()
        except OSError as e:
            raise StoreError(f"layer: finishing directories: {e}") from None
        return info
    finally:
        if own:
            f.close()


def remove_tree(path: str | os.PathLike) -> None:
    """rmtree that also copes with directories left without write permission, and (not root) with
    files a build step wrote as a sub-id (see ``linux.userns.rmtree``)."""
    from ..linux import userns

    userns.rmtree(path)


def unpack_layer(src, dest, *, tmp_dir: str | os.PathLike | None = None,
                 expected_diff_id: str | None = None, expected_digest: str | None = None,
                 expected_size: int | None = None, tee=None) -> LayerInfo:
    """Extract ``src`` into a fresh directory under ``tmp_dir`` (default: dest's parent) and commit
    it as ``dest`` with one rename. ``dest`` may be a callable ``(LayerInfo) -> path`` to name the
    directory after what was found (its diff_id). If the destination already exists (another
    process won the race), the new copy is discarded and ``info.existed`` is True. On error
    nothing is left behind."""
    if callable(dest):
        if tmp_dir is None:
            raise ValueError("unpack_layer: tmp_dir is required when dest is a callable")
    else:
        dest = os.fspath(dest)
    tmp_dir = os.fspath(tmp_dir) if tmp_dir is not None else os.path.dirname(dest)
    work = tempfile.mkdtemp(prefix="layer-", dir=tmp_dir)
    lockfd = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lockfd, fcntl.LOCK_EX)  # "in use": a concurrent gc/check skips it
        os.chmod(work, 0o755)
        try:
            info = extract_layer(src, work, expected_diff_id=expected_diff_id,
                                 expected_digest=expected_digest, expected_size=expected_size, tee=tee)
        except BaseException:
            remove_tree(work)
            raise
        if callable(dest):
            dest = os.fspath(dest(info))
        root_mode = None
        if not markers.privileged():
            # moving a directory to another parent updates its "..": without CAP_DAC_OVERRIDE that
            # needs write permission on it, which a layer root of mode 0555 (Fedora's /) lacks
            root_mode = stat.S_IMODE(os.lstat(work).st_mode)
            if not root_mode & stat.S_IWUSR:
                os.chmod(work, root_mode | stat.S_IWUSR)
            else:
                root_mode = None
        try:
            os.rename(work, dest)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                remove_tree(work)
                info.existed = True
            else:
                remove_tree(work)
                raise StoreError(f"cannot commit layer {dest}: {e.strerror}") from None
        else:
            if root_mode is not None:
                os.chmod(dest, root_mode)
        info.path = dest
        try:
            dfd = os.open(os.path.dirname(dest), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return info
    finally:
        os.close(lockfd)
