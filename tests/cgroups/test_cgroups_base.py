"""Validation, conversions, and the v1 driver against a fake mount table (combined cpu,cpuacct)."""

from __future__ import annotations

import os

import pytest

from jupybox.cgroups import CgroupStats, _fs, open_driver
from jupybox.cgroups.base import check_name, cpu_quota_us, validate_limits
from jupybox.cgroups.v2.cpu import shares_to_weight, weight_to_shares
from jupybox.errors import CgroupError
from jupybox.runtime.spec import Limits

MiB = 1 << 20


@pytest.mark.parametrize(
    "limits, msg",
    [
        (Limits(memory=0), "invalid memory"),
        (Limits(memory=64 * MiB, memory_swap=32 * MiB), "must be >= memory"),
        (Limits(memory_swap=64 * MiB), "needs a memory limit"),
        (Limits(cpus=-1), "invalid cpus"),
        (Limits(cpus=0.001), "too small"),
        (Limits(cpu_shares=1), "invalid cpu_shares"),
        (Limits(cpu_shares=262145), "invalid cpu_shares"),
    ],
)
def test_invalid_limits(limits, msg):
    with pytest.raises(CgroupError, match=msg):
        validate_limits(limits)


def test_valid_limits_pass():
    validate_limits(Limits(memory=64 * MiB, memory_swap=-1, cpus=0.01, cpu_shares=2, pids=1))
    validate_limits(Limits(memory_swap=-1))


def test_cpu_quota():
    assert cpu_quota_us(0.5) == 50_000
    assert cpu_quota_us(2) == 200_000
    assert cpu_quota_us(0) is None and cpu_quota_us(None) is None


def test_shares_weight_conversion():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39  # runc's value for docker's default shares
    for w in range(1, 10001):
        assert shares_to_weight(weight_to_shares(w)) == w


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "-x", "x" * 201, "a b"])
def test_bad_names(bad):
    with pytest.raises(CgroupError):
        check_name(bad)


def test_stats_to_dict():
    d = CgroupStats(cpu_usage_ns=5, memory_limit=None).to_dict()
    assert d["cpu_usage_ns"] == 5 and d["memory_limit"] is None and isinstance(d["timestamp"], float)
    assert set(d) >= {"memory_peak", "memory_swap_limit", "oom_kills", "throttled_ns", "cpu_quota", "cpu_shares"}


def _fake_v1(tmp_path):
    root = tmp_path / "cg"
    mounts = {"memory": "memory", "cpu,cpuacct": "cpu,cpuacct", "pids": "pids", "unified": None}
    lines = [f"31 23 0:28 / {root} rw - tmpfs tmpfs rw"]
    for i, (d, opts) in enumerate(mounts.items()):
        (root / d).mkdir(parents=True)
        if opts:
            lines.append(f"{40 + i} 31 0:{40 + i} / {root}/{d} rw - cgroup cgroup rw,{opts}")
        else:
            lines.append(f"{40 + i} 31 0:{40 + i} / {root}/{d} rw - cgroup2 cgroup2 rw")
    return root, "\n".join(lines) + "\n"


def test_v1_driver_on_combined_hierarchy(tmp_path):
    root, mountinfo = _fake_v1(tmp_path)
    drv = open_driver(root=str(root), parent="jupybox", mountinfo=mountinfo)
    assert drv.layout == "hybrid" and drv.version == 1
    assert drv.controllers == {"memory", "cpu", "cpuacct", "pids"}  # no freezer mounted: not used
    cg = drv.create("c1")
    assert cg.paths["cpu"] == cg.paths["cpuacct"] == f"{root}/cpu,cpuacct/jupybox/c1"
    assert "freezer" not in cg.paths
    assert len(cg.dirs) == 3 and all(os.path.isdir(d) for d in cg.dirs)
    assert sorted(n for _, n in cg.mounts_for_container()) == ["cpu,cpuacct", "memory", "pids"]
    assert len(cg.attach_self_paths()) == 3  # one cgroup.procs per hierarchy, not per controller
    assert drv.list() == ["c1"]
    with pytest.raises(CgroupError, match="already exists"):
        drv.create("c1")


def test_create_rolls_back_when_a_later_hierarchy_has_it(tmp_path):
    root, mountinfo = _fake_v1(tmp_path)
    drv = open_driver(root=str(root), parent="jupybox", mountinfo=mountinfo)
    os.makedirs(f"{root}/pids/jupybox/c2")  # a leftover in the last hierarchy only
    with pytest.raises(CgroupError, match="already exists"):
        drv.create("c2")
    assert not os.path.exists(f"{root}/memory/jupybox/c2")
    assert not os.path.exists(f"{root}/cpu,cpuacct/jupybox/c2")


def test_create_retries_when_parent_is_removed_concurrently(tmp_path, monkeypatch):
    root, mountinfo = _fake_v1(tmp_path)
    drv = open_driver(root=str(root), parent="jupybox", mountinfo=mountinfo)
    real_mkdir = _fs.mkdir
    raced = []

    def racing_mkdir(path, *a):
        # another jupybox runs remove_parent_if_empty between our parent mkdir and the child mkdir
        if path.endswith("/c3") and not raced:
            raced.append(path)
            os.rmdir(os.path.dirname(path))
        real_mkdir(path)

    monkeypatch.setattr(_fs, "mkdir", racing_mkdir)
    cg = drv.create("c3")
    assert raced and all(os.path.isdir(d) for d in cg.dirs)


def test_remove_parent_if_empty_keeps_a_busy_parent(tmp_path):
    root, mountinfo = _fake_v1(tmp_path)
    drv = open_driver(root=str(root), parent="jupybox", mountinfo=mountinfo)
    drv.create("c4")
    assert drv.remove_parent_if_empty() is False
    assert os.path.isdir(f"{root}/memory/jupybox/c4")
    for d in drv.open("c4").dirs:
        os.rmdir(d)
    assert drv.remove_parent_if_empty() is True
    assert not any(os.path.exists(p) for p in drv.parent_dirs())
    assert drv.remove_parent_if_empty() is True  # already gone: fine


def test_unknown_layout(tmp_path):
    with pytest.raises(CgroupError, match="unknown cgroup layout"):
        open_driver(root=str(tmp_path), layout="v3")
