"""The CLI through the store's service (``jupybox.service``), for real: a short linger, so that
each test sees the service leave by itself. Handshakes through pipes and the service's own exit,
never timing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from jupybox.service import address
from jupybox.testing import import_image
from jupybox.testing.leaks import cgroups, mounts, new_cgroups

pytestmark = [pytest.mark.root]

LINGER = "0.5"


@pytest.fixture
def store(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, "busybox:latest")
    before = cgroups()
    yield jupybox_root
    # the service leaves by itself once idle; what it made goes with it
    assert wait_daemon_gone(jupybox_root), "the service did not leave"
    assert new_cgroups(before) == set()
    assert not mounts([str(jupybox_root)])
    containers = jupybox_root / "containers"
    assert not containers.exists() or not list(containers.iterdir())


def env(**extra) -> dict:
    return {**os.environ, "JUPYBOX_SERVICE_LINGER": LINGER, **extra}


def jb(root, *args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          env=env(), timeout=120, **kw)


def daemons(root) -> list[int]:
    """The services of ``root`` (by the name on their command line)."""
    name = address.name(str(root))
    found = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if name.encode() not in f.read():
                        continue
                with open(f"/proc/{d}/stat") as f:
                    found[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return sorted(pid for pid, ppid in found.items() if ppid not in found)


def wait_daemon_gone(root, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemons(root):
            return True
        time.sleep(0.05)
    return False


def test_output_exit_codes_stdin_and_errors(store):
    out = jb(store, "run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (out.returncode, out.stdout, out.stderr) == (3, "out\n", "err\n")
    assert len(daemons(store)) == 1  # the first run spawned it; it lingers
    out = jb(store, "run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input="hello\n")
    assert (out.returncode, out.stdout) == (0, "HELLO\n")
    out = jb(store, "run", "--rm", "busybox", "nosuchcommand")
    assert out.returncode == 127 and out.stderr.strip().splitlines() == [
        'jupybox: exec: "nosuchcommand": executable file not found in $PATH']
    out = jb(store, "run", "--rm", "nosuchimage", "true")
    assert out.returncode == 125 and out.stderr.strip().startswith("jupybox: No such image: nosuchimage")
    out = jb(store, "run", "--rm", "-m", "12xb", "busybox", "true")
    assert out.returncode == 125 and len(out.stderr.strip().splitlines()) == 1
    assert len(daemons(store)) == 1  # one daemon served them all
    assert jb(store, "ps", "-a", "-q").stdout == ""


def test_concurrent_runs_share_one_daemon(store):
    procs = [subprocess.Popen([sys.executable, "-m", "jupybox", "--root", str(store), "run", "--rm", "busybox", "sh",
                               "-c", f"sleep 0.3; echo {i}"], env=env(), stdout=subprocess.PIPE, text=True)
             for i in range(4)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4 and outs == [f"{i}\n" for i in range(4)]
    assert len(daemons(store)) == 1


def _started(store, *cmd) -> subprocess.Popen:
    """A CLI whose container has printed "ready" (so it runs under the daemon)."""
    p = subprocess.Popen([sys.executable, "-m", "jupybox", "--root", str(store), "run", "--rm", "busybox", *cmd],
                         env=env(), stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    return p


def test_signals_reach_the_container(store):
    p = _started(store, "sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    p.send_signal(signal.SIGTERM)
    assert p.stdout.read() == "got TERM\n"
    assert p.wait(timeout=30) == 7


def test_kill9_of_the_cli_kills_and_removes_its_container(store):
    p = _started(store, "sh", "-c", "echo ready; exec sleep 60")
    assert len(jb(store, "ps", "-q").stdout.split()) == 1
    p.kill()
    p.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and jb(store, "ps", "-a", "-q").stdout:
        time.sleep(0.05)
    assert jb(store, "ps", "-a", "-q").stdout == ""  # killed with its client's connection, and --rm'd


def test_another_user_cannot_use_the_service(store):
    from jupybox.testing.rootless import unavailable, unprivileged_user

    if unavailable():
        pytest.skip(unavailable())
    assert jb(store, "run", "--rm", "busybox", "true").returncode == 0  # the service is up
    path = os.path.join(str(store), "run", address.name(str(store)) + ".sock")
    os.chmod(store, 0o755)  # even where the store itself can be entered, run/ cannot
    probe = (
        "import socket, sys\n"
        "from jupybox.service import wire\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({path!r})\n"
        "    wire.send(s, {'op': 'ping', 'req': 1})\n"
        "    print('answer', wire.recv(s))\n"
        "except OSError as e:\n"
        "    print('refused', e)\n"
    )
    with unprivileged_user(subids=False, prefix="jbxsv") as user:
        out = user.python(probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(("answer None", "refused")), out.stdout  # hung up on, never answered


def test_a_client_whose_service_lost_the_lock_race_waits_for_the_winner(store):
    # two clients start services at once: the loser of the store's lock exits 0 while the winner
    # may not have bound its socket yet; the client must not report "exited at start"
    import fcntl
    import threading

    lock = os.open(os.path.join(address.run_dir(store), address.name(str(store)) + ".lock"),
                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # a "winner" that has not bound its socket yet
    got: dict = {}

    def client():
        try:
            got["sock"] = address.connect_or_spawn(store)
        except Exception as e:  # noqa: BLE001 - shown below
            got["error"] = e

    t = threading.Thread(target=client)
    t.start()
    log = address.log_path(store)
    deadline = time.monotonic() + 20
    # a service was spawned (its log opened) and has left again, beaten to the lock
    while not (os.path.exists(log) and not daemons(store)) and time.monotonic() < deadline:
        time.sleep(0.01)
    fcntl.flock(lock, fcntl.LOCK_UN)
    os.close(lock)
    t.join(30)
    assert "error" not in got, got
    got["sock"].close()
