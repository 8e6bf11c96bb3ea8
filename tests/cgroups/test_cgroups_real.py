"""Real cgroups, whatever the machine has (v1/hybrid on the development VM, pure v2 in the v2 guest:
tests/v2guest): OOM, pids, CPU throttling, kill, remove through the one interface. Each test uses its
own parent (jupybox-test-<pid>-<n>) that the fixture removes. Layout-specific files are tested in
test_cgroups_v1.py and test_cgroups_v2_kernel.py."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from jupybox.errors import CgroupError
from jupybox.runtime.spec import Limits


MiB = 1 << 20

# real_driver skips with the reason when not root or without a memory controller
pytestmark = [pytest.mark.root, pytest.mark.leakcheck]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def has_peak(drv, kernel: tuple[int, int]) -> bool:
    """v1 has max_usage_in_bytes; v2 has memory.peak since 5.19 (stats say None before)."""
    return drv.version == 1 or kernel >= (5, 19)


def frozen(drv, cg) -> bool:
    """A kill freezes the cgroup while it signals (v1 always, v2 before cgroup.kill): never left frozen."""
    if drv.version == 2:
        return "frozen 1" in read(f"{cg.paths['unified']}/cgroup.events").splitlines()
    return "freezer" in cg.paths and read(f"{cg.paths['freezer']}/freezer.state") != "THAWED"


def test_fresh_cgroup_is_unlimited(real_driver):
    s = real_driver.create("test-fresh").stats()
    assert s.memory_limit is None and s.memory_swap_limit is None
    assert s.pids_limit is None and s.cpu_quota is None


def test_oom_kill(real_driver, spawn_attached, kernel):
    cg = real_driver.create("test-oom")
    cg.set_limits(Limits(memory=32 * MiB))
    code = "chunks = []\nfor i in range(256):\n    chunks.append(b'\\x01' * (1 << 20))\nprint('survived')\n"
    p = spawn_attached(cg, code)
    out, err = p.communicate(timeout=60)
    assert p.returncode == -9, (p.returncode, out, err)
    assert "survived" not in out
    s = cg.stats()
    assert s.oom_kills >= 1 and cg.oom_killed()
    if has_peak(real_driver, kernel):
        assert 16 * MiB < s.memory_peak <= 32 * MiB
    else:
        assert s.memory_peak is None


def test_no_oom_without_pressure(real_driver, spawn_attached, kernel):
    cg = real_driver.create("test-nooom")
    cg.set_limits(Limits(memory=64 * MiB))
    p = spawn_attached(cg, "x = b'\\x01' * (4 << 20)\n")
    p.communicate(timeout=30)
    assert p.returncode == 0
    assert not cg.oom_killed() and cg.stats().oom_kills == 0
    if has_peak(real_driver, kernel):
        assert cg.stats().memory_peak >= 4 * MiB


def test_pids_limit_makes_fork_fail(real_driver, spawn_attached):
    cg = real_driver.create("test-pids")
    cg.set_limits(Limits(pids=8))
    code = """
import errno, signal
kids = []
try:
    while len(kids) < 100:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
    print("NOLIMIT", len(kids))
except OSError as e:
    print(errno.errorcode[e.errno], len(kids))
finally:
    for k in kids:
        os.kill(k, signal.SIGKILL)
        os.waitpid(k, 0)
"""
    p = spawn_attached(cg, code)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out.split() == ["EAGAIN", "7"]  # itself + 7 children = pids.max


def test_cpu_quota_throttles(real_driver, spawn_attached):
    cg = real_driver.create("test-cpu")
    cg.set_limits(Limits(cpus=0.2))
    code = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end:\n    pass\n"
    p = spawn_attached(cg, code)
    p.communicate(timeout=30)
    assert p.returncode == 0
    s = cg.stats()
    assert s.nr_periods > 0 and s.nr_throttled > 0 and s.throttled_ns > 0
    assert s.cpu_usage_ns > 0 and s.cpu_quota == 0.2


def test_kill_empties_a_forking_cgroup(real_driver, spawn_forker):
    cg = real_driver.create("test-kill")
    cg.set_limits(Limits(pids=64))
    p = spawn_forker(cg)
    deadline = time.monotonic() + 10
    while cg.stats().pids_current < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cg.stats().pids_current >= 10
    cg.kill()
    assert cg.pids() == []
    assert p.wait(timeout=10) == -9
    assert not frozen(real_driver, cg)


def test_remove_kills_and_removes_every_dir(real_driver, children):
    a = real_driver.create("test-rm-a")
    real_driver.create("test-rm-b")
    sleeper = subprocess.Popen(["sleep", "60"])
    children.append(sleeper)
    a.attach(sleeper.pid)
    assert real_driver.list() == ["test-rm-a", "test-rm-b"]
    a.remove()
    assert sleeper.wait(timeout=10) == -9
    assert not a.exists() and not any(os.path.exists(d) for d in a.dirs)
    a.remove()  # again: nothing to do
    with pytest.raises(CgroupError, match="cannot read"):
        a.stats()
    assert real_driver.remove_parent_if_empty() is False  # b is still there
    assert all(os.path.isdir(p) for p in real_driver.parent_dirs())
    real_driver.open("test-rm-b").remove()
    assert real_driver.list() == []
    assert real_driver.remove_parent_if_empty() is True
    assert not any(os.path.exists(p) for p in real_driver.parent_dirs())


def test_remove_of_an_emptied_cgroup_is_one_rmdir_per_hierarchy(real_driver, children, monkeypatch):
    """The usual case (every process exited) neither walks the tree nor reads a process list; a
    process in a sub-cgroup the container made still gets the full path: killed, then removed."""
    from jupybox.cgroups import _fs

    empty = real_driver.create("test-rm-empty")
    with monkeypatch.context() as m:
        def refused(*a, **k):
            raise AssertionError("the tree was walked or read")

        m.setattr(_fs, "read", refused)
        m.setattr(_fs, "read_opt", refused)
        m.setattr(os, "walk", refused)
        empty.remove()
    assert not any(os.path.exists(d) for d in empty.dirs)

    nested = real_driver.create("test-rm-nested")
    sleeper = subprocess.Popen(["sleep", "60"])
    children.append(sleeper)
    nested.attach(sleeper.pid)
    # in the last hierarchy in a sub-cgroup; in the others out of the container's cgroup (to its
    # parent): their rmdirs succeed, the last one's is refused
    inner = os.path.join(nested.dirs[-1], "inner")
    _fs.mkdir(inner)
    _fs.write(os.path.join(inner, "cgroup.procs"), str(sleeper.pid))
    for d in nested.dirs[:-1]:
        _fs.write(os.path.join(os.path.dirname(d), "cgroup.procs"), str(sleeper.pid))
    nested.remove()
    assert sleeper.wait(timeout=10) == -9
    assert not any(os.path.exists(d) for d in nested.dirs)


def test_create_twice_and_bad_names(real_driver):
    real_driver.create("test-dup")
    with pytest.raises(CgroupError, match="already exists"):
        real_driver.create("test-dup")
    with pytest.raises(CgroupError, match="invalid cgroup name"):
        real_driver.create("../escape")


def test_create_survives_concurrent_parent_removal(real_driver):
    stop = threading.Event()
    errors: list[BaseException] = []

    def pruner():
        while not stop.is_set():
            try:
                real_driver.remove_parent_if_empty()
            except BaseException as e:  # must never fail on a race
                errors.append(e)

    t = threading.Thread(target=pruner)
    t.start()
    try:
        for i in range(40):
            cg = real_driver.create(f"test-race-{i}")
            assert all(os.path.isdir(d) for d in cg.dirs)
            cg.remove()
    finally:
        stop.set()
        t.join()
    assert not errors


