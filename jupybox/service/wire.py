"""Frames between a client (the CLI, a notebook kernel, any program using the API) and the store's
service: a 4-byte length, then one JSON object; descriptors (a container's stdio) travel with a
frame's first bytes as SCM_RIGHTS.

Nothing that crosses a process boundary is unpickled: a frame is JSON, at most ``MAX_FRAME``
bytes, with at most ``MAX_FDS`` descriptors; the service then checks it against the schema of its
operation (``messages``). What does not decode is answered with an error and logged; a frame
whose length is out of bounds ends that one connection (the stream cannot be trusted after it),
never the service.

    request  {"v": 1, "op": "run", "req": 7, ...}      fds: the container's stdio, when given
    reply    {"v": 1, "reply": 7, ...} or {"v": 1, "reply": 7, "error": {"type", "msg", "code"}}
    event    {"v": 1, "event": "exit", "id": ..., "exit_code": ...}
"""

from __future__ import annotations

import json
import os
import socket
import struct

VERSION = 1
MAX_FRAME = 4 << 20  # a spec with a large environment fits; a runaway stream does not
MAX_FDS = 3
_HEAD = struct.Struct(">I")


class FrameError(Exception):
    """A frame that cannot be read: the connection is closed (``fatal``) or just this one refused."""

    def __init__(self, msg: str, fatal: bool = False):
        super().__init__(msg)
        self.fatal = fatal


def encode(obj: dict) -> bytes:
    data = json.dumps(dict(obj, v=VERSION), separators=(",", ":")).encode()
    if len(data) > MAX_FRAME:
        raise ValueError(f"message too large ({len(data)} bytes, at most {MAX_FRAME})")
    return _HEAD.pack(len(data)) + data


def send(sock: socket.socket, obj: dict, fds=()) -> None:
    data = encode(obj)
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        if sent < len(data):
            sock.sendall(data[sent:])
    else:
        sock.sendall(data)


def decode(data: bytes) -> dict:
    """One frame's body → its object (FrameError if it is not a JSON object of our version)."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise FrameError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise FrameError("not a JSON object")
    if obj.get("v") != VERSION:
        raise FrameError(f"unsupported protocol version {obj.get('v')!r} (this service speaks {VERSION})")
    return obj


class Reader:
    """Frames from a non-blocking socket, as they arrive (the service's side): ``feed`` it when
    the socket is readable, then take the complete frames out with ``frames``."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = bytearray()
        self.fds: list[int] = []

    def feed(self) -> bool:
        """Read what is there; False at EOF or on a broken connection."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        self.fds.extend(fds)
        if not data:
            return False
        self.buf += data
        return True

    def frames(self):
        """Yield (obj or FrameError, fds) for each complete frame; a fatal FrameError ends it."""
        while len(self.buf) >= 4:
            size = _HEAD.unpack_from(self.buf)[0]
            if size == 0 or size > MAX_FRAME:
                self.buf.clear()
                yield FrameError(f"a frame of {size} bytes (at most {MAX_FRAME})", fatal=True), self._take_fds()
                return
            if len(self.buf) < 4 + size:
                return
            body = bytes(self.buf[4:4 + size])
            del self.buf[:4 + size]
            fds = self._take_fds()
            try:
                yield decode(body), fds
            except FrameError as e:
                yield e, fds

    def _take_fds(self) -> list[int]:
        """The descriptors that came with the frame just read (at most MAX_FDS; others closed)."""
        fds, self.fds = self.fds[:MAX_FDS], []
        return fds

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def recv(sock: socket.socket) -> tuple[dict, list[int]] | None:
    """One frame from a blocking socket (the client's side); None at EOF."""
    head, fds, _flags, _addr = socket.recv_fds(sock, 4, MAX_FDS)
    while head and len(head) < 4:
        more = sock.recv(4 - len(head))
        if not more:
            break
        head += more
    if len(head) < 4:
        _close(fds)
        return None
    size = _HEAD.unpack(head)[0]
    if size == 0 or size > MAX_FRAME:
        _close(fds)
        raise FrameError(f"a frame of {size} bytes (at most {MAX_FRAME})", fatal=True)
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if not n:
            _close(fds)
            return None
        got += n
    return decode(bytes(buf)), fds


def _close(fds) -> None:
    for fd in fds:
        os.close(fd)


def error_reply(req, exc: BaseException) -> dict:
    """The reply that carries a JupyboxError (any other exception: as a RuntimeFailure)."""
    from .. import errors

    if isinstance(exc, errors.JupyboxError):
        return {"reply": req, "error": {"type": type(exc).__name__, "msg": str(exc), "code": exc.exit_code}}
    return {"reply": req, "error": {"type": "RuntimeFailure", "msg": f"{type(exc).__name__}: {exc}", "code": 125}}


def raise_error(err) -> None:
    """Raise the JupyboxError a reply carries (``{"type", "msg", "code"}``)."""
    from .. import errors

    if not isinstance(err, dict):
        err = {"msg": str(err)}
    cls = getattr(errors, str(err.get("type", "")), errors.RuntimeFailure)
    if not (isinstance(cls, type) and issubclass(cls, errors.JupyboxError)):
        cls = errors.RuntimeFailure
    exc = cls(str(err.get("msg", "")))
    code = err.get("code")
    exc.exit_code = code if isinstance(code, int) and 0 <= code <= 255 else 125
    raise exc


def peer_cred(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)
