"""The Python API as a notebook uses it: per-step events, the store's service runs RUN steps."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.root


def test_step_events(bb):
    img = bb.build("FROM busybox\nRUN echo one; echo two\nCOPY f /f\nLABEL a=b\n", {"f": "x"})
    kinds = [(e.kind, e.step, e.total) for e in bb.events if e.kind != "output"]
    assert kinds == [("start", 1, 4), ("end", 1, 4), ("start", 2, 4), ("end", 2, 4), ("start", 3, 4), ("end", 3, 4),
                     ("start", 4, 4), ("end", 4, 4)]
    assert [e.line for e in bb.events if e.kind == "output"] == ["one", "two"]
    ends = bb.steps("end")
    assert ends[1].instruction == "RUN echo one; echo two" and ends[1].duration > 0 and not ends[1].cached
    assert ends[-1].image_id == img.id
    bb.build("FROM busybox\nRUN echo one; echo two\nCOPY f /f\nLABEL a=b\n")
    assert [e.cached for e in bb.steps("end")] == [False, True, True, True]
    assert not [e for e in bb.events if e.kind == "output"]


def test_run_steps_from_a_threaded_process(bb):
    """What %%dockerfile does in a kernel: no fork of the caller; the store's service runs RUN."""
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)  # a kernel has threads: never fork it
    t.start()
    try:
        img = bb.build("FROM busybox\nRUN echo via-daemon > /d && echo out\n", runner=None)
    finally:
        stop.set()
    assert [e.line for e in bb.events if e.kind == "output"] == ["out"]
    code, out = bb.run(img.id, "cat /d")
    assert out.strip() == "via-daemon"


def test_dockerfile_text_and_tag_alias(bb):
    from jupybox.dockerfile import build

    img = build(str(bb.ctx), "FROM busybox", tag="one-line", root=bb.root, runner="in-process")
    assert img.refs == ["one-line:latest"]
