"""What a service does first: take over what a crashed one left (podman recovers from conmon's exit
files; here the exit code waits in the dead service's status pipe, which PID 1 keeps open).

For each container recorded as running whose monitor is gone:
- PID 1 alive: a copy of its status pipe's read end is taken (pidfd_getfd) and it is watched like
  any other; if its command already exited meanwhile, the code is read at once. A container that
  was attached to a client dies now (its client's connection died with the last service).
- PID 1 gone: its exit is recorded as unknown, and it is cleaned up (--rm: removed).
Then what died half-made (a sandbox's directory and cgroup whose owner is gone, a start cut short)
is removed, as ``prune`` would.
"""

from __future__ import annotations

import os
import signal

from .. import errors
from ..runtime.engine import EXIT_RESERVE, Running
from ..runtime.sandbox import pid1_status_fd
from ..runtime.state import Status, monitor_alive, pid_alive, proc_start_time


def adopt(service) -> None:
    engine = service.engine
    me = os.getpid()
    for rec in engine.records.all():
        try:
            state = rec.state()
            if state.status is Status.EXITED and state.restarting and not state.manually_stopped:
                # it was waiting for its restart policy when the last service died
                service.monitor.schedule_restart(rec, 0.0)
                continue
            if state.status is not Status.RUNNING or state.monitor_pid == me or monitor_alive(state):
                continue
            _adopt_one(service, rec, state)
        except (errors.JupyboxError, OSError) as e:
            service.log(f"re-adopting {rec.id[:12]}: {e}")
    try:
        engine.collect_garbage()
    except (errors.JupyboxError, OSError) as e:
        service.log(f"collecting what a crash left: {e}")


def _adopt_one(service, rec, state) -> None:
    engine = service.engine
    cgroup = engine.cgroups.open(rec.id)
    if not pid_alive(state.pid, state.pid_start):
        # PID 1 died with no one to see it (or was killed): nothing can say how it ended
        service.log(f"container {rec.id[:12]}: its init is gone; exit status unknown")
        running = Running(rec, state.pid, cgroup, None, None, state)
        exit_state = engine.exit_state(running, 137)
        exit_state.error = "the jupybox service and the container's init died; exit status unknown"
        service.monitor.save_exit(running, exit_state)
        if rec.config["spec"].get("remove"):
            engine.records.hide(rec)
        engine.cleanup(running)
        return
    status_fd = pid1_status_fd(state.pid)
    if status_fd is None:
        service.log(f"container {rec.id[:12]}: no access to its init's status pipe; its exit code will be unknown")
    state.monitor_pid = os.getpid()
    state.monitor_start = proc_start_time(os.getpid())
    try:
        rec.save_state(state, reserve=EXIT_RESERVE)  # room for its exit, as at a start
    except OSError as e:  # a full disk: it is watched all the same (the state says so at its exit)
        service.log(f"container {rec.id[:12]}: {e}")
    running = Running(rec, state.pid, cgroup, None, None, state)
    w = service.monitor.watch(running, None, None, adopted=True, status_fd=-1 if status_fd is None else status_fd)
    service.log(f"re-adopted container {rec.id[:12]} (PID 1: {state.pid})")
    if state.attached:
        # its client's connection died with the last service: an attached container goes with it
        try:
            os.kill(state.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        w.stopped = True
