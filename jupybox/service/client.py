"""The clients' side of the store's service: a threaded client for the API (a notebook kernel, any
program), and a plain blocking connection for the CLI.

The service is the only process that forks containers; a client never forks (a notebook kernel is
threaded and may hold gigabytes). Every wait here is bounded or interruptible:

- a request the service does not answer within its bound raises "the service did not answer"
  (it is hung: its pid and log are named); a wait for a container's exit has no bound, but wakes
  several times a second, so Ctrl-C (KeyboardInterrupt) always returns control;
- a request abandoned by an interrupt is not forgotten: if the service then reports a container
  it started for it, that container is removed (an interrupted start leaves nothing);
- when the service dies, waits raise ``ServiceDied`` with its log's path, and the containers this
  client started attached are killed here at once (they would die with the client anyway).
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import socket
import time

from .. import errors
from . import address, wire

REQUEST_TIMEOUT = 10.0  # seconds: any request but those that may unpack an image or wait
SLOW_REQUEST_TIMEOUT = 600.0  # run/create/start may unpack layers; stop/remove wait for the exit
SLOW_OPS = {"run", "create", "start", "stop", "remove", "prune", "wait", "shutdown"}
WAKE = 0.2  # seconds between looks at the clock while waiting (interrupts are handled between)
HUNG_GRACE = 3.0  # seconds a stopped service (SIGSTOP, a debugger) is waited for before it is called hung
KEPT_EXITS = 1024  # exit events kept for wait() (several threads may wait for one); the oldest go first


class ServiceDied(errors.RuntimeFailure):
    pass


class ServiceHung(errors.RuntimeFailure):
    pass


def _stopped(pid: int) -> bool:
    """Is the process stopped (SIGSTOP, a debugger): it cannot answer until it is continued."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] in (b"T", b"t")


class _Hang:
    """Notices a service that stays stopped while a client waits for it."""

    def __init__(self, pid: int, root: str):
        self.pid, self.root = pid, root
        self.since = None

    def check(self, what: str) -> None:
        if not _stopped(self.pid):
            self.since = None
            return
        now = time.monotonic()
        if self.since is None:
            self.since = now
        elif now - self.since >= HUNG_GRACE:
            raise ServiceHung(f"the jupybox service (pid {self.pid}) is stopped (SIGSTOP or a debugger) and cannot "
                              f"answer {what}; `kill -CONT {self.pid}` resumes it; its log: "
                              f"{address.log_path(self.root)}")


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except OSError:
        return -1


class Client:
    """One connection to the service, shared by the threads of a process (a reader thread takes
    replies and events off it: a cell waiting for its container, a live chart and an ``exec``
    can all use it at once)."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.sock = address.connect_or_spawn(self.root)
        self.service_pid = wire.peer_cred(self.sock)[0]
        import threading  # (here: the CLI's Connection needs no thread, and starts ~1 ms sooner)

        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, dict] = {}
        self._exits: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._exec_exits: dict[str, dict] = {}
        self._abandoned: dict[int, str] = {}  # req -> op, for requests given up by an interrupt
        self._attached: dict[str, int] = {}  # container id -> pidfd of its PID 1 (killed if the service dies)
        self._mine: set[str] = set()  # running containers this client started: their exit event will come
        self._ids = itertools.count(1)
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="jupybox-service", daemon=True)
        self._reader.start()

    # -- the reader thread ----------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                got = wire.recv(self.sock)
                if got is None:
                    break
                msg, fds = got
                for fd in fds:
                    os.close(fd)
                self._dispatch(msg)
        except (OSError, wire.FrameError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._kill_attached()

    def _dispatch(self, msg: dict) -> None:
        cleanup = None
        with self._cond:
            if "reply" in msg:
                op = self._abandoned.pop(msg["reply"], None)
                if op is None:
                    self._replies[msg["reply"]] = msg
                elif not msg.get("error") and msg.get("id"):
                    cleanup = (op, msg["id"])
            elif msg.get("event") == "exit":
                cid = str(msg.get("id"))
                self._mine.discard(cid)
                fd = self._attached.pop(cid, -1)
                if fd >= 0:
                    os.close(fd)
                self._exits[cid] = msg
                while len(self._exits) > KEPT_EXITS:
                    self._exits.popitem(last=False)
            elif msg.get("event") == "exec-exit":
                self._exec_exits[str(msg.get("token"))] = msg
            self._cond.notify_all()
        if cleanup is not None:
            self._undo(*cleanup)

    def _undo(self, op: str, cid: str) -> None:
        """A start the caller gave up on (Ctrl-C while it was under way): leave nothing."""
        if op == "run":
            self._send_quiet("remove", id=cid, force=True)
        else:
            self._send_quiet("kill", id=cid, signal=int(signal.SIGKILL))

    def _send_quiet(self, op: str, **kw) -> None:
        req = next(self._ids)
        with self._cond:
            self._abandoned[req] = "cleanup"
        try:
            with self._send_lock:
                wire.send(self.sock, dict(kw, op=op, req=req))
        except OSError:
            pass

    def _kill_attached(self) -> None:
        """The service died: what this client started attached dies now, not at an adoption."""
        with self._cond:
            fds, self._attached = list(self._attached.values()), {}
        for fd in fds:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
            os.close(fd)

    # -- requests -------------------------------------------------------------------------------
    def _gone(self) -> ServiceDied:
        return ServiceDied(f"the jupybox service (pid {self.service_pid}) died; its log: "
                           f"{address.log_path(self.root)}")

    def request(self, op: str, fds=(), timeout: float | None = None, **kw) -> dict:
        """Send a request and wait for its reply (errors raise as the JupyboxError they are)."""
        if timeout is None:
            timeout = SLOW_REQUEST_TIMEOUT if op in SLOW_OPS else REQUEST_TIMEOUT
        req = next(self._ids)
        try:
            with self._send_lock:
                wire.send(self.sock, dict(kw, op=op, req=req), fds)
        except (OSError, ValueError) as e:
            if isinstance(e, ValueError):
                raise errors.UsageError(str(e)) from None
            raise self._gone() from None
        deadline = time.monotonic() + timeout
        hang = _Hang(self.service_pid, self.root)
        try:
            with self._cond:
                while req not in self._replies:
                    if self._closed:
                        raise self._gone()
                    hang.check(f"a {op} request")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ServiceHung(
                            f"the jupybox service (pid {self.service_pid}) did not answer a {op} request within "
                            f"{timeout:g} s: it may be hung; its log: {address.log_path(self.root)}")
                    self._cond.wait(min(WAKE, left))
                reply = self._replies.pop(req)
        except BaseException:
            with self._cond:
                late = self._replies.pop(req, None)
                if late is None:
                    self._abandoned[req] = op  # the reader thread undoes it when it comes
            if late is not None and op in ("run", "start") and not late.get("error") and late.get("id"):
                self._undo(op, late["id"])
            raise
        if reply.get("error"):
            wire.raise_error(reply["error"])
        return reply

    def alive(self) -> bool:
        return not self._closed

    def run(self, spec: dict, stdio=None, attached: bool = True) -> dict:
        reply = self.request("run", fds=stdio or (), spec=spec, attached=attached)
        self._track(reply, attached)
        return reply

    def start(self, cid: str, stdio=None, attached: bool = False) -> dict:
        reply = self.request("start", fds=stdio or (), id=cid, attached=attached)
        self._track(reply, attached)
        return reply

    def _track(self, reply: dict, attached: bool) -> None:
        with self._cond:
            if reply["id"] not in self._exits:
                self._mine.add(reply["id"])
        if attached and reply.get("pid"):
            fd = _pidfd(reply["pid"])
            with self._cond:
                if fd >= 0 and reply["id"] not in self._exits:
                    self._attached[reply["id"]] = fd
                elif fd >= 0:
                    os.close(fd)

    def wait_exit(self, cid: str, timeout: float | None = None) -> dict:
        """The exit of a container this client started (its event), waiting for it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        hang = _Hang(self.service_pid, self.root)
        with self._cond:
            while cid not in self._exits:
                if self._closed:
                    raise self._gone()
                hang.check(f"with the exit of container {cid[:12]}")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"container {cid[:12]} still running")
                self._cond.wait(WAKE if left is None else min(WAKE, left))
            return self._exits[cid]

    def has_exit(self, cid: str) -> bool:
        with self._cond:
            return cid in self._exits

    def started(self, cid: str) -> bool:
        """This client started it and it has not exited yet (its exit event will come here)."""
        with self._cond:
            return cid in self._mine

    def exec(self, cid: str, argv, env, workdir, user, stdio, privileged=None) -> int:
        reply = self.request("exec", fds=stdio, id=cid, argv=list(argv), env=env, workdir=workdir, user=user,
                             privileged=privileged)
        token = reply["token"]
        hang = _Hang(self.service_pid, self.root)
        with self._cond:
            while token not in self._exec_exits:
                if self._closed:
                    raise self._gone()
                hang.check("with the exit of an exec'd process")
                self._cond.wait(WAKE)
            return self._exec_exits.pop(token)["exit_code"]

    def close(self) -> None:
        """Attached containers die with the connection; detached ones stay with the service."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Connection:
    """A blocking connection for one CLI command: requests in order, events as they come."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.sock = address.connect_or_spawn(self.root)
        self.service_pid = wire.peer_cred(self.sock)[0]
        self._req = 0
        self.events: collections.deque = collections.deque()

    def send(self, op: str, fds=(), **kw) -> int:
        self._req += 1
        try:
            wire.send(self.sock, dict(kw, op=op, req=self._req), fds)
        except ValueError as e:
            raise errors.UsageError(str(e)) from None
        except OSError:
            raise self.gone() from None
        return self._req

    def gone(self) -> ServiceDied:
        return ServiceDied(f"the jupybox service (pid {self.service_pid}) died; its log: "
                           f"{address.log_path(self.root)}")

    def next_message(self) -> dict:
        import select

        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        hang = _Hang(self.service_pid, self.root)
        while not poller.poll(WAKE * 1000 * 5):  # (a stopped service is named, not waited for forever)
            hang.check("this command")
        try:
            got = wire.recv(self.sock)
        except (OSError, wire.FrameError):
            got = None
        if got is None:
            raise self.gone()
        msg, fds = got
        for fd in fds:
            os.close(fd)
        return msg

    def reply(self, req: int) -> dict:
        while True:
            msg = self.next_message()
            if msg.get("reply") == req:
                if msg.get("error"):
                    wire.raise_error(msg["error"])
                return msg
            self.events.append(msg)

    def call(self, op: str, fds=(), **kw) -> dict:
        return self.reply(self.send(op, fds, **kw))

    def event(self, kind: str, key: str, value) -> dict:
        for msg in list(self.events):
            if msg.get("event") == kind and msg.get(key) == value:
                self.events.remove(msg)
                return msg
        while True:
            msg = self.next_message()
            if msg.get("event") == kind and msg.get(key) == value:
                return msg
            self.events.append(msg)

    def close(self) -> None:
        self.sock.close()
