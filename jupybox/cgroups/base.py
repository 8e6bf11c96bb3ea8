"""The one cgroup interface: a driver per layout (v1/hybrid, v2) that makes ``Cgroup`` objects.

Modelled on youki's ``CgroupManager`` trait: create/open a cgroup, ``set_limits``
(apply), ``attach`` (add_task), ``stats``, ``kill``, ``remove``. The v1 and v2
drivers differ only in where directories live and which files each controller
uses (one module per controller under v1/ and v2/, file names as constants).

Layout of jupybox's own cgroups:
  v1/hybrid: <controller mount>/<parent>/<name> in each hierarchy used
             (memory, cpu, cpuacct, pids, and freezer for a race-free kill)
  v2:        <base>/<parent>/<name>, base = the cgroup2 root (or the caller's own
             delegated cgroup when not root, see v2/manager.py)
Semantics of ``set_limits``: only the fields that are not None are written, so a
fresh cgroup keeps the kernel's defaults (unlimited) and an update changes only
what it names. ``memory_swap`` is always derived from ``memory`` when memory is given.
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import os
import re
import signal
import time
from dataclasses import dataclass, field

from ..errors import CgroupError
from .limits import Limits
from . import _fs

PROCS = "cgroup.procs"
CPU_PERIOD_US = 100_000  # CFS period used for every quota (docker's default)
MIN_QUOTA_US = 1_000  # the kernel refuses a CFS quota below 1 ms
SHARES_MIN, SHARES_MAX = 2, 262_144

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


@dataclass
class CgroupStats:
    """One sample of a cgroup's counters. Bytes, nanoseconds; None means unlimited / not available."""

    cpu_usage_ns: int = 0
    memory_current: int = 0
    memory_peak: int | None = None  # v1 max_usage_in_bytes; v2 memory.peak (None on kernels < 5.19)
    memory_limit: int | None = None  # None = unlimited
    memory_swap_limit: int | None = None  # memory+swap (docker's --memory-swap meaning); None = unlimited
    pids_current: int = 0
    pids_limit: int | None = None
    oom_kills: int = 0
    nr_periods: int = 0
    nr_throttled: int = 0
    throttled_ns: int = 0
    cpu_quota: float | None = None  # in cpus, e.g. 0.5; None = no quota
    cpu_shares: int | None = None  # v1 scale; on v2 converted back from cpu.weight (None = default weight)
    timestamp: float = field(default_factory=time.monotonic)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_name(name: str, what: str = "cgroup name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CgroupError(f"invalid {what} {name!r}: use letters, digits, '_', '.', '-' (max 200)")
    return name


def validate_limits(limits: Limits) -> None:
    """Reject limits the kernel would refuse or that make no sense, before writing anything."""
    mem, swap = limits.memory, limits.memory_swap
    if mem is not None and mem <= 0:
        raise CgroupError(f"invalid memory limit {mem}: must be a positive number of bytes")
    if swap is not None and swap != -1:
        if mem is None:
            raise CgroupError("a memory_swap limit needs a memory limit too (memory_swap is memory+swap)")
        if swap < mem:
            raise CgroupError(f"memory_swap ({swap}) must be >= memory ({mem}), or -1 for unlimited swap")
    if limits.cpus is not None:
        if limits.cpus < 0:
            raise CgroupError(f"invalid cpus {limits.cpus}: must be >= 0")
        if limits.cpus and cpu_quota_us(limits.cpus) < MIN_QUOTA_US:
            raise CgroupError(f"cpus {limits.cpus} is too small: the minimum is 0.01")
    if limits.cpu_shares is not None and not SHARES_MIN <= limits.cpu_shares <= SHARES_MAX:
        raise CgroupError(f"invalid cpu_shares {limits.cpu_shares}: must be {SHARES_MIN}..{SHARES_MAX}")


def cpu_quota_us(cpus: float | None) -> int | None:
    """cpus -> CFS quota in µs for a 100 ms period; None for no quota (cpus None or 0)."""
    if not cpus:
        return None
    return int(cpus * CPU_PERIOD_US)


def swap_total(limits: Limits) -> int | None:
    """memory+swap to enforce: -1 unlimited, None when memory is not limited. None in Limits = no swap."""
    if limits.memory is None:
        return None
    if limits.memory_swap is None:
        return limits.memory
    return limits.memory_swap


def _unique(values) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


class Cgroup(abc.ABC):
    """One container's cgroup (a directory in each hierarchy used)."""

    KILL_TIMEOUT = 5.0
    RMDIR_TIMEOUT = 2.0

    def __init__(self, name: str, paths: dict[str, str], dirs: list[str] | None = None):
        self.name = name
        self.paths = dict(paths)  # controller -> directory
        self.dirs = dirs if dirs is not None else _unique(paths.values())  # one per hierarchy
        self._procs_files = [os.path.join(d, PROCS) for d in self.dirs]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.dirs}>"

    # -- processes -------------------------------------------------------
    def attach(self, pid: int) -> None:
        """Move ``pid`` (all its threads) into this cgroup in every hierarchy."""
        for p in self._procs_files:
            _fs.write(p, str(int(pid)))

    def attach_self_paths(self) -> list[str]:
        """cgroup.procs files; a freshly forked child writes "0" to each to attach itself."""
        return list(self._procs_files)

    def pids(self) -> list[int]:
        """Processes in this cgroup (any hierarchy), sorted; [] when the cgroup does not exist."""
        found: set[int] = set()
        for p in self._procs_files:
            text = _fs.read_opt(p)
            if text:
                found.update(int(x) for x in text.split())
        return sorted(found)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs)

    def _tree_procs_files(self) -> list[str]:
        """cgroup.procs of this cgroup and every sub-cgroup (a container may nest its own)."""
        files = []
        for d in self.dirs:
            for sub, _dirs, _files in os.walk(d):
                files.append(os.path.join(sub, PROCS))
        return files

    def _tree_pids(self) -> list[int]:
        found: set[int] = set()
        for p in self._tree_procs_files():
            try:
                text = _fs.read(p)
            except OSError:
                continue
            found.update(int(x) for x in text.split())
        return sorted(found)

    def _kill_loop(self, deadline: float) -> None:
        """SIGKILL whatever is listed until nothing is left (processes forking get caught on the next pass)."""
        delay = 0.001
        while True:
            pids = self._tree_pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise CgroupError(f"cgroup {self.name}: {len(pids)} process(es) still alive after SIGKILL")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    @abc.abstractmethod
    def kill(self) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty."""

    def remove(self) -> None:
        """Kill leftovers, then rmdir in every hierarchy (sub-cgroups first); missing dirs are fine."""
        if self._rmdir_if_empty():
            return
        if not self.exists():
            return
        self.kill()
        deadline = time.monotonic() + self.RMDIR_TIMEOUT
        for d in self.dirs:
            subdirs = [s for s, _, _ in os.walk(d, topdown=False)]  # deepest first, d itself last
            for sub in subdirs:
                self._rmdir(sub, deadline)

    def _rmdir_if_empty(self) -> bool:
        """One rmdir per hierarchy: True when each went (or was gone). The usual case, a container
        whose processes have all exited, costs no walk of the tree and no read of its process
        lists (on v1 that is ~20 system calls fewer per container). A cgroup with a process or a
        sub-cgroup refuses (EBUSY), and the full path takes over: a process is in our cgroup in
        every hierarchy it was put in, so the hierarchies already removed held none."""
        for d in self.dirs:
            try:
                _fs.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError:
                return False
        return True

    def _rmdir(self, path: str, deadline: float) -> None:
        delay = 0.0005
        while True:
            try:
                _fs.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                # EBUSY: a killed task not yet fully exited (or a zombie being reaped): it usually
                # is within a millisecond, so retry soon, then less often (an --rm run waits on this)
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove cgroup {path}: {e.strerror or e}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.01)

    # -- limits and counters --------------------------------------------------
    @abc.abstractmethod
    def set_limits(self, limits: Limits) -> None: ...

    @abc.abstractmethod
    def stats(self) -> CgroupStats: ...

    def exit_stats(self) -> CgroupStats:
        """What an exit report needs (cpu_usage_ns, memory_peak, memory_limit, oom_kills): the
        other counters may be left out (cheaper: the launcher reads it before it tells its client)."""
        return self.stats()

    @abc.abstractmethod
    def oom_killed(self) -> bool:
        """True when the kernel OOM-killed a process of this cgroup at its memory limit."""

    @abc.abstractmethod
    def mounts_for_container(self) -> list[tuple[str, str]]:
        """(host dir, name under the container's /sys/fs/cgroup); name "" = /sys/fs/cgroup itself."""


class CgroupDriver(abc.ABC):
    """Makes and finds jupybox's cgroups for one layout."""

    layout: str  # "v1" | "hybrid" | "v2"
    version: int  # 1 | 2
    controllers: set[str]  # available among memory, cpu, cpuacct, pids
    root: str
    parent: str
    CREATE_RETRIES = 50

    @abc.abstractmethod
    def parent_dirs(self) -> list[str]:
        """jupybox's parent directory in each hierarchy used."""

    @abc.abstractmethod
    def _make(self, name: str) -> Cgroup: ...

    def _ensure_parent(self, parent_dir: str) -> None:
        """mkdir the parent if missing (v2 also enables controllers for its children)."""
        try:
            _fs.mkdir(parent_dir)
        except FileExistsError:
            pass

    def open(self, name: str) -> Cgroup:
        """The cgroup object for ``name`` (nothing is created; see ``Cgroup.exists``)."""
        return self._make(check_name(name))

    def create(self, name: str) -> Cgroup:
        """mkdir the cgroup in every hierarchy; CgroupError if it already exists."""
        cg = self.open(name)
        made: list[str] = []
        try:
            for d in cg.dirs:
                self._mkdir_child(os.path.dirname(d), d, name)
                made.append(d)
        except BaseException:
            for d in reversed(made):
                try:
                    _fs.rmdir(d)
                except OSError:
                    pass
            raise
        return cg

    def _mkdir_child(self, parent_dir: str, child: str, name: str) -> None:
        for _ in range(self.CREATE_RETRIES):
            try:
                self._ensure_parent(parent_dir)
                _fs.mkdir(child)
                return
            except FileExistsError:
                raise CgroupError(f"cgroup {name} already exists ({child})") from None
            except OSError as e:
                # another jupybox removed the (then empty) parent between our two mkdirs: make it again
                # (ENODEV on cgroup2: the parent is still visible but already being destroyed)
                if e.errno in (errno.ENOENT, errno.ENODEV):
                    continue
                raise CgroupError(f"cannot create cgroup {child}: {e.strerror or e}") from None
        raise CgroupError(f"cannot create cgroup {child}: its parent keeps disappearing")

    def list(self) -> list[str]:
        """Names of jupybox's cgroups (in any hierarchy), sorted."""
        names: set[str] = set()
        for p in self.parent_dirs():
            try:
                with os.scandir(p) as it:
                    names.update(e.name for e in it if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                pass
        return sorted(names)

    def remove_parent_if_empty(self) -> bool:
        """rmdir jupybox's parent in every hierarchy when it has no cgroups; True if none is left.

        Races with a concurrent create are harmless: rmdir fails (EBUSY/ENOTEMPTY) when
        a child appeared, ENOENT when another process removed it first."""
        gone = True
        for p in self.parent_dirs():
            try:
                with os.scandir(p) as it:
                    if any(e.is_dir(follow_symlinks=False) for e in it):
                        gone = False
                        continue
                _fs.rmdir(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
                    gone = False
                    continue
                raise CgroupError(f"cannot remove {p}: {e.strerror or e}") from None
        return gone
