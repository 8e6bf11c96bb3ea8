"""The image store's two locks (flock(2) on files in ``images/``).

``.gc.lock``: shared = a *lease*: blobs are being written or registered and are not yet reachable
from index.json (a pull, a load); exclusive = a garbage collection or a repair, which must not see
such blobs as garbage. ``.index.lock``: serializes read-modify-write of index.json.

Lock order, everywhere: ``.gc.lock`` (lease or exclusive) before ``.index.lock``. Writing
index.json may unpack layers and write blobs under a lease; taking the lease first avoids a
deadlock with a repair that holds the exclusive lock and wants the index.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class StoreLocks:
    def __init__(self, directory: Path):
        self.dir = directory
        self._local = threading.local()

    def _open(self, name: str) -> int:
        # the lock files exist once the store does: opening them needs no free space
        return os.open(self.dir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @property
    def held_exclusively(self) -> bool:
        return getattr(self._local, "exclusive", False)

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Hold while writing blobs that index.json does not reference yet: gc waits."""
        if self.held_exclusively:
            yield  # this thread is the gc/repair itself
            return
        fd = self._open(".gc.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def exclusive(self, wait: bool = True) -> Iterator[bool]:
        """The gc lock; yields False (without waiting) when ``wait`` is False and leases are held."""
        fd = self._open(".gc.lock")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                got = True
            except BlockingIOError:
                got = False
            self._local.exclusive = got
            yield got
        finally:
            self._local.exclusive = False
            os.close(fd)

    @contextmanager
    def index(self) -> Iterator[None]:
        with self.lease():
            fd = self._open(".index.lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)
