#!/usr/bin/env python3
"""JupyterHub benchmark: spawn-to-ready time and memory per idle user server, JupyboxSpawner against
DockerSpawner (PyPI dockerspawner) on a private dockerd, the same image content, interleaved.

    python benchmarks/bench_hub.py [--runs 8] [--warmup 1] [--settle 3] [--out FILE]

The script re-runs itself in a network namespace made for the run; in it, two JupyterHubs (each
with its configurable-http-proxy, DummyAuthenticator) on different ports, one per spawner, and a
private dockerd (``jupybox.testing.dockerd``: no bridge, no iptables). Each iteration asks one hub,
through its REST API, for a new user's server, and times the POST: with ``slow_spawn_timeout`` above
the spawn time it answers when the hub has seen the server answer (spawn-to-ready as the hub sees
it). The server then idles ``--settle`` seconds and its memory is read; the stop is not timed.

    jupybox   JupyboxSpawner, the built-in ``host`` image, on the hub's bridge network
    docker    DockerSpawner, an image holding the host image's symlinks and empty directories with
              the same host directories bind-mounted read-only (/usr, /etc, /opt, the virtualenv
              and its base interpreter), on docker's host network (a port per server)

Both servers run ``jupyterhub-singleuser --allow-root`` as root with a 1 GiB memory limit. Memory:
the server's cgroup (``memory.usage_in_bytes``: the same processes on both sides), and what runs
outside it for that server alone: docker's containerd-shim (one per container); jupybox has no
process per container outside its cgroup (the store's service is shared, as dockerd is).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Case, format_table, run_interleaved, write_results  # noqa: E402

MEMORY = "1G"
DOCKER_CONFIG = """
import socket
from dockerspawner import DockerSpawner

class HostNetworkDockerSpawner(DockerSpawner):
    # on docker's host network every server needs a port of its own, and is reached on loopback
    async def start(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        return await super().start()

    async def get_ip_and_port(self):
        return "127.0.0.1", self.port

c.JupyterHub.spawner_class = HostNetworkDockerSpawner
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.DockerSpawner.image = {image!r}
c.DockerSpawner.network_name = "host"
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True
c.DockerSpawner.read_only_volumes = {binds!r}
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.args = ["--allow-root"]
c.Spawner.mem_limit = {memory!r}
"""
JUPYBOX_CONFIG = """
c.JupyboxSpawner.root = {root!r}
c.JupyboxSpawner.uid = 0
c.JupyboxSpawner.gid = 0
c.Spawner.args = ["--allow-root"]
c.Spawner.mem_limit = {memory!r}
"""


def host_image_tar() -> tuple[bytes, dict, str]:
    """A rootfs with the host image's symlinks and empty directories; -> (tar, binds, PATH)."""
    from jupybox.image.host import FRESH_DIRS, host_binds, host_path_env, host_symlinks

    binds = host_binds()
    buf = io.BytesIO()
    dirs = set(FRESH_DIRS)
    for _src, dst in binds:  # the mount points and their parents
        p = Path(dst)
        dirs.update(str(q) for q in [p, *p.parents] if str(q) != "/")
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in sorted(dirs, key=lambda x: x.count("/")):
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "/tmp" else 0o755
            tar.addfile(info)
        for name, target in host_symlinks():
            if name in dirs:
                continue
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue(), {src: {"bind": dst, "mode": "ro"} for src, dst in binds}, host_path_env()


def cgroup_memory(container_id: str) -> int | None:
    """The memory.usage_in_bytes (v1) or memory.current (v2) of the cgroup named after the container."""
    for base in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        for dirpath, dirnames, _files in os.walk(base):
            if os.path.basename(dirpath) == container_id or os.path.basename(dirpath) == f"docker-{container_id}.scope":
                for name in ("memory.usage_in_bytes", "memory.current"):
                    try:
                        return int(Path(dirpath, name).read_text())
                    except OSError:
                        continue
            if dirpath.count("/") > base.count("/") + 4:
                dirnames[:] = []
    return None


def shim_rss(container_id: str) -> int:
    """RSS of the processes outside the container that exist for it alone (containerd's shim)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"containerd-shim" in cmd[0] and container_id.encode() in cmd:
                status = Path(f"/proc/{pid}/status").read_text()
                total += int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS:"))) * 1024
        except (OSError, StopIteration, ValueError):
            continue
    return total


class Side:
    """One hub and how to read its servers' memory."""

    def __init__(self, name: str, hub, container_of, settle: float):
        self.name, self.hub, self.container_of, self.settle = name, hub, container_of, settle
        self.count = 0
        self.memory: list[int] = []
        self.outside: list[int] = []

    def spawn(self) -> float:
        self.count += 1
        user = f"{self.name}{self.count}"
        self.hub.api("POST", "/users", {"usernames": [user]})
        t0 = time.perf_counter()
        status, body = self.hub.api("POST", f"/users/{user}/server", timeout=300)
        elapsed = time.perf_counter() - t0
        if status != 201:
            raise RuntimeError(f"{self.name}: POST server answered {status}: {body}")
        time.sleep(self.settle)
        cid = self.container_of(user)
        mem = cgroup_memory(cid)
        if mem is None:
            raise RuntimeError(f"{self.name}: no cgroup for {cid}")
        self.memory.append(mem)
        self.outside.append(shim_rss(cid))
        self.hub.stop_server(user)
        return elapsed


def inside(args) -> int:
    from jupybox.hub.testing import Here, Hub, proxy_command
    from jupybox.testing import cache_dir
    from jupybox.testing.dockerd import private_dockerd
    from jupybox.testing.leaks import kill_processes_under

    work = Path(tempfile.mkdtemp(prefix="jbx-bench-hub-"))
    root = work / "store"
    root.mkdir()
    chp = proxy_command(cache_dir())
    here = Here()
    hubs = []
    try:
        with private_dockerd(work / "dockerd", text=True) as docker:
            tar, binds, path = host_image_tar()
            proc = subprocess.run(["docker", "import", "--change", f"ENV PATH={path}", "--change", 'CMD ["/bin/sh"]',
                                   "-", "jbx-host:bench"], input=tar, capture_output=True,
                                  env=dict(os.environ, DOCKER_HOST=f"unix://{work / 'dockerd' / 'docker.sock'}"))
            if proc.returncode != 0:
                raise RuntimeError(f"docker import: {proc.stderr.decode()}")
            docker_env = {"DOCKER_HOST": f"unix://{work / 'dockerd' / 'docker.sock'}"}
            jhub = Hub(here, work / "hub-jupybox", chp, "jupybox", JUPYBOX_CONFIG.format(root=str(root), memory=MEMORY),
                       env={"JUPYBOX_ROOT": str(root)}, ports=(8000, 8001, 8081))
            dhub = Hub(here, work / "hub-docker", chp, "docker",
                       DOCKER_CONFIG.format(image="jbx-host:bench", binds=binds, memory=MEMORY), env=docker_env,
                       ports=(9000, 9001, 9081))
            for hub in (jhub, dhub):
                hubs.append(hub)
                hub.start()

            def jupybox_id(user: str) -> str:
                import jupybox

                return jupybox.container(f"jupyterhub-{user}", root=root).id

            def docker_id(user: str) -> str:
                return docker("inspect", "-f", "{{.Id}}", f"jupyter-{user}").stdout.strip()

            sides = {"jupybox": Side("jupybox", jhub, jupybox_id, args.settle),
                     "docker": Side("docker", dhub, docker_id, args.settle)}
            results = run_interleaved([Case("docker", sides["docker"].spawn, note="DockerSpawner 14, dockerd 20.10"),
                                       Case("jupybox", sides["jupybox"].spawn, note="JupyboxSpawner, host image")],
                                      args.runs, warmup=args.warmup)
            for hub in hubs:
                hub.stop()
    finally:
        for hub in hubs:
            hub.stop()
        kill_processes_under(root)
        shutil.rmtree(work, ignore_errors=True)
    print("hub: spawn-to-ready of a user's server (POST until ready), interleaved, private network namespace")
    print(format_table(results, "docker"))
    dk, jb = results["docker"], results["jupybox"]
    ratio = jb.median / dk.median if dk.times and jb.times else None
    mib = lambda xs: round(statistics.median(xs) / 2**20, 1) if xs else None  # noqa: E731
    memory = {name: {"cgroup_mib": mib(s.memory[args.warmup:]), "outside_mib": mib(s.outside[args.warmup:])}
              for name, s in sides.items()}
    for name, m in memory.items():
        print(f"  idle server memory, {name}: cgroup {m['cgroup_mib']} MiB, outside it {m['outside_mib']} MiB")
    if ratio is not None:
        print(f"  jupybox / docker = {ratio:.2f}x (median spawn-to-ready)")
    entry = {"hub": {
        "description": "JupyterHub spawn-to-ready (REST POST until ready) and idle server memory; DockerSpawner on "
                       "a private dockerd, same image content",
        "runs": args.runs, "reference": "docker", "settle_s": args.settle,
        "cases": {name: r.to_dict(results.get("docker")) for name, r in results.items()},
        "ratio": round(ratio, 3) if ratio is not None else None, "memory": memory,
    }}
    write_results(args.out, entry, {"hub_benchmark": True})
    print(json.dumps({"ratio": entry["hub"]["ratio"], "memory": memory}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds a server idles before its memory is read")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inside:
        return inside(args)
    from jupybox.hub.testing import missing

    why = missing() or next((f"{t} is not installed" for t in ("dockerd", "docker") if not shutil.which(t)), None)
    if why:
        print(f"the hub benchmark cannot run: {why}", file=sys.stderr)
        return 2
    ns = f"jbxbench-hub-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "ip", "link", "set", "lo", "up"], check=True)
        again = [sys.executable, __file__, "--inside", "--runs", str(args.runs), "--warmup", str(args.warmup),
                 "--settle", str(args.settle), "--out", str(args.out)]
        return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *again]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
