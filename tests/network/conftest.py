"""Networking tests: every one runs jupybox inside a network namespace made for it.

The ``netns`` fixture makes ``jbxt-<random>`` (``ip netns add``, lo up) and ``net`` runs the CLI
in it (``nsenter --net``: unlike ``ip netns exec`` it keeps /sys and its cgroups). Bridges,
addresses and nftables tables exist only in that namespace and vanish with it; traffic goes only
between its containers and its loopback, never anywhere else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from jupybox.testing import import_image

BB = "busybox:latest"


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
    name = f"jbxt-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{name}", "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Net:
    """The CLI, a shell and Python, run inside the test's network namespace."""

    def __init__(self, ns: str, root):
        self.ns = ns
        self.root = str(root)

    def prefix(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.ns}"]

    def jb(self, *args, timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.prefix() + [sys.executable, "-m", "jupybox", "--root", self.root, *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"jupybox {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def ok(self, *args, **kw) -> str:
        return self.jb(*args, check=True, **kw).stdout

    def sh(self, script: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(self.prefix() + ["sh", "-c", script], capture_output=True, text=True, timeout=timeout)

    def fetch(self, url: str, timeout: float = 5) -> str:
        """HTTP GET from the namespace (the host's busybox wget), retried while the server starts."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.sh(f"timeout 3 busybox wget -q -O- {url}")
            if p.returncode == 0 or time.monotonic() > deadline:
                return p.stdout if p.returncode == 0 else f"FAILED: {p.stderr.strip()}"
            time.sleep(0.1)

    def network_state(self, name: str) -> dict:
        with open(os.path.join(self.root, "networks", f"{name}.json")) as f:
            return json.load(f)

    def ip_of(self, container: str, network: str | None = None) -> str:
        ns = json.loads(self.ok("inspect", "-f", "{{json .NetworkSettings}}", container))
        return ns["Networks"][network]["IPAddress"] if network else ns["IPAddress"]

    def links(self) -> list[str]:
        out = self.sh("ip -o link show").stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line]

    def veths(self, expect: int | None = None, timeout: float = 5) -> list[str]:
        """The host ends of container veths; with ``expect``, waited for (a stopped container's
        pair goes with its namespace, which the kernel tears down asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [ln for ln in self.links() if ln.startswith("jv")]
            if expect is None or len(found) == expect or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    @staticmethod
    def eventually(check, timeout: float = 5) -> bool:
        """Poll ``check()`` until true: the store's service cleans up after an exit it already
        reported, and may do so after its client has gone."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def nft(self) -> str:
        return self.sh("nft list ruleset").stdout


@pytest.fixture
def net(netns, jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, BB)
    n = Net(netns, jupybox_root)
    yield n
    # a test that failed half-way leaves its detached containers: they go with the namespace
    ids = n.jb("ps", "-a", "-q", "--no-trunc").stdout.split()
    if ids:
        n.jb("rm", "-f", *ids)
    n.jb("prune")
