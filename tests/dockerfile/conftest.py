"""Fixtures for the build tests (helpers: jbx_build_helpers.py, put on sys.path here)."""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from jbx_build_helpers import store_tree, write_tree  # noqa: E402


class Builds:
    """One fresh jupybox root with busybox:latest, a context dir, and what the builds started."""

    def __init__(self, root: Path, ctx: Path):
        from jupybox.image.store import ImageStore

        self.root = root
        self.ctx = ctx
        self.store = ImageStore(root)
        self.containers: list[str] = []
        self.events: list = []

    def files(self, files: dict) -> Path:
        return write_tree(self.ctx, files)

    def build(self, dockerfile: str | None = None, files: dict | None = None, **kw):
        from jupybox.dockerfile import build

        if files:
            self.files(files)
        if dockerfile is not None:
            (self.ctx / "Dockerfile").write_text(dockerfile)
        self.events = []
        kw.setdefault("runner", "in-process")
        on_step = kw.pop("on_step", None)

        def record(ev):
            self.events.append(ev)
            if on_step:
                on_step(ev)

        return build(kw.pop("context", self.ctx), kw.pop("file", None), root=self.root, on_step=record, **kw)

    def steps(self, kind: str = "end") -> list:
        return [e for e in self.events if e.kind == kind]

    def cached(self) -> list[bool]:
        return [e.cached for e in self.steps() if not e.instruction.startswith("FROM ")]

    def tree(self, image):
        return store_tree(self.store, image)

    def run(self, image: str, script: str, **opts) -> tuple[int, str]:
        from jupybox.runtime.engine import Engine
        from jupybox.runtime.options import make_spec

        eng = Engine(self.root)
        rec = eng.create(make_spec(image, ["/bin/sh", "-c", script], **opts))
        with tempfile.TemporaryFile() as out:
            devnull = os.open(os.devnull, os.O_RDONLY)
            try:
                state = eng.run_attached(rec, (devnull, out.fileno(), out.fileno()))
            finally:
                os.close(devnull)
                eng.remove(rec, force=True)
            out.seek(0)
            return state.exit_code, out.read().decode()

    def index(self) -> bytes:
        return (self.root / "images" / "index.json").read_bytes()

    def leftovers(self) -> list[str]:
        """Containers, mounts, cgroups and processes of this root that outlived the builds."""
        out = []
        cdir = self.root / "containers"
        if cdir.exists():
            out += [f"container dir {p}" for p in os.listdir(cdir)]
        real = os.path.realpath(self.root)
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if mp.startswith(real + "/") or any(c in mp for c in self.containers):
                    out.append(f"mount {mp}")
        for cid in self.containers:
            out += [f"cgroup {p}" for p in glob.glob(f"/sys/fs/cgroup/*/jupybox/{cid}") +
                    glob.glob(f"/sys/fs/cgroup/unified/jupybox/{cid}") + glob.glob(f"/sys/fs/cgroup/jupybox/{cid}")]
        from jupybox.testing.leaks import processes_rooted_under

        out += [f"process {pid} {cmd}" for pid, cmd in processes_rooted_under(self.root).items()]
        tmp = self.root / "tmp"
        if tmp.exists():
            out += [f"tmp {n}" for n in os.listdir(tmp) if n.startswith("layer-")]
        return out


@pytest.fixture
def bb(jupybox_root, busybox_tar, tmp_path, monkeypatch):
    """A fresh root with busybox:latest; builds run in-process; containers are recorded."""
    from jupybox.dockerfile import runner as runner_mod
    from jupybox.testing import import_image

    import_image(jupybox_root, busybox_tar, "busybox:latest")
    b = Builds(jupybox_root, tmp_path / "ctx")
    b.ctx.mkdir()
    orig_create = None
    from jupybox.runtime.engine import Engine

    orig_create = Engine.create

    def create(self, spec, cid=None):
        rec = orig_create(self, spec, cid)
        b.containers.append(rec.id)
        return rec

    monkeypatch.setattr(Engine, "create", create)
    assert runner_mod  # the module is importable
    yield b


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
