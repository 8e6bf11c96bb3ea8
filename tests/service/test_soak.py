"""The store's service under sustained load keeps its descriptors, threads and memory: a notebook
loop of 1,000 runs (see RUNS), 160 runs from 8 threads at once, 96 CLI runs from 8 shells at once, attached
runs read through pipes mixed with detached ones, runs that fail (a bad command, an OOM kill) and
runs interrupted (killed, or their client killed). After each phase the service is the same
process and its counts are within a small constant of where they started (counts, never time:
machines are noisy). And no select() anywhere: FD_SETSIZE would cap the service at 1,024
descriptors (hundreds of detached containers)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import jupybox
from jupybox import errors
from jupybox.testing import import_image

pytestmark = [pytest.mark.root, pytest.mark.slow]

# The tight loop's length is what the smallest leak it catches costs: a leak shows once it exceeds
# SLACK_FDS (the pool's own ups and downs), so N runs catch any leak of more than 16/N descriptors a
# run. The bug this guards leaked a socket and a pipe a run (caught after ~10 runs); 1,000 runs
# still catch one leaked descriptor in 62 runs. JUPYBOX_SOAK_RUNS=3000 is the soak issue 23 describes
# (and benchmarks/bench_soak.py runs 4,000 with the counts printed).
RUNS = int(os.environ.get("JUPYBOX_SOAK_RUNS", "1000"))
SLACK_FDS, SLACK_THREADS, SLACK_RSS = 16, 2, 24 << 20  # the pool may grow by a sandbox or two


def _status(pid: int) -> dict:
    out = {"fds": len(os.listdir(f"/proc/{pid}/fd"))}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "Threads":
                out["threads"] = int(value)
            elif key == "VmRSS":
                out["rss"] = int(value.split()[0]) * 1024
    return out


def _children_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return len(f.read().split())
    except OSError:
        return 0


@pytest.fixture
def soak_store(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, "bb:1")
    return jupybox_root


def _run(root, i: int) -> int:
    c = jupybox.run("bb:1", ["sh", "-c", f"echo {i}"], root=root, memory="64m", remove=True, network="none")
    return c.wait()


def test_a_soak_of_runs_leaks_nothing(soak_store):
    root = soak_store
    for i in range(50):  # warm: the pool has grown to what a loop needs
        assert _run(root, i) == 0
    pid = jupybox.launcher(root).service_pid
    start = _status(pid)
    mine = len(os.listdir("/proc/self/fd"))

    def check(phase: str) -> None:
        assert jupybox.launcher(root).service_pid == pid, f"{phase}: the service was replaced"
        # the service finishes the last exits' cleanups in its next quiet moments: counts are
        # compared once they have settled (a leak never settles)
        deadline = time.monotonic() + 30
        while _status(pid)["fds"] > start["fds"] + SLACK_FDS and time.monotonic() < deadline:
            time.sleep(0.1)
        now = _status(pid)
        assert now["fds"] <= start["fds"] + SLACK_FDS, (phase, start, now)
        assert now["threads"] <= start["threads"] + SLACK_THREADS, (phase, start, now)
        assert now["rss"] <= start["rss"] + SLACK_RSS, (phase, start, now)
        assert _children_of(pid) <= 8, (phase, _children_of(pid))  # sandboxes and helpers, no zombies piling up
        assert len(os.listdir("/proc/self/fd")) <= mine + 2, phase

    # a notebook's loop, as tight as it gets
    codes = [_run(root, i) for i in range(RUNS)]
    assert codes == [0] * RUNS
    check("tight loop")

    # 8 threads of one kernel at once
    failures: list = []

    def worker(n: int) -> None:
        try:
            for i in range(RUNS // 48):
                code = _run(root, i)
                if code != 0:
                    failures.append(code)
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    check("8 threads")

    # 8 shells at once, through the CLI
    script = f"for i in $(seq {RUNS // 80}); do {sys.executable} -m jupybox --root {root} run --rm --network none " \
             "bb:1 sh -c 'echo $i' >/dev/null || exit 1; done"
    shells = [subprocess.Popen(["sh", "-c", script]) for _ in range(8)]
    assert [p.wait(timeout=600) for p in shells] == [0] * 8
    check("8 shells")

    # runs that fail to start, and ones killed by their memory limit, do not leak either
    for i in range(50):
        if i % 2:
            with pytest.raises(errors.CommandNotFound):
                jupybox.run("bb:1", ["no-such-command"], root=root, remove=True, network="none")
            continue
        c = jupybox.run("bb:1", ["sh", "-c", "x=$(head -c 80000000 /dev/zero | tr '\\0' x); echo ${#x}"],
                        root=root, memory="16m", remove=True, network="none")
        assert c.wait() == 137
    check("failures")

    # attached runs read through a pipe, mixed with detached ones waited for and removed
    for i in range(100):
        r, w = os.pipe()
        c = jupybox.run("bb:1", ["sh", "-c", f"seq {i} {i + 50}"], root=root, stdout=w, stderr=w, network="none",
                        remove=True)
        os.close(w)
        with os.fdopen(r) as f:
            assert f.read().split()[-1] == str(i + 50)
        assert c.wait() == 0
        d = jupybox.run("bb:1", ["sh", "-c", f"echo {i}"], root=root, detach=True, network="none")
        assert d.wait() == 0 and d.logs() == f"{i}\n"
        d.remove()
    check("attached and detached")

    # interrupted: killed by the user, or their client killed (an attached container dies with it)
    for i in range(20):
        c = jupybox.run("bb:1", ["sleep", "30"], root=root, remove=True, network="none")
        c.kill()
        assert c.wait() == 137
    client = ("import jupybox, sys\n"
              f"c = jupybox.run('bb:1', ['sleep', '30'], root={str(root)!r}, network='none', remove=True)\n"
              "print(c.id, flush=True)\nsys.stdin.read()\n")
    for i in range(10):
        p = subprocess.Popen([sys.executable, "-c", client], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        cid = p.stdout.readline().strip()
        assert cid, "the client started no container"
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdin.close()
        p.stdout.close()
        try:  # it died with its client (and, --rm, went)
            assert jupybox.container(cid, root=root).wait(timeout=60) == 137
        except errors.ContainerNotFound:
            pass  # gone already
    check("interrupted")
    assert jupybox.containers(all=True, root=root) == []


def test_no_select_anywhere():
    """select() cannot watch a descriptor above 1,023: poll, epoll or selectors' default instead."""
    package = Path(jupybox.__file__).parent
    offenders = [f"{path.relative_to(package)}:{n}" for path in package.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\bselect\.select\(|SelectSelector", line)]
    assert offenders == []
