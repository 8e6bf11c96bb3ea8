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
from .health import Health

HOLD = 0.003  # seconds after an exit is reported during which no chore runs (see Loop.hold)
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 60.0  # docker's restart delays: doubled each time, up to a minute
BACKOFF_RESET = 10.0  # a container that ran this long starts again with the first delay


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
        self.hurry = False  # its client waits for its removal: no hold after its exit
        self.by_shutdown = False  # killed because the service shut down (not by a user)

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
        self.restarts: dict[str, object] = {}  # container id -> the timer of its restart (its policy's)
        self.unsaved: dict[str, tuple] = {}  # container id -> (running, exit state) not written yet
        self._save_timer = None
        self.backoff: dict[str, float] = {}  # container id -> its last restart delay
        self.health = Health(service)
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
        w.started = self.last_start
        self.health.watch(w)
        return w

    def running_count(self) -> int:
        return sum(1 for w in self.watched.values() if not w.notified)

    def busy(self) -> set[str]:
        """Containers whose directory and cgroup are this service's to handle."""
        return set(self.watched)

    def idle(self) -> bool:
        return not (self.watched or self.execs or self.lingering or self.cleanups or self.restarts or self.unsaved)

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
            self.save_exit(running, state)
        else:  # the client may inspect or remove it as soon as wait() returns
            self.save_exit(running, state)
            self._exited(w, state)
        self.lingering.append(w)
        self.service.kick()

    def _exited(self, w: Watched, state) -> None:
        w.notified = True
        w.exit_state = state
        self.health.forget(w)
        if w.stop_timer is not None:
            w.stop_timer.cancel()
            w.stop_timer = None
        result = _result(state)
        if not w.hurry:
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
            else:
                state = self.engine.exit_state(w.running, exit_code_of(status))
            self.save_exit(w.running, state)
            if w.running.record.config["spec"].get("remove"):
                self.engine.records.hide(w.running.record)
            self._exited(w, state)
        if w in self.lingering:
            self.lingering.remove(w)
        self.cleanups.append(w)
        self.service.kick()

    def save_exit(self, running, state) -> None:
        """Write an exit down; one that cannot be (a disk full beyond the room reserved for it) is
        kept and written again every second: an exit is never lost while the service lives."""
        try:
            self.engine.save_exit(running, state)
            self.unsaved.pop(running.record.id, None)
        except OSError as e:
            if running.record.id not in self.unsaved:
                self.service.log(f"container {running.record.id[:12]}: its exit could not be written ({e}); "
                                 "kept, and written again every second")
            self.unsaved[running.record.id] = (running, state)
            if self._save_timer is None:
                self._save_timer = self.loop.call_later(1.0, self._save_again)

    def _save_again(self) -> None:
        self._save_timer = None
        for running, state in list(self.unsaved.values()):
            self.save_exit(running, state)

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
        self._cleanup(self.cleanups.pop(0))
        return True

    def _cleanup(self, w: Watched, policy: bool = True) -> None:
        later: list = []
        try:
            self.engine.cleanup(w.running, later=later)
        except (errors.JupyboxError, OSError) as e:
            self.service.log(f"cleaning up {w.cid[:12]}: {e}")
        finally:
            self.watched.pop(w.cid, None)
        if w.notify is not None and w.running.record.config["spec"].get("remove"):
            # the CLI's `run --rm` returns once the container is gone, as docker's does
            self.service.send(w.notify, {"event": "removed", "id": w.cid})
        for step in later:  # its cgroup and its directory's files, now that the client is told
            try:
                step()
            except (errors.JupyboxError, OSError) as e:
                self.service.log(f"cleaning up {w.cid[:12]}: {e}")
        for fn in w.after_cleanup:
            fn()
        if policy and not w.after_cleanup:  # (a removal ends every policy)
            self._maybe_restart(w)

    def finish_now(self, w: Watched) -> None:
        """A container that exited a moment ago, asked to start again: its PID 1 released, its
        exit taken in and its cleanup done now (its restart policy gives way to the user's start)."""
        if w in self.lingering:
            self.lingering.remove(w)
            if w.adopted:
                self._signal(w, signal.SIGKILL)
            else:
                w.running.sandbox.release()
        if w.pidfd >= 0:
            import select

            poller = select.poll()
            poller.register(w.pidfd, select.POLLIN)
            poller.poll(5000)
            self._pid1_exited(w)
        if w in self.cleanups:
            self.cleanups.remove(w)
            self._cleanup(w, policy=False)

    # -- restart policies -----------------------------------------------------------------------------
    def _maybe_restart(self, w: Watched) -> None:
        """docker's --restart after an exit: on-failure[:N] when the code is not 0 (N times at most),
        always and unless-stopped unless a user stopped it; with a doubling delay."""
        rec = w.running.record
        state = w.exit_state
        try:
            policy = rec.config["spec"].get("restart", "no")
        except errors.ContainerNotFound:
            return
        if w.by_shutdown:
            # docker's daemon stopping: not a user's stop; the next service starts it again
            if restart_wanted(policy, state, False):
                self._mark(rec, restarting=True)
            return
        if not restart_wanted(policy, state, w.stopped):
            if w.stopped and state is not None:
                self._mark(rec, manually_stopped=True)
            return
        ran = time.monotonic() - getattr(w, "started", 0.0)
        delay = BACKOFF_FIRST if ran >= BACKOFF_RESET else min(BACKOFF_MAX, self.backoff.get(w.cid, BACKOFF_FIRST / 2) * 2)
        self.backoff[w.cid] = delay
        self.schedule_restart(rec, delay)

    def schedule_restart(self, rec, delay: float) -> None:
        self._mark(rec, restarting=True)
        self.restarts[rec.id] = self.loop.call_later(delay, lambda: self._restart(rec))

    def _restart(self, rec) -> None:
        self.restarts.pop(rec.id, None)
        try:
            state = rec.state()
        except errors.ContainerNotFound:
            return
        if state.manually_stopped:
            return
        try:
            self.service.restart(rec)
        except (errors.JupyboxError, OSError) as e:
            # a start that fails counts as a failed run: the policy decides again
            self.service.log(f"restarting {rec.id[:12]}: {e}")
            state = rec.state()
            state.error, state.exit_code, state.restarting = str(e), getattr(e, "exit_code", 125), False
            rec.save_state(state)
            policy = rec.config["spec"].get("restart", "no")
            if restart_wanted(policy, state, False):
                delay = min(BACKOFF_MAX, self.backoff.get(rec.id, BACKOFF_FIRST / 2) * 2)
                self.backoff[rec.id] = delay
                self.schedule_restart(rec, delay)

    def cancel_restart(self, rec) -> bool:
        """A user's stop or rm of a container waiting for its restart; True if it was waiting."""
        timer = self.restarts.pop(rec.id, None)
        if timer is None:
            return False
        timer.cancel()
        self._mark(rec, restarting=False, manually_stopped=True)
        return True

    @staticmethod
    def _mark(rec, **fields) -> None:
        try:
            state = rec.state()
            for k, v in fields.items():
                setattr(state, k, v)
            rec.save_state(state)
        except (errors.JupyboxError, OSError):
            pass

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
        if w is None and rec.id in self.unsaved:
            return _result(self.unsaved[rec.id][1])
        return _result(w.exit_state if w is not None else rec.state())

    def stop(self, conn, req: int, rec, timeout: float | None) -> dict | None:
        w = self.watched.get(rec.id)
        if w is None or w.notified:
            if w is not None:
                w.stopped = True  # exited meanwhile: its policy must not start it again
            self.cancel_restart(rec)
            return self._settled(rec)
        w.stopped = True
        sig = signal_number(rec.config.get("stop_signal") or "SIGTERM")
        self._signal(w, sig)
        w.waiters.append((conn, req))
        if timeout is None:
            timeout = rec.config["spec"].get("stop_timeout")
        w.stop_timer = self.loop.call_later(10.0 if timeout is None or timeout < 0 else timeout,
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
        self.cancel_restart(rec)
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
                w.stopped = w.by_shutdown = True
                self._signal(w, signal.SIGKILL)


def restart_wanted(policy: str, state, stopped: bool) -> bool:
    if stopped or not policy or policy == "no" or state is None:
        return False
    if policy.startswith("on-failure"):
        if state.exit_code == 0:
            return False
        _, _, limit = policy.partition(":")
        return not limit or state.restart_count < int(limit)
    return policy in ("always", "unless-stopped")


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
