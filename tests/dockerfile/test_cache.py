"""The build cache: what invalidates a step and what does not."""

from __future__ import annotations

import os
import time

import pytest

pytestmark = pytest.mark.root

DF = ("FROM busybox\n"
      "ARG V=1\n"
      "COPY app.txt /app/\n"
      "RUN cat /app/app.txt > /copy && echo $V >> /copy\n"
      "COPY static.txt /static/\n"
      "CMD [\"cat\", \"/copy\"]\n")


def files(app="app v1\n", static="static"):
    return {"app.txt": app, "static.txt": static}


def test_second_build_is_fully_cached_and_same_image(bb):
    first = bb.build(DF, files())
    assert bb.cached() == [False] * 5
    second = bb.build(DF, tags=["again"])
    assert bb.cached() == [True] * 5
    assert second.id == first.id
    assert bb.leftovers() == []


def test_content_change_invalidates_that_step_and_the_rest(bb):
    first = bb.build(DF, files())
    bb.files({"app.txt": "app v2\n"})
    second = bb.build(DF)
    assert bb.cached() == [True, False, False, False, False]
    assert second.id != first.id
    code, out = bb.run(second.id, "cat /copy")
    assert out.split() == ["app", "v2", "1"]


def test_touch_does_not_invalidate(bb):
    first = bb.build(DF, files())
    p = bb.ctx / "app.txt"
    later = time.time() + 100
    os.utime(p, (later, later))
    os.chmod(p, os.stat(p).st_mode)  # ctime changes too: the file is hashed again, same content
    second = bb.build(DF)
    assert bb.cached() == [True] * 5 and second.id == first.id


def test_mode_change_invalidates(bb):
    bb.build(DF, files())
    os.chmod(bb.ctx / "static.txt", 0o600)
    bb.build(DF)
    assert bb.cached() == [True, True, True, False, False]


def test_build_arg_change_invalidates_run_only_from_there(bb):
    bb.build(DF, files())
    bb.build(DF, build_args={"V": "2"})
    # like docker: ARG itself stays cached, the RUN that sees the new value does not
    assert bb.cached() == [True, True, False, False, False]
    bb.build(DF, build_args={"V": "2"})
    assert bb.cached() == [True] * 5


def test_ignored_file_change_does_not_invalidate_copy_dot(bb):
    df = "FROM busybox\nCOPY . /ctx/\n"
    bb.build(df, {".dockerignore": "*.log\n", "a.txt": "a", "x.log": "1"})
    bb.files({"x.log": "2", "new.log": "3"})
    bb.build(df)
    assert bb.cached() == [True]
    bb.files({"new.txt": "n"})
    bb.build(df)
    assert bb.cached() == [False]


def test_no_cache(bb):
    first = bb.build(DF, files())
    second = bb.build(DF, no_cache=True)
    assert bb.cached() == [False] * 5 and second.id != first.id


def test_dockerfile_edit_keeps_the_prefix_cached(bb):
    bb.build(DF, files())
    bb.build(DF.replace("CMD [\"cat\", \"/copy\"]", "CMD [\"sh\"]"))
    assert bb.cached() == [True, True, True, True, False]


def test_cache_survives_untagged_prune_of_intermediates_and_rebuilds_after_gc(bb):
    first = bb.build(DF, files(), tags=["keep"])
    # intermediate images were registered for the RUN step only during the build
    assert sorted(i.name for i in bb.store.list()) == ["busybox:latest", "host:latest", "keep:latest"]
    bb.store.remove("keep")
    bb.store.gc()  # the blobs go: the cache entries are stale now
    again = bb.build(DF)
    assert bb.cached() == [True, False, False, False, False]  # ARG has no layer: still valid
    assert again.id != first.id


def test_cached_rebuild_reads_no_context_file(bb, monkeypatch):
    bb.build(DF, files())
    opened = []
    real_open = os.open

    def spy(path, *a, **kw):
        if str(path).startswith(str(bb.ctx)) and not str(path).endswith("Dockerfile"):
            opened.append(str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr(os, "open", spy)
    bb.build(DF)
    assert bb.cached() == [True] * 5 and opened == []


def test_first_copy_reads_each_file_once(bb, monkeypatch):
    big = os.urandom(3 << 20)
    bb.files({"big.bin": big})
    reads = []
    real_read = os.read

    fds = {}
    real_open = os.open

    def spy_open(path, *a, **kw):
        fd = real_open(path, *a, **kw)
        fds[fd] = str(path)
        return fd

    def spy_read(fd, n):
        data = real_read(fd, n)
        if fds.get(fd, "").endswith("big.bin"):
            reads.append(len(data))
        return data

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "read", spy_read)
    img = bb.build("FROM busybox\nCOPY big.bin /\n")
    assert sum(reads) == len(big)  # hashed, tarred and unpacked in one pass
    assert bb.tree(img)["big.bin"].size == len(big)


def test_concurrent_builds_share_the_root(bb):
    import subprocess
    import sys

    bb.files({"Dockerfile": "FROM busybox\nRUN echo a > /a\nCOPY Dockerfile /d\nRUN echo b > /b\n"})
    procs = [subprocess.Popen([sys.executable, "-m", "jupybox", "--root", str(bb.root), "build", "-q", "-t", f"c{i}",
                               str(bb.ctx)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [o[1] for o in outs]
    bb.build()
    assert bb.cached() == [True, True, True]  # whichever build stored a step, the next one uses it
    assert sorted(i.name for i in bb.store.list())[:4] == ["busybox:latest", "c0:latest", "c1:latest", "c2:latest"]
    assert bb.leftovers() == []
