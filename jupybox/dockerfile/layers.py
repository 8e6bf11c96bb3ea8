"""Layers: a RUN step's overlay upper directory → an OCI layer, and COPY/ADD layers written directly.

**From an upper dir** (:func:`commit_upper`). The container's write layer *is* the step's change
set: it is walked once (sorted, deterministic) into a tar, and then renamed, as it is, into the
store as the layer's unpacked directory (``layers/<diff-id>``), which has exactly the store's
format (whiteouts as 0/0 character devices, opaque directories by xattr). Per entry:

* a 0/0 character device (overlay's whiteout) → an empty ``DIR/.wh.NAME``;
* a directory with the store's opaque xattr (:func:`jupybox.image.markers.opaque_xattr`:
  ``trusted.overlay.opaque=y`` as root, ``user.overlay.opaque=y`` rootless, where overlayfs is
  mounted with ``userxattr``) → the directory, then ``DIR/.wh..wh..opq``;
* regular files (hard links within the layer become tar hard links), symlinks, devices, fifos;
  sockets are skipped (as docker does); mode bits (setuid, setgid, sticky), numeric uid/gid, mtime
  (seconds) and xattrs (pax ``SCHILY.xattr.*``; overlay's own ``trusted.overlay.*`` and
  ``user.overlay.*`` are dropped). Rootless, the upper dir holds host ids: they are written as the
  ids inside the container's user namespace (the user → 0, sub-ids → 1.., see :func:`id_mapper`);
* what the runtime, not the command, put in the upper dir is left out (:func:`runtime_artifacts`):
  ``etc/hosts``, ``etc/hostname``, ``etc/resolv.conf`` — the runtime creates them *empty* in
  ``upper/etc`` as bind-mount targets, and anything the command writes to them goes to the bound
  files, not there (docker keeps those files out of images too) — so they are dropped when they are
  empty regular files (a non-empty one cannot come from the runtime and is kept); then ``etc``
  itself when nothing else is left in it (it was only the mount points' parent), and ``proc``,
  ``sys``, ``dev`` when they are empty directories (the runtime makes them as mount points when the
  image lacks them; with proc, sysfs and a tmpfs mounted there, nothing a command does lands in
  the upper dir at those paths).
  When ``etc`` stays (the command wrote under /etc) it gets the image's /etc metadata back,
  since the runtime's ``mkdir`` gave it fresh metadata.

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
import hashlib
import os
import stat
import tarfile
import tempfile

from ..image import markers
from ..image import mediatypes as mt

CHUNK = 1 << 20
BLOCK = 512
_SKIP_XATTR_PREFIXES = markers.OVERLAY_XATTR_PREFIXES
RUNTIME_ETC_FILES = ("hosts", "hostname", "resolv.conf")
RUNTIME_MOUNT_DIRS = ("proc", "sys", "dev")
OPAQUE_MARKER = markers.OPAQUE_MARKER
WHITEOUT_PREFIX = markers.WHITEOUT_PREFIX
OVERFLOW_ID = 65534  # what the kernel shows for an id with no mapping (nobody/nogroup)


class LayerRef:
    __slots__ = ("desc", "diff_id")

    def __init__(self, desc: dict, diff_id: str):
        self.desc = desc  # manifest descriptor: mediaType, digest, size
        self.diff_id = diff_id


def _xattrs(path: str) -> dict[str, str]:
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


# ----------------------------------------------------------------------------------------------
# RUN: the upper dir


def runtime_artifacts(upper: str, image_fs) -> None:
    """Remove from ``upper`` what the runtime made there (see the module doc); fix ``etc``'s metadata."""
    etc = os.path.join(upper, "etc")
    try:
        st_etc = os.lstat(etc)
    except FileNotFoundError:
        st_etc = None
    if st_etc is not None and stat.S_ISDIR(st_etc.st_mode):
        for name in RUNTIME_ETC_FILES:
            p = os.path.join(etc, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(p)
        image_etc = image_fs.lstat("etc") if image_fs is not None else None
        if not os.listdir(etc):
            os.rmdir(etc)
        elif image_etc is not None and stat.S_ISDIR(image_etc.st_mode):
            if markers.may_chown():  # rootless: both are the user's (root inside)
                os.chown(etc, image_etc.st_uid, image_etc.st_gid, follow_symlinks=False)
            os.chmod(etc, stat.S_IMODE(image_etc.st_mode))
            os.utime(etc, ns=(image_etc.st_atime_ns, image_etc.st_mtime_ns), follow_symlinks=False)
    for name in RUNTIME_MOUNT_DIRS:
        p = os.path.join(upper, name)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode) and not os.listdir(p):
            os.rmdir(p)


def _check_overlay_features(path: str) -> None:
    prefix = markers.overlay_xattr_prefix()  # rootless (userxattr), the kernel refuses both anyway
    for attr in (prefix + "metacopy", prefix + "redirect"):
        try:
            os.getxattr(path, attr, follow_symlinks=False)
        except OSError:
            continue
        raise OSError(errno.ENOTSUP, f"{path}: overlayfs {attr.split('.')[-1]} is not supported in build layers "
                                     f"(mount without metacopy/redirect_dir)")


def _reverse(ranges):
    def f(outside: int) -> int:
        for inside, start, count in ranges:
            if start <= outside < start + count:
                return inside + outside - start
        return OVERFLOW_ID
    return f


def id_mapper(idmap=None):
    """``(uid_of, gid_of)``: host ids in an upper dir → the ids inside the container. Root store:
    the identity. Rootless: through the user-namespace map of :mod:`jupybox.linux.userns` (the user
    → 0, sub-ids → 1..; an id outside the map → 65534, as the kernel shows it)."""
    if idmap is None:
        if markers.privileged():
            return (lambda u: u), (lambda g: g)
        try:
            from ..linux.userns import current_idmap

            idmap = current_idmap()
        except Exception:  # the map cannot be read: the single mapping is always right for the user
            return _reverse(((0, os.geteuid(), 1),)), _reverse(((0, os.getegid(), 1),))
    return _reverse(idmap.uids), _reverse(idmap.gids)


def write_tree(w: LayerWriter, root: str, rel: str = "", idmap=None) -> None:
    """Tar the directory tree ``root/rel`` (an overlay upper dir) into ``w`` (which must not unpack).
    ``idmap`` (rootless): the container's user-namespace map; default: this user's."""
    links: dict[tuple[int, int], str] = {}
    uid_of, gid_of = id_mapper(idmap)
    is_opaque = markers.is_opaque
    base = os.path.join(root, rel) if rel else root
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return

    def visit(relpath: str, names: list[str]) -> None:
        for n in names:
            name = f"{relpath}/{n}" if relpath else n
            p = os.path.join(root, name)
            st = os.lstat(p)
            m = st.st_mode
            uid, gid = uid_of(st.st_uid), gid_of(st.st_gid)
            if stat.S_ISDIR(m):
                _check_overlay_features(p)
                w.add_dir(name, m, uid, gid, st.st_mtime, pax=_xattrs(p) or None, opaque=is_opaque(p))
                visit(name, sorted(os.listdir(p)))
            elif stat.S_ISREG(m):
                _check_overlay_features(p)
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    first = links.get(key)
                    if first is not None:
                        w.add_hardlink(name, first, uid, gid, st.st_mtime)
                        continue
                    links[key] = name
                w.add_file(name, m, uid, gid, st.st_mtime, src=p, size=st.st_size, pax=_xattrs(p) or None)
            elif stat.S_ISLNK(m):
                w.add_symlink(name, os.readlink(p), uid, gid, st.st_mtime, pax=_xattrs(p) or None)
            elif markers.is_whiteout(st):
                parent, _, base_name = name.rpartition("/")
                wh = (parent + "/" if parent else "") + WHITEOUT_PREFIX + base_name
                w.add_file(wh, 0, uid, gid, st.st_mtime, data=b"")
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m) or stat.S_ISFIFO(m):
                w.add_special(name, st, uid, gid, pax=_xattrs(p) or None)
            # sockets: skipped

    visit(rel, names)


def strip_overlay_xattrs(root: str) -> None:
    """Drop overlay's bookkeeping xattrs (origin, impure) from a former upper dir: as a lower
    layer it must carry only whiteouts and opaque markers (in the store's namespace)."""
    prefix = markers.overlay_xattr_prefix()
    opaque = markers.opaque_xattr()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
            try:
                names = os.listxattr(n, follow_symlinks=False)
            except OSError:
                continue
            for a in names:
                if a.startswith(prefix) and a != opaque:
                    try:
                        os.removexattr(n, a, follow_symlinks=False)
                    except OSError:
                        pass


def commit_upper(store, upper: str, image_fs, idmap=None) -> LayerRef | None:
    """The layer of a finished RUN step; None when the step changed nothing. ``upper`` is
    consumed: it becomes the store's unpacked layer directory. ``idmap``: rootless, the user
    namespace map the step ran with (default: this user's, :func:`id_mapper`)."""
    runtime_artifacts(upper, image_fs)
    if not os.listdir(upper):
        return None
    with LayerWriter(store, unpack=False) as w:
        write_tree(w, upper, idmap=idmap)
        ref = w.commit()
    strip_overlay_xattrs(upper)
    os.chmod(upper, 0o755)
    adopt_dir(store, upper, ref.diff_id)
    return ref


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
