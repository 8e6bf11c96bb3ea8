"""The v1 (and hybrid) driver: one directory per hierarchy, found from mountinfo.

jupybox's cgroups live at ``<controller mount>/<parent>/<name>`` for memory, cpu,
cpuacct, pids (the controllers it limits or reads) and freezer (only to make
``kill`` race-free). Combined hierarchies (``cpu,cpuacct``) get one directory.
The cgroup2 of a hybrid machine has no controllers and is not used.
"""

from __future__ import annotations

import os
import signal
import time

from ...errors import CgroupError
from ..limits import Limits
from ..base import Cgroup, CgroupDriver, CgroupStats, validate_limits
from .cpu import Cpu
from .cpuacct import CpuAcct
from .freezer import Freezer
from .memory import Memory
from .pids import Pids

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")  # what jupybox limits or reads
HIERARCHIES = CONTROLLERS + ("freezer",)  # every hierarchy it makes a directory in


class V1Cgroup(Cgroup):
    def __init__(self, name: str, paths: dict[str, str], mount_names: dict[str, str]):
        super().__init__(name, paths)
        self._mount_names = mount_names  # dir -> name of its mount under /sys/fs/cgroup
        self.memory = Memory(paths["memory"]) if "memory" in paths else None
        self.cpu = Cpu(paths["cpu"]) if "cpu" in paths else None
        self.cpuacct = CpuAcct(paths["cpuacct"]) if "cpuacct" in paths else None
        self.pids_ctl = Pids(paths["pids"]) if "pids" in paths else None
        self.freezer = Freezer(paths["freezer"]) if "freezer" in paths else None

    def _need(self, ctl, what: str, controller: str):
        if ctl is None:
            raise CgroupError(f"cannot set {what}: the {controller} cgroup controller is not mounted")
        return ctl

    def set_limits(self, limits: Limits) -> None:
        validate_limits(limits)
        if limits.memory is not None:
            self._need(self.memory, "a memory limit", "memory").apply(limits)
        if limits.cpus is not None or limits.cpu_shares is not None:
            self._need(self.cpu, "a cpu limit", "cpu").apply(limits)
        if limits.pids is not None:
            self._need(self.pids_ctl, "a pids limit", "pids").apply(limits)

    def stats(self) -> CgroupStats:
        out: dict = {}
        if self.cpuacct:
            self.cpuacct.read(out)
        if self.cpu:
            self.cpu.read(out)
        if self.memory:
            self.memory.read(out)
        if self.pids_ctl:
            self.pids_ctl.read(out)
        else:
            out["pids_current"] = len(self.pids())
        return CgroupStats(**out)

    def exit_stats(self) -> CgroupStats:
        out: dict = {}
        if self.cpuacct:
            self.cpuacct.read(out)
        if self.memory:
            self.memory.read_exit(out)
        return CgroupStats(**out)

    def oom_killed(self) -> bool:
        return self.memory is not None and self.memory.oom_kills() > 0

    def kill(self) -> None:
        deadline = time.monotonic() + self.KILL_TIMEOUT
        if self.freezer and os.path.isdir(self.freezer.path) and self._tree_pids():
            # frozen tasks cannot fork: signal all of them, then thaw so that SIGKILL is delivered
            try:
                self.freezer.freeze()
                for pid in self._tree_pids():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            finally:
                self.freezer.thaw()
        self._kill_loop(deadline)

    def mounts_for_container(self) -> list[tuple[str, str]]:
        return [(d, self._mount_names[d]) for d in self.dirs]


class V1Driver(CgroupDriver):
    version = 1

    def __init__(self, root: str, parent: str, mounts: dict[str, str], layout: str = "v1"):
        """``mounts``: controller -> v1 mount point (from detect.v1_mounts)."""
        self.root = root
        self.parent = parent
        self.layout = layout
        self.mounts = {c: m for c, m in mounts.items() if c in HIERARCHIES}
        self.controllers = {c for c in self.mounts if c in CONTROLLERS}

    def parent_dirs(self) -> list[str]:
        out = []
        for c in HIERARCHIES:
            if c in self.mounts:
                d = os.path.join(self.mounts[c], self.parent)
                if d not in out:
                    out.append(d)
        return out

    def _make(self, name: str) -> V1Cgroup:
        paths = {c: os.path.join(self.mounts[c], self.parent, name) for c in HIERARCHIES if c in self.mounts}
        names = {paths[c]: os.path.basename(self.mounts[c]) for c in paths}
        return V1Cgroup(name, paths, names)
