"""The store's service: the one process that starts, watches and ends the store's containers.

Every client — the CLI, a notebook kernel, any program using the API — connects to it (see
``address``) and asks; it alone forks (through the C init: never a fork of itself), so no
container depends on the process that asked for it, a kill -9 of a CLI or a kernel takes only its
attached containers, and a kill -9 of the service takes none: the next one re-adopts them
(``adopt``). It is single-threaded: one loop (``loop``) over its clients, its containers' PID 1s
and status pipes, its sandboxes made ahead (``pool``), timers and chores.

It leaves after ``LINGER`` seconds with no client and no container, when its store is deleted or
replaced (the root directory's inode), or when asked (``shutdown``).
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import socket
import sys
import time
import traceback

from .. import errors
from ..linux import syscalls as sc
from ..runtime.engine import Engine
from ..runtime.mode import namespaces_refused
from ..runtime.spec import ContainerSpec
from ..runtime.state import Status, process_running
from . import address, messages, wire
from .loop import Loop
from .monitor import Monitor
from .pool import Pool

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
LINGER = 5.0  # seconds the service stays with no client and no container
STORE_CHECK = 1.0  # seconds between looks at whether the store still exists
STRAYS = 1.0  # seconds between looks for stray children to reap
CLEANUP_BACKLOG = 4  # cleanups waiting: one more done per chore for every this many
TRIM_AFTER = 2.0  # seconds without a request, then the heap's free pages go back to the system


class Conn:
    """A connected client, as the service sees it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.reader = wire.Reader(sock)
        self.closed = False
        self.created: set[str] = set()  # containers it created and has not started: prune leaves them


class Service:
    def __init__(self, root: str, listener: socket.socket, lock: int, sock_name: str, linger: float = LINGER):
        self.loop = Loop()
        self.engine = Engine(root)
        self.layout = self.engine.layout
        self.identity = self.layout.generation()[:2]
        self.listener = listener
        self.lock = lock
        self.sock_name = sock_name
        self.linger = linger
        self.conns: dict[int, Conn] = {}
        self.monitor = Monitor(self)
        self.pool = Pool(self)
        self.idle_since = time.monotonic()
        self.done = False
        self.shutdown_waiters: list[tuple[Conn, int]] = []
        self._kicked = False
        self._busy_at = 0.0
        self._trim_timer = None

    @property
    def accepting(self) -> bool:
        return self.listener is not None

    def log(self, text: str) -> None:
        """A line in the service's log (in the store: a full disk loses the line, not the service)."""
        try:
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} jupybox service {os.getpid()}: {text}", file=sys.stderr,
                  flush=True)
        except OSError:
            pass

    # -- the loop ---------------------------------------------------------------------------------
    def serve(self) -> None:
        sc.set_child_subreaper()
        from .adopt import adopt

        adopt(self)
        self.loop.add_reader(self.listener.fileno(), self._accept)
        self.loop.call_later(STORE_CHECK, self._check_store)
        self.loop.call_later(STRAYS, self._reap_strays)
        self.pool.fill()
        self.loop.on_error = lambda: self.log(f"a callback failed:\n{traceback.format_exc()}")
        try:
            while not self.done:
                self.loop.run_once(self._idle_timeout())
                self._check_idle()
        finally:
            self._stop_listening()
            self.pool.close()
            while self.monitor.release_lingering() or self.monitor.cleanup_one():
                pass
            for conn, req in self.shutdown_waiters:
                self.send(conn, {"reply": req})
            for conn in list(self.conns.values()):
                self._drop(conn)
            self.loop.close()

    def _idle_timeout(self) -> float | None:
        if self.accepting and self._idle():
            return max(0.0, self.linger - (time.monotonic() - self.idle_since)) + 0.001
        return None

    def _idle(self) -> bool:
        return not self.conns and self.monitor.idle()

    def _check_idle(self) -> None:
        now = time.monotonic()
        if not self._idle():
            self.idle_since = now
            if self.shutdown_waiters and self.monitor.idle():
                self.done = True
            return
        if self.shutdown_waiters or not self.accepting or now - self.idle_since >= self.linger:
            self.done = True

    def _busy(self) -> None:
        """A request: once they stop for TRIM_AFTER, the heap is trimmed (a burst of runs leaves
        ~8 MB of freed heap that a service watching idle containers would otherwise keep)."""
        self._busy_at = time.monotonic()
        if self._trim_timer is None:
            self._trim_timer = self.loop.call_later(TRIM_AFTER, self._trim)

    def _trim(self) -> None:
        quiet = time.monotonic() - self._busy_at
        if quiet < TRIM_AFTER:
            self._trim_timer = self.loop.call_later(TRIM_AFTER - quiet, self._trim)
            return
        self._trim_timer = None
        sc.malloc_trim()

    def kick(self) -> None:
        """Something for the chores to do: release PID 1s, clean up, make a sandbox."""
        if not self._kicked:
            self._kicked = True
            self.loop.chore(self._chore)

    def _chore(self) -> None:
        """Release the PID 1s that reported an exit, and clean up after a few that have gone: a
        little at a time (a request that comes meanwhile goes first), but more when a backlog
        builds, so that a tight loop of runs (never a quiet moment) does not pile up PID 1s,
        cgroups and descriptors."""
        self._kicked = False
        released = self.monitor.release_lingering()
        cleaned = False
        for _ in range(1 + len(self.monitor.cleanups) // CLEANUP_BACKLOG):
            cleaned = self.monitor.cleanup_one() or cleaned
        if released or cleaned:
            self.kick()

    def _check_store(self) -> None:
        """A store deleted or replaced under us (rm -rf of the root): nothing here is ours to keep."""
        if self.layout.generation()[:2] != self.identity:
            self.log("the store was deleted or replaced: leaving")
            self.monitor.kill_all()
            self._stop_listening()
            self.done = True
            return
        self.pool.shrink()
        self.loop.call_later(STORE_CHECK, self._check_store)

    def _reap_strays(self) -> None:
        """As a subreaper we inherit the orphans of our containers' helpers: reap the zombies among
        them nobody else waits for (one left in a container's PID namespace would keep its PID 1
        from ever finishing its exit)."""
        tracked = {w.running.pid for w in self.monitor.watched.values()}
        tracked |= {pid for pid, _, _ in self.monitor.execs.values()}
        for pw in self.pool.sandboxes:
            tracked |= {pw.sandbox.pid, pw.sandbox.helper_pid}
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as f:
                kids = [int(p) for p in f.read().split()]
        except OSError:
            kids = []
        for pid in kids:
            if pid in tracked:
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    data = f.read()
                if data[data.rindex(b")") + 2:data.rindex(b")") + 3] == b"Z":
                    os.waitpid(pid, os.WNOHANG)
            except (OSError, ValueError):
                pass
        self.loop.call_later(STRAYS, self._reap_strays)

    # -- clients ----------------------------------------------------------------------------------
    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.log(f"accept: {e}")
            return
        why = address.check_peer(sock)
        if why is not None:
            self.log(f"refused a connection: {why}")
            sock.close()
            return
        sock.setblocking(False)
        conn = Conn(sock)
        self.conns[conn.fd] = conn
        self.loop.add_reader(conn.fd, lambda: self._readable(conn))

    def _readable(self, conn: Conn) -> None:
        self._busy()
        alive = conn.reader.feed()
        for msg, fds in conn.reader.frames():
            if isinstance(msg, wire.FrameError):
                self.log(f"client {conn.fd}: {msg}")
                for fd in fds:
                    os.close(fd)
                self.send(conn, wire.error_reply(None, errors.UsageError(str(msg))))
                if msg.fatal:
                    alive = False
                    break
                continue
            self._handle(conn, msg, fds)
            if conn.closed:
                return
        if not alive:
            self._drop(conn)

    def _drop(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.loop.remove_reader(conn.fd)
        self.conns.pop(conn.fd, None)
        conn.reader.close()
        conn.sock.close()
        self.monitor.client_left(conn)
        self.shutdown_waiters = [(c, r) for c, r in self.shutdown_waiters if c is not conn]

    def send(self, conn: Conn | None, msg: dict) -> None:
        if conn is None or conn.closed:
            return
        try:
            data = wire.encode(msg)
            view = memoryview(data)
            # a client that does not read its replies must not stall the service: it is dropped
            deadline = time.monotonic() + 5.0
            while view:
                try:
                    view = view[conn.sock.send(view):]
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OSError("the client does not read its replies") from None
                    time.sleep(0.001)
        except OSError as e:
            self.log(f"client {conn.fd}: {e}")
            self._drop(conn)

    # -- requests ---------------------------------------------------------------------------------
    def _handle(self, conn: Conn, msg: dict, fds: list[int]) -> None:
        req = msg.get("req") if isinstance(msg.get("req"), int) else None
        try:
            msg = messages.validate(msg)
            reply = getattr(self, "op_" + msg["op"])(conn, msg, fds)
        except errors.JupyboxError as e:
            reply = wire.error_reply(req, e)
        except OSError as e:
            if e.errno not in NO_SPACE:
                self.log(f"{msg.get('op')!r} request failed:\n{traceback.format_exc()}")
                reply = wire.error_reply(req, e)
            else:
                reply = wire.error_reply(req, errors.NoSpace(
                    f"no space left on device: the store {self.layout.root} is full (remove containers, images or "
                    "volumes to make room)"))
        except Exception as e:  # noqa: BLE001 - a client gets an answer, the others keep their service
            self.log(f"{msg.get('op')!r} request failed:\n{traceback.format_exc()}")
            reply = wire.error_reply(req, e)
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if reply is not None:
            self.send(conn, dict(reply, reply=req))

    def op_ping(self, conn, msg, fds) -> dict:
        return {"pid": os.getpid(), "root": str(self.layout.root), "containers": len(self.monitor.watched)}

    def op_run(self, conn, msg, fds) -> dict:
        self._accepting_or_fail()
        spec = ContainerSpec.from_dict(msg["spec"])
        pw = self.pool.take(spec)
        try:
            rec = self.engine.create(spec, prepared=pw)
        except BaseException:
            if pw is not None:
                self.pool.discard(pw)
            raise
        if pw is not None and pw.cid != rec.id:
            self.pool.discard(pw)  # a wrong guess: the next sandbox follows this container instead
            pw = None
        self.pool.template = rec.config
        self.pool.fill()  # the next sandboxes, like this container (a re-run cell is the common case)
        self.kick()
        try:
            return self._start(conn, rec, fds, msg.get("attached", True), pw, remove_on_failure=spec.remove,
                               awaits_removal=msg.get("awaits_removal", False))
        except OSError as e:
            if e.errno in NO_SPACE:  # a run that could not even start on a full disk leaves nothing
                self.engine.records.delete(rec)
            raise
        except errors.RuntimeFailure as e:
            if namespaces_refused(e):  # no container can ever run here: no "Created" one that never will
                self.engine.records.delete(rec)
            raise

    def op_create(self, conn, msg, fds) -> dict:
        self._accepting_or_fail()
        rec = self.engine.create(ContainerSpec.from_dict(msg["spec"]))
        # a container is made in two requests (a cell: create, put its files, start): until its
        # client starts it or leaves, it is being made, and prune must not take it
        conn.created.add(rec.id)
        return {"id": rec.id, "name": rec.name}

    def op_start(self, conn, msg, fds) -> dict:
        self._accepting_or_fail()
        rec = self.engine.records.get(msg["id"])
        conn.created.discard(rec.id)
        w = self.monitor.watched.get(rec.id)
        if w is not None and not w.notified:
            raise errors.StateError(f"container {rec.name} is running: it cannot be started")
        if w is not None:
            self.monitor.finish_now(w)  # exited a moment ago: its cleanup first, then the new start
        self.monitor.cancel_restart(rec)
        self.monitor.backoff.pop(rec.id, None)
        state = rec.state()
        if state.manually_stopped or state.restarting:
            state.manually_stopped = state.restarting = False
            rec.save_state(state)
        return self._start(conn, rec, fds, msg.get("attached", False), awaits_removal=msg.get("awaits_removal", False))

    def _start(self, conn, rec, fds, attached: bool, pw=None, remove_on_failure: bool = False,
               awaits_removal: bool = False) -> dict:
        opened = []
        if len(fds) >= 3:
            stdio = tuple(fds[:3])
        else:
            # detached: /dev/null (or the client's stdin, with -d -i) and the log files
            opened = list(self.engine.log_stdio(rec))
            stdio = (fds[0] if fds else opened[0], opened[1], opened[2])
        try:
            running = self.engine.start(rec, stdio, prepared=pw, linger=True, attached=attached)
        except BaseException:
            if remove_on_failure:
                self.engine.records.delete(rec)
            raise
        finally:
            for fd in opened:
                os.close(fd)
        w = self.monitor.watch(running, conn if attached else None, conn)
        w.hurry = awaits_removal and bool(rec.config["spec"].get("remove"))
        return {"id": rec.id, "name": rec.name, "pid": running.pid}

    def restart(self, rec) -> None:
        """A start by the container's restart policy (detached, its logs appended)."""
        stdio = self.engine.log_stdio(rec)
        try:
            running = self.engine.start(rec, stdio, linger=True, by_policy=True)
        finally:
            for fd in stdio:
                os.close(fd)
        self.monitor.watch(running, None, None)

    def op_exec(self, conn, msg, fds) -> dict:
        rec = self.engine.records.get(msg["id"])
        w = self.monitor.watched.get(rec.id)
        if w is None or w.notified:
            raise errors.StateError(f"container {rec.name} is not running")
        if len(fds) < 3:
            raise errors.UsageError("exec needs the process's stdin, stdout and stderr")
        pid = self.engine.exec_start(rec, w.running.pid, msg["argv"], env=msg.get("env"),
                                     workdir=msg.get("workdir"), user=msg.get("user"),
                                     privileged=msg.get("privileged"), stdio=tuple(fds[:3]))
        token = secrets.token_hex(8)
        self.monitor.watch_exec(pid, token, conn)
        return {"token": token, "pid": pid}

    def op_kill(self, conn, msg, fds) -> dict:
        rec = self.engine.records.get(msg["id"])
        self.monitor.kill(rec, msg.get("signal") or int(signal.SIGKILL))
        return {}

    def op_stop(self, conn, msg, fds) -> dict | None:
        return self.monitor.stop(conn, msg["req"], self.engine.records.get(msg["id"]), msg.get("timeout"))

    def op_remove(self, conn, msg, fds) -> dict | None:
        rec = self.engine.records.get(msg["id"])
        conn.created.discard(rec.id)
        return self.monitor.remove(conn, msg["req"], rec, msg.get("force", False))

    def op_wait(self, conn, msg, fds) -> dict | None:
        return self.monitor.wait(conn, msg["req"], self.engine.records.get(msg["id"]))

    def op_prune(self, conn, msg, fds) -> dict:
        making = set().union(*(c.created for c in self.conns.values()))
        return {"result": self.engine.prune(busy=self.monitor.busy() | self.pool.ids() | making)}

    def op_shutdown(self, conn, msg, fds) -> dict | None:
        if msg.get("force"):
            self.monitor.kill_all()
        elif self.monitor.running_count():
            raise errors.Conflict(f"{self.monitor.running_count()} containers are running: stop them first "
                                  "(or shut down with force)")
        self._stop_listening()
        self.shutdown_waiters.append((conn, msg["req"]))
        return None

    def _accepting_or_fail(self) -> None:
        if not self.accepting:
            raise errors.RuntimeFailure("the jupybox service is shutting down: try again")

    def _stop_listening(self) -> None:
        if self.listener is None:
            return
        self.loop.remove_reader(self.listener.fileno())
        path, fd = address.sock_path(str(self.layout.run), self.sock_name + ".sock")
        try:
            os.unlink(path)
        except OSError:
            pass
        finally:
            if fd >= 0:
                os.close(fd)
        self.listener.close()
        self.listener = None
        self.pool.drop_all()


def orphans(engine) -> list:
    """Containers recorded as running whose monitor is gone (a crashed service), and those whose
    restart policy waits for a service (the last one shut down): the next service re-adopts or
    starts them, so a command that reads them (ps, inspect, wait...) starts one first."""
    out = []
    for rec in engine.records.all():
        try:
            state = rec.state()
        except errors.JupyboxError:
            continue
        if state.status is Status.RUNNING and not process_running(state.monitor_pid):
            out.append(rec)
        elif state.status is Status.EXITED and state.restarting and not state.manually_stopped:
            out.append(rec)
    return out
