"""HTTP transports for the registry client, in the shape of httpx's.

A transport turns one :class:`Request` into one streaming :class:`Response`; it
knows nothing about registries, auth or retries. :class:`HTTPTransport` speaks
HTTP/1.1 with the standard library (``http.client``), keeping one keep-alive
connection per (thread, scheme, host, port); :class:`MockTransport` calls a
function, for tests that are about the client and not about the network.

Retries live one level up, in :func:`send_with_retries`, so that they apply to
any transport (a fake one included): 5xx answers and dropped connections are
retried a bounded number of times with exponential backoff, as long as the
request body can be replayed.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping

from ..errors import RegistryError

CHUNK = 1 << 20  # read/write granularity for bodies

__all__ = [
    "Headers",
    "Request",
    "Response",
    "Transport",
    "HTTPTransport",
    "MockTransport",
    "TransportError",
    "send_with_retries",
    "is_insecure_host",
]


class TransportError(RegistryError):
    """The connection failed or dropped (after the retries, if any)."""


class Headers:
    """A small case-insensitive multi-dict (the last value wins for ``get``)."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] | None = None):
        self._items: list[tuple[str, str]] = []
        if items is None:
            return
        if isinstance(items, Headers):
            items = items.items()
        elif isinstance(items, Mapping):
            items = items.items()
        for k, v in items:
            self._items.append((str(k), str(v)))

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in reversed(self._items):
            if k.lower() == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._items if k.lower() == name]

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __setitem__(self, name: str, value: str) -> None:
        self.pop(name)
        self._items.append((name, str(value)))

    def setdefault(self, name: str, value: str) -> str:
        cur = self.get(name)
        if cur is None:
            self._items.append((name, str(value)))
            return str(value)
        return cur

    def pop(self, name: str) -> None:
        low = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != low]

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def copy(self) -> "Headers":
        return Headers(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Request:
    """One HTTP request.

    ``body`` is ``None``, ``bytes``, or a readable binary file object (sent from
    its current position; ``Content-Length`` must then be given). A file body is
    replayable when it is seekable: :func:`send_with_retries` rewinds it.
    """

    def __init__(self, method: str, url: str, headers=None, body=None):
        self.method = method.upper()
        self.url = url
        self.headers = Headers(headers)
        self.body = body

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response:
    """A streaming response: read it with :meth:`read`/:meth:`iter_bytes`, or
    take :attr:`content`, and :meth:`close` it (or use ``with``) when done."""

    def __init__(self, status: int, headers=None, stream=None, content: bytes | None = None,
                 reason: str = "", request: Request | None = None, on_close: Callable[[], None] | None = None):
        self.status = status
        self.status_code = status  # httpx spelling
        self.reason = reason or http.client.responses.get(status, "")
        self.headers = Headers(headers)
        self.request = request
        self.url = request.url if request is not None else ""
        if stream is None:
            stream = io.BytesIO(content or b"")
        self._stream = stream
        self._content: bytes | None = None
        self._on_close = on_close
        self._closed = False

    def read(self, n: int = -1) -> bytes:
        if self._content is not None:
            return b""
        if n is None or n < 0:
            return self._stream.read()
        return self._stream.read(n)

    def readinto(self, buf) -> int:
        if self._content is not None:
            return 0
        r = getattr(self._stream, "readinto", None)
        if r is not None:
            return r(buf) or 0
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def iter_bytes(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        while True:
            b = self.read(chunk_size)
            if not b:
                return
            yield b

    @property
    def content(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._stream.read()
            finally:
                self.close()
        return self._content

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        cb, self._on_close = self._on_close, None
        if cb is not None:
            cb()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"


class Transport:
    """The interface: ``handle_request(request) -> Response``."""

    def handle_request(self, request: Request) -> Response:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class MockTransport(Transport):
    """Calls ``handler(request) -> Response`` (like ``httpx.MockTransport``)."""

    def __init__(self, handler: Callable[[Request], Response]):
        self.handler = handler

    def handle_request(self, request: Request) -> Response:
        # consume a file body so that handlers see bytes, like a server would
        if request.body is not None and not isinstance(request.body, (bytes, bytearray, memoryview)):
            n = request.headers.get("Content-Length")
            body = request.body.read(int(n)) if n is not None else request.body.read()
            request = Request(request.method, request.url, request.headers, bytes(body))
        resp = self.handler(request)
        if resp.request is None:
            resp.request = request
            resp.url = request.url
        return resp


_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _split_hostport(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.find("]")
        name = host[1:end]
        rest = host[end + 1:]
        return name, int(rest[1:]) if rest.startswith(":") else None
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name, int(port) if port.isdigit() else None
    return host, None


def is_insecure_host(host: str, insecure_registries: Iterable[str] = ()) -> bool:
    """Plain http like docker: localhost and 127.0.0.0/8, and the hosts listed
    (``host`` or ``host:port``; a ``.`` prefix matches subdomains)."""
    name, _ = _split_hostport(host.lower())
    if name in _LOCAL_HOSTS or name.startswith("127."):
        return True
    for entry in insecure_registries or ():
        entry = entry.lower().strip()
        entry = entry.split("://", 1)[-1].rstrip("/")
        if not entry:
            continue
        if entry == host.lower() or entry == name:
            return True
        if entry.startswith(".") and name.endswith(entry):
            return True
    return False


class _Pool(threading.local):
    def __init__(self) -> None:
        self.conns: dict[tuple[str, str], http.client.HTTPConnection] = {}


class HTTPTransport(Transport):
    """HTTP/1.1 over ``http.client``, one keep-alive connection per thread and origin.

    A request that fails on a *reused* connection before any answer arrives is
    sent again once on a fresh connection (the server closed the idle socket);
    everything else surfaces as :class:`TransportError` for the retry layer.
    """

    def __init__(self, timeout: float = 60.0, ssl_context: ssl.SSLContext | None = None,
                 blocksize: int = CHUNK):
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.blocksize = blocksize
        self._pool = _Pool()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        host, port = _split_hostport(netloc)
        if scheme == "https":
            ctx = self.ssl_context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=ctx,
                                               blocksize=self.blocksize)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout, blocksize=self.blocksize)
        with self._lock:
            self._all.append(conn)
        return conn

    def handle_request(self, request: Request) -> Response:
        u = urllib.parse.urlsplit(request.url)
        scheme = u.scheme.lower()
        if scheme not in ("http", "https"):
            raise TransportError(f"unsupported URL scheme: {request.url}")
        key = (scheme, u.netloc)
        path = u.path or "/"
        if u.query:
            path += "?" + u.query
        headers = request.headers.copy()
        body = request.body
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if body is not None and "Content-Length" not in headers:
            if isinstance(body, bytes):
                headers["Content-Length"] = str(len(body))
            else:
                raise TransportError("a streamed request body needs a Content-Length")
        elif body is None and request.method in ("POST", "PUT", "PATCH") and "Content-Length" not in headers:
            headers["Content-Length"] = "0"
        start = body.tell() if body is not None and not isinstance(body, bytes) and _seekable(body) else None

        for attempt in (0, 1):
            # check the connection out of this thread's pool; it goes back when its response is closed
            conn = self._pool.conns.pop(key, None)
            reused = conn is not None
            if conn is None:
                conn = self._connect(scheme, u.netloc)
            sent_any = False
            try:
                conn.putrequest(request.method, path, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                conn.endheaders()
                if body is not None:
                    if isinstance(body, bytes):
                        if body:
                            sent_any = True
                            conn.send(body)
                    else:
                        remaining = int(headers["Content-Length"])
                        while remaining > 0:
                            chunk = body.read(min(self.blocksize, remaining))
                            if not chunk:
                                raise TransportError(f"request body ended {remaining} bytes early")
                            sent_any = True
                            conn.send(chunk)
                            remaining -= len(chunk)
                resp = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, socket.timeout, OSError) as e:
                self._forget(conn)
                replayable = body is None or isinstance(body, bytes) or start is not None
                if attempt == 0 and reused and replayable and isinstance(
                        e, (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
                    if start is not None and sent_any:
                        body.seek(start)
                    continue  # a stale keep-alive connection: try once more on a fresh one
                if isinstance(e, TransportError):
                    raise
                raise TransportError(f"{request.method} {_short(request.url)}: {_describe(e)}") from None
            break

        pool = self._pool

        def on_close(resp=resp, conn=conn, key=key, pool=pool):
            # a connection can be reused only once its response was read to the end
            if not resp.isclosed():
                try:
                    if resp.length is not None and resp.length <= 65536:
                        resp.read()  # drain a small remainder and keep the connection
                except Exception:
                    pass
            if resp.isclosed() and conn.sock is not None and key not in pool.conns:
                pool.conns[key] = conn
            else:
                self._forget(conn)

        return Response(resp.status, resp.getheaders(), stream=_Reader(resp, request), reason=resp.reason,
                        request=request, on_close=on_close)

    def _forget(self, conn: http.client.HTTPConnection) -> None:
        try:
            conn.close()
        finally:
            with self._lock:
                try:
                    self._all.remove(conn)
                except ValueError:
                    pass

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
        self._pool = _Pool()


class _Reader:
    """Wraps an ``HTTPResponse`` so that socket errors become TransportError."""

    def __init__(self, resp: http.client.HTTPResponse, request: Request):
        self._resp = resp
        self._request = request

    def _fail(self, e: BaseException):
        raise TransportError(
            f"{self._request.method} {_short(self._request.url)}: connection dropped: {_describe(e)}") from None

    def _check_eof(self, got: int, asked: int) -> None:
        # http.client returns b"" when the peer closes before Content-Length was reached
        if got == 0 and asked != 0 and self._resp.length:
            raise TransportError(f"{self._request.method} {_short(self._request.url)}: connection dropped: "
                                 f"{self._resp.length} bytes missing")

    def read(self, n: int = -1) -> bytes:
        try:
            if n is None or n < 0:
                data = self._resp.read()
            else:
                data = self._resp.read(n)
        except (ConnectionError, http.client.HTTPException, socket.timeout, OSError) as e:
            self._fail(e)
        self._check_eof(len(data), 1 if n is None or n < 0 else n)
        return data

    def readinto(self, buf) -> int:
        try:
            got = self._resp.readinto(buf)
        except (ConnectionError, http.client.HTTPException, socket.timeout, OSError) as e:
            self._fail(e)
        self._check_eof(got, len(buf))
        return got


def _seekable(f) -> bool:
    try:
        return bool(f.seekable())
    except Exception:
        return False


def _describe(e: BaseException) -> str:
    if isinstance(e, http.client.IncompleteRead):
        return f"incomplete read ({len(e.partial)} bytes, {e.expected} more expected)"
    if isinstance(e, socket.timeout):
        return "timed out"
    if isinstance(e, ssl.SSLError):
        return f"TLS error: {e.reason or e}"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    text = str(e) or type(e).__name__
    return text.replace("\n", " ")


def _short(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.scheme}://{u.netloc}{u.path}"


RETRY_STATUSES = frozenset({500, 502, 503, 504})


def send_with_retries(transport: Transport, request: Request, *, retries: int = 3, backoff: float = 0.25,
                      max_backoff: float = 4.0, sleep: Callable[[float], None] = time.sleep) -> Response:
    """Send ``request``; retry a 5xx answer or a dropped connection up to
    ``retries`` times (waits ``backoff``, ``2*backoff``, ... capped at
    ``max_backoff``, honouring a ``Retry-After`` of a few seconds). A request
    whose body cannot be rewound is sent once. The last 5xx response is returned
    as it is, so that the caller turns it into a clear error."""
    body = request.body
    start = None
    replayable = body is None or isinstance(body, (bytes, bytearray, memoryview))
    if not replayable and _seekable(body):
        start = body.tell()
        replayable = True
    attempt = 0
    while True:
        try:
            resp = transport.handle_request(request)
        except TransportError:
            if attempt >= retries or not replayable:
                raise
        else:
            if resp.status not in RETRY_STATUSES or attempt >= retries or not replayable:
                return resp
            delay_hint = resp.headers.get("Retry-After")
            resp.close()
            if delay_hint and delay_hint.isdigit() and int(delay_hint) <= max_backoff:
                sleep(float(delay_hint))
                attempt += 1
                if start is not None:
                    body.seek(start)
                continue
        sleep(min(max_backoff, backoff * (2 ** attempt)))
        attempt += 1
        if start is not None:
            body.seek(start)


def env_insecure_registries() -> list[str]:
    """``JUPYBOX_INSECURE_REGISTRIES``: a comma-separated list of hosts."""
    return [h.strip() for h in os.environ.get("JUPYBOX_INSECURE_REGISTRIES", "").split(",") if h.strip()]
