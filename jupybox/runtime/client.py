"""The kernel's side of the launcher daemon (see ``launcherd``).

Spawned with posix_spawn (subprocess), never fork: safe from a threaded process of any size.
A reader thread takes replies and exit events off the socket, so a cell waiting for its
container, a live chart and a second ``%container exec`` can all use one daemon at once.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading

from .. import errors
from . import wire


class LauncherClient:
    def __init__(self, root: str | None = None):
        self.root = root
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        cmd = [sys.executable, "-m", "jupybox.runtime.launcherd", "--fd", str(theirs.fileno())]
        if root:
            cmd += ["--root", str(root)]
        env = dict(os.environ)
        # the daemon must import this very jupybox, wherever it was imported from
        pkg_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log_path = os.path.join(root, "launcherd.log") if root else os.devnull
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env, start_new_session=True,
            )
        theirs.close()
        self.sock = mine
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, dict] = {}
        self._exits: dict[str, dict] = {}
        self._exec_exits: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, name="jupybox-launcher", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while True:
                got = wire.recv(self.sock)
                if got is None:
                    break
                msg, fds = got
                for fd in fds:
                    os.close(fd)
                with self._cond:
                    if "reply" in msg:
                        self._replies[msg["reply"]] = msg
                    elif msg.get("event") == "exit":
                        self._exits[msg["id"]] = msg
                    elif msg.get("event") == "exec-exit":
                        self._exec_exits[msg["token"]] = msg
                    self._cond.notify_all()
        except OSError:
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def request(self, op: str, fds=(), **kw) -> dict:
        req = next(self._ids)
        with self._send_lock:
            try:
                wire.send(self.sock, dict(kw, op=op, req=req), fds)
            except OSError as e:
                raise errors.RuntimeFailure(f"the jupybox launcher is gone: {e}") from None
        with self._cond:
            while req not in self._replies:
                if self._closed:
                    raise errors.RuntimeFailure("the jupybox launcher exited unexpectedly")
                self._cond.wait()
            reply = self._replies.pop(req)
        if reply.get("error"):
            wire.raise_error(reply["error"])
        return reply

    def alive(self) -> bool:
        return not self._closed and self.proc.poll() is None

    def run(self, spec_dict: dict, stdio=None, attached: bool = True) -> dict:
        return self.request("run", fds=stdio or (), spec=spec_dict, attached=attached)

    def start(self, cid: str) -> dict:
        return self.request("start", id=cid, attached=False)

    def wait_exit(self, cid: str, timeout: float | None = None) -> dict | None:
        """The exit event of a container this daemon started; None if it is not ours."""
        with self._cond:
            ok = self._cond.wait_for(lambda: cid in self._exits or self._closed, timeout)
            if not ok:
                raise TimeoutError(f"container {cid[:12]} still running")
            return self._exits.get(cid)

    def exec(self, cid: str, argv, env, workdir, user, stdio) -> int:
        reply = self.request("exec", fds=stdio, id=cid, argv=list(argv), env=env, workdir=workdir, user=user)
        token = reply["token"]
        with self._cond:
            self._cond.wait_for(lambda: token in self._exec_exits or self._closed)
            if token not in self._exec_exits:
                raise errors.RuntimeFailure("the jupybox launcher exited during exec")
            return self._exec_exits.pop(token)["exit_code"]

    def close(self) -> None:
        """Attached containers die with the connection; detached ones finish under the daemon."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
