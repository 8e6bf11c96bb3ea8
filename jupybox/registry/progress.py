"""Progress reporting for pull and push.

The protocol is one callable, ``progress(event: dict)``, called with:

* ``{"kind": "blob-start", "digest": d, "size": n, "action": "download"|"upload"}``
* ``{"kind": "blob-progress", "digest": d, "size": n, "done": bytes_so_far}``
* ``{"kind": "blob-done", "digest": d, "size": n, "done": n, "status": s}`` where ``s`` is
  ``"downloaded"``, ``"uploaded"``, ``"exists"`` (already there, nothing sent) or ``"mounted"``
* ``{"kind": "done", "ref": ref, "digest": manifest_digest, "id": image_id_or_None}``

pull and push serialize the calls (never two at once), though they may come
from worker threads. :func:`default_progress` returns a terminal renderer
(tqdm's bars when tqdm is installed, else one status line) when stderr is a
terminal, and None otherwise.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from ..units import human_size

ProgressCallback = Callable[[dict], None]

__all__ = ["ProgressCallback", "TqdmProgress", "LineProgress", "default_progress", "serialized", "short_digest"]


def short_digest(d: str) -> str:
    return d.partition(":")[2][:12] or d[:12]


def serialized(cb: ProgressCallback | None) -> ProgressCallback | None:
    """Wrap ``cb`` so that concurrent threads call it one at a time; exceptions
    from a progress callback never break a pull."""
    if cb is None:
        return None
    lock = threading.Lock()

    def call(event: dict) -> None:
        with lock:
            try:
                cb(event)
            except Exception:
                pass

    return call


class TqdmProgress:
    """One tqdm bar per blob (needs ``tqdm``)."""

    def __init__(self, file=None):
        import tqdm  # noqa: F401 - fail early when missing

        self._tqdm = tqdm.tqdm
        self.file = file or sys.stderr
        self.bars: dict[str, object] = {}
        self._pos = 0

    def __call__(self, ev: dict) -> None:
        kind = ev.get("kind")
        d = ev.get("digest", "")
        if kind == "blob-start":
            self.bars[d] = self._tqdm(total=ev.get("size") or None, unit="B", unit_scale=True, unit_divisor=1024,
                                      desc=short_digest(d), file=self.file, leave=True, position=self._pos)
            self._pos += 1
        elif kind == "blob-progress" and d in self.bars:
            bar = self.bars[d]
            bar.update(ev["done"] - bar.n)
        elif kind == "blob-done":
            bar = self.bars.pop(d, None)
            if bar is None:
                print(f"{short_digest(d)}: {ev.get('status', 'done')}", file=self.file)
            else:
                bar.update(max(0, (ev.get("done") or 0) - bar.n))
                bar.set_postfix_str(ev.get("status", ""))
                bar.close()
        elif kind == "done":
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()
            print(f"Digest: {ev.get('digest')}", file=self.file)


class LineProgress:
    """Without tqdm: one status line, rewritten at most 10 times a second."""

    def __init__(self, file=None):
        self.file = file or sys.stderr
        self.blobs: dict[str, list[int]] = {}
        self._last = 0.0

    def _render(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        done = sum(v[0] for v in self.blobs.values())
        total = sum(v[1] for v in self.blobs.values())
        self.file.write(f"\r{len(self.blobs)} blobs: {human_size(done)} / {human_size(total)}\x1b[K")
        self.file.flush()

    def __call__(self, ev: dict) -> None:
        kind = ev.get("kind")
        d = ev.get("digest", "")
        if kind == "blob-start":
            self.blobs[d] = [0, ev.get("size") or 0]
        elif kind == "blob-progress" and d in self.blobs:
            self.blobs[d][0] = ev["done"]
        elif kind == "blob-done":
            self.blobs.setdefault(d, [0, ev.get("size") or 0])[0] = ev.get("size") or 0
        elif kind == "done":
            self._render(force=True)
            self.file.write(f"\nDigest: {ev.get('digest')}\n")
            self.file.flush()
            return
        self._render()


def default_progress(file=None) -> ProgressCallback | None:
    """A renderer for a terminal, or None when ``file`` (stderr) is not one."""
    f = file or sys.stderr
    try:
        if not f.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    try:
        return TqdmProgress(f)
    except ImportError:
        return LineProgress(f)
