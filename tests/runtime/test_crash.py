"""kill -9 of jupybox at any moment of `run`: the next command and `prune` leave nothing behind."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from jupybox.testing import leaks

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05, 0.15, 0.5])
@pytest.mark.parametrize("rm", [True, False])
def test_kill9_during_run(busybox_image, cli, delay, rm):
    before = leaks.snapshot()
    args = [sys.executable, "-m", "jupybox", "--root", str(busybox_image.root), "run"]
    args += (["--rm"] if rm else []) + ["--name", "victim", "-m", "64m", BB, "sleep", "30"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the container dies with its monitor (PDEATHSIG); the next command reconciles the state
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and leaks.processes_rooted_under(busybox_image.root):
        time.sleep(0.05)
    assert not leaks.processes_rooted_under(busybox_image.root)
    ps = cli("ps")
    assert ps.returncode == 0 and "victim" not in ps.stdout
    assert cli("prune").returncode == 0
    assert cli("ps", "-a", "-q").stdout.strip() == ""
    assert leaks.new_cgroups(before.cgroups, roots=[busybox_image.root]) == set()
    assert not leaks.mounts([str(busybox_image.root)])
    # the name is free again
    r = cli("run", "--rm", "--name", "victim", BB, "true")
    assert r.returncode == 0, r.stderr
    assert not leaks.diff(before)["mounts"]


def test_a_removal_cut_short_after_the_client_was_told_is_collected(busybox_image, cli):
    """An --rm container is gone for every verb before its cgroup and files are (the service tells
    the waiting client first): a crash in between leaves tmp/rm-<id> and the cgroup <id>, which
    the next prune removes, both."""
    import secrets

    from jupybox.runtime.engine import Engine

    eng = Engine(busybox_image.root)
    cid = secrets.token_hex(32)
    trash = eng.layout.tmp / f"rm-{cid}"
    (trash / "upper").mkdir(parents=True)
    eng.cgroups.create(cid)
    assert eng.cgroups.open(cid).exists()
    r = cli("prune", "-f")
    assert r.returncode == 0, r.stderr
    assert not trash.exists() and not eng.cgroups.open(cid).exists()
