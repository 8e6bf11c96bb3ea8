"""The store's service: one process per store that starts, watches and ends its containers.

    client (CLI, notebook kernel, API) ──JSON over a unix socket in <store>/run (0700)──▶ service
    service ──vfork+exec of a sealed memfd──▶ jupybox-init (C): H ─▶ PID 1 ─▶ the command

- ``address``: where the socket is, who may connect (same uid, not in any container), spawning
- ``wire``, ``messages``: the frames and the schema of every request (no pickle, bounded sizes)
- ``server``: the loop and the requests; ``monitor``: exits, releases, cleanups, waits;
  ``pool``: sandboxes made ahead; ``adopt``: taking over after a crash of a previous service
- ``client``: the threaded client of the API and the blocking connection of the CLI
"""

from __future__ import annotations


def stop(root, force: bool = True, timeout: float = 30.0) -> bool:
    """Shut down the service of ``root`` if one runs (``force``: killing its containers), and wait
    until it has exited; True if one was running. Tests use it so that their leak checks see a
    store with nothing alive."""
    from . import address

    sock = address.connect(root)
    if sock is None:
        return False
    _shut_down(sock, force, timeout, raise_errors=True)
    return True


def adopt_orphans(engine) -> None:
    """Containers recorded as running whose service died are re-adopted by the next one: start it
    (``ping``) before reading them, so a listing says how they are now."""
    from .server import orphans

    if orphans(engine):
        from .client import Connection

        conn = Connection(engine.layout.root)
        try:
            conn.call("ping")
        finally:
            conn.close()


def stop_all(root) -> None:
    """Shut down every service of the store ``root`` (each configuration has its own: another
    environment, another service), killing their containers."""
    import os

    run = os.path.join(os.fspath(root), "run")
    try:
        names = [n[:-5] for n in os.listdir(run) if n.endswith(".sock")]
    except OSError:
        return
    for name in names:
        _shutdown_socket(run, name)


def _shutdown_socket(directory: str, name: str, timeout: float = 30.0) -> None:
    import os
    import socket

    from . import address

    target, dirfd = address.sock_path(directory, name + ".sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        return
    finally:
        if dirfd >= 0:
            os.close(dirfd)
    _shut_down(sock, True, timeout, raise_errors=False)


def _shut_down(sock, force: bool, timeout: float, raise_errors: bool) -> None:
    """Ask the service at the other end of ``sock`` to shut down, then wait (``timeout`` s at most)
    until it has exited; ``sock`` is closed. ``raise_errors``: its refusal is raised."""
    import os
    import select

    from . import wire

    pid = wire.peer_cred(sock)[0]
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        wire.send(sock, {"op": "shutdown", "req": 1, "force": force})
        while (got := wire.recv(sock)) is not None:
            msg, fds = got
            for fd in fds:
                os.close(fd)
            if msg.get("reply") == 1:
                if msg.get("error") and raise_errors:
                    if pidfd >= 0:
                        os.close(pidfd)
                    wire.raise_error(msg["error"])
                break
    except OSError:
        pass
    finally:
        sock.close()
    if pidfd >= 0:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(timeout * 1000)
        os.close(pidfd)
        try:
            os.waitpid(pid, os.WNOHANG)  # ours when this process started it
        except ChildProcessError:
            pass
