"""File objects an upload reads: counted for its progress, and cut to one chunk of a blob."""

from __future__ import annotations


class CountingReader:
    """``f``, reporting every read's size to ``progress`` (an upload's progress bar)."""

    def __init__(self, f, progress):
        self._f = f
        self._progress = progress

    def read(self, n=-1):
        b = self._f.read(n)
        if b:
            self._progress(len(b))
        return b

    def seek(self, *a):
        return self._f.seek(*a)

    def tell(self):
        return self._f.tell()

    def seekable(self):
        try:
            return self._f.seekable()
        except Exception:
            return False


class LimitedReader(CountingReader):
    """At most ``n`` bytes of ``f`` from its current position (rewindable)."""

    def __init__(self, f, n, progress):
        super().__init__(f, progress)
        self._start = f.tell()
        self._left = n
        self._n = n

    def read(self, k=-1):
        if self._left <= 0:
            return b""
        k = self._left if k is None or k < 0 else min(k, self._left)
        b = self._f.read(k)
        self._left -= len(b)
        if b and self._progress:
            self._progress(len(b))
        return b

    def seek(self, pos, whence=0):
        self._f.seek(pos, whence)
        self._left = self._n - (self._f.tell() - self._start)
        return self._f.tell()
