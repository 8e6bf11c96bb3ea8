"""The progress protocol's terminal renderers."""

from __future__ import annotations

import io
import sys
import threading
import types

from jupybox.registry.progress import LineProgress, TqdmProgress, default_progress, serialized

EVENTS = [
    {"kind": "blob-start", "digest": "sha256:" + "a" * 64, "size": 2048, "action": "download"},
    {"kind": "blob-progress", "digest": "sha256:" + "a" * 64, "size": 2048, "done": 1024},
    {"kind": "blob-done", "digest": "sha256:" + "b" * 64, "size": 10, "done": 10, "status": "exists"},
    {"kind": "blob-progress", "digest": "sha256:" + "a" * 64, "size": 2048, "done": 2048},
    {"kind": "blob-done", "digest": "sha256:" + "a" * 64, "size": 2048, "done": 2048, "status": "downloaded"},
    {"kind": "done", "ref": "x:1", "digest": "sha256:" + "c" * 64, "id": None},
]


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_no_renderer_when_stderr_is_not_a_terminal():
    assert default_progress(io.StringIO()) is None


def test_line_renderer():
    out = TTY()
    p = LineProgress(out)
    for e in EVENTS:
        p(e)
    text = out.getvalue()
    assert "2 blobs: 2.01KiB / 2.01KiB" in text
    assert text.endswith("Digest: sha256:" + "c" * 64 + "\n")


def test_tqdm_adapter_with_a_stand_in_tqdm(monkeypatch):
    bars = []

    class Bar:
        def __init__(self, **kw):
            self.kw, self.n, self.closed, self.post = kw, 0, False, ""
            bars.append(self)

        def update(self, k):
            self.n += k

        def set_postfix_str(self, s):
            self.post = s

        def close(self):
            self.closed = True

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=Bar))
    out = TTY()
    p = default_progress(out)
    assert isinstance(p, TqdmProgress)
    for e in EVENTS:
        p(e)
    (bar,) = bars
    assert bar.kw["total"] == 2048 and bar.n == 2048 and bar.closed and bar.post == "downloaded"
    assert "bbbbbbbbbbbb: exists" in out.getvalue()


def test_without_tqdm_the_line_renderer_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    assert isinstance(default_progress(TTY()), LineProgress)


def test_serialized_calls_and_swallowed_errors():
    active = []
    overlaps = []

    def cb(ev):
        active.append(1)
        if len(active) > 1:
            overlaps.append(1)
        for _ in range(1000):
            pass
        active.pop()
        if ev.get("boom"):
            raise RuntimeError("a broken progress callback must not break a pull")

    s = serialized(cb)
    ts = [threading.Thread(target=lambda: [s({"kind": "x", "boom": i % 7 == 0}) for i in range(200)])
          for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not overlaps
