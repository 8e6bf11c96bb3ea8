"""The launcher daemon: the small process that forks containers for the notebook kernel.

The kernel must never fork (it is threaded and may hold gigabytes: fork() from a 1 GiB process
costs 56 ms here and copies its page tables). At the first ``jupybox.run`` the API spawns this
daemon with posix_spawn, and from then on it creates, monitors and reaps every container the
kernel starts, over a socketpair (frames of pickled dicts, stdio passed as SCM_RIGHTS).

It is single-threaded and keeps two *prewarmed sandboxes* ready (two, so that back-to-back runs
always find one made while the previous container ran): a cgroup with a process already
attached and the namespaces already made (see ``launch.Sandbox``), so the slow first write to a
v1 cgroup.procs after an idle moment (an RCU grace period, 8-16 ms here) is never paid while the
kernel waits. When the kernel goes away (EOF), containers started attached are killed, detached
ones are monitored until they exit, and then the daemon exits.

The CLI's ``run --rm`` uses the same daemon as a service (``--listen``, see ``runtime.service``):
one per store, reached on an abstract unix socket, serving many clients at once, each client's
attached containers killed when its connection drops (a kill -9 of the CLI), and gone after
``LINGER`` seconds with no client and no container.
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import signal
import socket
import sys
import time

from .. import errors
from ..linux import syscalls as sc
from . import launch, wire
from .engine import Engine, Running, exit_code_of
from .spec import ContainerSpec


class Daemon:
    def __init__(self, sock: socket.socket | None, root: str | None, listener: socket.socket | None = None):
        self.clients: dict[int, socket.socket] = {} if sock is None else {sock.fileno(): sock}
        self.listener = listener  # the CLI's service socket (None: one client, over a socketpair)
        self.current = -1  # the client whose request is being handled
        self.engine = Engine(root)
        self.running: dict[int, tuple[Running, bool, int]] = {}  # pidfd -> (running, attached, client)
        self.early: dict[int, int] = {}  # status fd -> pidfd: PID 1 reports the command's exit there
        self.notified: set[str] = set()  # containers whose exit the client already knows
        self.cleanups: list[Running] = []  # exited containers whose cgroup and directory remain
        self.execs: dict[int, tuple[int, str, int]] = {}  # pidfd -> (pid, token, client)
        self.prewarms: list = []  # Engine.prepare()s, oldest first
        self.template = None  # the config of the last container: the next one is prepared like it
        self.idle_since = time.monotonic()
        self.linger = LINGER
        self.hold_until = 0.0  # no chores before this moment (see HOLD)
        self.refill_pending = False  # a run took a prewarm: replace it once the hold is over
        self.lingering: list[Running] = []  # exited, their PID 1 waiting for the hold to end

    @property
    def client_gone(self) -> bool:
        """No client is left, and none can come any more."""
        return not self.clients and self.listener is None

    # -- prewarming ----------------------------------------------------------------------------
    def _make_prewarm(self) -> None:
        while len(self.prewarms) < POOL and not self.client_gone:
            network = self.template["spec"]["network"] if self.template else "none"
            try:
                self.prewarms.append(self.engine.prepare(network, self.template))
            except errors.JupyboxError:
                return  # no cgroup today: requests take the slow path and say why

    def _settle_prewarm(self, pw) -> None:
        """Reap a prewarm's helper as soon as it reports, so no zombie waits for the next request."""
        if not pw.ready():
            self.prewarms.remove(pw)
            pw.discard()

    def _refill(self) -> None:
        """Soon after an exit was reported (HOLD): runs in a loop never leave the quiet moment in
        which a sandbox is otherwise made, so the one the run took is replaced now."""
        if len(self.prewarms) < POOL and not self.client_gone:
            self._make_prewarm()

    def _take_prewarm(self):
        return self.prewarms.pop(0) if self.prewarms else None

    def _drop_prewarm(self) -> None:
        while self.prewarms:
            self.prewarms.pop().discard()

    # -- requests ------------------------------------------------------------------------------
    def _op_run(self, msg: dict, fds: list[int]) -> dict:
        spec = ContainerSpec.from_dict(msg["spec"])
        pw = self._take_prewarm()
        try:
            rec = self.engine.create(spec, prepared=pw)
        except BaseException:
            if pw is not None:
                pw.discard()
            raise
        if pw is not None and pw.cid != rec.id:
            pw.discard()  # a wrong guess: the next prewarm follows this container instead
            pw = None
        self.template = rec.config
        stdio = tuple(fds[:3]) if len(fds) >= 3 else self.engine.log_stdio(rec)
        try:
            running = self.engine.start(rec, stdio, prepared=pw, linger=True)
        except BaseException:
            if spec.remove:
                self.engine.records.delete(rec)
            raise
        finally:
            if len(fds) < 3:
                for fd in stdio:
                    os.close(fd)
        self._watch(running, bool(msg.get("attached", True)))
        return {"id": rec.id, "name": rec.name, "pid": running.pid}

    def _op_start(self, msg: dict, fds: list[int]) -> dict:
        rec = self.engine.records.get(msg["id"])
        stdio = tuple(fds[:3]) if len(fds) >= 3 else self.engine.log_stdio(rec)
        try:
            running = self.engine.start(rec, stdio, linger=True)
        finally:
            if len(fds) < 3:
                for fd in stdio:
                    os.close(fd)
        self._watch(running, bool(msg.get("attached", False)))
        return {"id": rec.id, "pid": running.pid}

    def _watch(self, running: Running, attached: bool) -> None:
        """From now on PID 1's exit and its early report are watched, for the requesting client."""
        pidfd = os.pidfd_open(running.pid)
        self.running[pidfd] = (running, attached, self.current)
        self.early[running.sandbox.status_fd()] = pidfd

    def _op_exec(self, msg: dict, fds: list[int]) -> dict:
        rec = self.engine.records.get(msg["id"])
        state = self.engine.reconcile(rec)
        if not state.status.can_exec():
            raise errors.StateError(f"container {rec.name} is not running")
        plan = self.engine.exec_plan(rec, msg["argv"], env=msg.get("env"), workdir=msg.get("workdir"),
                                     user=msg.get("user"))
        stdio = tuple(fds[:3])
        pid = launch.exec_in(state.pid, self.engine.cgroups.open(rec.id).attach_self_paths(), plan, stdio)
        token = secrets.token_hex(8)
        self.execs[os.pidfd_open(pid)] = (pid, token, self.current)
        return {"token": token, "pid": pid}

    def handle(self, msg: dict, fds: list[int]) -> None:
        op = msg.get("op")
        reply = {"reply": msg.get("req")}
        try:
            fn = {"run": self._op_run, "start": self._op_start, "exec": self._op_exec}.get(op)
            if op == "ping":
                reply["ok"] = True
            elif fn is None:
                raise errors.UsageError(f"unknown launcher request {op!r}")
            else:
                reply.update(fn(msg, fds))
        except errors.JupyboxError as e:
            reply["error"] = {"type": type(e).__name__, "msg": str(e), "code": e.exit_code}
        except Exception as e:  # noqa: BLE001 - the kernel must get an answer, not a dead daemon
            reply["error"] = {"type": "RuntimeFailure", "msg": f"{type(e).__name__}: {e}", "code": 125}
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.send(reply, self.current)

    def send(self, msg: dict, client: int) -> None:
        sock = self.clients.get(client)
        if sock is None:
            return
        try:
            wire.send(sock, msg)
        except OSError:
            self._client_left(client)

    # -- exits ---------------------------------------------------------------------------------
    def _exit_event(self, running: Running, exit_code: int, oom: bool, extra: dict, client: int) -> None:
        cid = running.record.id
        if cid in self.notified:
            return
        self.notified.add(cid)
        now = time.monotonic()
        if now >= self.hold_until:  # holds do not chain: runs in a loop still get their chores done
            self.hold_until = now + HOLD
        self.send({"event": "exit", "id": cid, "exit_code": exit_code, "oom_killed": oom, "extra": extra}, client)

    def _early_exit(self, status_fd: int) -> None:
        """PID 1 reported the command's exit code: tell the client before the namespaces' teardown."""
        pidfd = self.early.pop(status_fd)
        running, _, client = self.running[pidfd]
        code = running.sandbox.exit_status()
        if code is None:
            return  # no init (or it died): the exit is reported when PID 1 is reaped
        state = self.engine.exit_state(running, code)
        if running.record.config["spec"].get("remove"):
            # out of every listing before the client hears of the exit; the state file, for the
            # moments until the cleanup, after (the client's Container knows the exit already)
            self.engine.records.hide(running.record)
            self._exit_event(running, state.exit_code, state.oom_killed, state.extra, client)
            self.engine.save_exit(running, state)
        else:  # the client may inspect or remove it as soon as wait() returns
            self.engine.save_exit(running, state)
            self._exit_event(running, state.exit_code, state.oom_killed, state.extra, client)
        self.lingering.append(running)
        self.refill_pending = True

    def _release(self) -> None:
        """The hold is over: the PID 1s that reported an exit may go (and take their namespaces)."""
        while self.lingering:
            self.lingering.pop().sandbox.release()

    def _reap(self, pidfd: int) -> None:
        if pidfd in self.running:
            running, _attached, client = self.running.pop(pidfd)
            for fd, pfd in list(self.early.items()):
                if pfd == pidfd:
                    del self.early[fd]
            os.close(pidfd)
            _, status = os.waitpid(running.pid, 0)
            if running.record.id not in self.notified:  # else recorded when PID 1 reported the exit
                state = self.engine.record_exit(running, exit_code_of(status))
                self._exit_event(running, state.exit_code, state.oom_killed, state.extra, client)
            self.notified.discard(running.record.id)
            # the cgroup and an --rm container's directory go when nothing else waits
            self.cleanups.append(running)
        elif pidfd in self.execs:
            pid, token, client = self.execs.pop(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            self.send({"event": "exec-exit", "token": token, "exit_code": exit_code_of(status)}, client)

    def _reap_strays(self) -> None:
        """Reap exited children nobody waits for: as a subreaper, orphans of our containers'
        helpers come to us, and an unreaped one in a container's PID namespace would keep that
        namespace's init from ever finishing its exit."""
        tracked = {r.pid for r, _, _ in self.running.values()} | {pid for pid, _, _ in self.execs.values()}
        for pw in self.prewarms:
            tracked.add(pw.sandbox.pid)
            tracked.add(pw.sandbox.helper_pid)
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            return
        for pid in kids:
            if pid in tracked:
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    data = f.read()
                if data[data.rindex(b")") + 2 : data.rindex(b")") + 3] == b"Z":
                    os.waitpid(pid, os.WNOHANG)
            except (OSError, ValueError):
                pass

    def _client_left(self, client: int) -> None:
        """A client's connection closed (it exited, or was killed): its attached containers go."""
        sock = self.clients.pop(client, None)
        if sock is None:
            return
        sock.close()
        if self.client_gone:
            self._drop_prewarm()
        for pidfd, (running, attached, owner) in list(self.running.items()):
            if owner != client:
                continue
            # its fd number may come back with a new client: nothing of this one is theirs
            self.running[pidfd] = (running, attached, -1)
            if attached:
                try:
                    os.kill(running.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pidfd, (pid, token, owner) in list(self.execs.items()):
            if owner == client:
                self.execs[pidfd] = (pid, token, -1)

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        # only this user (the socket is abstract: anyone could connect to it)
        if wire.peer_uid(conn) != os.geteuid():
            conn.close()
            return
        self.clients[conn.fileno()] = conn

    def _idle(self) -> bool:
        return not (self.clients or self.running or self.execs or self.cleanups)

    def serve(self) -> None:
        """One loop: requests, exits, and a prewarm made when nothing else is going on.

        The prewarm's helper writes to cgroup.procs, which on v1 may hold the kernel's cgroup
        threadgroup lock for an RCU grace period, stalling every fork and exit on the machine:
        so it is made right after an exit when no container runs, or after a quiet moment,
        never while a container that just started may be about to exit."""
        sc.set_child_subreaper()
        want_prewarm = True
        try:
            while not (self.client_gone and not self.running and not self.execs):
                now = time.monotonic()
                if self.listener is not None and self._idle():
                    if now - self.idle_since >= self.linger:
                        self._stop_listening()
                        continue
                else:
                    self.idle_since = now
                watch = list(self.running) + list(self.execs) + list(self.early) + list(self.clients)
                if self.listener is not None:
                    watch.append(self.listener.fileno())
                helpers = {pw.sandbox.helper_fd(): pw for pw in self.prewarms if pw.sandbox.pending}
                watch += list(helpers)
                chores = bool(self.cleanups or self.lingering or self.refill_pending) or (want_prewarm and not self.running)
                hold = self.hold_until - now
                if hold > 0:
                    timeout = hold
                elif chores:
                    timeout = 0.0  # chores only when nothing else is waiting
                elif len(self.prewarms) < POOL and not self.client_gone:
                    timeout = QUIET
                else:
                    timeout = STRAYS
                if self.listener is not None and self._idle():
                    timeout = min(timeout, max(0.0, self.linger - (now - self.idle_since)) + 0.001)
                ready, _, _ = select.select(watch, [], [], timeout)
                if not ready:
                    if time.monotonic() < self.hold_until:
                        continue
                    if self.lingering:
                        self._release()
                    elif self.refill_pending:
                        self.refill_pending = False
                        self._refill()
                    elif self.cleanups:
                        self.engine.cleanup(self.cleanups.pop(0))
                    elif want_prewarm and not self.running:
                        self._make_prewarm()
                        want_prewarm = False
                    elif timeout == QUIET:
                        self._make_prewarm()  # a quiet moment while containers run
                    else:
                        self._reap_strays()
                    continue
                # requests first: a client waiting for a start matters more than anything here
                ready.sort(key=lambda fd: fd not in self.clients)
                for fd in ready:
                    if fd in helpers:
                        # a request handled in this same round may have taken the prewarm already
                        pw = helpers[fd]
                        if pw in self.prewarms and pw.sandbox.pending:
                            self._settle_prewarm(pw)
                    elif fd in self.early:
                        self._early_exit(fd)
                    elif self.listener is not None and fd == self.listener.fileno():
                        self._accept()
                    elif fd in self.clients:
                        try:
                            got = wire.recv(self.clients[fd])
                        except OSError:
                            got = None
                        if got is None:
                            self._client_left(fd)
                        else:
                            self.current = fd
                            self.handle(*got)
                    elif fd in self.running or fd in self.execs:
                        self._reap(fd)
                        want_prewarm = True
                self._reap_strays()
        finally:
            self._release()
            while self.cleanups:
                self.engine.cleanup(self.cleanups.pop(0))
            self._drop_prewarm()

    def _stop_listening(self) -> None:
        """Idle for ``linger`` seconds: no new client; what is prepared goes."""
        self.listener.close()
        self.listener = None
        self._drop_prewarm()


# seconds after an exit is reported during which the daemon makes no prewarm and cleans nothing
# up: the client needs a CPU to take the exit in, and on 2 CPUs the refill's fork and the cleanup
# used to delay it (medians 3.1-3.4 ms against 3.5-4.1 ms a run, measured)
HOLD = 0.003
POOL = 2  # prewarmed sandboxes kept ready
QUIET = 0.05  # seconds without requests or exits before a prewarm is made while containers run
STRAYS = 1.0  # seconds between looks for stray children when nothing else happens
LINGER = 5.0  # seconds a service daemon (--listen) stays with no client and no container


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="jupybox-launcherd")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="one client, over this end of a socketpair (the API)")
    where.add_argument("--listen", help="serve clients on this abstract unix socket name (the CLI)")
    p.add_argument("--root")
    p.add_argument("--linger", type=float, default=LINGER, help="with --listen: seconds to stay when idle")
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel's interrupts are for its cells
    if args.fd is not None:
        Daemon(socket.socket(fileno=args.fd), args.root).serve()
        sys.exit(0)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind("\0" + args.listen)
    except OSError:
        sys.exit(0)  # another daemon serves this store already
    listener.listen(64)
    d = Daemon(None, args.root, listener=listener)
    d.linger = args.linger
    d.serve()
    sys.exit(0)


if __name__ == "__main__":
    main()
