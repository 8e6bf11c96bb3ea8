"""A container's status, the guards on it, and its state file.

Like youki's ``state.rs``: the status enum carries ``can_*`` guards so that every
lifecycle verb asks the same question the same way.  The state file is small
JSON, replaced atomically (write to a temp file, rename or swap), so a reader never
sees half of it and a kill -9 leaves either the old or the new state.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

# (re-exported: the runtime's modules and tests import them from here)
from ..jsonfile import read_json, stage_json, tmp_path, write_json_atomic  # noqa: F401
from ..procs import pid_alive, proc_start_time, process_running  # noqa: F401
from ..units import now_iso  # noqa: F401


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


def monitor_alive(state: State) -> bool:
    """The process recorded as the container's monitor is still that process."""
    if not process_running(state.monitor_pid):
        return False
    return not state.monitor_start or proc_start_time(state.monitor_pid) == state.monitor_start
