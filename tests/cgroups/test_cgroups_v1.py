"""Real cgroup v1/hybrid tests (root): limits in the kernel's files, memory+swap, attach, the mounts a
container gets. Each test uses its own parent (jupybox-test-<pid>-<n>) that the fixture removes. What
does not depend on the layout (OOM, pids, throttling, kill, remove) is in test_cgroups_real.py."""

from __future__ import annotations

import os
import subprocess

import pytest

from jupybox.errors import CgroupError
from jupybox.runtime.spec import Limits

MiB = 1 << 20

# v1_driver skips with the reason when not root or without a v1 memory controller (pure v2 machines)
pytestmark = [pytest.mark.root, pytest.mark.leakcheck]


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def test_limits_written_and_read_back(v1_driver):
    cg = v1_driver.create("test-limits")
    cg.set_limits(Limits(memory=32 * MiB, cpus=0.5, cpu_shares=512, pids=8))
    assert read(f"{cg.paths['memory']}/memory.limit_in_bytes") == str(32 * MiB)
    if os.path.exists(f"{cg.paths['memory']}/memory.memsw.limit_in_bytes"):
        assert read(f"{cg.paths['memory']}/memory.memsw.limit_in_bytes") == str(32 * MiB)  # None = no swap
    assert read(f"{cg.paths['cpu']}/cpu.cfs_quota_us") == "50000"
    assert read(f"{cg.paths['cpu']}/cpu.cfs_period_us") == "100000"
    assert read(f"{cg.paths['cpu']}/cpu.shares") == "512"
    assert read(f"{cg.paths['pids']}/pids.max") == "8"
    s = cg.stats()
    assert (s.memory_limit, s.cpu_quota, s.cpu_shares, s.pids_limit) == (32 * MiB, 0.5, 512, 8)
    assert s.memory_current == 0 and s.pids_current == 0 and s.oom_kills == 0
    cg.set_limits(Limits(cpus=0, pids=0))
    assert read(f"{cg.paths['cpu']}/cpu.cfs_quota_us") == "-1"
    assert read(f"{cg.paths['pids']}/pids.max") == "max"
    s = cg.stats()
    assert s.cpu_quota is None and s.pids_limit is None and s.memory_limit == 32 * MiB


def test_memory_raise_and_lower_with_swap(v1_driver):
    cg = v1_driver.create("test-mem")
    memsw = os.path.exists(f"{cg.paths['memory']}/memory.memsw.limit_in_bytes")
    for mem in (32 * MiB, 64 * MiB, 16 * MiB, 128 * MiB):  # raising needs memsw written first
        cg.set_limits(Limits(memory=mem))
        s = cg.stats()
        assert s.memory_limit == mem
        assert s.memory_swap_limit == (mem if memsw else None)
    if not memsw:
        with pytest.raises(CgroupError, match="swap accounting"):
            cg.set_limits(Limits(memory=64 * MiB, memory_swap=128 * MiB))
        return
    cg.set_limits(Limits(memory=64 * MiB, memory_swap=96 * MiB))
    assert (cg.stats().memory_limit, cg.stats().memory_swap_limit) == (64 * MiB, 96 * MiB)
    cg.set_limits(Limits(memory=64 * MiB, memory_swap=-1))
    assert (cg.stats().memory_limit, cg.stats().memory_swap_limit) == (64 * MiB, None)
    cg.set_limits(Limits(memory=8 * MiB))  # from unlimited swap down to none
    assert (cg.stats().memory_limit, cg.stats().memory_swap_limit) == (8 * MiB, 8 * MiB)
    with pytest.raises(CgroupError, match="must be >= memory"):
        cg.set_limits(Limits(memory=64 * MiB, memory_swap=32 * MiB))


def test_attach_and_self_attach(v1_driver, children, spawn_attached):
    cg = v1_driver.create("test-attach")
    sleeper = subprocess.Popen(["sleep", "60"])
    children.append(sleeper)
    cg.attach(sleeper.pid)
    assert cg.pids() == [sleeper.pid]
    assert cg.stats().pids_current == 1
    # a child that attaches itself by writing "0" to attach_self_paths(), the launcher's way
    p = spawn_attached(cg, "print(open('/proc/self/cgroup').read(), flush=True)")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    lines = {line.split(":")[1]: line.split(":")[2] for line in out.splitlines() if line.count(":") >= 2}
    for c in ("memory", "cpu", "cpuacct", "pids", "freezer"):
        key = next(k for k in lines if c in k.split(","))
        assert lines[key] == f"/{v1_driver.parent}/test-attach", (c, out)
    assert cg.pids() == [sleeper.pid]  # the self-attached child has exited


def test_mounts_for_container(v1_driver):
    cg = v1_driver.create("test-mounts")
    mounts = dict(cg.mounts_for_container())
    assert set(mounts.values()) >= {"memory", "pids"}
    for host_dir, name in mounts.items():
        assert os.path.isdir(host_dir) and host_dir.endswith(f"/{v1_driver.parent}/test-mounts")
        assert os.path.ismount(os.path.join("/sys/fs/cgroup", name))
