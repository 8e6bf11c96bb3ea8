"""Is a process alive, and is it still the same one (not a reused pid)? Read from /proc."""

from __future__ import annotations

import os


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


def owner_mark(pid: int | None = None) -> str:
    """"PID:START" naming this process (or ``pid``) for good: what ``pid_alive`` checks later."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{proc_start_time(pid)}"
