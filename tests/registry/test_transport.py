"""Retries, keep-alive and dropped connections: a fake transport, and a real socket server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import threading

import pytest

from jupybox.errors import DigestMismatch, RegistryError
from jupybox.registry import HTTPTransport, MockTransport, RegistryClient, Request, Response, TransportError
from jupybox.registry.transport import is_insecure_host, send_with_retries


def test_503_twice_then_success_is_retried_with_backoff():
    calls = []
    sleeps = []

    def handler(req):
        calls.append(req.method)
        if len(calls) <= 2:
            return Response(503, content=b"busy")
        return Response(200, content=b"{}")

    c = RegistryClient("127.0.0.1:1", auth=False, transport=MockTransport(handler), sleep=sleeps.append,
                       backoff=0.1)
    c.ping()
    assert len(calls) == 3
    assert sleeps == [0.1, 0.2]


def test_retries_are_bounded_and_the_error_is_one_line():
    calls = []

    def handler(req):
        calls.append(1)
        return Response(503, {"Content-Type": "application/json"},
                        content=b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}')

    c = RegistryClient("127.0.0.1:1", auth=False, transport=MockTransport(handler), sleep=lambda s: None,
                       retries=3)
    with pytest.raises(RegistryError) as ei:
        c.ping()
    assert len(calls) == 4  # 1 + 3 retries
    assert "503" in str(ei.value) and "try later" in str(ei.value) and "\n" not in str(ei.value)


def test_dropped_connection_is_retried_and_4xx_is_not():
    calls = []

    def handler(req):
        calls.append(1)
        if len(calls) == 1:
            raise TransportError("GET x: connection reset")
        return Response(404, content=b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}')

    c = RegistryClient("127.0.0.1:1", auth=False, transport=MockTransport(handler), sleep=lambda s: None)
    with pytest.raises(RegistryError, match="repository name not known"):
        c.list_tags("nope")
    assert len(calls) == 2


def test_a_body_that_cannot_be_rewound_is_sent_once():
    class OneShot(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            return 0

        def seekable(self):
            return False

    calls = []

    def handler(req):
        calls.append(1)
        return Response(503)

    t = MockTransport(handler)
    req = Request("PATCH", "http://127.0.0.1:1/x", {"Content-Length": "0"}, OneShot())
    resp = send_with_retries(t, req, retries=3, sleep=lambda s: None)
    assert resp.status == 503 and len(calls) == 1


def test_insecure_hosts():
    assert is_insecure_host("localhost:5000")
    assert is_insecure_host("127.0.0.1:5000")
    assert is_insecure_host("127.1.2.3")
    assert is_insecure_host("[::1]:5000")
    assert not is_insecure_host("ghcr.io")
    assert is_insecure_host("reg.lan:5000", ["reg.lan:5000"])
    assert is_insecure_host("reg.lan:5000", ["reg.lan"])
    assert is_insecure_host("a.corp", [".corp"])
    assert not is_insecure_host("reg.lan:5000", ["other.lan"])
    assert RegistryClient("ghcr.io", auth=False).base == "https://ghcr.io"
    assert RegistryClient("docker.io", auth=False).base == "https://registry-1.docker.io"
    assert RegistryClient("reg.lan:5000", auth=False, insecure_registries=["reg.lan:5000"]).base == "http://reg.lan:5000"


# ------------------------------------------------------------------ a real server on loopback

BLOB = os.urandom(3 * 1024 * 1024 + 17)
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-registry"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range"), self.client_address[1]))
        if self.path == "/v2/":
            self._send(200, b"{}")
            return
        if self.path.startswith("/redirect/"):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{srv.server_address[1]}/storage/x")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/storage/") or "/blobs/" in self.path:
            data = srv.blob
            start = 0
            rng = self.headers.get("Range")
            if rng and srv.ranges:
                start = int(rng.split("=")[1].rstrip("-"))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if srv.drops > 0:
                srv.drops -= 1
                self.wfile.write(body[: len(body) // 3])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)
            return
        self._send(404, b'{"errors":[{"code":"NOT_FOUND","message":"nope"}]}')

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    srv.blob = BLOB
    srv.drops = 0
    srv.ranges = True
    srv.daemon_threads = True
    srv.handle_error = lambda *a: None  # the dropped connections are on purpose
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_keep_alive_one_connection_for_many_requests(server):
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False)
    for _ in range(20):
        c.ping()
    ports = {p for _, _, p in server.requests}
    assert len(server.requests) == 20 and len(ports) == 1
    c.close()


def test_one_connection_per_thread(server):
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False)
    ts = [threading.Thread(target=lambda: [c.ping() for _ in range(5)]) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({p for _, _, p in server.requests}) == 3
    c.close()


def test_download_resumes_after_a_dropped_connection(server):
    server.drops = 2
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False, sleep=lambda s: None)
    buf = io.BytesIO()
    n = c.download_blob("x", BLOB_DIGEST, buf, size=len(BLOB))
    assert n == len(BLOB) and buf.getvalue() == BLOB
    ranges = [r for _, r, _ in server.requests]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[2].startswith("bytes=")


def test_download_resumes_without_range_support(server):
    server.drops = 1
    server.ranges = False
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False, sleep=lambda s: None)
    buf = io.BytesIO()
    c.download_blob("x", BLOB_DIGEST, buf, size=len(BLOB))
    assert buf.getvalue() == BLOB


def test_download_gives_up_after_the_retries(server):
    server.drops = 100
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False, sleep=lambda s: None, retries=2)
    with pytest.raises(TransportError, match="connection dropped"):
        c.download_blob("x", BLOB_DIGEST, io.BytesIO(), size=len(BLOB))


def test_wrong_digest_while_streaming(server):
    # flip a bit: replacing the last byte with a fixed one left the blob unchanged whenever the
    # random BLOB already ended with it (1 run in 256: the one failure on record)
    server.blob = BLOB[:-1] + bytes([BLOB[-1] ^ 1])
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False)
    with pytest.raises(DigestMismatch) as ei:
        c.download_blob("x", BLOB_DIGEST, io.BytesIO(), size=len(BLOB))
    assert BLOB_DIGEST in str(ei.value)


def test_wrong_size_is_refused_before_reading(server):
    c = RegistryClient(f"127.0.0.1:{server.server_address[1]}", auth=False)
    sink = io.BytesIO()
    with pytest.raises(DigestMismatch, match="manifest says 5"):
        c.download_blob("x", BLOB_DIGEST, sink, size=5)
    assert sink.getvalue() == b""


def test_redirects_are_followed_without_credentials(server):
    port = server.server_address[1]
    seen = []
    real = HTTPTransport()

    class Spy(HTTPTransport):
        def handle_request(self, req):
            seen.append((req.url, req.headers.get("Authorization")))
            return real.handle_request(req)

    # "localhost" is the registry; the redirect goes to 127.0.0.1, another host
    c = RegistryClient(f"localhost:{port}", auth=("u", "p"), transport=Spy())
    c.auth._scheme = "basic"
    resp = c.request("GET", "/redirect/blob", scope=None, follow_redirects=True)
    assert resp.status == 200 and resp.content == BLOB
    assert seen[0][1] and seen[0][1].startswith("Basic ")
    assert seen[1][0].startswith(f"http://127.0.0.1:{port}/storage/") and seen[1][1] is None


def test_connection_refused_is_a_one_line_error():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = RegistryClient(f"127.0.0.1:{port}", auth=False, sleep=lambda s: None, retries=1)
    with pytest.raises(TransportError) as ei:
        c.ping()
    assert "connection refused" in str(ei.value) and "\n" not in str(ei.value)
