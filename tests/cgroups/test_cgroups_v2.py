"""The v2 driver against a v2-shaped tree in tmp_path (a hybrid host's cgroup2 has no controllers)."""

from __future__ import annotations

import os

import pytest

from jupybox.cgroups.v2 import delegated_base
from jupybox.cgroups.v2.cpu import shares_to_weight
from jupybox.errors import CgroupError
from jupybox.runtime.spec import Limits

MiB = 1 << 20


def read(path):
    with open(path) as f:
        return f.read().strip()


def put(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_driver_shape(fake_v2):
    kernel, drv = fake_v2
    assert drv.layout == "v2" and drv.version == 2
    assert drv.controllers == {"cpu", "memory", "pids"}  # from the root's cgroup.controllers, not io/rdma...
    cg = drv.create("c1")
    d = os.path.join(kernel.root, "jupybox", "c1")
    assert cg.paths["memory"] == cg.paths["cpu"] == cg.paths["pids"] == cg.paths["unified"] == d
    assert cg.attach_self_paths() == [os.path.join(d, "cgroup.procs")]
    assert cg.mounts_for_container() == [(d, "")]
    assert drv.list() == ["c1"]


def test_enables_only_missing_controllers_in_the_root(fake_v2):
    kernel, drv = fake_v2  # the root's subtree_control has "cpu" already
    drv.create("c1")
    assert read(os.path.join(kernel.root, "cgroup.subtree_control")) == "+memory +pids"
    # jupybox's own parent passes all of them on to the containers
    assert read(os.path.join(kernel.root, "jupybox", "cgroup.subtree_control")) == "+cpu +memory +pids"


def test_no_write_to_root_when_all_enabled(make_fake_v2):
    kernel, drv = make_fake_v2(root_subtree="cpuset cpu io memory pids\n")
    drv.create("c1")
    assert read(os.path.join(kernel.root, "cgroup.subtree_control")) == "cpuset cpu io memory pids"


def test_set_limits_writes(fake_v2):
    kernel, drv = fake_v2
    cg = drv.create("c1")
    d = cg.paths["unified"]
    cg.set_limits(Limits(memory=64 * MiB, cpus=0.5, cpu_shares=1024, pids=100))
    assert read(f"{d}/memory.max") == str(64 * MiB)
    assert read(f"{d}/memory.swap.max") == "0"  # memory_swap None = no swap
    assert read(f"{d}/cpu.max") == "50000 100000"
    assert read(f"{d}/cpu.weight") == "39"
    assert read(f"{d}/pids.max") == "100"
    cg.set_limits(Limits(memory=64 * MiB, memory_swap=96 * MiB))
    assert read(f"{d}/memory.swap.max") == str(32 * MiB)  # v2 swap.max is swap alone
    cg.set_limits(Limits(memory=64 * MiB, memory_swap=-1, cpus=0, pids=0))
    assert read(f"{d}/memory.swap.max") == "max"
    assert read(f"{d}/cpu.max") == "max 100000"
    assert read(f"{d}/pids.max") == "max"
    cg.set_limits(Limits(pids=5))  # only what is named changes
    assert read(f"{d}/memory.max") == str(64 * MiB) and read(f"{d}/pids.max") == "5"


def test_stats_reads(fake_v2):
    kernel, drv = fake_v2
    cg = drv.create("c1")
    d = cg.paths["unified"]
    put(f"{d}/cpu.stat", "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nnr_periods 10\nnr_throttled 3\nthrottled_usec 500\n")
    put(f"{d}/cpu.max", "25000 100000\n")
    put(f"{d}/cpu.weight", "39\n")
    put(f"{d}/memory.current", "1048576\n")
    put(f"{d}/memory.peak", "2097152\n")
    put(f"{d}/memory.max", f"{64 * MiB}\n")
    put(f"{d}/memory.swap.max", f"{32 * MiB}\n")
    put(f"{d}/memory.events", "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n")
    put(f"{d}/pids.current", "3\n")
    put(f"{d}/pids.max", "50\n")
    s = cg.stats()
    assert s.cpu_usage_ns == 1_234_000 and s.throttled_ns == 500_000
    assert (s.nr_periods, s.nr_throttled) == (10, 3)
    assert s.cpu_quota == 0.25
    assert 990 <= s.cpu_shares <= 1024 and shares_to_weight(s.cpu_shares) == 39  # approximate: weight is coarser
    assert (s.memory_current, s.memory_peak, s.memory_limit) == (MiB, 2 * MiB, 64 * MiB)
    assert s.memory_swap_limit == 96 * MiB  # memory + swap, like Limits.memory_swap
    assert (s.pids_current, s.pids_limit) == (3, 50)
    assert s.oom_kills == 2 and cg.oom_killed()


def test_stats_defaults_and_old_kernel(make_fake_v2):
    kernel, drv = make_fake_v2(omit_files={"memory.peak"})
    cg = drv.create("c1")
    s = cg.stats()
    assert s.memory_peak is None  # kernel < 5.19
    assert s.memory_limit is None and s.memory_swap_limit is None and s.pids_limit is None
    assert s.cpu_quota is None and s.cpu_shares is None  # weight 100 = never set
    assert s.oom_kills == 0 and not cg.oom_killed()


def test_no_swap_accounting(make_fake_v2):
    kernel, drv = make_fake_v2(omit_files={"memory.swap.max"})
    cg = drv.create("c1")
    cg.set_limits(Limits(memory=64 * MiB))  # no swap asked: fine
    assert read(f"{cg.paths['unified']}/memory.max") == str(64 * MiB)
    with pytest.raises(CgroupError, match="swap accounting"):
        cg.set_limits(Limits(memory=64 * MiB, memory_swap=128 * MiB))


def test_missing_controller_is_a_clear_error(make_fake_v2):
    kernel, drv = make_fake_v2(controllers=("cpu", "pids"))
    cg = drv.create("c1")
    with pytest.raises(CgroupError, match="memory controller is not enabled"):
        cg.set_limits(Limits(memory=64 * MiB))
    cg.set_limits(Limits(pids=10))
    assert cg.stats().memory_current == 0  # not enabled: nothing read, no crash


def test_attach_kill_remove(fake_v2):
    kernel, drv = fake_v2
    cg = drv.create("c1")
    d = cg.paths["unified"]
    cg.attach(4242)
    assert read(f"{d}/cgroup.procs") == "4242"
    assert cg.pids() == [4242] and cg.stats().pids_current == 0  # from pids.current, not procs
    put(f"{d}/cgroup.procs", "")  # the "kernel" moved it away
    cg.kill()
    assert read(f"{d}/cgroup.kill") == "1"
    with pytest.raises(CgroupError, match="already exists"):
        drv.create("c1")
    drv.create("c2")
    cg.remove()
    assert not os.path.exists(d) and not cg.exists()
    cg.remove()  # idempotent
    assert drv.remove_parent_if_empty() is False  # c2 is still there
    drv.open("c2").remove()
    assert drv.remove_parent_if_empty() is True
    assert not os.path.exists(os.path.join(kernel.root, "jupybox"))


def _cgroup_dir(path, delegated: bool):
    path.mkdir(parents=True)
    if delegated:  # as root every file is writable: here the files' presence stands for the user's ownership
        (path / "cgroup.procs").write_text("")
        (path / "cgroup.subtree_control").write_text("")


def test_delegated_base_is_the_top_of_the_delegation(tmp_path):
    # systemd's layout: user-1000.slice is root's, user@1000.service (Delegate=yes) and below are the user's
    _cgroup_dir(tmp_path / "user.slice" / "user-1000.slice", delegated=False)
    service = tmp_path / "user.slice" / "user-1000.slice" / "user@1000.service"
    _cgroup_dir(service, delegated=True)
    _cgroup_dir(service / "app.slice" / "app-lab.scope", delegated=True)
    (service / "app.slice" / "cgroup.procs").write_text("")
    (service / "app.slice" / "cgroup.subtree_control").write_text("")
    _cgroup_dir(tmp_path / "user.slice" / "user-1000.slice" / "session-3.scope", delegated=False)
    own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-lab.scope\n"
    assert delegated_base(str(tmp_path), euid=1000, self_cgroup=own) == str(service)
    assert delegated_base(str(tmp_path), euid=0, self_cgroup=own) == str(tmp_path)
    # a login session's scope is not delegated: no cgroup of the user's own
    session = "0::/user.slice/user-1000.slice/session-3.scope\n"
    assert delegated_base(str(tmp_path), euid=1000, self_cgroup=session) == str(tmp_path)
    assert delegated_base(str(tmp_path), euid=1000, self_cgroup="0::/nowhere\n") == str(tmp_path)
    assert delegated_base(str(tmp_path), euid=1000, self_cgroup="0::/\n") == str(tmp_path)
