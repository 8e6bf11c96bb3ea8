"""Rootless limits through a delegated cgroup v2 subtree: an unprivileged user whose commands run in
``user@UID.service/app.slice/…`` (made as systemd's Delegate=yes makes it: tests/cgroups/delegation.py)
gets -m, --cpus and --pids-limit enforced by the kernel, as on most desktops and servers. Needs a pure
v2 kernel (the v2 guest, tests/v2guest, runs it); on hybrid machines users get rlimits instead
(tests/runtime/test_rootless.py)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from jupybox.cgroups import detect_layout
from jupybox.testing.rootless import unavailable, unprivileged_user

from tests.cgroups.delegation import delegated_to


def _skip_reason() -> str | None:
    if unavailable():
        return unavailable()
    try:
        layout = detect_layout()
    except Exception as e:  # noqa: BLE001 - no cgroups at all
        return str(e)
    return None if layout == "v2" else f"cgroups here are {layout}: delegation needs a pure v2 kernel (tests/v2guest)"


pytestmark = [pytest.mark.root, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]

JUPYBOX = os.path.join(os.path.dirname(sys.executable), "jupybox")
MiB = 1 << 20


@pytest.fixture(scope="module")
def user():
    with unprivileged_user(subids=True, prefix="jbxdg") as u:
        yield u


@pytest.fixture(scope="module")
def delegation(user):
    with delegated_to(user) as d:
        yield d


def run(delegation, user, *args):
    out = delegation.run(user, [JUPYBOX, *args])
    # jupybox's parent in the delegation goes with its last container, and the last sandbox its
    # service made ahead (the service is stopped here rather than waited for)
    down = delegation.run(user, [JUPYBOX, "system", "shutdown"])
    assert down.returncode == 0, down.stderr
    assert delegation.children() == [], (out.returncode, out.stdout, out.stderr)
    return out


def test_the_user_driver_is_the_delegation(delegation, user):
    code = ("from jupybox.cgroups import open_user_driver\n"
            "d = open_user_driver('jupybox')\n"
            "print(type(d).__name__, d.base, ','.join(sorted(d.controllers)))\n")
    out = delegation.run(user, [sys.executable, "-c", code])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["V2Driver", str(delegation.service), "cpu,memory,pids"]
    info = run(delegation, user, "info", "--format", "json")
    assert info.returncode == 0, info.stderr
    cgroups = json.loads(info.stdout)["cgroups"]
    assert (cgroups["layout"], cgroups["controllers"]) == ("v2", ["cpu", "memory", "pids"]), cgroups
    assert "why_none" not in cgroups


def test_memory_limit_is_an_oom_kill(delegation, user):
    out = run(delegation, user, "run", "--rm", "-m", "64m", "host", "python3", "-c",
              "b = bytearray(200 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')")
    assert out.returncode == 137, (out.stdout, out.stderr)
    assert "survived" not in out.stdout
    assert "no cgroups for this user" not in out.stderr


def test_pids_limit_holds_a_fork_bomb(delegation, user):
    bomb = ("import os, time\nn = 0\nfor i in range(30):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(3)\n        os._exit(0)\n"
            "    n += 1\nprint('started', n, open('/sys/fs/cgroup/pids.max').read().strip())")
    out = run(delegation, user, "run", "--rm", "--pids-limit", "8", "host", "python3", "-c", bomb)
    assert out.returncode == 0, out.stderr
    started, limit = out.stdout.split("started")[1].split()
    assert 0 < int(started) < 8 and limit == "8", out.stdout


def test_cpu_quota_throttles(delegation, user):
    busy = ("import time\nend = time.monotonic() + 1\nwhile time.monotonic() < end: pass\n"
            "print(open('/sys/fs/cgroup/cpu.max').read().strip())\n"
            "print(dict(l.split() for l in open('/sys/fs/cgroup/cpu.stat'))['nr_throttled'])\n")
    out = run(delegation, user, "run", "--rm", "--cpus", "0.2", "host", "python3", "-c", busy)
    assert out.returncode == 0, out.stderr
    quota, throttled = out.stdout.splitlines()[-2:]
    assert quota == "20000 100000" and int(throttled) > 0, out.stdout
    assert "not enforced" not in out.stderr
