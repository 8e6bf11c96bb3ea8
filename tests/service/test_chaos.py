"""The store's service under chaos (issue 25): prune in a loop beside a loop of runs, kill -9 of
the service in the middle of a run, a stopped (SIGSTOP) service, a store whose path has overlay's
option characters. Handshakes through pipes and processes' states, never timing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading

import pytest

import jupybox
from jupybox import errors
from jupybox.service.client import ServiceDied, ServiceHung
from jupybox.testing import import_image
from jupybox.testing.leaks import cgroups, new_cgroups

pytestmark = [pytest.mark.root]


@pytest.fixture
def store(jupybox_root, busybox_tar):
    import_image(jupybox_root, busybox_tar, "bb:1")
    return jupybox_root


def jb(root, *args, **kw):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kw)


def test_prune_in_a_loop_beside_a_loop_of_runs_breaks_none(store):
    """docker's prune never touches a container being made: a run, or a create whose start is
    still to come (a notebook cell puts its files in between)."""
    rng = random.Random(25)
    done = threading.Event()
    pruned: list[str] = []
    failures: list = []

    def pruner():
        while not done.is_set():
            try:
                pruned.extend(jupybox.prune(root=store)["containers"])
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(("prune", e))
            done.wait(rng.uniform(0.0, 0.02))

    t = threading.Thread(target=pruner)
    t.start()
    try:
        made = set()
        for i in range(150):
            if i % 2:
                c = jupybox.run("bb:1", ["sh", "-c", f"echo {i}"], root=store, network="none", remove=True)
                code = c.wait()
                if code != 0:
                    failures.append((i, code))
                continue
            c = jupybox.create("bb:1", ["sh", "-c", f"echo {i}"], root=store, network="none")
            made.add(c.id)
            done.wait(rng.uniform(0.0, 0.01))  # a cell writes its files here
            c.start()
            code = c.wait()
            if code != 0 or c.logs() != f"{i}\n":
                failures.append((i, code))
            c.remove()
    except errors.JupyboxError as e:
        failures.append(e)
    finally:
        done.set()
        t.join()
    assert failures == []
    assert not made & set(pruned)  # none of ours was pruned while it was being made


def _service_pid(store) -> int:
    return jupybox.launcher(store).service_pid


def test_a_service_killed_mid_run_is_named_and_its_sandboxes_collected(store):
    before = cgroups()
    c = jupybox.run("bb:1", ["sleep", "300"], root=store, network="none")
    pid = _service_pid(store)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ServiceDied) as info:
        c.wait()
    message = str(info.value)
    assert f"the jupybox service (pid {pid}) died" in message and "its log: " in message
    assert "137" not in message and "SIGKILL" not in message  # not the user's process
    # the next service: the attached container went with its client's service; what the dead one
    # had made ahead (sandboxes, their cgroups) is collected
    jupybox.shutdown()
    assert jb(store, "ps", "-a").returncode == 0
    assert jupybox.container(c.id, root=store).wait(timeout=60) == 137
    jupybox.container(c.id, root=store).remove()
    assert jb(store, "system", "shutdown").returncode == 0
    assert os.listdir(store / "containers") == []
    assert new_cgroups(before) == set()


SLEEPER = """
import signal, sys, jupybox
root = sys.argv[1]
jupybox.run("bb:1", ["true"], root=root, network="none", remove=True).wait()  # the service is up
print(jupybox.launcher(root).service_pid, flush=True)
sys.stdin.readline()  # the test stops the service, then says go
signal.setitimer(signal.ITIMER_REAL, 0.5)
signal.signal(signal.SIGALRM, lambda *a: signal.raise_signal(signal.SIGINT))  # a user's Ctrl-C
try:
    jupybox.run("bb:1", ["true"], root=root, network="none", remove=True).wait()
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_a_stopped_service_never_holds_an_interrupt_and_is_named_hung(store):
    p = subprocess.Popen([sys.executable, "-c", SLEEPER, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    pid = int(p.stdout.readline())
    os.kill(pid, signal.SIGSTOP)
    try:
        p.stdin.write("go\n")
        p.stdin.flush()
        # the interrupt returns control (the test's timeout would catch a held one)
        assert p.stdout.readline().strip() == "interrupted"
        assert p.wait(timeout=60) == 0
        # a call that nobody interrupts: named hung once the service has stayed stopped a moment
        with pytest.raises(ServiceHung, match=rf"service \(pid {pid}\) is stopped .*`kill -CONT {pid}"):
            jupybox.run("bb:1", ["true"], root=store, network="none", remove=True).wait()
        # (stderr to a file: the run request carries our stdio to the stopped service, which holds
        # it in its socket until it reads it, so a pipe would never see its end)
        with open(store.parent / "cli.err", "w+") as err:
            code = subprocess.run([sys.executable, "-m", "jupybox", "--root", str(store), "run", "--rm", "--network",
                                   "none", "bb:1", "true"], stdout=subprocess.DEVNULL, stderr=err, timeout=120).returncode
            err.seek(0)
            text = err.read()
        assert code == 125 and len(text.strip().splitlines()) == 1, text
        assert "is stopped (SIGSTOP or a debugger)" in text
    finally:
        os.kill(pid, signal.SIGCONT)
    # continued, it serves again
    assert jupybox.run("bb:1", ["true"], root=store, network="none", remove=True).wait() == 0


@pytest.mark.parametrize("name", ["a,b", "a:b", "a,b:c=d"])
def test_a_store_path_with_overlay_option_characters(tmp_path, busybox_tar, name):
    root = tmp_path / name / "store"
    import_image(root, busybox_tar, "bb:1")
    vol = tmp_path / "data,1"  # (a colon would make -v ambiguous, as it does for docker)
    vol.mkdir()
    (vol / "f").write_text("in a bind\n")
    try:
        for image in ("bb:1", "host"):
            out = jb(root, "run", "--rm", "--network", "none", "-v", f"{vol}:/data", image, "cat", "/data/f")
            assert (out.returncode, out.stdout) == (0, "in a bind\n"), out.stderr
        out = jb(root, "run", "--rm", "bb:1", "sh", "-c", "echo bridged")  # the default network too
        assert (out.returncode, out.stdout) == (0, "bridged\n"), out.stderr
    finally:
        assert jb(root, "system", "reset", "-f").returncode == 0
