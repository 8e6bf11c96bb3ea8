"""``build -o``: the final image's filesystem written out, as BuildKit's ``local`` and ``tar``
exporters do: ``type=local,dest=DIR`` (files into a directory, created if missing), ``type=tar,dest=FILE``
(one tar; ``dest=-`` is standard output). Docker's short forms: ``-o DIR``, ``-o -``.

The tree is the merged view of the image's layers (whiteouts applied). Owners are the image's
(the store's unpacked layers, mapped back through the user namespace when rootless); a local
export sets them only when running as root, as ``tar -x`` does. Writing never follows a symlink:
every entry is made relative to its parent directory's descriptor, so an image's link (or one
already in DIR) cannot redirect a write outside DIR.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from ..errors import UsageError
from .context import ImageFS
from .upper import id_mapper

TYPES = ("local", "tar")


class Output:
    __slots__ = ("type", "dest")

    def __init__(self, type_: str, dest: str):
        self.type = type_
        self.dest = dest

    def __repr__(self) -> str:
        return f"Output(type={self.type!r}, dest={self.dest!r})"


def parse_output(spec: str) -> Output:
    """``type=local,dest=out`` / ``type=tar,dest=out.tar`` / ``out`` / ``-``."""
    if "=" not in spec:
        if not spec:
            raise UsageError("invalid output: an empty destination")
        return Output("tar" if spec == "-" else "local", spec)
    fields = {}
    for item in spec.split(","):
        k, eq, v = item.partition("=")
        if not eq:
            raise UsageError(f"invalid output {spec!r}: {item!r} is not KEY=VALUE")
        fields[k.strip().lower()] = v
    kind = fields.pop("type", "local")
    if kind not in TYPES:
        raise UsageError(f"output type {kind!r} is not supported: use {' or '.join(TYPES)} "
                         f"(an image is what a build without -o makes)")
    dest = fields.pop("dest", None)
    if not dest:
        raise UsageError(f"invalid output {spec!r}: dest= is required")
    if fields:
        raise UsageError(f"invalid output {spec!r}: unknown option(s) {', '.join(sorted(fields))}")
    return Output(kind, dest)


def _walk(fs: ImageFS):
    """(relative path, stat, host path) of every entry, parents first."""
    for rel, st in fs.walk(""):
        yield rel, st, fs.host_path(rel)


def write_tar(fs: ImageFS, fileobj) -> None:
    uid_of, gid_of = id_mapper()
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel, st, host in _walk(fs):
            ti = tarfile.TarInfo(rel)
            ti.mode = stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid = uid_of(st.st_uid), gid_of(st.st_gid)
            ti.mtime = int(st.st_mtime)
            m = st.st_mode
            if stat.S_ISDIR(m):
                ti.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(m):
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(host)
            elif stat.S_ISREG(m):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
                else:
                    links[key] = rel
                    ti.size = st.st_size
                    with open(host, "rb") as f:
                        tar.addfile(ti, f)
                    continue
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(m):
                ti.type = tarfile.FIFOTYPE
            else:
                continue  # sockets
            tar.addfile(ti)


def _remove_at(dirfd: int, name: str) -> None:
    """``rm -rf`` of ``name`` in ``dirfd``, never following a symlink."""
    if stat.S_ISDIR(os.lstat(name, dir_fd=dirfd).st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            for child in os.listdir(fd):
                _remove_at(fd, child)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


def _replace(dirfd: int, name: str, keep_dir: bool) -> None:
    """Make room for ``name`` in ``dirfd`` (an existing directory stays when one is wanted)."""
    try:
        st = os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return
    if not (keep_dir and stat.S_ISDIR(st.st_mode)):
        _remove_at(dirfd, name)


def write_local(fs: ImageFS, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    uid_of, gid_of = id_mapper()
    chown = os.geteuid() == 0
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    dirs: dict[str, int] = {"": root}
    times: list[tuple[str, str, int]] = []
    try:
        for rel, st, host in _walk(fs):
            parent, _, name = rel.rpartition("/")
            pfd = dirs[parent]
            m = st.st_mode
            _replace(pfd, name, keep_dir=stat.S_ISDIR(m))
            if stat.S_ISDIR(m):
                try:
                    os.mkdir(name, 0o700, dir_fd=pfd)
                except FileExistsError:
                    pass
                dirs[rel] = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                times.append((parent, name, st.st_mtime_ns))
                fd = dirs[rel]
                if chown:
                    os.fchown(fd, uid_of(st.st_uid), gid_of(st.st_gid))
                os.fchmod(fd, stat.S_IMODE(m))
                continue
            if stat.S_ISLNK(m):
                os.symlink(os.readlink(host), name, dir_fd=pfd)
                if chown:
                    os.chown(name, uid_of(st.st_uid), gid_of(st.st_gid), dir_fd=pfd, follow_symlinks=False)
            elif stat.S_ISREG(m):
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                              dir_fd=pfd)
                try:
                    with open(host, "rb") as src:
                        while True:
                            chunk = src.read(1 << 20)
                            if not chunk:
                                break
                            view = memoryview(chunk)
                            while view:
                                view = view[os.write(out, view):]
                    if chown:
                        os.fchown(out, uid_of(st.st_uid), gid_of(st.st_gid))
                    os.fchmod(out, stat.S_IMODE(m))
                finally:
                    os.close(out)
            elif stat.S_ISFIFO(m):
                os.mkfifo(name, stat.S_IMODE(m), dir_fd=pfd)
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                try:
                    os.mknod(name, (m & 0o170000) | stat.S_IMODE(m), st.st_rdev, dir_fd=pfd)
                except PermissionError:
                    continue  # devices need root: BuildKit's local export skips them too then
            else:
                continue
            os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=pfd, follow_symlinks=False)
        for parent, name, mtime in reversed(times):  # after their contents
            os.utime(name, ns=(mtime, mtime), dir_fd=dirs[parent], follow_symlinks=False)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise UsageError(f"writing the output to {dest}: no space left on device") from None
        raise
    finally:
        for fd in dirs.values():
            os.close(fd)


def export(store, image, outputs: list[Output], stdout=None) -> None:
    fs = ImageFS(store.layer_dirs(image)) if image.layers else ImageFS([])
    for out in outputs:
        if out.type == "local":
            write_local(fs, out.dest)
        elif out.dest == "-":
            stream = stdout if stdout is not None else os.fdopen(os.dup(1), "wb")
            try:
                write_tar(fs, getattr(stream, "buffer", stream))
            finally:
                if stdout is None:
                    stream.close()
        else:
            with open(out.dest, "wb") as f:
                write_tar(fs, f)
