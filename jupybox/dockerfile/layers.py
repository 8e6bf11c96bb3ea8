"""Layers the build writes: :class:`LayerWriter` makes a layer's tar blob and its unpacked
directory at once (COPY/ADD entries, or a RUN step's upper directory walked by :mod:`.upper`).

**Written directly** (:class:`LayerWriter`), for COPY/ADD: one read of each source file feeds its
content hash (for the cache), the tar blob and the unpacked directory, so the layer is ready for
later RUN steps without unpacking it again.

Rootless (euid != 0, :mod:`jupybox.image.markers`), the unpacked directory is written as the
store's extractor writes one: no chown (everything is the user's, root inside the user namespace;
the tar keeps the ids asked for), no device nodes (the tar keeps them), no ``trusted.*`` or
``security.*`` xattrs, ``user.overlay.opaque`` for opaque directories.

Blobs are stored uncompressed (``application/vnd.oci.image.layer.v1.tar``, digest = diff_id), like
``jupybox import``: a build pays no deflate; a push compresses on the way out.
"""


from __future__ import annotations

import errno
import fcntl
import os
import stat
import tarfile
import tempfile

from ..image import markers
from ..image import mediatypes as mt

CHUNK = 1 << 20
BLOCK = 512
_SKIP_XATTR_PREFIXES = markers.OVERLAY_XATTR_PREFIXES
OPAQUE_MARKER = markers.OPAQUE_MARKER
WHITEOUT_PREFIX = markers.WHITEOUT_PREFIX


class LayerRef:
    __slots__ = ("desc", "diff_id")

    def __init__(self, desc: dict, diff_id: str):
        self.desc = desc  # manifest descriptor: mediaType, digest, size
        self.diff_id = diff_id


def xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in names:
        if n.startswith(_SKIP_XATTR_PREFIXES):
            continue
        try:
            v = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + n] = v.decode("utf-8", "surrogateescape")
    return out


class _Out:
    """Buffered writes into the store's blob writer (which hashes: digest = diff_id)."""

    def __init__(self, blob):
        self.blob = blob
        self.buf = bytearray()
        self.size = 0

    def write(self, data) -> None:
        n = len(data)
        self.size += n
        if n >= 65536:  # big chunks go straight through: no copy into the buffer
            self.flush()
            self.blob.write(data)
            return
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            self.blob.write(bytes(self.buf))
            self.buf.clear()


def _header(name: str, typ: bytes, mode: int, uid: int, gid: int, mtime: float, size: int = 0,
            linkname: str = "", pax: dict | None = None, dev: tuple[int, int] = (0, 0)) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.mode = mode & 0o7777
    ti.uid = uid
    ti.gid = gid
    ti.mtime = int(mtime)
    ti.size = size
    ti.linkname = linkname
    ti.uname = ""
    ti.gname = ""
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = pax
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class LayerWriter:
    """One layer being written: ``add_*`` entries (parents before children), then ``commit()``.

    With ``unpack=True`` the entries are also created in a fresh directory under the store's
    ``tmp/`` that ``commit`` renames to ``layers/<diff-id>``. Use as a context manager: leaving
    without commit removes everything."""

    def __init__(self, store, unpack: bool = True):
        self.store = store
        self.blob = store.open_blob_writer()
        self.out = _Out(self.blob)
        self.dir = None
        self._lockfd = None
        if unpack:
            store.tmp.mkdir(parents=True, exist_ok=True)
            self.dir = tempfile.mkdtemp(prefix="layer-build-", dir=store.tmp)
            self._lockfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(self._lockfd, fcntl.LOCK_EX)
            os.chmod(self.dir, 0o755)
        self._dirs: list[tuple[str, int, int, int, float]] = []
        self._names: set[str] = set()
        self._dirset: set[str] = {""}
        self.entries = 0
        self.skipped_devices = 0  # device nodes in the tar but not in the directory (rootless)
        self._skipped: set[str] = set()
        self.committed: LayerRef | None = None
        self._privileged = markers.privileged()

    # ---- entries
    def _claim(self, name: str) -> None:
        if name in self._names:
            raise ValueError(f"duplicate layer entry {name!r}")
        parent = name.rpartition("/")[0]
        if parent not in self._dirset:
            # every entry sits in a directory written before it by this writer: nothing is ever
            # created through a symlink (which could point anywhere on the host)
            raise ValueError(f"layer entry {name!r}: its parent is not a directory of the layer")
        self._names.add(name)
        self.entries += 1

    def has(self, name: str) -> bool:
        return name in self._names

    def add_dir(self, name: str, mode: int, uid: int, gid: int, mtime: float, pax: dict | None = None,
                opaque: bool = False) -> None:
        self._claim(name)
        self._dirset.add(name)
        self.out.write(_header(name, tarfile.DIRTYPE, mode, uid, gid, mtime, pax=pax))
        if self.dir is not None:
            p = os.path.join(self.dir, name)
            os.mkdir(p, 0o700)
            self._chown(p, uid, gid)
            self._set_xattrs(p, pax)
            self._dirs.append((p, mode, uid, gid, mtime))
        if opaque:
            self.out.write(_header(name + "/" + OPAQUE_MARKER, tarfile.REGTYPE, 0, uid, gid, mtime))
            if self.dir is not None:
                markers.set_opaque(os.path.join(self.dir, name))

    def add_file(self, name: str, mode: int, uid: int, gid: int, mtime: float, *, src: str | None = None,
                 data: bytes | None = None, size: int | None = None, pax: dict | None = None,
                 hasher=None) -> None:
        """A regular file whose content is read once from ``src`` (or given as ``data``); every chunk
        also goes to ``hasher.update`` when given (the cache's content checksum)."""
        self._claim(name)
        fd_out = -1
        if self.dir is not None:
            p = os.path.join(self.dir, name)
            fd_out = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if data is not None:
                self.out.write(_header(name, tarfile.REGTYPE, mode, uid, gid, mtime, size=len(data), pax=pax))
                self._data(data, fd_out, hasher)
                total = len(data)
            else:
                fd_in = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                try:
                    if size is None:
                        size = os.fstat(fd_in).st_size
                    self.out.write(_header(name, tarfile.REGTYPE, mode, uid, gid, mtime, size=size, pax=pax))
                    total = 0
                    while total < size:
                        chunk = os.read(fd_in, min(CHUNK, size - total))
                        if not chunk:
                            raise OSError(errno.EIO, f"{src}: file shrank while being copied")
                        self._data(chunk, fd_out, hasher)
                        total += len(chunk)
                finally:
                    os.close(fd_in)
            pad = (-total) % BLOCK
            if pad:
                self.out.write(b"\0" * pad)
            if fd_out >= 0:
                self._chown(fd_out, uid, gid)
                os.fchmod(fd_out, mode & 0o7777)
                self._set_xattrs(fd_out, pax)
                ns = int(mtime * 1e9) if isinstance(mtime, float) else mtime * 1_000_000_000
                os.utime(fd_out, ns=(ns, ns))
        finally:
            if fd_out >= 0:
                os.close(fd_out)

    def _data(self, chunk, fd_out: int, hasher) -> None:
        self.out.write(chunk)
        if hasher is not None:
            hasher.update(chunk)
        if fd_out >= 0:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd_out, view):]

    def add_symlink(self, name: str, target: str, uid: int, gid: int, mtime: float, pax: dict | None = None) -> None:
        self._claim(name)
        self.out.write(_header(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime, linkname=target, pax=pax))
        if self.dir is not None:
            p = os.path.join(self.dir, name)
            os.symlink(target, p)
            self._chown(p, uid, gid)
            ns = int(mtime) * 1_000_000_000
            os.utime(p, ns=(ns, ns), follow_symlinks=False)

    def add_hardlink(self, name: str, target: str, uid: int, gid: int, mtime: float) -> None:
        self._claim(name)
        self.out.write(_header(name, tarfile.LNKTYPE, 0o644, uid, gid, mtime, linkname=target))
        if self.dir is not None:
            if target in self._skipped:  # a link to a device left out (rootless)
                self._skipped.add(name)
                self.skipped_devices += 1
                return
            os.link(os.path.join(self.dir, target), os.path.join(self.dir, name), follow_symlinks=False)

    def add_special(self, name: str, st: os.stat_result, uid: int, gid: int, pax: dict | None = None) -> None:
        self._claim(name)
        m = st.st_mode
        if stat.S_ISFIFO(m):
            typ, dev = tarfile.FIFOTYPE, (0, 0)
        else:
            typ = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
            dev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        self.out.write(_header(name, typ, m, uid, gid, st.st_mtime, pax=pax, dev=dev))
        if self.dir is not None:
            p = os.path.join(self.dir, name)
            if typ == tarfile.FIFOTYPE:
                os.mkfifo(p, 0o600)
            else:
                kind = stat.S_IFCHR if typ == tarfile.CHRTYPE else stat.S_IFBLK
                if not markers.may_mknod(kind, st.st_rdev):
                    self.skipped_devices += 1  # rootless: in the tar, not in the directory
                    self._skipped.add(name)
                    return
                os.mknod(p, kind | 0o600, st.st_rdev)
            self._chown(p, uid, gid)
            os.chmod(p, m & 0o7777)
            ns = int(st.st_mtime) * 1_000_000_000
            os.utime(p, ns=(ns, ns), follow_symlinks=False)

    def _chown(self, target, uid: int, gid: int) -> None:
        """Ownership in the unpacked directory: root store only (rootless, the user's own files
        are root's inside the user namespace; the tar header carries the ids)."""
        if not self._privileged:
            return
        if isinstance(target, int):
            os.fchown(target, uid, gid)
        else:
            os.chown(target, uid, gid, follow_symlinks=False)

    def _set_xattrs(self, target, pax: dict | None) -> None:
        if not pax:
            return
        for k, v in pax.items():
            if k.startswith("SCHILY.xattr."):
                if not markers.keep_xattr(k[13:], self._privileged):
                    continue
                try:
                    os.setxattr(target, k[13:], v.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass

    # ---- end
    def commit(self) -> LayerRef:
        """Finish the tar, store the blob, move the directory to ``layers/<diff-id>``."""
        if self.committed:
            return self.committed
        self.out.write(b"\0" * (2 * BLOCK))
        self.out.flush()
        if self.dir is not None:
            for p, mode, uid, gid, mtime in reversed(self._dirs):
                os.chmod(p, mode & 0o7777)
                ns = int(mtime) * 1_000_000_000
                os.utime(p, ns=(ns, ns), follow_symlinks=False)
        digest = self.blob.commit()
        ref = LayerRef({"mediaType": mt.OCI_LAYER, "digest": digest, "size": self.out.size}, digest)
        if self.dir is not None:
            adopt_dir(self.store, self.dir, digest)
            self.dir = None
            self._unlock()
        self.committed = ref
        return ref

    def _unlock(self) -> None:
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None

    def abort(self) -> None:
        self.blob.abort()
        if self.dir is not None:
            from ..image.layer import remove_tree

            remove_tree(self.dir)
            self.dir = None
        self._unlock()

    def __enter__(self) -> "LayerWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed is None:
            self.abort()


def adopt_dir(store, path: str, diff_id: str) -> None:
    """Make the directory ``path`` the store's unpacked layer ``diff_id`` (one rename); if another
    build got there first, ``path`` is removed."""
    dest = store.layer_path(diff_id)
    try:
        os.rename(path, dest)
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        from ..image.layer import remove_tree

        remove_tree(path)
