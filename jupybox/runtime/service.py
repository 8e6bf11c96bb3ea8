"""The CLI's ``run --rm`` through the store's launcher daemon, kept for a few seconds.

A ``jupybox run --rm IMAGE CMD`` run as a process of its own spends most of its time importing the
runtime and making a sandbox (cgroup, namespaces, PID 1) before the command can start. The
launcher daemon that serves the notebook kernel keeps sandboxes made ahead; run as a service
(``launcherd --listen``), one per store and user, it serves the CLI too: the CLI then only parses
its arguments, connects, hands over its stdin/stdout/stderr (SCM_RIGHTS) and waits for the exit.

- The daemon is spawned by the first ``run --rm`` and leaves after ``launcherd.LINGER`` seconds
  with no client and no container (docker and podman keep a service for the same reason).
- Its socket is abstract (no file to leave behind after a kill -9; one per network namespace,
  which is right: the daemon makes bridges in its own) and named by a hash of everything that
  would make a daemon differ: the store, the user, this installation, the mount namespace, the
  environment it reads.
  Both ends check the other's uid (SO_PEERCRED).
- A kill -9 of the CLI closes its connection: the daemon kills the container it started attached,
  and removes it (--rm). The CLI passes the signals a foreground monitor passes to PID 1.
- ``JUPYBOX_CLI_DAEMON_LINGER`` changes the linger (seconds; tests use a short one).
- ``JUPYBOX_CLI_DAEMON=0`` keeps the CLI as its own monitor (the test suite's default, so that
  each test's processes end with it; tests/cli/test_service.py covers this path).
"""

from __future__ import annotations

import os
import socket
import sys
import time

from . import wire

# what the daemon reads from its environment: a daemon spawned with other values is another one
ENV_KEYS = ("JUPYBOX_CGROUP_PARENT", "JUPYBOX_OVERLAY", "JUPYBOX_ISOLATION", "XDG_DATA_HOME", "PYTHONPATH")
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 15.0


def enabled() -> bool:
    return os.environ.get("JUPYBOX_CLI_DAEMON", "1") != "0"


def address(root: str) -> str:
    """The abstract socket name of the daemon for ``root`` (and this user, installation, env)."""
    try:
        from _blake2 import blake2b  # builtin: hashlib would load OpenSSL (~2 ms) for one hash
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import blake2b
    try:  # a daemon in another mount namespace may see other files under the same path
        mnt = str(os.stat("/proc/self/ns/mnt").st_ino)
    except OSError:
        mnt = ""
    key = "\0".join([os.path.realpath(root), str(os.geteuid()), sys.executable, PKG_PARENT, mnt]
                    + [os.environ.get(k, "") for k in ENV_KEYS])
    return f"jupybox-{os.geteuid()}-{blake2b(key.encode(), digest_size=12).hexdigest()}"


def connect(name: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect("\0" + name)
        if wire.peer_uid(sock) == os.geteuid():
            return sock
    except OSError:
        pass
    sock.close()  # nobody there, or somebody else's socket under our name: not ours to talk to
    return None


def spawn(root: str, name: str) -> int:
    """Start the daemon in a session of its own (it outlives this process); return its pid."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    env = dict(os.environ)
    # the daemon must import this very jupybox, wherever it was imported from
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    log = os.open(os.path.join(root, "launcherd.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        return os.posix_spawn(
            sys.executable, [sys.executable, "-m", "jupybox.runtime.launcherd", "--listen", name, "--root", root]
            + (["--linger", os.environ["JUPYBOX_CLI_DAEMON_LINGER"]] if os.environ.get("JUPYBOX_CLI_DAEMON_LINGER") else []),
            env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, log, 1),
                               (os.POSIX_SPAWN_DUP2, log, 2)], setsid=True)
    finally:
        os.close(devnull)
        os.close(log)


def connect_or_spawn(root: str) -> socket.socket:
    from .. import errors

    name = address(root)
    sock = connect(name)
    if sock is not None:
        return sock
    pid = spawn(root, name)
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.002
    while sock is None:
        if time.monotonic() > deadline:
            raise errors.RuntimeFailure(f"the jupybox launcher did not start (see {root}/launcherd.log)")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        sock = connect(name)
        try:
            if os.waitpid(pid, os.WNOHANG)[0] and sock is None:
                sock = connect(name)  # it left: another daemon won the name, or it failed
                if sock is None:
                    raise errors.RuntimeFailure(f"the jupybox launcher exited at start (see {root}/launcherd.log)")
        except ChildProcessError:
            pass
    return sock


def run(root: str, spec: dict, stdin: int) -> int:
    """Run an attached ``--rm`` container through the store's daemon; return its exit code."""
    from .. import errors
    from .signals import forwarding_signals

    sock = connect_or_spawn(root)
    try:
        wire.send(sock, {"op": "run", "req": 1, "spec": spec, "attached": True}, (stdin, 1, 2))
        cid = pid = None
        held: list[int] = []  # signals that came before the container did: passed on when it is there

        def forward(signum: int) -> None:
            if pid is None:
                held.append(signum)
                return
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

        with forwarding_signals(forward):
            while True:
                got = wire.recv(sock)
                if got is None:
                    raise errors.RuntimeFailure("the jupybox launcher exited unexpectedly")
                msg, fds = got
                for fd in fds:
                    os.close(fd)
                if msg.get("reply") == 1:
                    if msg.get("error"):
                        wire.raise_error(msg["error"])
                    cid, pid = msg["id"], msg["pid"]
                    for signum in held:
                        forward(signum)
                elif msg.get("event") == "exit" and msg.get("id") == cid:
                    return msg["exit_code"]
    finally:
        sock.close()
