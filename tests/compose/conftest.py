"""Compose tests that run containers: each in a network namespace of its own (tests/network's
``netns`` fixture and ``Net`` helper), with the CLI run inside it (``nsenter --net``) from the
project's directory, busybox imported, and a redis image made with mmdebstrap and cached like the
other test images."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jupybox.testing import debian_tarball, import_image
from tests.network.conftest import Net, netns  # noqa: F401 - the namespace fixture, shared with tests/network


class Compose(Net):
    """``jupybox compose`` (and the rest of the CLI, a shell) inside the test's namespace, in a
    project directory of its own."""

    def __init__(self, ns: str, root: Path, workdir: Path):
        super().__init__(ns, root)
        self.dir = workdir

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def jb(self, *args, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.prefix() + [sys.executable, "-m", "jupybox", "--root", self.root, *map(str, args)],
                              cwd=self.dir, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"jupybox {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def __call__(self, *args, check: bool = True, **kw) -> subprocess.CompletedProcess:
        proc = self.jb("compose", *args, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}")
        return proc

    def links(self) -> list[str]:
        return sorted(super().links())

    def containers(self) -> list[str]:
        return sorted(self.jb("ps", "-a", "-q").stdout.split())

    def networks(self) -> list[str]:
        d = Path(self.root) / "networks"
        return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []

    def volumes(self) -> list[str]:
        return sorted(self.jb("volume", "ls", "-q").stdout.split())


@pytest.fixture
def compose(netns, jupybox_root, busybox_tar, tmp_path):
    import_image(jupybox_root, busybox_tar, "busybox:latest")
    work = tmp_path / "proj"
    work.mkdir()
    c = Compose(netns, jupybox_root, work)
    yield c
    # whatever a failed test left: its containers go, then what they held
    ids = c.containers()
    if ids:
        c.jb("rm", "-f", *ids)
    c.jb("prune")


@pytest.fixture(scope="session")
def redis_tar(test_cache) -> Path:
    """A cached mmdebstrap bookworm minbase with redis-server (and redis-tools)."""
    path = debian_tarball(test_cache, include=("redis-server",))
    if path is None:
        pytest.skip("mmdebstrap is not installed")
    return path


def runtime_accepts(option: str, value) -> bool:
    """Does this jupybox's runtime take a container option (``restart``, ``healthcheck``)?"""
    import jupybox
    from jupybox.compose.convert import options_accepted

    return options_accepted(jupybox.make_spec)(option, value)


def needs_runtime(option: str, value, feature: str):
    return pytest.mark.skipif(not runtime_accepts(option, value),
                              reason=f"the runtime does not take `{option}` yet ({feature}: the store's service, "
                                     "issue 16)")
