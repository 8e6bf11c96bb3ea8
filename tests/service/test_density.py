"""Many detached containers, one service (issue 15): no process of ours per container but its PID 1
(a small static C program), and the service crash-safe. A kill -9 of the service leaves the
containers running; the next command's service re-adopts them: the exit codes of those that ended
while no service ran are recovered (PID 1 keeps its status for the next service), --rm ones that
ended meanwhile are removed, their logs go on, and `rm -f` of all of them leaves nothing.
Handshakes through files and processes' states, never timing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import jupybox
from jupybox.testing import import_image
from jupybox.testing.leaks import cgroups, mounts, new_cgroups

pytestmark = [pytest.mark.root, pytest.mark.slow]

N = int(os.environ.get("JUPYBOX_DENSITY_N", "100"))


def jb(root, *args):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _children(pid: int) -> dict[int, bytes]:
    """The processes whose parent is ``pid`` -> their argv[0]."""
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    out[kid] = f.read().split(b"\0")[0]
            except OSError:
                continue
    return out


def _alive(pids) -> set[int]:
    return {p for p in pids if not _dead(p)}


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rindex(b")") + 2:][:1] in (b"Z", b"X")  # (a zombie: a child of ours)


def _kib(pid: int, field: str, name: str = "smaps_rollup") -> int:
    with open(f"/proc/{pid}/{name}") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _until(cond, what: str, patience: float = 120.0) -> None:
    deadline = time.monotonic() + patience
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"never: {what}")
        time.sleep(0.05)


def test_a_hundred_detached_containers_survive_a_kill9_of_their_service(jupybox_root, busybox_tar, tmp_path):
    root = jupybox_root
    import_image(root, busybox_tar, "bb:1")
    gate = tmp_path / "gate"
    gate.mkdir()
    before_cgroups = cgroups()
    # a third end by themselves while no service runs (exit i % 100 once the gate opens), a third
    # are stopped by the next service (their TERM trap exits 100 + i % 100), a tenth are --rm ones
    # that end while no service runs
    plan = {}
    for i in range(N):
        kind = "rm" if i % 10 == 9 else ("gate" if i % 3 == 0 else "stop")
        code = i % 100 if kind != "stop" else 100 + i % 100
        if kind == "stop":
            script = f'echo hello {i}; trap "echo bye {i}; exit {code}" TERM; sleep 600 & wait'
        else:
            script = f"echo hello {i}; while [ ! -e /gate/open ]; do sleep 0.1; done; echo bye {i}; exit {code}"
        c = jupybox.run("bb:1", ["sh", "-c", script], root=root, detach=True, network="none",
                        volumes=[f"{gate}:/gate:ro"], remove=kind == "rm")
        plan[c.id] = (kind, code, i)
    service = jupybox.launcher(root).service_pid
    ours = {jupybox.container(cid, root=root).pid for cid in plan}
    # one process of ours per container: its PID 1 (no monitor, no shim), the service's child;
    # beside them only the few sandboxes the service made ahead
    kids = _children(service)
    assert len(ours) == N and ours <= set(kids)
    # (b"": a sandbox's helper that has just exited, a zombie until the service reaps it)
    odd = {k: v for k, v in kids.items() if v not in (b"jupybox-init", b"")}
    assert not odd and len(kids) <= N + 6, odd
    for pid in ours:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        assert rss < 2048, rss  # KiB: a small static C program, not an interpreter
        # its own pages (the binary's are shared by every PID 1): a stack page once touched stays
        # for the container's life (zeroing a 256 KiB group list on the stack cost 700 KiB each)
        assert _kib(pid, "Private_Dirty") < 400, _kib(pid, "Private_Dirty")
    _until(lambda: all(jupybox.container(cid, root=root).logs().startswith("hello")
                       for cid, (k, _, _) in plan.items() if k != "rm"), "every container said hello")

    jupybox.shutdown()  # (our connection: detached containers do not depend on it)
    os.kill(service, signal.SIGKILL)
    _until(lambda: _dead(service), "the service gone")
    assert _alive(ours) == ours  # every container still runs

    (gate / "open").write_text("")  # the gated ones end while no service runs
    gated = {cid for cid, (k, _, _) in plan.items() if k in ("gate", "rm")}
    # the next command's service re-adopts them, in whatever state they are (ended or not)
    ps = jb(root, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}")
    assert ps.returncode == 0, ps.stderr
    new_service = jupybox.launcher(root).service_pid
    assert new_service != service
    for cid, (kind, code, i) in plan.items():
        if kind == "rm":
            continue
        c = jupybox.container(cid, root=root)
        if kind == "gate":
            assert c.wait(timeout=120) == code, (i, c.state())
    # the --rm ones are removed once their exit is taken in
    _until(lambda: not any(os.path.exists(root / "containers" / cid) for cid in gated
                           if plan[cid][0] == "rm"), "the --rm containers removed")
    # the others are stopped by the new service, with their own codes, and their logs go on
    stoppers = [cid for cid, (k, _, _) in plan.items() if k == "stop"]
    assert jb(root, "stop", *stoppers).returncode == 0
    for cid in stoppers:
        kind, code, i = plan[cid]
        c = jupybox.container(cid, root=root)
        assert c.wait(timeout=60) == code, (i, c.state())
        assert c.logs() == f"hello {i}\nbye {i}\n"
    for cid in gated:
        kind, code, i = plan[cid]
        if kind == "gate":
            assert jupybox.container(cid, root=root).logs() == f"hello {i}\nbye {i}\n"

    # rm -f of all: nothing left (processes, cgroups, mounts, directories, the service's fds)
    service_fds = len(os.listdir(f"/proc/{new_service}/fd"))
    everything = jb(root, "ps", "-aq").stdout.split()
    assert len(everything) == N - N // 10
    assert jb(root, "rm", "-f", *everything).returncode == 0
    assert jb(root, "ps", "-aq").stdout.split() == []
    _until(lambda: not _alive(ours), "every PID 1 gone")
    assert len(os.listdir(f"/proc/{new_service}/fd")) <= service_fds
    assert jb(root, "system", "shutdown").returncode == 0
    assert os.listdir(root / "containers") == []
    assert new_cgroups(before_cgroups) == set()
    assert not mounts([str(root)])


def test_the_service_gives_a_bursts_heap_back_once_requests_stop(jupybox_root, busybox_tar):
    # a service that watches idle containers lives long: the heap a burst of starts freed (~8 MB,
    # holes glibc keeps) goes back to the system after TRIM_AFTER seconds without a request
    root = jupybox_root
    import_image(root, busybox_tar, "bb:1")
    started = [jupybox.run("bb:1", ["sleep", "600"], root=root, detach=True, network="none") for _ in range(30)]
    service = jupybox.launcher(root).service_pid
    after_burst = _kib(service, "RssAnon", "status")
    try:
        _until(lambda: _kib(service, "RssAnon", "status") < after_burst - 2048,
               f"the service's heap given back (RssAnon {after_burst} KiB after the burst)", patience=30)
    finally:
        assert jb(root, "rm", "-f", *[c.id for c in started]).returncode == 0
