"""Compose tests that run containers: each in a network namespace of its own (as tests/network),
with the CLI run inside it (``nsenter --net``), busybox imported, and a redis image made with
mmdebstrap and cached like the other test images."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from jupybox.testing import debian_tarball, import_image


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nsenter", "nft"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    return None


@pytest.fixture
def netns():
    why = _missing()
    if why:
        pytest.skip(why)
    name = f"jbxc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{name}", "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Compose:
    """``jupybox compose`` (and the rest of the CLI, a shell) inside the test's namespace, in a
    project directory of its own."""

    def __init__(self, ns: str, root: Path, workdir: Path):
        self.ns = ns
        self.root = str(root)
        self.dir = workdir

    def prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.ns}"]

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def jb(self, *args, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.prefix() + [sys.executable, "-m", "jupybox", "--root", self.root, *map(str, args)],
                              cwd=self.dir, capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def __call__(self, *args, check: bool = True, **kw) -> subprocess.CompletedProcess:
        proc = self.jb("compose", *args, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr}")
        return proc

    def sh(self, script: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.prefix() + ["sh", "-c", script], capture_output=True, text=True, timeout=timeout)

    def fetch(self, url: str, timeout: float = 10) -> str:
        """HTTP GET from the namespace, retried while the server starts."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.sh(f"timeout 3 busybox wget -q -O- {url}")
            if p.returncode == 0 or time.monotonic() > deadline:
                return p.stdout if p.returncode == 0 else f"FAILED: {p.stderr.strip()}"
            time.sleep(0.1)

    def links(self) -> list[str]:
        out = self.sh("ip -o link show").stdout
        return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line)

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
