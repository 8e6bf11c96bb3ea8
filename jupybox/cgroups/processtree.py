"""No cgroups at all: the driver for a normal user without a delegated cgroup.

A rootless container without cgroups still has to be watched (``stats``, the live chart) and
limited where possible. Its processes are found from its PID 1 (the whole tree under it: the
container's PID namespace), counted with psutil; limits become rlimits set in the container
before its command runs (see :func:`rlimits_for`): memory as RLIMIT_DATA (per process, not a
total), pids as RLIMIT_NPROC (in the container's own user namespace it counts that container's
processes and threads, like pids.max), and no CPU quota (no rlimit expresses a rate).
"""

from __future__ import annotations

import os
import resource
import signal
import time

from .limits import Limits
from .base import Cgroup, CgroupDriver, CgroupStats

WHY_NOT = ("no cgroup of its own is writable by this user (cgroup v2 delegation, as systemd gives user "
           "services, is needed)")


def within_current(res: int, value: int) -> int:
    """Never above the limit this process already has: a user cannot raise a hard limit, and a
    container must not loosen what the machine set (the lower one wins)."""
    for current in resource.getrlimit(res):
        if current != resource.RLIM_INFINITY and current < value:
            value = current
    return value


def rlimits_for(limits: Limits) -> dict[int, int]:
    """The rlimits that stand in for cgroup limits."""
    out = {}
    if limits.memory:
        out[resource.RLIMIT_DATA] = within_current(resource.RLIMIT_DATA, int(limits.memory))
    if limits.pids and limits.pids > 0:
        out[resource.RLIMIT_NPROC] = within_current(resource.RLIMIT_NPROC, int(limits.pids))
    return out


def unenforced(limits: Limits) -> list[str]:
    """What of ``limits`` cannot be enforced without cgroups, as words for a notice."""
    out = []
    if limits.cpus:
        out.append(f"--cpus {limits.cpus:g} is not enforced (no CPU controller)")
    if limits.memory:
        out.append("-m is a per-process RLIMIT_DATA, not a total for the container (no memory controller)")
    if limits.cpu_shares:
        out.append("--cpu-shares is not enforced")
    return out


def sample(pid: int) -> tuple[list, float, int, int] | None:
    """One look at the process tree under ``pid``: (processes, CPU seconds, RSS bytes, tasks), or
    None when ``pid`` is gone. CPU includes what reaped children used (a cgroup counts it too);
    tasks are processes and threads, what pids.current counts."""
    import psutil

    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return None
    cpu = 0.0
    rss = tasks = 0
    for p in procs:
        try:
            with p.oneshot():
                t = p.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
                rss += p.memory_info().rss
                tasks += p.num_threads()
        except psutil.Error:
            continue
    return procs, cpu, rss, tasks


class ProcessTreeCgroup(Cgroup):
    """A container seen as the process tree under its PID 1."""

    counts_after_exit = False  # unlike a cgroup, nothing remains to be read once PID 1 is gone

    def __init__(self, name: str, lookup):
        super().__init__(name, {}, dirs=[])
        self._lookup = lookup  # name -> (pid of PID 1 or 0, Limits or None)
        self._peak = 0
        self.limits: Limits | None = None

    def _root_pid(self) -> int:
        pid, limits = self._lookup(self.name)
        if limits is not None:
            self.limits = limits
        return pid

    def attach(self, pid: int) -> None:
        pass  # nothing to attach to: the tree follows PID 1

    def pids(self) -> list[int]:
        pid = self._root_pid()
        got = sample(pid) if pid else None
        return sorted(p.pid for p in got[0]) if got else []

    def exists(self) -> bool:
        return False

    def kill(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        pass  # PID 1's exit takes the PID namespace, and every process in it, along

    def set_limits(self, limits: Limits) -> None:
        self.limits = limits  # applied as rlimits by the container itself (rlimits_for)

    def stats(self) -> CgroupStats:
        pid = self._root_pid()
        got = sample(pid) if pid else None
        _procs, cpu, mem, tasks = got if got else ([], 0.0, 0, 0)
        self._peak = max(self._peak, mem)
        limits = self.limits or Limits()
        return CgroupStats(
            cpu_usage_ns=int(cpu * 1e9),
            memory_current=mem,
            memory_peak=self._peak or None,
            memory_limit=None,  # an RLIMIT_DATA per process is not a total: no line to draw
            pids_current=tasks,
            pids_limit=limits.pids if limits.pids and limits.pids > 0 else None,
            timestamp=time.monotonic(),
        )

    def oom_killed(self) -> bool:
        return False

    def mounts_for_container(self) -> list[tuple[str, str]]:
        return []


class ProcessTreeDriver(CgroupDriver):
    layout = "none"
    version = 0
    root = ""
    parent = ""

    def __init__(self, reason: str = WHY_NOT):
        self.reason = reason
        self.controllers: set[str] = set()
        self.lookup = lambda name: (0, None)  # the engine sets it: name -> (PID 1's pid, limits)

    def parent_dirs(self) -> list[str]:
        return []

    def _make(self, name: str) -> ProcessTreeCgroup:
        return ProcessTreeCgroup(name, lambda n: self.lookup(n))

    def create(self, name: str) -> ProcessTreeCgroup:
        return self.open(name)

    def list(self) -> list[str]:
        return []

    def remove_parent_if_empty(self) -> bool:
        return True
