"""A container's status, the guards on it, and its state file.

Like youki's ``state.rs``: the status enum carries ``can_*`` guards so that every
lifecycle verb asks the same question the same way.  The state file is small
JSON, replaced atomically (write to a temp file, rename or swap), so a reader never
sees half of it and a kill -9 leaves either the old or the new state.
"""

from __future__ import annotations

import enum
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


class Status(str, enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    REMOVING = "removing"
    DEAD = "dead"  # set up failed or its monitor vanished; `rm`/prune clears it

    def can_start(self) -> bool:
        return self in (Status.CREATED, Status.EXITED)

    def can_kill(self) -> bool:
        return self is Status.RUNNING

    def can_exec(self) -> bool:
        return self is Status.RUNNING

    def can_remove(self, force: bool = False) -> bool:
        return force or self is not Status.RUNNING


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


@dataclass
class State:
    status: Status = Status.CREATED
    pid: int = 0  # host pid of the container's PID 1
    pid_start: int = 0  # its start time in clock ticks (guards against pid reuse)
    monitor_pid: int = 0  # the process that waits for it and records its exit (the store's service)
    monitor_start: int = 0  # its start time (a reused pid is not the monitor)
    attached: bool = False  # dies with the client that started it (not when only the service dies)
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0  # restarts by its restart policy (docker's RestartCount)
    restarting: bool = False  # exited, its restart policy will start it again (docker's "restarting")
    manually_stopped: bool = False  # stopped by a user: no restart policy starts it again
    health: dict | None = None  # docker's State.Health: Status, FailingStreak, Log (the last 5 probes)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "State":
        d = dict(d)
        d["status"] = Status(d.get("status", "created"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def tmp_path(path: Path, owner: int | str | None = None) -> Path:
    """The temp file ``owner`` (a pid, this process by default) writes ``path`` through."""
    return path.with_name(f".{path.name}.{owner or os.getpid()}.tmp")


def write_json_atomic(path: Path, data: dict, reserve: int = 0) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new file, never half.

    A temp file this process already has (staged for it ahead of time, see :func:`stage_json`, or
    kept from its last write) is overwritten in place and swapped in with RENAME_EXCHANGE, keeping
    the old version for the next write: no inode is made or freed. That matters on ext4 under
    churn, where making an inode cost up to 0.7 ms (the allocator steps over recently freed inodes
    one by one): more than everything else a container start writes. Overwritten, not truncated:
    a write that fits in the blocks the temp file holds needs no free space.

    ``reserve``: bytes the temp file kept for the next write holds (allocated now), so that the
    next write succeeds on a full disk: the service reserves a running container's room for its
    exit, which must never be lost."""
    tmp = tmp_path(path)
    # dumps, not dump: json.dump streams through the pure-Python encoder (~30x slower here)
    text = json.dumps(data).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
        reuse = True
    except FileNotFoundError:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        reuse = False
    try:
        try:
            view = memoryview(text)
            while view:
                view = view[os.pwrite(fd, view, len(text) - len(view)):]
            os.ftruncate(fd, len(text))
        except OSError:
            # a full disk: the file keeps its old version, and no half-written temp file stays
            # (a staged one is emptied: it is this process's to reuse)
            try:
                if reuse:
                    os.ftruncate(fd, 0)
                else:
                    os.unlink(tmp)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)
    swapped = False
    if reuse or reserve:
        from ..linux.syscalls import exchange

        try:
            exchange(tmp, path)
            swapped = True
        except OSError:
            pass  # no old version yet (ENOENT), or a filesystem that cannot swap (EINVAL)
    if not swapped:
        os.replace(tmp, path)
    if reserve:
        _reserve(tmp, max(reserve, len(text)))


def _reserve(tmp: Path, size: int) -> None:
    """The temp file, with ``size`` bytes allocated (made if it went with an os.replace)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if os.fstat(fd).st_size < size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def stage_json(path: Path, owner: int, data: dict | None = None) -> None:
    """Ahead of time, for the process ``owner``: its temp file for ``path`` (and ``path`` itself
    with ``data``), so that its later :func:`write_json_atomic` calls allocate nothing."""
    if data is not None:
        with open(path, "w") as f:
            f.write(json.dumps(data))
    open(tmp_path(path, owner), "w").close()


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def proc_start_time(pid: int) -> int:
    """Start time of a process in clock ticks, 0 if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = data[data.rindex(b")") + 2 :].split()
    return int(fields[19])


def process_running(pid: int) -> bool:
    """The process exists and is not a zombie (a dead monitor that nobody reaped is not alive)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")


def pid_alive(pid: int, start: int) -> bool:
    """True when ``pid`` is the very process that was started (not a reused pid), and not a zombie."""
    if pid <= 0:
        return False
    if proc_start_time(pid) != start:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] != b"Z"
    except OSError:
        return False


def monitor_alive(state: State) -> bool:
    """The process recorded as the container's monitor is still that process."""
    if not process_running(state.monitor_pid):
        return False
    return not state.monitor_start or proc_start_time(state.monitor_pid) == state.monitor_start
