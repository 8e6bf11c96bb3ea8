"""The store's ``tmp/``: half-written blobs, layers and index files, named after their writer.

Every entry the image store makes there is named ``KIND-pPID-sSTART-RANDOM``: ``PID`` and
``START`` (the process's start time, in clock ticks since boot, ``/proc/PID/stat`` field 22)
identify the process writing it. The entry is garbage exactly when that process is gone: a pid
reused by another process has another start time. So a cleanup needs no lock and no lease, never
takes the work of a live process however long it runs (a slow ``load`` in another terminal), and
finds everything a ``kill -9`` left at once.

Entries named otherwise with the image store's prefixes (an older jupybox's, or another
component that makes its own names under ``layer-``) are garbage when nobody holds an flock on
them and they have not changed for an hour. Other entries of ``tmp/`` (the runtime's ``rm-*``,
``vol-*``, ...) are not the image store's and are left alone.

The store is used from one pid namespace (the CLI, the notebook kernel and the store's service
all run on the host's); a writer in another pid namespace would look dead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import time
from pathlib import Path

#: what the image store writes in tmp/ (blobs, unpacked layers, index files, imports, and the
#: trees being removed); a build's layer directories share the ``layer`` prefix
KINDS = ("blob", "layer", "index", "import", "trash")
LEGACY_PREFIXES = tuple(k + "-" for k in KINDS)
UNNAMED_MAX_AGE = 3600  # seconds: an entry without a writer's pid, unlocked and unchanged, is garbage

_NAME_RE = re.compile(r"^(?P<kind>[a-z]+(?:-[a-z]+)*)-p(?P<pid>\d+)-s(?P<start>\d+)-[0-9a-f]+$")
_self: tuple[int, int] | None = None


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def _me() -> tuple[int, int]:
    global _self
    pid = os.getpid()
    if _self is None or _self[0] != pid:  # (a forked child is another writer)
        _self = (pid, start_time(pid) or 0)
    return _self


def name(kind: str) -> str:
    """A fresh entry name for ``kind`` (``blob``, ``layer``, ...) written by this process."""
    pid, start = _me()
    return f"{kind}-p{pid}-s{start}-{os.urandom(6).hex()}"


def new_file(tmp_dir: str | os.PathLike, kind: str) -> tuple[str, int]:
    """(path, fd) of a new empty file in ``tmp_dir``, open for reading and writing."""
    os.makedirs(tmp_dir, exist_ok=True)
    while True:
        path = os.path.join(tmp_dir, name(kind))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            continue
        return path, fd


def new_dir(tmp_dir: str | os.PathLike, kind: str, mode: int = 0o700) -> str:
    """The path of a new empty directory in ``tmp_dir``."""
    os.makedirs(tmp_dir, exist_ok=True)
    while True:
        path = os.path.join(tmp_dir, name(kind))
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            continue
        return path


def writer_alive(entry_name: str) -> bool | None:
    """True/False for a name of this module's scheme (is its writer still running?), else None."""
    m = _NAME_RE.match(entry_name)
    if m is None:
        return None
    return start_time(int(m["pid"])) == int(m["start"])


def _locked(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def leftovers(tmp_dir: str | os.PathLike) -> list[Path]:
    """The image store's entries of ``tmp_dir`` whose writer is gone."""
    tmp_dir = Path(tmp_dir)
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return []
    out = []
    now = time.time()
    for n in sorted(names):
        alive = writer_alive(n)
        if alive is False:
            out.append(tmp_dir / n)
            continue
        if alive is True or not n.startswith(LEGACY_PREFIXES):
            continue
        p = tmp_dir / n
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if now - st.st_mtime < UNNAMED_MAX_AGE or (not stat.S_ISLNK(st.st_mode) and _locked(p)):
            continue
        out.append(p)
    return out


def size_of(p: Path) -> int:
    """Bytes on disk of a file or a tree (blocks, not apparent sizes)."""
    try:
        st = os.lstat(p)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_blocks * 512
    total = st.st_blocks * 512
    for dirpath, dirnames, filenames in os.walk(p):
        for f in filenames + dirnames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def remove_tree(path: str | os.PathLike) -> None:
    """rmtree that copes with read-only directories and (rootless) files owned by a sub-id."""
    from ..linux import userns

    userns.rmtree(path)


def discard(p: Path) -> bool:
    """Remove a leftover; False if another cleanup took it first. The entry is first renamed to a
    trash name of this process, so two cleanups never remove the same tree, and one killed halfway
    leaves an entry the next cleanup recognises."""
    trash = p.parent / name("trash")
    try:
        os.rename(p, trash)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EXDEV, errno.EBUSY):
            raise
        trash = p  # no room for a new directory entry: remove it where it is
    try:
        if os.path.isdir(trash) and not os.path.islink(trash):
            remove_tree(trash)
        else:
            os.unlink(trash)
    except FileNotFoundError:
        pass
    return True


def remove_leftovers(tmp_dir: str | os.PathLike) -> tuple[int, int]:
    """Remove what crashed writers left in ``tmp_dir``: (entries removed, bytes freed)."""
    count = freed = 0
    for p in leftovers(tmp_dir):
        size = size_of(p)
        if discard(p):
            count += 1
            freed += size
    return count, freed
