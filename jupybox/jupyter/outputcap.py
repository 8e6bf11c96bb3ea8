"""``--max-output N``: a cell shows at most N lines of each stream, its head and its tail.

The first N/2 lines reach the cell as they come; past them a line says that output is held back,
the last N/2 are kept in memory and shown when the cell ends, after a marker:

    ... 190,000 lines skipped, full log: %container logs NAME

The full output is not lost: a kept container (``--keep``, ``--bg``) has it in its own log files;
for a container removed when the cell ends, everything from the first line on is written to a
log of this kernel's (``SavedLogs``: under the store, 0700, owned by this process, removed when it
exits or by ``prune`` after it died), which ``%container logs NAME`` reads once the container is
gone.
"""

from __future__ import annotations

import atexit
import collections
import os
import shutil
import threading

KEEP_LOGS = 20  # saved logs per kernel: the oldest goes first


class SavedLogs:
    """The full output of capped cells whose containers are gone, by container name."""

    def __init__(self):
        self._lock = threading.Lock()
        self._dirs: collections.OrderedDict[str, str] = collections.OrderedDict()
        atexit.register(self.clear)

    def make(self, root, name: str) -> str:
        """A directory for ``name``'s stdout.log and stderr.log (cellfiles: under the store, 0700)."""
        from ..paths import Layout
        from ..runtime import cellfiles

        path = str(cellfiles.make(Layout(root).ensure()))
        with self._lock:
            old = self._dirs.pop(name, None)
            self._dirs[name] = path
            drop = [self._dirs.popitem(last=False)[1] for _ in range(max(0, len(self._dirs) - KEEP_LOGS))]
        for d in drop + ([old] if old else []):
            shutil.rmtree(d, ignore_errors=True)
        return path

    def paths(self, name: str) -> tuple[str, str] | None:
        with self._lock:
            d = self._dirs.get(name)
        if d is None or not os.path.isdir(d):
            return None
        return os.path.join(d, "stdout.log"), os.path.join(d, "stderr.log")

    def clear(self) -> None:
        with self._lock:
            dirs, self._dirs = list(self._dirs.values()), collections.OrderedDict()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


SAVED = SavedLogs()


class Capped:
    """A text stream that passes the first ``head`` lines, holds the last ``tail`` ones back, and
    writes the marker and the tail at ``end()``. ``spill()`` is called once, when the cap is
    reached, and returns a file (binary) for the whole output, or None (the container keeps it)."""

    def __init__(self, stream, limit: int, spill, where):
        self.stream = stream
        self.head = (limit + 1) // 2
        self.tail_n = limit // 2
        self.spill = spill
        self.where = where  # () -> "NAME", for the marker
        self.lines = 0  # complete lines seen
        self.capped = False
        self.tail: collections.deque = collections.deque(maxlen=max(1, self.tail_n))
        self.partial = ""
        self.skipped = 0
        self.log = None
        self.kept: list[str] = []  # the head, for the log should the cap be reached

    def write(self, text: str) -> None:
        if not self.capped:
            n = text.count("\n")
            if self.lines + n < self.head or (self.lines + n == self.head and text.endswith("\n")):
                self.lines += n
                self._out(text)
                self.kept.append(text)
                return
            need = self.head - self.lines  # newlines still shown (a line beyond them is coming)
            cut = _nth_newline(text, need) + 1 if need > 0 else 0
            self._out(text[:cut])
            self.kept.append(text[:cut])
            self.lines = self.head
            self._cap()
            text = text[cut:]
            if self.log is not None:
                self.log.write("".join(self.kept).encode())
            self.kept = []
        if self.log is not None:
            self.log.write(text.encode())
        parts = (self.partial + text).split("\n")
        self.partial = parts.pop()
        for line in parts:
            if len(self.tail) == self.tail.maxlen:
                self.skipped += 1
            self.tail.append(line + "\n")
            self.lines += 1

    def _cap(self) -> None:
        self.capped = True
        try:
            self.log = self.spill()
        except OSError:
            self.log = None
        self._out(f"[jupybox: more than {self.head:,} lines: the rest is held back, its last "
                  f"{self.tail_n:,} lines come when the cell ends]\n")

    def _out(self, text: str) -> None:
        if text:
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def end(self) -> None:
        """The stream's end (EOF): the marker and the tail."""
        if self.capped:
            tail = list(self.tail) + ([self.partial] if self.partial else [])
            if self.tail_n == 0:
                self.skipped += len(tail)
                tail = []
            if self.skipped:
                self._out(f"... {self.skipped:,} lines skipped, full log: %container logs {self.where()}\n")
            self._out("".join(tail))
        if self.log is not None:
            self.log.close()
        self.kept = []


def _nth_newline(text: str, n: int) -> int:
    """The index of the n-th newline (n >= 1) of ``text``."""
    at = -1
    for _ in range(n):
        at = text.index("\n", at + 1)
    return at
