"""``RUN --mount=type=cache``: directories the store keeps across builds, under
``<root>/build-cache/mounts/<key>/`` (``jupybox builder du`` lists them, ``jupybox builder prune``
removes them).

A cache is named by its ``id`` (default: the target path), and by the owner and mode it was made
with and the stage that seeded it (``from=``), as BuildKit keys them. Each cache has numbered
instances (``0/``, ``1/``, ...), each with a lock file that says who uses it:

* ``sharing=shared`` (the default): every build uses instance 0 at the same time (a shared flock);
* ``locked``: one build at a time on instance 0 (an exclusive flock; the others wait);
* ``private``: an instance nobody uses (exclusive, non-blocking), a new one when all are busy.

``prune`` takes each instance's lock without waiting and skips those in use. A build with
``--no-cache`` uses none of them: it gets empty directories of its own (one per cache, shared by
its steps), removed at the end.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile

SHARING = ("shared", "private", "locked")


def _key(cache_id: str, uid: int, gid: int, mode: int, seed: str | None) -> str:
    data = json.dumps([cache_id, uid, gid, mode, seed], separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def _du(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for n in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
                total += st.st_blocks * 512
    return total


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _remove(path: str) -> None:
    from ..image.layer import remove_tree

    remove_tree(path)


class Handle:
    """A cache instance in use: its directory, released by :meth:`release`."""

    def __init__(self, path: str, lockfd: int | None):
        self.path = path
        self.lockfd = lockfd

    def release(self) -> None:
        if self.lockfd is not None:
            os.close(self.lockfd)  # drops the flock
            self.lockfd = None


class CacheMounts:
    def __init__(self, root: str, tmp: str):
        self.dir = os.path.join(os.fspath(root), "build-cache", "mounts")
        self.tmp = os.fspath(tmp)
        self._throwaway: dict[str, str] = {}

    def close(self) -> None:
        """Remove the caches of a --no-cache build."""
        for path in self._throwaway.values():
            _remove(path)
        self._throwaway = {}

    def acquire(self, cache_id: str, sharing: str, uid: int, gid: int, mode: int, seed=None,
                seed_key: str | None = None, no_cache: bool = False) -> Handle:
        """The directory of cache ``cache_id`` for one RUN. ``seed(path)`` fills a new instance
        (``from=``); ``seed_key`` names what it copies."""
        key = _key(cache_id, uid, gid, mode, seed_key)
        if no_cache:  # this build's own, shared by its steps, removed by close()
            path = self._throwaway.get(key)
            if path is None:
                os.makedirs(self.tmp, exist_ok=True)
                path = tempfile.mkdtemp(prefix="layer-cachemount-", dir=self.tmp)
                self._throwaway[key] = path
                self._init(path, uid, gid, mode, seed)
            return Handle(path, None)
        cdir = os.path.join(self.dir, key[:32])
        os.makedirs(cdir, exist_ok=True)
        meta = os.path.join(cdir, "meta.json")
        if not os.path.exists(meta):
            self._write(meta, {"id": cache_id, "uid": uid, "gid": gid, "mode": mode, "from": seed_key})
        i = 0
        while True:
            lockpath = os.path.join(cdir, f"{i}.lock")
            lock = os.open(lockpath, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if sharing == "private":
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(lock)
                        i += 1
                        continue
                else:
                    fcntl.flock(lock, fcntl.LOCK_SH if sharing == "shared" else fcntl.LOCK_EX)
                if not _same_file(lock, lockpath):  # a prune removed it while we waited: again
                    os.close(lock)
                    continue
                path = os.path.join(cdir, str(i))
                if not os.path.isdir(path):
                    self._create(path, uid, gid, mode, seed)
                os.utime(meta)  # last used
                return Handle(path, lock)
            except BaseException:
                os.close(lock)
                raise

    def _create(self, path: str, uid: int, gid: int, mode: int, seed) -> None:
        """Made aside, then renamed: two shared users may create it at once; one wins."""
        tmp = tempfile.mkdtemp(prefix=".new-", dir=os.path.dirname(path))
        try:
            self._init(tmp, uid, gid, mode, seed)
            os.rename(tmp, path)
        except OSError as e:
            _remove(tmp)
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise

    @staticmethod
    def _init(path: str, uid: int, gid: int, mode: int, seed) -> None:
        if seed is not None:
            seed(path)
        if os.geteuid() == 0:  # rootless, the user's own directory is root's inside
            os.chown(path, uid, gid)
        os.chmod(path, mode)

    @staticmethod
    def _write(path: str, value: dict) -> None:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(value, f)
        os.replace(tmp, path)

    def entries(self) -> list[dict]:
        """Every cache: id, size, last use, instances, whether one is in use."""
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return out
        for name in names:
            cdir = os.path.join(self.dir, name)
            try:
                with open(os.path.join(cdir, "meta.json")) as f:
                    meta = json.load(f)
                used = os.stat(os.path.join(cdir, "meta.json")).st_mtime
            except (OSError, ValueError):
                meta, used = {"id": "?"}, 0
            instances = sorted(int(n) for n in os.listdir(cdir) if n.isdigit())
            out.append({"key": name, "id": meta.get("id"), "size": _du(cdir), "last_used": used,
                        "instances": instances, "path": cdir})
        return out

    def prune(self) -> tuple[list[dict], int]:
        """Remove every cache instance not in use; (the caches removed, bytes freed)."""
        removed, freed = [], 0
        for entry in self.entries():
            cdir = entry["path"]
            busy = False
            for i in entry["instances"]:
                lock = os.open(os.path.join(cdir, f"{i}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        busy = True
                        continue
                    path = os.path.join(cdir, str(i))
                    freed += _du(path)
                    _remove(path)
                    os.unlink(os.path.join(cdir, f"{i}.lock"))
                finally:
                    os.close(lock)
            if not busy:
                shutil.rmtree(cdir, ignore_errors=True)
                removed.append(entry)
        return removed, freed

