"""The host image as an overlay lower directory: a *view* of the host's environment.

The built-in ``host`` image is not made of layers: the runtime bind-mounts the machine's
directories read-only (see :mod:`jupybox.image.host`). An image built ``FROM host`` needs those
trees *under* an overlay instead, so that ``RUN pip install`` writes a layer of its own (copy-up)
and never the machine's files. A view is that lower directory, ``<store>/hostviews/<key>/``:

* the host image's directories (``/usr``, ``/etc``, ``/opt``, the running Python's prefixes), as
  *hard links* to the machine's files (``cp -al``: no data is copied, ~3 s for 150,000 files on a
  2-vCPU VM); directories, symlinks and special files are made anew with their metadata;
* without what the host image hides: the secret files (``/etc/shadow``, SSH host keys, ...) and
  the jupybox store when it lies inside one of those trees;
* with the host image's skeleton: empty ``/tmp``, ``/var``, ``/run``, ``/root``, ``/home``, the
  merged-/usr symlinks, the parents of the prefixes.

Overlayfs never writes to a lower directory, so nothing in a container reaches the machine's
files through a view; a hard link shares the file's inode, so the view follows a file the machine
rewrites in place, and keeps the old file when the machine replaces it (as pip and dpkg do, by
rename). The key is a digest of the host image's id and of the modification times of every
directory of those trees (what adding, removing or replacing any file changes): the same machine
state, the same view; after ``pip install`` on the machine, a new one. An image records the key of
the view it was built on (:mod:`.hostbased`) and runs on that view as long as it exists.

Views live on the store's file system (hard links cannot cross file systems: a tree on another
one is copied).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

VIEWS = "hostviews"
SKELETON_DIRS = {"proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755, "tmp": 0o1777, "var": 0o755,
                 "var/tmp": 0o1777, "home": 0o755, "root": 0o700, "mnt": 0o755, "srv": 0o755, "media": 0o755}


def views_dir(layout) -> Path:
    return Path(layout.root) / VIEWS


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def fingerprint(host_root, hidden: list[str]) -> str:
    """The digest that names a view: the host image's binds, symlinks and masks, and the mtime and
    inode of every directory in the bound trees (~0.7 s for 30,000 directories)."""
    from .host import host_image_id

    h = hashlib.sha256(host_image_id().encode())
    h.update(json.dumps([host_root.binds, host_root.symlinks, host_root.masks], sort_keys=True).encode())

    def walk(path: str) -> None:
        try:
            it = os.scandir(path)
        except OSError:
            return
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False) and not any(_under(e.path, d) for d in hidden):
                    st = e.stat(follow_symlinks=False)
                    h.update(f"{e.path}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
                    walk(e.path)

    for src, _ in host_root.binds:
        st = os.stat(src)
        h.update(f"{src}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
        walk(src)
    return h.hexdigest()[:32]


def current(layout, make: bool = True) -> tuple[str, Path]:
    """(key, directory) of the view of the machine as it is now, made when missing (``make``)."""
    from .host import host_root

    hr = host_root(layout.root)
    hidden = [os.path.realpath(d) for d in hr.hidden_dirs] + [os.path.realpath(layout.root)]
    key = fingerprint(hr, hidden)
    path = views_dir(layout) / key
    if not path.is_dir() and make:
        build(layout, hr, hidden, path)
    return key, path


def path_of(layout, key: str) -> Path | None:
    p = views_dir(layout) / key
    return p if p.is_dir() else None


def _link_tree(src: str, dest: str, hidden: list[str], copied: list[str]) -> None:
    """``dest`` := a hard-linked copy of ``src`` (``cp -al``), leaving out ``hidden`` directories."""
    inside = [d for d in hidden if _under(d, src) and d != src]
    if not inside:
        proc = subprocess.run(["cp", "-al", "--no-target-directory", src, dest], capture_output=True, text=True)
        if proc.returncode == 0:
            return
        if "Invalid cross-device link" not in proc.stderr:
            raise OSError(errno.EIO, f"copying {src} into the host view: {proc.stderr.strip().splitlines()[-1]}")
        shutil.rmtree(dest, ignore_errors=True)
        copied.append(src)
        subprocess.run(["cp", "-a", "--no-target-directory", src, dest], check=True, capture_output=True)
        return
    # a hidden directory (the store) lies inside: one level at a time around it
    os.makedirs(dest, exist_ok=True)
    shutil.copystat(src, dest, follow_symlinks=False)
    st = os.lstat(src)
    os.chown(dest, st.st_uid, st.st_gid, follow_symlinks=False)
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dest, name)
        if any(_under(s, h) for h in hidden):
            continue
        if os.path.isdir(s) and not os.path.islink(s):
            _link_tree(s, d, hidden, copied)
        else:
            try:
                os.link(s, d, follow_symlinks=False)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                shutil.copy2(s, d, follow_symlinks=False)
                copied.append(s)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def build(layout, host_root, hidden: list[str], dest: Path) -> None:
    """Make the view ``dest`` in the store's tmp/ and rename it into place (nothing is left of a
    failed one; a concurrent maker's finished view wins)."""
    from . import scratch

    layout.tmp.mkdir(parents=True, exist_ok=True)
    tmp = Path(scratch.new_dir(layout.tmp, "hostview"))
    try:
        os.chmod(tmp, 0o755)
        for name, mode in SKELETON_DIRS.items():
            (tmp / name).mkdir(exist_ok=True)
            os.chmod(tmp / name, mode)
        for name, target in host_root.symlinks:
            p = tmp / name.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, p)
        for d in host_root.mkdirs:
            (tmp / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
        copied: list[str] = []
        for src, dst in host_root.binds:
            target = tmp / dst.lstrip("/")
            if os.path.lexists(target):
                os.rmdir(target)  # an empty mount point of the skeleton
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_tree(os.path.realpath(src), str(target), hidden, copied)
        for m in host_root.masks:
            try:
                os.unlink(tmp / m.lstrip("/"))  # the view's link only: the machine's file stays
            except FileNotFoundError:
                pass
        views_dir(layout).mkdir(exist_ok=True)
        try:
            os.rename(tmp, dest)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            scratch.remove_tree(tmp)
    except BaseException:
        scratch.remove_tree(tmp)
        raise


def prune(layout, keep: set[str]) -> list[str]:
    """Remove the views no image uses (``keep``: the keys in use); returns the removed keys."""
    from . import scratch

    removed = []
    try:
        names = os.listdir(views_dir(layout))
    except FileNotFoundError:
        return removed
    for name in names:
        if name in keep:
            continue
        trash = Path(layout.tmp) / scratch.name("trash")
        try:
            os.rename(views_dir(layout) / name, trash)
        except OSError:
            continue
        scratch.remove_tree(trash)
        removed.append(name)
    return removed
