"""Frames between jupybox processes: an 8-byte length, file descriptors (SCM_RIGHTS), a pickle.

Only ever between processes of one user and one installation: a process and one it spawned (the
launcher daemon, a container's PID 1 waiting for its plan) over a socketpair, or the CLI and the
store's launcher daemon over an abstract socket whose both ends check the other's uid
(``runtime.service``). Pickle is safe there (that user could do anything to either process anyway)
and carries bytes (the seccomp program) and sets without conversion.
"""

from __future__ import annotations

import pickle
import socket

MAX_FDS = 16


def send(sock: socket.socket, obj, fds=()) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    head = len(data).to_bytes(8, "little")
    if fds:
        socket.send_fds(sock, [head], list(fds))
    else:
        sock.sendall(head)
    sock.sendall(data)


def recv(sock: socket.socket):
    """(obj, fds), or None at EOF."""
    head, fds, _flags, _addr = socket.recv_fds(sock, 8, MAX_FDS)
    while head and len(head) < 8:
        more = sock.recv(8 - len(head))
        if not more:
            return None
        head += more
    if not head:
        for fd in fds:
            import os

            os.close(fd)
        return None
    size = int.from_bytes(head, "little")
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if not n:
            return None
        got += n
    return pickle.loads(buf), fds


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED)."""
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def raise_error(err: dict):
    """Raise the JupyboxError a daemon's reply carries (``{"type", "msg", "code"}``)."""
    from .. import errors

    cls = getattr(errors, err.get("type", ""), errors.RuntimeFailure)
    if not (isinstance(cls, type) and issubclass(cls, errors.JupyboxError)):
        cls = errors.RuntimeFailure
    exc = cls(err["msg"])
    exc.exit_code = err["code"]
    raise exc
