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
        import jupybox

        with tempfile.TemporaryFile() as out:
            devnull = os.open(os.devnull, os.O_RDONLY)
            try:
                c = jupybox.run(image, ["/bin/sh", "-c", script], root=self.root, stdin=devnull,
                                stdout=out.fileno(), stderr=out.fileno(), remove=True, **opts)
            finally:
                os.close(devnull)
            code = c.wait()
            out.seek(0)
            return code, out.read().decode()

    def index(self) -> bytes:
        return (self.root / "images" / "index.json").read_bytes()

    def leftovers(self) -> list[str]:
        """Containers, mounts, cgroups and processes of this root that outlived the builds (once
        the store's service, and its sandboxes made ahead, have gone)."""
        from jupybox.testing.leaks import stop_services

        stop_services(self.root)
        out = []
        cdir = self.root / "containers"
        if cdir.exists():
            out += [f"container dir {p}" for p in os.listdir(cdir)]
        real = os.path.realpath(self.root)
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if mp.startswith(real + "/"):
                    out.append(f"mount {mp}")
        parent = os.environ.get("JUPYBOX_CGROUP_PARENT") or "jupybox"
        ids = set(os.listdir(cdir)) if cdir.exists() else set()
        out += [f"cgroup {p}" for p in glob.glob(f"/sys/fs/cgroup/*/{parent}/*") + glob.glob(f"/sys/fs/cgroup/{parent}/*")
                if os.path.basename(p) in ids]
        from jupybox.testing.leaks import processes_rooted_under

        out += [f"process {pid} {cmd}" for pid, cmd in processes_rooted_under(self.root).items()]
        tmp = self.root / "tmp"
        if tmp.exists():
            out += [f"tmp {n}" for n in os.listdir(tmp) if n.startswith("layer-")]
        return out


@pytest.fixture
def bb(jupybox_root, busybox_tar, tmp_path):
    """A fresh root with busybox:latest (builds run their steps through the store's service)."""
    from jupybox.testing import import_image

    import_image(jupybox_root, busybox_tar, "busybox:latest")
    b = Builds(jupybox_root, tmp_path / "ctx")
    b.ctx.mkdir()
    yield b


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
