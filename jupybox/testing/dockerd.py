"""A private Docker engine for tests that check interoperability (``docker load`` of our archives).

Debian's docker.io (20.10), started with its own data and exec roots under a temporary directory and
no networking of its own (``--iptables=false --bridge=none``), as ANCHORS.md describes; stopped by
its pid and unmounted at the end, so nothing of it survives the test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path


class DockerdUnavailable(RuntimeError):
    pass


@contextlib.contextmanager
def private_dockerd(workdir: Path, *, text: bool = False, start_timeout: float = 30.0):
    """Yield ``run(*args, **kw) -> CompletedProcess`` for ``docker ...`` against a private dockerd.

    Raises DockerdUnavailable when there is no dockerd (or not as root) or it does not start."""
    dockerd = shutil.which("dockerd")
    cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
    if not dockerd or not cli or os.geteuid() != 0:
        raise DockerdUnavailable("needs root and Debian's docker.io (dockerd)")
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    sock = d / "docker.sock"
    log = open(d / "log", "wb")
    proc = subprocess.Popen(
        [dockerd, "--data-root", str(d / "data"), "--exec-root", str(d / "exec"), "--pidfile", str(d / "pid"),
         "-H", f"unix://{sock}", "--storage-driver", "overlay2", "--iptables=false", "--ip6tables=false",
         "--bridge=none"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")

    def run(*args, **kw):
        kw.setdefault("text", text)
        return subprocess.run([cli, *map(str, args)], capture_output=True, env=env, timeout=120, **kw)

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for sub in ("data", "exec"):
            subprocess.run(["umount", "-R", "-l", str(d / sub)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)

    deadline = time.monotonic() + start_timeout
    while run("version").returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (d / "log").read_text(errors="replace")[-500:] if (d / "log").exists() else ""
            stop()
            raise DockerdUnavailable(f"dockerd did not start: {tail}")
        time.sleep(0.2)
    try:
        yield run
    finally:
        containers = run("ps", "-aq", text=True).stdout.split()
        if containers:
            run("rm", "-f", *containers)
        stop()
