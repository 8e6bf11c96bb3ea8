"""Hub tests: a real JupyterHub with configurable-http-proxy and JupyboxSpawner, in a network
namespace the test makes (``jupybox.hub.testing``), on the test's own store.

``hubs.start(extra_config)`` starts a hub; the ``hubs`` fixture stops every server and hub it
started, then the namespace goes (and with it the bridge and the nftables tables).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from jupybox.hub import testing as hubtesting


class Hubs:
    def __init__(self, ns: hubtesting.Netns, workdir, root, proxy: str):
        self.ns = ns
        self.work = workdir
        self.root = root
        self.proxy = proxy
        self.started: list[hubtesting.Hub] = []

    def make(self, extra_config: str = "", **kw) -> hubtesting.Hub:
        config = (f"c.JupyboxSpawner.root = {str(self.root)!r}\n" + hubtesting.server_user_config()
                  + textwrap.dedent(extra_config))
        hub = hubtesting.Hub(self.ns, self.work / "hub", self.proxy, extra_config=config,
                             env={"JUPYBOX_ROOT": str(self.root)}, **kw)
        self.started.append(hub)
        return hub

    def start(self, extra_config: str = "", **kw) -> hubtesting.Hub:
        hub = self.make(extra_config, **kw)
        hub.start()
        return hub

    # -- the store, seen from inside the namespace (where the hub's containers and bridge are) --
    def jb(self, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = self.ns.run([sys.executable, "-m", "jupybox", "--root", self.root, *args], timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"jupybox {' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def inspect(self, name: str) -> dict:
        return json.loads(self.jb("inspect", name).stdout)[0]

    def container_names(self) -> list[str]:
        return sorted(json.loads(line)["Names"] for line in self.jb("ps", "-a", "--format", "json").stdout.splitlines())

    def exec_python(self, name: str, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.jb("exec", name, "python3", "-c", code, check=False, timeout=timeout)

    def links(self) -> list[str]:
        out = self.ns.run(["ip", "-o", "link", "show"]).stdout
        return sorted(ln.split(":")[1].strip().split("@")[0] for ln in out.splitlines() if ":" in ln)

    def left_links(self, ids: list[str]) -> list[str]:
        """Links of these containers, or any bridge, still in the namespace (the store's service
        may keep prewarmed sandboxes with veths of their own: not these containers')."""
        return [ln for ln in self.links() if ln.startswith("jbx-") or any(ln.startswith(f"jv{i[:8]}") for i in ids)]

    def unplugged(self, ids: list[str]) -> list[str]:
        """Links of these containers, or any bridge, still in the namespace and still in use: up or
        on a bridge. A container's veth that is down and on no bridge is what its exit leaves until
        the kernel frees its network namespace, which an orphaned TCP socket (a FIN the downed veth
        never delivers) keeps for ~100 s of retransmissions: see netns_holders for jupybox's part."""
        links = json.loads(self.ns.run(["ip", "-j", "link", "show"]).stdout or "[]")
        return [f"{ln['ifname']} {ln['flags']} master={ln.get('master')}" for ln in links
                if ln["ifname"] in self.left_links(ids) and ("UP" in ln["flags"] or ln.get("master")
                                                             or ln["ifname"].startswith("jbx-"))]

    def nft_tables(self) -> list[str]:
        return [ln.strip() for ln in self.ns.run(["nft", "list", "tables"]).stdout.splitlines() if ln.strip()]

    def eventually(self, check, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def close(self) -> None:
        for hub in self.started:
            if hub.proc is not None and hub.proc.poll() is None:
                for user in _users_with_servers(hub):
                    try:
                        hub.stop_server(user, timeout=60)
                    except RuntimeError:
                        pass
            hub.stop()
        names = self.jb("ps", "-a", "-q", check=False).stdout.split()
        if names:
            self.jb("rm", "-f", *names, check=False)


def netns_inode(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def netns_holders(inodes: set[int]) -> list[str]:
    """What of user space keeps one of these network namespaces alive: a thread in it, a descriptor
    of it, a mount of it (in any mount namespace). Nothing, once a container is gone: the kernel then
    frees the namespace, and the veth with it, when its last socket is done."""
    found, seen_mnt = [], set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                if netns_inode(f"{pid}/task/{tid}") in inodes:
                    found.append(f"thread {tid} of {pid} is in it")
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("net:[") and int(link[5:-1]) in inodes:
                    found.append(f"{pid} holds {link} as fd {fd}")
            mnt = os.stat(f"/proc/{pid}/ns/mnt").st_ino
            if mnt not in seen_mnt:
                seen_mnt.add(mnt)
                with open(f"/proc/{pid}/mountinfo") as f:
                    found += [f"mounted in {pid}'s mount namespace: {line.split()[4]}" for line in f
                              if any(line.split()[3] == f"net:[{i}]" for i in inodes)]
        except (OSError, ValueError):
            continue  # gone meanwhile
    return found


def _users_with_servers(hub) -> list[str]:
    try:
        status, users = hub.api("GET", "/users")
    except OSError:
        return []
    return [u["name"] for u in users if u.get("servers")] if status == 200 else []


@pytest.fixture
def hubs(tmp_path, jupybox_root, test_cache):
    why = hubtesting.missing()
    if why:
        pytest.skip(why)
    try:
        proxy = hubtesting.proxy_command(test_cache)
    except hubtesting.Unavailable as e:
        pytest.skip(str(e))
    with hubtesting.Netns() as ns:
        h = Hubs(ns, tmp_path, jupybox_root, proxy)
        try:
            yield h
        finally:
            h.close()
