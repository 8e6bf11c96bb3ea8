"""The safe filter that applies one layer's tar members to a directory (:class:`Extractor`).

It keeps what an image needs: setuid/setgid/sticky bits, numeric ownership (when root), xattrs
(pax ``SCHILY.xattr.*``; ``trusted.overlay.*``/``user.overlay.*`` from the archive are dropped),
hard links, symlinks, device nodes and fifos (devices only when root), mtimes. It rejects
(:class:`UnsafeArchive`, one line naming the member): absolute member names, any ``..``
component, a member whose parent is a symlink or a non-directory (so nothing is ever written
through a symlink laid by an earlier member: parents are either created by us with ``mkdir`` or
checked with ``lstat``, and that knowledge is invalidated when a later member replaces a path),
hard links to absolute paths, outside the layer, to missing members or to whiteouts, sizes above
:data:`MAX_MEMBER_SIZE`, and ``.wh.`` markers naming ``..``/``.``. A duplicate member replaces the
earlier one (later wins; a directory over a directory only updates its metadata).

OCI whiteouts: ``.wh.NAME`` becomes a 0/0 character device ``NAME`` (unless ``NAME`` is already
content of this same layer: whiteouts only hide lower layers), ``DIR/.wh..wh..opq`` becomes the
opaque xattr on ``DIR`` (applied at the end, so tar order never matters and entries of the same
layer are never deleted); other ``.wh..wh.*`` (aufs metadata) are skipped; markers are never
extracted.

Root store or rootless store (euid != 0): :mod:`.markers` decides. Rootless, the opaque xattr is
``user.overlay.opaque`` (overlayfs mounted with ``userxattr`` in the container's user namespace),
whiteouts are the same 0/0 character devices (an unprivileged ``mknod`` of one is allowed since
Linux 5.8), everything is owned by the user (root inside the user namespace; no chown is tried),
device nodes are skipped and counted (a hard link to a skipped device is skipped too),
``trusted.*``/``security.*`` xattrs are skipped (``user.*`` kept); modes, setuid/setgid bits
included, are kept. The safety checks are the same in both modes.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile

from ..errors import StoreError, UnsafeArchive
from . import markers
from .layerstream import Reader

MAX_MEMBER_SIZE = 1 << 40  # 1 TiB: anything larger in a header is hostile or corrupt

WHITEOUT_PREFIX = markers.WHITEOUT_PREFIX
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = markers.OPAQUE_MARKER

_XATTR_PREFIX = "SCHILY.xattr."
_IGNORED_XATTR_ERRNOS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EINVAL}



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


class Extractor:
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

    def apply(self, ti: tarfile.TarInfo, reader: Reader) -> None:
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

    def _file(self, ti, rel: str, reader: Reader) -> None:
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

    def _sparse(self, ti, fd: int, reader: Reader) -> None:
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
