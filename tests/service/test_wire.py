"""The service's wire: JSON frames checked against a schema, with limits; never pickle. Fuzzed with
hypothesis (the decoder and the request checker must answer every input with a value or a clean
error), then fed garbage for real: a live service answers each bad frame with an error (or ends
that one connection) and goes on serving its other clients."""

from __future__ import annotations

import json
import os
import pickle
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupybox import errors
from jupybox.service import address, messages, wire

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                    max_leaves=20)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_decode_any_bytes(data):
    try:
        obj = wire.decode(data)
    except wire.FrameError:
        return
    assert isinstance(obj, dict) and obj["v"] == wire.VERSION


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["v", "op", "req", "spec", "id", "argv", "force", "signal", "x"]), JSON,
                       max_size=6))
def test_validate_any_object(obj):
    try:
        ok = messages.validate(obj)
    except errors.UsageError:
        return
    assert ok["op"] in messages.REQUESTS


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_validate_any_spec(spec):
    try:
        messages.validate({"v": 1, "op": "run", "req": 1, "spec": spec})
    except errors.UsageError:
        return
    assert isinstance(spec, dict) and isinstance(spec.get("image"), str)


def test_reader_splits_and_bounds_frames():
    a, b = socket.socketpair()
    try:
        b.setblocking(False)
        reader = wire.Reader(b)
        a.sendall(wire.encode({"op": "ping", "req": 1}) + wire.encode({"op": "ping", "req": 2})[:5])
        assert reader.feed()
        got = [m for m, _ in reader.frames()]
        assert [m["req"] for m in got] == [1]
        a.sendall(wire.encode({"op": "ping", "req": 2})[5:] + struct.pack(">I", wire.MAX_FRAME + 1) + b"x")
        assert reader.feed()
        got = list(reader.frames())
        assert got[0][0]["req"] == 2 and isinstance(got[1][0], wire.FrameError) and got[1][0].fatal
    finally:
        a.close()
        b.close()


def _connect(root) -> socket.socket:
    sock = address.connect(root)
    assert sock is not None
    sock.settimeout(10)
    return sock


def _reply(sock) -> dict | None:
    got = wire.recv(sock)
    return None if got is None else got[0]


@pytest.mark.root
def test_a_live_service_survives_garbage(jupybox_root):
    from jupybox.service.client import Connection

    conn = Connection(jupybox_root)  # spawns the service
    pid = conn.service_pid
    bad = [
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps({"v": 2, "op": "ping", "req": 1}).encode(),
        json.dumps({"v": 1, "op": "format-the-disk", "req": 1}).encode(),
        json.dumps({"v": 1, "op": "run", "req": 1, "spec": {"image": 5}}).encode(),
        json.dumps({"v": 1, "op": "run", "req": 1, "spec": {"image": "x", "limits": {"memory": "lots"}}}).encode(),
        json.dumps({"v": 1, "op": "kill", "req": 1, "id": "x", "signal": 99}).encode(),
        json.dumps({"v": 1, "op": "exec", "req": 1, "id": "x", "argv": []}).encode(),
        json.dumps({"v": 1, "op": "ping", "req": "1"}).encode(),
        pickle.dumps({"op": "ping", "req": 1}),
        b"\xff\xfe" * 10,
        json.dumps({"v": 1, "op": "ping", "req": 1, "a": [[[[[[[[[[[]]]]]]]]]]]}).encode(),
    ]
    for body in bad:
        sock = _connect(jupybox_root)
        sock.sendall(struct.pack(">I", len(body)) + body)
        reply = _reply(sock)
        assert reply is not None and reply.get("error"), (body, reply)
        assert "\n" not in reply["error"]["msg"]
        sock.close()
    # a frame too large, and one of length zero: that connection ends, nothing else does
    for head in (struct.pack(">I", wire.MAX_FRAME + 1), struct.pack(">I", 0)):
        sock = _connect(jupybox_root)
        sock.sendall(head + b"x" * 64)
        reply = _reply(sock)
        assert reply is None or reply.get("error")
        assert _reply(sock) is None  # hung up
        sock.close()
    # a pickle sent the way the old launcher took it (8-byte length, then the pickle)
    sock = _connect(jupybox_root)
    evil = pickle.dumps(("ping",))
    sock.sendall(len(evil).to_bytes(8, "little") + evil)
    first = _reply(sock)  # read as a frame of an absurd length: an error, then the end of the connection
    assert first is None or first.get("error")
    sock.close()
    # still the same service, still serving
    assert conn.call("ping")["pid"] == pid
    conn.close()
    log = open(address.log_path(str(jupybox_root))).read()
    assert "not JSON" in log and os.path.exists(f"/proc/{pid}")
