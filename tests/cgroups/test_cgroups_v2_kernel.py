"""The v2 driver on a real cgroup2 kernel (root): the files it writes and reads, and what differs
between kernel releases (each test checks the kernel has what its release promises, then the
driver's handling of it). Skipped on v1/hybrid machines; the v2 guest (tests/v2guest) boots
Debian's kernel under qemu to run them. The driver-independent behaviour (OOM, pids, throttling,
kill, remove) is in test_cgroups_real.py, which the guest runs too."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from jupybox.cgroups import _fs
from jupybox.errors import CgroupError
from jupybox.runtime.spec import Limits

MiB = 1 << 20
ROOT = "/sys/fs/cgroup"

pytestmark = [pytest.mark.root, pytest.mark.leakcheck]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def kv(path: str) -> dict[str, int]:
    return _fs.parse_kv(read(path))


def wait_for(predicate, what: str, timeout: float = 60.0):
    """Poll until ``predicate()`` is true (a guard against a hang, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def test_controllers_are_enabled_down_to_the_container(v2_driver):
    cg = v2_driver.create("test-ctl")
    parent = os.path.dirname(cg.path)
    for d in (ROOT, parent):
        assert {"cpu", "memory", "pids"} <= set(read(f"{d}/cgroup.subtree_control").split()), d
    assert {"cpu", "memory", "pids"} <= set(read(f"{cg.path}/cgroup.controllers").split())
    assert v2_driver.controllers == {"cpu", "memory", "pids"}
    assert cg.paths["unified"] == cg.path == os.path.join(ROOT, v2_driver.parent, "test-ctl")
    assert cg.mounts_for_container() == [(cg.path, "")]


def test_limits_written_and_read_back(v2_driver, kernel):
    cg = v2_driver.create("test-limits")
    cg.set_limits(Limits(memory=32 * MiB, cpus=0.5, cpu_shares=512, pids=8))
    assert read(f"{cg.path}/memory.max") == str(32 * MiB)
    assert read(f"{cg.path}/cpu.max") == "50000 100000"
    assert read(f"{cg.path}/cpu.weight") == "20"  # runc's conversion of 512 shares
    assert read(f"{cg.path}/pids.max") == "8"
    s = cg.stats()
    assert (s.memory_limit, s.cpu_quota, s.pids_limit) == (32 * MiB, 0.5, 8)
    assert 500 <= s.cpu_shares <= 512  # back from the coarser weight
    assert s.memory_current == 0 and s.pids_current == 0 and s.oom_kills == 0
    cg.set_limits(Limits(cpus=0, pids=0))
    assert read(f"{cg.path}/cpu.max") == "max 100000" and read(f"{cg.path}/pids.max") == "max"
    s = cg.stats()
    assert s.cpu_quota is None and s.pids_limit is None and s.memory_limit == 32 * MiB


def test_swap_follows_the_kernels_swap_accounting(v2_driver, kernel):
    """memory.swap.max exists only with swap accounting: always on since 6.1 when the kernel has swap
    at all (swapaccount=0 became a no-op, commit b25806dcd3d5), off before 6.1 with swapaccount=0.
    Without it only "no swap" or "unlimited" can be asked for (that branch: a kernel < 6.1 booted with
    swapaccount=0, or the fixture test test_no_swap_accounting)."""
    cg = v2_driver.create("test-swap")
    accounting = os.path.exists(f"{cg.path}/memory.swap.max")
    if kernel < (6, 1) and "swapaccount=0" in read("/proc/cmdline").split():
        assert not accounting
    elif kernel >= (6, 1) and os.path.exists("/proc/swaps"):  # CONFIG_SWAP
        assert accounting
    cg.set_limits(Limits(memory=64 * MiB))
    assert read(f"{cg.path}/memory.max") == str(64 * MiB)
    if not accounting:
        assert cg.stats().memory_swap_limit is None
        cg.set_limits(Limits(memory=64 * MiB, memory_swap=-1))
        cg.set_limits(Limits(memory=48 * MiB, memory_swap=48 * MiB))
        assert read(f"{cg.path}/memory.max") == str(48 * MiB)
        with pytest.raises(CgroupError, match="swap accounting is off"):
            cg.set_limits(Limits(memory=64 * MiB, memory_swap=128 * MiB))
        return
    assert read(f"{cg.path}/memory.swap.max") == "0"  # memory_swap None: no swap, docker's -m alone allows 2x
    assert cg.stats().memory_swap_limit == 64 * MiB
    cg.set_limits(Limits(memory=64 * MiB, memory_swap=96 * MiB))
    assert read(f"{cg.path}/memory.swap.max") == str(32 * MiB)  # v2's swap.max is swap alone
    assert cg.stats().memory_swap_limit == 96 * MiB
    cg.set_limits(Limits(memory=64 * MiB, memory_swap=-1))
    assert read(f"{cg.path}/memory.swap.max") == "max" and cg.stats().memory_swap_limit is None


def test_peak_and_oom_kill_counters(v2_driver, spawn_attached, kernel):
    """memory.peak since 5.19 (None before: the chart keeps its own peak of memory.current), and
    memory.events' oom_kill, which is what tells an OOM kill from any other SIGKILL."""
    cg = v2_driver.create("test-peak")
    cg.set_limits(Limits(memory=48 * MiB))
    assert os.path.exists(f"{cg.path}/memory.peak") == (kernel >= (5, 19))
    p = spawn_attached(cg, "b = bytearray(24 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
                           "del b\nprint('freed', flush=True)\nimport time; time.sleep(1000)\n")
    assert p.stdout.readline().strip() == "freed"
    s = cg.stats()
    if kernel >= (5, 19):
        assert 24 * MiB <= s.memory_peak <= 48 * MiB and s.memory_current < s.memory_peak
    else:
        assert s.memory_peak is None
    assert kv(f"{cg.path}/memory.events")["oom_kill"] == 0 and not cg.oom_killed()
    cg.kill()
    cg2 = v2_driver.create("test-oom")
    cg2.set_limits(Limits(memory=32 * MiB))
    q = spawn_attached(cg2, "chunks = []\nwhile True:\n    chunks.append(b'\\x01' * (1 << 20))\n")
    q.communicate(timeout=120)
    assert q.returncode == -9
    events = kv(f"{cg2.path}/memory.events")
    assert events["oom_kill"] >= 1 and events["max"] >= 1
    assert cg2.stats().oom_kills == events["oom_kill"] and cg2.oom_killed()


def test_cpu_stat_counts_throttling(v2_driver, spawn_attached):
    cg = v2_driver.create("test-cpu")
    cg.set_limits(Limits(cpus=0.1))
    p = spawn_attached(cg, "while True:\n    pass\n")
    wait_for(lambda: cg.stats().nr_throttled >= 3, "three throttled periods")
    st = kv(f"{cg.path}/cpu.stat")
    s = cg.stats()
    assert s.nr_throttled >= st["nr_throttled"] >= 3 and s.throttled_ns >= st["throttled_usec"] * 1000 > 0
    assert s.nr_periods >= s.nr_throttled and s.cpu_usage_ns >= st["usage_usec"] * 1000 > 0
    assert s.cpu_quota == 0.1
    p.kill()


def test_pids_max_holds_a_fork_bomb(v2_driver, spawn_attached):
    cg = v2_driver.create("test-pids")
    cg.set_limits(Limits(pids=10))
    p = spawn_attached(cg, "import time\nn = 0\n"
                           "for i in range(200):\n"
                           "    try:\n"
                           "        if os.fork() == 0:\n"
                           "            time.sleep(1000)\n"
                           "            os._exit(0)\n"
                           "        n += 1\n"
                           "    except OSError:\n"
                           "        pass\n"
                           "print(n, flush=True)\ntime.sleep(1000)\n")
    assert p.stdout.readline().strip() == "9"  # itself + 9 children = pids.max
    s = cg.stats()
    assert (s.pids_current, s.pids_limit) == (10, 10)
    assert kv(f"{cg.path}/pids.events")["max"] == 200 - 9  # every refused fork is counted
    cg.kill()
    assert cg.pids() == []


def test_self_attach_puts_the_child_in_the_cgroup(v2_driver, spawn_attached):
    cg = v2_driver.create("test-attach")
    assert cg.attach_self_paths() == [f"{cg.path}/cgroup.procs"]
    p = spawn_attached(cg, "print(open('/proc/self/cgroup').read(), flush=True)")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.split() == [f"0::/{v2_driver.parent}/test-attach"]


@pytest.mark.parametrize("how", ["cgroup.kill", "freeze and signal"])
def test_kill_empties_a_forking_tree_with_a_nested_cgroup(v2_driver, spawn_forker, children, kernel,
                                                          monkeypatch, how):
    """cgroup.kill (5.14+) kills the whole subtree at once; before it, the cgroup is frozen, every
    process of the subtree signalled, then thawed. Both on the same kernel: the old path is taken
    when cgroup.kill is missing, as it is before 5.14."""
    cg = v2_driver.create("test-kill")
    assert os.path.exists(f"{cg.path}/cgroup.kill") == (kernel >= (5, 14))
    if how != "cgroup.kill":
        monkeypatch.setattr(cg, "_kill_file", f"{cg.path}/cgroup.kill-before-5.14")
    cg.set_limits(Limits(pids=64))
    p = spawn_forker(cg)
    # a container that makes a cgroup of its own (systemd in a container does): a leaf with a process
    nested = f"{cg.path}/inner"
    _fs.mkdir(nested)
    sleeper = subprocess.Popen(["sleep", "1000"])
    children.append(sleeper)
    _fs.write(f"{nested}/cgroup.procs", str(sleeper.pid))
    wait_for(lambda: cg.stats().pids_current >= 10, "ten processes")
    cg.kill()
    assert read(f"{cg.path}/cgroup.procs") == read(f"{nested}/cgroup.procs") == ""
    assert p.wait(timeout=30) == -9 and sleeper.wait(timeout=30) == -9
    assert "frozen 0" in read(f"{cg.path}/cgroup.events").splitlines()
    cg.remove()
    assert not os.path.exists(cg.path)


def test_remove_parent_only_when_empty(v2_driver):
    a = v2_driver.create("test-a")
    v2_driver.create("test-b")
    assert v2_driver.list() == ["test-a", "test-b"]
    a.remove()
    assert v2_driver.remove_parent_if_empty() is False
    v2_driver.open("test-b").remove()
    assert v2_driver.remove_parent_if_empty() is True
    assert not os.path.exists(os.path.join(ROOT, v2_driver.parent))
