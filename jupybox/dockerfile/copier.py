"""COPY and ADD: which source entries go where, their checksum, and the layer that holds them.

Docker's semantics (checked against buildah, see tests/dockerfile):

* sources are relative to the context root (or to the ``--from`` stage/image root); ``..`` may not
  leave it; ``*``, ``?``, ``[...]`` glob per path component (Go ``filepath.Match``); nothing
  matched is an error; excluded (.dockerignore) entries do not exist for COPY;
* a source that is itself a symlink is followed (inside its root); symlinks below a copied
  directory are copied as symlinks;
* a directory source copies its *contents* into the destination directory (created 0755 when
  missing; an existing one keeps its metadata);
* the destination is relative to WORKDIR; it is a directory when it ends with ``/`` (or is
  ``.``), or exists as a directory in the image; several sources need a ``/`` at the end;
  symlinks in the destination path are followed inside the image;
* files keep their mode and mtime; owners become 0:0, or ``--chown`` (names looked up in the
  image's /etc/passwd and /etc/group: a user name alone brings its primary group, a number alone
  is also the group); ``--chmod`` (octal or symbolic, :class:`~.sources.Chmod`) applies to every
  copied file and directory; missing parent directories are created 0755 (an octal ``--chmod``
  when given, as BuildKit does), owned by ``--chown``;
* ADD: a local tar archive (plain, gzip, bzip2, xz, zstd: detected by content) is extracted
  into the destination (its owners and modes kept); an ``http(s)://`` source is downloaded
  (mode 0600, mtime from Last-Modified; ``--checksum=sha256:...`` verified);
* heredocs (``COPY <<EOF /file``) become files of mode 0644.

The checksum (for the build cache) covers each entry's destination path, type, mode, size, link
target and content digest — not mtimes or the context's owners. File digests come from the
:class:`~jupybox.dockerfile.cache.FileHashes` stat cache when the file is unchanged (inode, size,
mtime, ctime); otherwise they are computed while the layer is written, in the same single read.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import time

from .context import ContextFS, ImageFS, SourceFS, join, normalize
from .sources import Chmod, Source


class Entry:
    """One entry of the layer being planned (``__slots__``: a big context makes many)."""

    __slots__ = ("dest", "kind", "mode", "uid", "gid", "mtime", "size", "src", "target", "data", "st", "key",
                 "digest", "cache_rel", "existing", "from_archive")

    def __init__(self, dest: str, kind: str, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: float = 0,
                 size: int = 0, src: str | None = None, target: str = "", data: bytes | None = None,
                 st: os.stat_result | None = None, key: tuple | None = None, digest: str | None = None,
                 cache_rel: str | None = None, existing: bool = False):
        self.dest = dest  # relative to the image root, resolved
        self.kind = kind  # dir | file | link | special | data
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.size = size
        self.src = src  # host path to read
        self.target = target  # symlink target
        self.data = data
        self.st = st
        self.key = key  # stat identity for the hash cache
        self.digest = digest  # content sha256 (hex), when known
        self.cache_rel = cache_rel  # context-relative path (hash cache key)
        self.existing = existing  # a parent directory that exists in the image (its metadata kept)
        self.from_archive = False  # extracted by ADD: the archive's digest stands for it in the checksum


class Plan:
    def __init__(self):
        self.entries: list[Entry] = []
        self.extra: list[str] = []  # what else the checksum covers (archives, URLs, --from)
        self.archives: list[tuple[str, str]] = []  # (host path, dest dir) to extract


def file_key(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# ---------------------------------------------------------------------------------------------
# planning


class Planner:
    """Turns one COPY/ADD into entries of the new layer."""

    def __init__(self, image: ImageFS, workdir: str, owner: tuple[int, int] | None, chmod: Chmod | None,
                 hashes=None, now: float | None = None):
        self.image = image
        self.workdir = workdir or "/"
        self.owner = owner
        self.chmod = chmod
        self.hashes = hashes
        self.now = int(now if now is not None else time.time())
        self.plan = Plan()
        self._parents: dict[str, Entry] = {}
        self._seen: dict[str, Entry] = {}

    # ---- destination
    def dest(self, dest: str) -> tuple[str, bool]:
        """(resolved path relative to the image root, whether it names a directory)."""
        is_dir = dest.endswith("/") or dest in (".", "") or dest.endswith("/.")
        path = dest if dest.startswith("/") else posixpath.join(self.workdir, dest)
        rel = normalize(posixpath.normpath(path) if path != "/" else "/")
        rel = self.image.resolve(rel)
        st = self.image.lstat(rel) if rel else None
        if rel == "" or (st is not None and stat.S_ISDIR(st.st_mode)):
            is_dir = True
        return rel, is_dir

    def _ids(self, st: os.stat_result | None, keep_owner: bool) -> tuple[int, int]:
        if self.owner is not None:
            return self.owner
        if keep_owner and st is not None:
            return st.st_uid, st.st_gid
        return 0, 0

    def _mode(self, mode: int, is_dir: bool) -> int:
        return self.chmod.apply(mode, is_dir) if self.chmod is not None else mode

    def _parent_chain(self, rel: str) -> None:
        """Entries for every parent directory of ``rel`` (existing ones keep their metadata)."""
        parent = posixpath.dirname(rel)
        if not parent or parent in self._parents or parent in self._seen:
            return
        self._parent_chain(parent)
        self._dir_entry(parent)

    def _dir_entry(self, rel: str) -> Entry:
        got = self._seen.get(rel) or self._parents.get(rel)
        if got is not None:
            return got
        st = self.image.lstat(rel)
        if st is not None and stat.S_ISDIR(st.st_mode):
            e = Entry(rel, "dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime, existing=True)
        else:
            uid, gid = self.owner or (0, 0)
            mode = self.chmod.octal if self.chmod is not None and self.chmod.octal is not None else 0o755
            e = Entry(rel, "dir", mode, uid, gid, self.now)
        self._parents[rel] = e
        self.plan.entries.append(e)
        return e

    def _add(self, e: Entry) -> None:
        if e.dest in self._parents:
            # a directory planned as a parent now comes from the source: replace it in place
            old = self._parents.pop(e.dest)
            self.plan.entries[self.plan.entries.index(old)] = e
            self._seen[e.dest] = e
            return
        if e.dest in self._seen:
            old = self._seen[e.dest]
            self.plan.entries[self.plan.entries.index(old)] = e
            self._seen[e.dest] = e
            return
        self._parent_chain(e.dest)
        self._seen[e.dest] = e
        self.plan.entries.append(e)

    def _from_source(self, fs: SourceFS, rel: str, st: os.stat_result, dest: str, keep_owner: bool) -> None:
        m = st.st_mode
        uid, gid = self._ids(st, keep_owner)
        mode = self._mode(stat.S_IMODE(m), stat.S_ISDIR(m))
        if stat.S_ISDIR(m):
            self._add(Entry(dest, "dir", mode, uid, gid, st.st_mtime, st=st))
        elif stat.S_ISREG(m):
            e = Entry(dest, "file", mode, uid, gid, st.st_mtime, size=st.st_size, src=fs.host_path(rel), st=st)
            if isinstance(fs, ContextFS):
                e.key = file_key(st)
                e.cache_rel = rel
                if self.hashes is not None:
                    e.digest = self.hashes.get(rel, e.key)
            elif isinstance(fs, ImageFS):
                e.digest = None
            self._add(e)
        elif stat.S_ISLNK(m):
            self._add(Entry(dest, "link", 0o777, uid, gid, st.st_mtime, target=fs.readlink(rel), st=st))
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m) or stat.S_ISFIFO(m):
            self._add(Entry(dest, "special", stat.S_IMODE(m), uid, gid, st.st_mtime, st=st))

    def copy(self, fs: SourceFS, sources: list[Source], dest: str, keep_owner: bool = False) -> None:
        drel, dest_is_dir = self.dest(dest)
        if len(sources) > 1 and not dest.endswith("/"):
            raise ValueError("When using COPY with more than one source file, the destination must be a "
                             "directory and end with a /")
        for s in sources:
            if stat.S_ISDIR(s.st.st_mode):
                target = drel
                if target:
                    self._parent_chain(target)
                    self._dir_entry(target)
                for child, cst in fs.walk(s.rel):
                    sub = child[len(s.rel) + 1:] if s.rel else child
                    self._from_source(fs, child, cst, join(target, sub), keep_owner)
            else:
                name = posixpath.basename(s.given) or posixpath.basename(s.rel)
                target = join(drel, name) if dest_is_dir else drel
                if not target:
                    raise ValueError(f"cannot copy {s.given} over the root directory")
                self._from_source(fs, s.rel, s.st, target, keep_owner)

    def inline(self, name: str, data: bytes, dest: str) -> None:
        drel, dest_is_dir = self.dest(dest)
        target = join(drel, name) if dest_is_dir else drel
        uid, gid = self.owner or (0, 0)
        mode = self._mode(0o644, False)
        e = Entry(target, "data", mode, uid, gid, self.now, size=len(data), data=data)
        e.digest = hashlib.sha256(data).hexdigest()
        self._add(e)

    def download(self, path: str, name: str, dest: str, mtime: float, digest: str) -> None:
        drel, dest_is_dir = self.dest(dest)
        target = join(drel, name) if dest_is_dir else drel
        uid, gid = self.owner or (0, 0)
        mode = self._mode(0o600, False)
        st = os.stat(path)
        e = Entry(target, "file", mode, uid, gid, mtime, size=st.st_size, src=path, digest=digest)
        self._add(e)

    def archive_dest(self, dest: str) -> str:
        """Plan the directory an archive is extracted into (before the extraction)."""
        drel, _ = self.dest(dest if dest.endswith("/") else dest + "/")
        if drel:
            self._parent_chain(drel)
            self._dir_entry(drel)
        return drel

    def archive(self, tree: str, dest: str) -> None:
        """Entries for an extracted archive at ``tree`` (owners and modes as in the archive)."""
        drel = self.archive_dest(dest)
        fs = _HostTree(tree)
        for child, cst in fs.walk(""):
            m = cst.st_mode
            target = join(drel, child)
            hp = os.path.join(tree, child)
            if stat.S_ISDIR(m):
                e = Entry(target, "dir", stat.S_IMODE(m), cst.st_uid, cst.st_gid, cst.st_mtime, st=cst)
            elif stat.S_ISREG(m):
                e = Entry(target, "file", stat.S_IMODE(m), cst.st_uid, cst.st_gid, cst.st_mtime,
                          size=cst.st_size, src=hp, st=cst, digest="archive")
            elif stat.S_ISLNK(m):
                e = Entry(target, "link", 0o777, cst.st_uid, cst.st_gid, cst.st_mtime, target=os.readlink(hp), st=cst)
            elif stat.S_ISCHR(m) and cst.st_rdev == 0:
                continue  # a whiteout made by the extractor for a .wh. member: not content
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m) or stat.S_ISFIFO(m):
                e = Entry(target, "special", stat.S_IMODE(m), cst.st_uid, cst.st_gid, cst.st_mtime, st=cst)
            else:
                continue
            e.from_archive = True
            self._add(e)


class _HostTree(SourceFS):
    name = "archive"

    def __init__(self, root: str):
        self.root = root

    def host_path(self, rel):
        return os.path.join(self.root, rel) if rel else self.root

    def lstat(self, rel):
        try:
            return os.lstat(self.host_path(rel))
        except OSError:
            return None

    def listdir(self, rel):
        try:
            return sorted(os.listdir(self.host_path(rel)))
        except OSError:
            return []


# ---------------------------------------------------------------------------------------------
# checksum and layer


def checksum(plan: Plan) -> str | None:
    """sha256 over what the layer will contain, without mtimes; None if a file digest is unknown."""
    h = hashlib.sha256()
    for extra in plan.extra:
        h.update(extra.encode() + b"\0")
    for e in plan.entries:
        if e.from_archive:
            continue
        if e.kind in ("file", "data") and e.digest is None:
            return None
        rec = [e.dest, e.kind, e.mode, e.uid, e.gid, e.size, e.target, e.digest or ""]
        if e.kind == "special" and e.st is not None:
            rec.append(e.st.st_rdev)
        if e.existing:
            rec.append("existing")
        h.update(json.dumps(rec).encode() + b"\n")
    return h.hexdigest()


def write_layer(store, plan: Plan, hashes=None):
    """Write the planned entries as a layer (one read of each source file); returns
    (LayerWriter (uncommitted), checksum). The caller commits or aborts the writer."""
    from .layers import LayerWriter

    w = LayerWriter(store, unpack=True)
    try:
        for e in plan.entries:
            if e.kind == "dir":
                w.add_dir(e.dest, e.mode, e.uid, e.gid, e.mtime)
            elif e.kind == "file":
                hasher = hashlib.sha256() if e.digest is None else None
                w.add_file(e.dest, e.mode, e.uid, e.gid, e.mtime, src=e.src, size=e.size, hasher=hasher)
                if hasher is not None:
                    e.digest = hasher.hexdigest()
                    if hashes is not None and e.cache_rel is not None:
                        hashes.put(e.cache_rel, e.key, e.digest)
            elif e.kind == "data":
                w.add_file(e.dest, e.mode, e.uid, e.gid, e.mtime, data=e.data)
            elif e.kind == "link":
                w.add_symlink(e.dest, e.target, e.uid, e.gid, e.mtime)
            elif e.kind == "special":
                w.add_special(e.dest, e.st, e.uid, e.gid)
    except BaseException:
        w.abort()
        raise
    return w, checksum(plan)
