"""JSON files written atomically (a reader sees the old or the new file, never half), through a
temp file each writer keeps: containers' records and state, networks' endpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path


def tmp_path(path: Path, owner: int | str | None = None) -> Path:
    """The temp file ``owner`` (a pid, this process by default) writes ``path`` through."""
    return path.with_name(f".{path.name}.{owner or os.getpid()}.tmp")


def write_json_atomic(path: Path, data: dict, reserve: int = 0) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half.

    A temp file this process already has (staged for it ahead of time, see :func:`stage_json`, or
    kept from its last write) is overwritten in place and swapped in with RENAME_EXCHANGE, keeping
    the old version for the next write: no inode is made or freed. That matters on ext4 under
    churn, where making an inode cost up to 0.7 ms (the allocator steps over recently freed inodes
    one by one): more than everything else a container start writes. Overwritten, not truncated:
    a write that fits in the blocks the temp file holds needs no free space.

    ``reserve``: bytes the temp file kept for the next write holds (allocated now), so that the
    next write succeeds on a full disk: the service reserves a running container's room for its
    exit, which must never be lost."""
    tmp = tmp_path(path)
    # dumps, not dump: json.dump streams through the pure-Python encoder (~30x slower)
    text = json.dumps(data).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
        reuse = True
    except FileNotFoundError:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        reuse = False
    try:
        try:
            view = memoryview(text)
            while view:
                view = view[os.pwrite(fd, view, len(text) - len(view)):]
            os.ftruncate(fd, len(text))
        except OSError:
            # a full disk: the file keeps its old version, and no half-written temp file stays
            # (a staged one is emptied: it is this process's to reuse)
            try:
                if reuse:
                    os.ftruncate(fd, 0)
                else:
                    os.unlink(tmp)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)
    swapped = False
    if reuse or reserve:
        from .linux.syscalls import exchange

        try:
            exchange(tmp, path)
            swapped = True
        except OSError:
            pass  # no old version yet (ENOENT), or a filesystem that cannot swap (EINVAL)
    if not swapped:
        os.replace(tmp, path)
    if reserve:
        _reserve(tmp, max(reserve, len(text)))


def _reserve(tmp: Path, size: int) -> None:
    """The temp file, with ``size`` bytes allocated (made if it went with an os.replace)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def stage_json(path: Path, owner: int, data: dict | None = None) -> None:
    """Ahead of time, for the process ``owner``: its temp file for ``path`` (and ``path`` itself
    with ``data``), so that its later :func:`write_json_atomic` calls allocate nothing."""
    if data is not None:
        with open(path, "w") as f:
            f.write(json.dumps(data))
    open(tmp_path(path, owner), "w").close()


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)
