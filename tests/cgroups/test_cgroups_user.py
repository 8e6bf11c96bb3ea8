"""Not root: a delegated cgroup v2 subtree when the user has one, else the process-tree driver."""

from __future__ import annotations

import resource
import subprocess
import time

from jupybox.cgroups import open_user_driver
from jupybox.cgroups.processtree import ProcessTreeDriver, rlimits_for, unenforced
from jupybox.cgroups.v2 import V2Driver
from jupybox.runtime.spec import Limits


def _v2_tree(tmp_path, controllers: str):
    own = tmp_path / "user.slice" / "user@1000.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(controllers + "\n")
    (own / "cgroup.subtree_control").write_text("")
    (own / "cgroup.procs").write_text("")
    return own


def test_v1_and_hybrid_are_never_delegated(tmp_path):
    for layout in ("v1", "hybrid"):
        drv = open_user_driver(root=str(tmp_path), layout=layout, euid=1000)
        assert isinstance(drv, ProcessTreeDriver)
        assert layout in drv.reason and "v2" in drv.reason


def test_v2_delegated_subtree_is_used(tmp_path):
    own = _v2_tree(tmp_path, "cpu memory pids io")
    drv = open_user_driver(root=str(tmp_path), layout="v2", euid=1000,
                           self_cgroup="0::/user.slice/user@1000.service\n")
    assert isinstance(drv, V2Driver)
    assert drv.base == str(own) and drv.controllers == {"cpu", "memory", "pids"}
    assert drv.parent_dirs() == [str(own / "jupybox")]


def test_v2_without_delegation_or_controllers(tmp_path):
    _v2_tree(tmp_path, "")
    drv = open_user_driver(root=str(tmp_path), layout="v2", euid=1000, self_cgroup="0::/elsewhere\n")
    assert isinstance(drv, ProcessTreeDriver) and "delegat" in drv.reason
    drv = open_user_driver(root=str(tmp_path), layout="v2", euid=1000,
                           self_cgroup="0::/user.slice/user@1000.service\n")
    assert isinstance(drv, ProcessTreeDriver) and "offers none" in drv.reason


def test_rlimits_stand_in_for_memory_and_pids():
    got = rlimits_for(Limits(memory=64 << 20, pids=50, cpus=0.5))
    assert got[resource.RLIMIT_DATA] == 64 << 20
    assert got[resource.RLIMIT_NPROC] <= 50
    assert rlimits_for(Limits()) == {}
    words = " ".join(unenforced(Limits(memory=1 << 30, cpus=0.5)))
    assert "--cpus 0.5 is not enforced" in words and "per-process" in words


def test_process_tree_counts_the_whole_tree_and_kills_it():
    p = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        drv = ProcessTreeDriver()
        drv.lookup = lambda name: (p.pid, Limits(pids=10))
        cg = drv.create("c1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(cg.pids()) < 3:
            time.sleep(0.01)
        s = cg.stats()
        assert s.pids_current == 3 and s.pids_limit == 10
        assert s.memory_current > 0 and s.memory_peak >= s.memory_current
        assert s.memory_limit is None  # an rlimit per process is no total to draw
        assert drv.list() == [] and cg.attach_self_paths() == [] and cg.mounts_for_container() == []
        cg.kill()
        assert p.wait(timeout=5) != 0
    finally:
        p.kill()
        p.wait()
    drv.lookup = lambda name: (0, None)
    assert drv.open("c1").stats().pids_current == 0
