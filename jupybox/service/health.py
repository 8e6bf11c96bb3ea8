"""Healthchecks (docker's HEALTHCHECK and --health-*): a probe run inside the container as an
``exec``, its exit code deciding the health docker shows: ``starting`` until a probe succeeds
(failures during the start period do not count), ``healthy``, or ``unhealthy`` after ``retries``
failures in a row. A probe that outlives its timeout is killed and counts as a failure. The last
five probes (start, end, exit code, the first 4096 bytes of output) are kept in the container's
state, as docker keeps them in ``State.Health.Log``.

Everything runs in the service's loop: the probe's output pipe and its pidfd are watched like any
other descriptor, and the next probe is a timer.
"""

from __future__ import annotations

import fcntl
import os
import signal
import time

from .. import errors
from ..runtime.state import now_iso

MAX_OUTPUT = 4096  # docker keeps this much of a probe's output
KEPT_PROBES = 5


class Probe:
    def __init__(self, w, pid: int, pidfd: int, out_r: int, started: str):
        self.w = w
        self.pid = pid
        self.pidfd = pidfd
        self.out_r = out_r
        self.started = started
        self.output = bytearray()
        self.timer = None
        self.timed_out = False


class Health:
    def __init__(self, service):
        self.service = service
        self.loop = service.loop
        self.engine = service.engine
        self.timers: dict[str, object] = {}  # container id -> the timer of its next probe
        self.probes: dict[str, Probe] = {}  # container id -> its probe running now
        self.started: dict[str, float] = {}  # container id -> when it started (the start period)

    def watch(self, w) -> None:
        """A started container: its first probe after the start interval (or the interval)."""
        check = w.running.record.config.get("healthcheck")
        if not check:
            return
        self.started[w.cid] = time.monotonic()
        self._schedule(w, check)

    def _schedule(self, w, check: dict) -> None:
        in_start = time.monotonic() - self.started.get(w.cid, 0.0) < check["start_period"]
        delay = check["start_interval"] if in_start and check["start_period"] else check["interval"]
        self.timers[w.cid] = self.loop.call_later(delay, lambda: self._probe(w))

    def forget(self, w) -> None:
        """The container has exited: no more probes, the one running is killed."""
        timer = self.timers.pop(w.cid, None)
        if timer is not None:
            timer.cancel()
        probe = self.probes.pop(w.cid, None)
        if probe is not None:
            self._end(probe, kill=True)
        self.started.pop(w.cid, None)

    # -- one probe -------------------------------------------------------------------------------
    def _probe(self, w) -> None:
        self.timers.pop(w.cid, None)
        if w.notified or w.cid in self.probes:
            return
        check = w.running.record.config["healthcheck"]
        test = check["test"]
        argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        started = now_iso()
        try:
            pid = self.engine.exec_start(w.running.record, w.running.pid, argv, stdio=(devnull, out_w, out_w))
        except (errors.JupyboxError, OSError) as e:
            os.close(out_r)
            self._record(w, started, -1, f"the healthcheck could not start: {e}")
            return
        finally:
            os.close(out_w)
            os.close(devnull)
        fcntl.fcntl(out_r, fcntl.F_SETFL, fcntl.fcntl(out_r, fcntl.F_GETFL) | os.O_NONBLOCK)
        probe = Probe(w, pid, os.pidfd_open(pid), out_r, started)
        self.probes[w.cid] = probe
        self.loop.add_reader(probe.out_r, lambda: self._read(probe))
        self.loop.add_reader(probe.pidfd, lambda: self._exited(probe))
        probe.timer = self.loop.call_later(check["timeout"], lambda: self._timeout(probe))

    def _read(self, probe: Probe) -> None:
        try:
            data = os.read(probe.out_r, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(probe.out_r)
            return
        if len(probe.output) < MAX_OUTPUT:
            probe.output += data[:MAX_OUTPUT - len(probe.output)]

    def _timeout(self, probe: Probe) -> None:
        probe.timed_out = True
        try:
            signal.pidfd_send_signal(probe.pidfd, signal.SIGKILL)
        except OSError:
            pass

    def _exited(self, probe: Probe) -> None:
        code = self._end(probe)
        w = probe.w
        if self.probes.get(w.cid) is probe:
            del self.probes[w.cid]
        if w.notified:
            return
        check = w.running.record.config["healthcheck"]
        if probe.timed_out:
            self._record(w, probe.started, -1, f"Health check exceeded timeout ({check['timeout']:g}s)")
        else:
            self._record(w, probe.started, code, probe.output.decode(errors="replace"))

    def _end(self, probe: Probe, kill: bool = False) -> int:
        """Stop watching the probe; its exit code (it is reaped here)."""
        if kill:
            try:
                signal.pidfd_send_signal(probe.pidfd, signal.SIGKILL)
            except OSError:
                pass
        if probe.timer is not None:
            probe.timer.cancel()
        for fd in (probe.out_r, probe.pidfd):
            self.loop.remove_reader(fd)
        self._read_rest(probe)
        os.close(probe.out_r)
        os.close(probe.pidfd)
        try:
            _, status = os.waitpid(probe.pid, 0)
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else -1
        except ChildProcessError:
            return -1

    @staticmethod
    def _read_rest(probe: Probe) -> None:
        """What the probe wrote just before it exited (the pipe is non-blocking)."""
        while len(probe.output) < MAX_OUTPUT:
            try:
                data = os.read(probe.out_r, MAX_OUTPUT)
            except OSError:
                return
            if not data:
                return
            probe.output += data[:MAX_OUTPUT - len(probe.output)]

    def _record(self, w, started: str, code: int, output: str) -> None:
        """The probe's result into the container's state (docker's rules), then the next probe."""
        check = w.running.record.config["healthcheck"]
        rec = w.running.record
        try:
            state = rec.state()
        except errors.JupyboxError:
            return
        health = dict(state.health or {"Status": "starting", "FailingStreak": 0, "Log": []})
        log = list(health.get("Log") or [])
        log.append({"Start": started, "End": now_iso(), "ExitCode": code, "Output": output})
        health["Log"] = log[-KEPT_PROBES:]
        in_start = time.monotonic() - self.started.get(w.cid, 0.0) < check["start_period"]
        if code == 0:
            health["Status"] = "healthy"
            health["FailingStreak"] = 0
        elif not in_start or health["Status"] != "starting":
            health["FailingStreak"] = int(health.get("FailingStreak", 0)) + 1
            if health["FailingStreak"] >= max(1, check["retries"]):
                health["Status"] = "unhealthy"
        state.health = health
        if not w.notified:
            try:
                rec.save_state(state)
            except OSError as e:
                self.service.log(f"healthcheck of {w.cid[:12]}: {e}")
            self._schedule(w, check)
