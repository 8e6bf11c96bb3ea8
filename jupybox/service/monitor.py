"""The containers the service watches: their exits, the end of their PID 1, their cleanup, and the
requests that wait for one of those (wait, stop, remove).

A container's exit is known twice: first from its PID 1, which writes the command's exit code on
the status pipe and then lingers (its namespaces' teardown would compete with the client for a
CPU), then from its pidfd when PID 1 has gone. The first is reported at once (state written, event
sent); PID 1 is released in the next quiet moment, and its cgroup, network and --rm directory go
in the one after (``Loop.chore``).
"""

from __future__ import annotations

import os
import signal
import time

from .. import errors
from ..runtime.engine import exit_code_of, signal_number
from ..runtime.state import Status

HOLD = 0.003  # seconds after an exit is reported during which no chore runs (see Loop.hold)


class Watched:
    """One container, as its monitor sees it."""

    def __init__(self, running, attached_to, notify, adopted: bool = False):
        self.running = running
        self.attached_to = attached_to  # the client it dies with (None: detached)
        self.notify = notify  # the client told of its exit
        self.adopted = adopted  # re-adopted after a crash of the service: PID 1 is not our child
        self.pidfd = -1
        self.status_fd = -1
        self.notified = False
        self.exit_state = None
        self.waiters: list[tuple[object, int]] = []  # (client, req) of wait/stop requests
        self.after_cleanup: list = []  # callbacks (remove requests)
        self.stop_timer = None
        self.stopped = False  # by a user's stop/kill: a restart policy does not restart it

    @property
    def cid(self) -> str:
        return self.running.record.id


class Monitor:
    def __init__(self, service):
        self.service = service
        self.loop = service.loop
        self.engine = service.engine
        self.watched: dict[str, Watched] = {}
        self.lingering: list[Watched] = []  # exited, their PID 1 waiting for its release
        self.cleanups: list[Watched] = []  # PID 1 gone: cgroup, network, --rm directory to remove
        self.execs: dict[int, tuple[int, str, object]] = {}  # pidfd -> (pid, token, client)
        self.last_start = 0.0

    # -- watching ----------------------------------------------------------------------------------
    def watch(self, running, attached_to, notify, adopted: bool = False, status_fd: int = -1) -> Watched:
        w = Watched(running, attached_to, notify, adopted)
        w.pidfd = os.pidfd_open(running.pid)
        self.loop.add_reader(w.pidfd, lambda: self._pid1_exited(w))
        w.status_fd = running.sandbox.status_fd() if running.sandbox is not None else status_fd
        if w.status_fd >= 0:
            self.loop.add_reader(w.status_fd, lambda: self._reported(w))
        self.watched[w.cid] = w
        self.last_start = time.monotonic()
        return w

    def running_count(self) -> int:
        return sum(1 for w in self.watched.values() if not w.notified)

    def busy(self) -> set[str]:
        """Containers whose directory and cgroup are this service's to handle."""
        return set(self.watched)

    def idle(self) -> bool:
        return not (self.watched or self.execs or self.lingering or self.cleanups)

    # -- exits ---------------------------------------------------------------------------------------
    def _reported(self, w: Watched) -> None:
        """PID 1 wrote the command's exit code: report it now, before the namespaces' teardown."""
        self.loop.remove_reader(w.status_fd)
        code = _read_status(w.status_fd)
        if w.adopted:
            os.close(w.status_fd)  # ours (a copy taken from PID 1), not a sandbox's
        w.status_fd = -1
        if code is None or w.notified:
            return  # no init (it is the command), or it died: the exit comes from the pidfd
        running = w.running
        state = self.engine.exit_state(running, code)
        if running.record.config["spec"].get("remove"):
            # out of every listing before the client hears of the exit (docker's run --rm)
            self.engine.records.hide(running.record)
            self._exited(w, state)
            self.engine.save_exit(running, state)
        else:  # the client may inspect or remove it as soon as wait() returns
            self.engine.save_exit(running, state)
            self._exited(w, state)
        self.lingering.append(w)
        self.service.kick()

    def _exited(self, w: Watched, state) -> None:
        w.notified = True
        w.exit_state = state
        if w.stop_timer is not None:
            w.stop_timer.cancel()
            w.stop_timer = None
        result = _result(state)
        self.loop.hold(HOLD)
        if w.notify is not None:
            self.service.send(w.notify, dict(result, event="exit", id=w.cid))
        for conn, req in w.waiters:
            self.service.send(conn, dict(result, reply=req))
        w.waiters = []

    def _pid1_exited(self, w: Watched) -> None:
        self.loop.remove_reader(w.pidfd)
        os.close(w.pidfd)
        w.pidfd = -1
        if w.status_fd >= 0:
            self._reported(w)  # what PID 1 wrote before it went, if anything
        status = None
        if not w.adopted:
            try:
                _, status = os.waitpid(w.running.pid, 0)
            except ChildProcessError:
                pass
        if not w.notified:
            if status is None:
                state = self.engine.exit_state(w.running, 137)
                state.error = "the container's init died; exit status unknown"
                self.engine.save_exit(w.running, state)
            else:
                state = self.engine.record_exit(w.running, exit_code_of(status))
            if w.running.record.config["spec"].get("remove"):
                self.engine.records.hide(w.running.record)
            self._exited(w, state)
        if w in self.lingering:
            self.lingering.remove(w)
        self.cleanups.append(w)
        self.service.kick()

    def release_lingering(self) -> bool:
        """The hold is over: the PID 1s that reported an exit may go (and take their namespaces)."""
        if not self.lingering:
            return False
        while self.lingering:
            w = self.lingering.pop()
            if w.adopted:
                self._signal(w, signal.SIGKILL)  # its control socket died with the last service
            else:
                w.running.sandbox.release()
        return True

    def cleanup_one(self) -> bool:
        if not self.cleanups:
            return False
        w = self.cleanups.pop(0)
        try:
            self.engine.cleanup(w.running)
        except (errors.JupyboxError, OSError) as e:
            self.service.log(f"cleaning up {w.cid[:12]}: {e}")
        finally:
            self.watched.pop(w.cid, None)
        for fn in w.after_cleanup:
            fn()
        return True

    # -- clients -------------------------------------------------------------------------------------
    def client_left(self, conn) -> None:
        """Its attached containers go (a kill -9 of the CLI, a notebook kernel that died)."""
        for w in self.watched.values():
            if w.notify is conn:
                w.notify = None
            if w.attached_to is conn:
                w.attached_to = None
                if not w.notified:
                    self._signal(w, signal.SIGKILL)
            w.waiters = [(c, r) for c, r in w.waiters if c is not conn]
        for pidfd, (pid, token, owner) in list(self.execs.items()):
            if owner is conn:
                self.execs[pidfd] = (pid, token, None)

    def _signal(self, w: Watched, sig: int) -> None:
        if w.pidfd < 0:
            return
        try:
            signal.pidfd_send_signal(w.pidfd, sig)
        except ProcessLookupError:
            pass

    # -- requests that wait ------------------------------------------------------------------------
    def wait(self, conn, req: int, rec) -> dict | None:
        w = self.watched.get(rec.id)
        if w is not None and not w.notified:
            w.waiters.append((conn, req))
            return None
        return _result(w.exit_state if w is not None else rec.state())

    def stop(self, conn, req: int, rec, timeout: float | None) -> dict | None:
        w = self.watched.get(rec.id)
        if w is None or w.notified:
            return self._settled(rec)
        w.stopped = True
        sig = signal_number(rec.config.get("stop_signal") or "SIGTERM")
        self._signal(w, sig)
        w.waiters.append((conn, req))
        w.stop_timer = self.loop.call_later(10.0 if timeout is None else timeout,
                                            lambda: self._signal(w, signal.SIGKILL))
        return None

    def kill(self, rec, sig: int) -> None:
        w = self.watched.get(rec.id)
        if w is None or w.notified:
            raise errors.StateError(f"container {rec.name} is not running")
        if sig in (signal.SIGKILL, signal.SIGTERM):
            w.stopped = True
        self._signal(w, sig)

    def remove(self, conn, req: int, rec, force: bool) -> dict | None:
        w = self.watched.get(rec.id)
        if w is None:
            if rec.state().status is Status.RUNNING and not force:
                raise errors.Conflict(f"cannot remove container {rec.name}: it is running: stop it first or use rm -f")
            self.engine.remove(rec, force)
            return {}
        if not w.notified:
            if not force:
                raise errors.Conflict(f"cannot remove container {rec.name}: it is running: stop it first or use rm -f")
            w.stopped = True
            self._signal(w, signal.SIGKILL)

        def done():
            try:
                self.engine.remove(rec)
                self.service.send(conn, {"reply": req})
            except errors.JupyboxError as e:
                self.service.send(conn, _error(req, e))

        w.after_cleanup.append(done)
        return None

    def _settled(self, rec) -> dict:
        return _result(rec.state())

    # -- exec ----------------------------------------------------------------------------------------
    def watch_exec(self, pid: int, token: str, conn) -> None:
        pidfd = os.pidfd_open(pid)
        self.execs[pidfd] = (pid, token, conn)
        self.loop.add_reader(pidfd, lambda: self._exec_exited(pidfd))

    def _exec_exited(self, pidfd: int) -> None:
        self.loop.remove_reader(pidfd)
        pid, token, conn = self.execs.pop(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = exit_code_of(status)
        except ChildProcessError:
            code = 137
        if conn is not None:
            self.service.send(conn, {"event": "exec-exit", "token": token, "exit_code": code})

    # -- the end -------------------------------------------------------------------------------------
    def kill_all(self) -> None:
        for w in self.watched.values():
            if not w.notified:
                w.stopped = True
                self._signal(w, signal.SIGKILL)


def _result(state) -> dict:
    """What a client learns of an exit (the exit event, the reply to wait and stop)."""
    return {"exit_code": state.exit_code, "oom_killed": state.oom_killed, "extra": state.extra,
            "error": state.error}


def _read_status(fd: int) -> int | None:
    from ..runtime.sandbox import read_status

    return read_status(fd)


def _error(req, exc) -> dict:
    from .wire import error_reply

    return error_reply(req, exc)
