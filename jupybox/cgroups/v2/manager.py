"""The v2 (unified) driver.

Placement: ``<base>/<parent>/<name>``. As root, base is the cgroup2 root, so the
parent is a direct child of /sys/fs/cgroup (like docker's cgroupfs driver).
Not root: base is the top of the subtree delegated to the caller (systemd's
``user@UID.service`` with Delegate=yes: the user owns the directory, its
cgroup.procs and cgroup.subtree_control), found by walking up from the caller's
own cgroup (/proc/self/cgroup); the root (and so no cgroups: the process-tree
driver) when the caller's own cgroup is not delegated. If controllers cannot be
enabled there (a delegated cgroup that itself holds processes: the "no internal
processes" rule), the cgroups still work for attach/kill/cpu usage but limits
raise a CgroupError naming the missing controller. Keep it simple: no systemd
D-Bus driver.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ...errors import CgroupError
from ..limits import Limits
from .. import _fs
from ..base import PROCS, Cgroup, CgroupDriver, CgroupStats, validate_limits
from .cpu import Cpu
from .memory import Memory
from .pids import Pids

CONTROLLERS_FILE = "cgroup.controllers"
SUBTREE_CONTROL = "cgroup.subtree_control"
KILL = "cgroup.kill"  # since 5.14
FREEZE = "cgroup.freeze"  # since 5.2
EVENTS = "cgroup.events"  # "populated 0/1", "frozen 0/1"
WANTED = ("cpu", "memory", "pids")
PROC_SELF_CGROUP = "/proc/self/cgroup"
# a cgroup removed under us: gone (ENOENT) or still visible but being destroyed (ENODEV); not a
# reason to give up a controller
VANISHED = (errno.ENOENT, errno.ENODEV)


def _delegated(cgroup_dir: str) -> bool:
    """What systemd's Delegate=yes hands the user: the directory, its cgroup.procs (moving
    processes needs it on the common ancestor) and its cgroup.subtree_control (enabling
    controllers for the children)."""
    return all(os.access(p, os.W_OK) for p in (cgroup_dir, os.path.join(cgroup_dir, PROCS),
                                               os.path.join(cgroup_dir, SUBTREE_CONTROL)))


def delegated_base(root: str, euid: int | None = None, self_cgroup: str | None = None) -> str:
    """Where jupybox's parent goes: ``root`` for root, else the top of the subtree delegated to the
    caller (its own cgroup and the ancestors it may write, e.g. ``user@1000.service`` for a process
    in ``user@1000.service/app.slice/x.scope``), or ``root`` when its own cgroup is not delegated.

    Not the caller's own cgroup: it holds processes, so the "no internal processes" rule forbids
    enabling controllers for children there; the delegation's top holds none (systemd keeps its
    manager in init.scope), and a move between two cgroups needs the common ancestor's cgroup.procs."""
    if (os.geteuid() if euid is None else euid) == 0:
        return root
    if self_cgroup is None:
        try:
            with open(PROC_SELF_CGROUP) as f:
                self_cgroup = f.read()
        except OSError:
            return root
    for line in self_cgroup.splitlines():
        if line.startswith("0::"):
            rel = line[3:].strip().lstrip("/")
            own = os.path.join(root, rel) if rel else root
            if own == root or not _delegated(own):
                return root
            while os.path.dirname(own) != root and _delegated(os.path.dirname(own)):
                own = os.path.dirname(own)
            return own
    return root


def _split(text: str | None) -> set[str]:
    return set(text.split()) if text else set()


class V2Cgroup(Cgroup):
    def __init__(self, name: str, path: str, controllers: set[str]):
        paths = {"unified": path, **{c: path for c in sorted(controllers)}}
        super().__init__(name, paths, dirs=[path])
        self.path = path
        self.memory = Memory(path)
        self.cpu = Cpu(path)
        self.pids_ctl = Pids(path)
        self._kill_file = os.path.join(path, KILL)
        self._freeze_file = os.path.join(path, FREEZE)
        self._events_file = os.path.join(path, EVENTS)

    def _need(self, ctl, what: str):
        if not ctl.available():
            raise CgroupError(
                f"cannot set {what}: the {ctl.name} controller is not enabled for {self.path} "
                f"(not in its parent's {SUBTREE_CONTROL})"
            )
        return ctl

    def set_limits(self, limits: Limits) -> None:
        validate_limits(limits)
        if limits.memory is not None:
            self._need(self.memory, "a memory limit").apply(limits)
        if limits.cpus is not None or limits.cpu_shares is not None:
            self._need(self.cpu, "a cpu limit").apply(limits)
        if limits.pids is not None:
            self._need(self.pids_ctl, "a pids limit").apply(limits)

    def stats(self) -> CgroupStats:
        out: dict = {}
        self.cpu.read(out)
        self.memory.read(out)
        if not self.pids_ctl.read(out):
            out["pids_current"] = len(self.pids())
        return CgroupStats(**out)

    def oom_killed(self) -> bool:
        return self.memory.oom_kills() > 0

    def kill(self) -> None:
        deadline = time.monotonic() + self.KILL_TIMEOUT
        try:
            _fs.write_raw(self._kill_file, "1")  # kills the whole subtree atomically
        except OSError:  # kernel < 5.14 (or the cgroup is gone): freeze, signal, thaw
            if self._tree_pids() and self._freeze():
                try:
                    for pid in self._tree_pids():
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                finally:
                    try:
                        _fs.write_raw(self._freeze_file, "0")
                    except OSError:
                        pass
        self._kill_loop(deadline)

    def _freeze(self, timeout: float = 1.0) -> bool:
        try:
            _fs.write_raw(self._freeze_file, "1")
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = _fs.parse_kv(_fs.read_opt(self._events_file) or "")
            if ev.get("frozen") == 1:
                return True
            time.sleep(0.001)
        return False

    def mounts_for_container(self) -> list[tuple[str, str]]:
        return [(self.path, "")]


class V2Driver(CgroupDriver):
    version = 2
    layout = "v2"

    def __init__(self, root: str, parent: str, base: str | None = None):
        self.root = root
        self.parent = parent
        self.base = base if base is not None else delegated_base(root)
        available = _split(_fs.read_opt(os.path.join(self.base, CONTROLLERS_FILE)))
        self.controllers = {c for c in WANTED if c in available}

    def parent_dirs(self) -> list[str]:
        return [os.path.join(self.base, self.parent)]

    def _make(self, name: str) -> V2Cgroup:
        return V2Cgroup(name, os.path.join(self.base, self.parent, name), self.controllers)

    def _ensure_parent(self, parent_dir: str) -> None:
        # The only write into a cgroup jupybox did not create (docker and podman do the same): if one of
        # memory/cpu/pids is not yet enabled in the base cgroup's cgroup.subtree_control, enable just the
        # missing ones so that jupybox's parent gets them. Nothing else of the base is touched.
        try:
            self._enable(self.base)
        except FileNotFoundError:
            raise CgroupError(f"{self.base} is not a cgroup2 directory (no {SUBTREE_CONTROL})") from None
        super()._ensure_parent(parent_dir)
        self._enable(parent_dir)  # ours: pass the controllers on to the containers' cgroups

    def _enable(self, cgroup_dir: str) -> None:
        path = os.path.join(cgroup_dir, SUBTREE_CONTROL)
        enabled = _split(_fs.read(path))  # ENOENT/ENODEV: the parent vanished, create() retries
        missing = [c for c in WANTED if c in self.controllers and c not in enabled]
        if not missing:
            return
        try:
            _fs.write_raw(path, " ".join("+" + c for c in missing))
            return
        except OSError as e:
            if e.errno in VANISHED:
                raise
        for c in missing:  # all-or-nothing failed (EBUSY in a delegated cgroup with processes...)
            try:
                _fs.write_raw(path, "+" + c)
            except OSError as e:
                if e.errno in VANISHED:
                    raise
                self.controllers.discard(c)  # limits on it will raise a clear CgroupError
