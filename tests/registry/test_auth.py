"""WWW-Authenticate parsing, docker's config.json, Basic and Bearer flows (fake transport)."""

from __future__ import annotations

import base64
import json
import os
import stat
import urllib.parse

import pytest

from jupybox.errors import AuthError
from jupybox.registry import (AuthFile, Credentials, MockTransport, RegistryClient, Response,
                              parse_www_authenticate)
from jupybox.registry.auth import normalize_registry


def test_parse_bearer_challenge():
    (c,) = parse_www_authenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/busybox:pull"}


def test_parse_several_challenges_and_escapes():
    cs = parse_www_authenticate('Basic realm="a \\"q\\" b", Bearer realm="https://x/t",scope="s1 s2",error=insufficient_scope')
    assert [c.scheme for c in cs] == ["basic", "bearer"]
    assert cs[0].realm == 'a "q" b'
    assert cs[1].params["scope"] == "s1 s2"
    assert cs[1].params["error"] == "insufficient_scope"
    assert parse_www_authenticate(["Basic realm=r", 'Bearer realm="t"']) == [
        type(cs[0])("basic", {"realm": "r"}), type(cs[0])("bearer", {"realm": "t"})]
    assert parse_www_authenticate("") == []


def test_normalize_registry():
    assert normalize_registry("https://index.docker.io/v1/") == "docker.io"
    assert normalize_registry("http://127.0.0.1:5000/") == "127.0.0.1:5000"
    assert normalize_registry("Registry-1.Docker.io") == "docker.io"


def test_authfile_roundtrip_mode_and_foreign_keys(tmp_path):
    path = tmp_path / "d" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"other:1": {"auth": base64.b64encode(b"o:p").decode()}},
                                "credHelpers": {"x": "y"}, "psFormat": "table"}))
    f = AuthFile(path)
    f.set("127.0.0.1:5000", Credentials("alice", "s3:cr3t"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["credHelpers"] == {"x": "y"} and data["psFormat"] == "table"
    assert base64.b64decode(data["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:s3:cr3t"
    assert f.get("127.0.0.1:5000") == Credentials("alice", "s3:cr3t")
    assert f.get("http://127.0.0.1:5000/v2/") == Credentials("alice", "s3:cr3t")
    assert f.get("other:1") == Credentials("o", "p")
    assert f.get("nowhere:1") is None
    assert f.remove("127.0.0.1:5000") is True
    assert f.remove("127.0.0.1:5000") is False
    assert "127.0.0.1:5000" not in json.loads(path.read_text())["auths"]
    assert "other:1" in json.loads(path.read_text())["auths"]
    assert not [p for p in path.parent.iterdir() if p.name != "config.json"]  # no temp file left


def test_authfile_docker_hub_key(tmp_path):
    f = AuthFile(tmp_path / "config.json")
    f.set("docker.io", Credentials("u", "p"))
    assert list(json.loads((tmp_path / "config.json").read_text())["auths"]) == ["https://index.docker.io/v1/"]
    assert f.get("index.docker.io") == Credentials("u", "p")


def test_authfile_garbage_is_a_one_line_error(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(AuthError) as ei:
        AuthFile(p).get("x")
    assert "\n" not in str(ei.value) and "config.json" in str(ei.value)


class FakeTokenRegistry:
    """A registry that wants Bearer tokens from a token server at another host."""

    def __init__(self, user="u", password="p", ttl=300):
        self.user, self.password, self.ttl = user, password, ttl
        self.token_requests: list[dict] = []
        self.requests: list = []
        self.issued: dict[str, str] = {}  # token -> scope

    def __call__(self, req):
        self.requests.append(req)
        u = urllib.parse.urlsplit(req.url)
        if u.netloc == "auth.example":
            q = urllib.parse.parse_qs(u.query)
            self.token_requests.append(q)
            auth = req.headers.get("Authorization")
            want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if auth != want:
                return Response(401, content=b'{"details":"incorrect username or password"}')
            tok = f"tok{len(self.issued)}"
            self.issued[tok] = " ".join(q.get("scope", []))
            return Response(200, content=json.dumps({"token": tok, "expires_in": self.ttl}).encode())
        auth = req.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        repo = u.path.split("/")[2] if u.path.count("/") > 2 else ""
        scope = f"repository:{repo}:pull"
        if tok is None or tok not in self.issued or (repo and scope not in self.issued[tok]):
            ch = 'Bearer realm="https://auth.example/token",service="reg.example"'
            if repo:
                ch += f',scope="{scope}"'
            return Response(401, {"WWW-Authenticate": ch}, content=b'{"errors":[{"code":"UNAUTHORIZED"}]}')
        return Response(200, {"Content-Type": "application/json"}, content=b'{"tags":["1"]}')


def test_bearer_token_fetched_once_per_scope():
    fake = FakeTokenRegistry()
    c = RegistryClient("reg.example", auth=("u", "p"), transport=MockTransport(fake))
    assert c.list_tags("a") == ["1"]
    assert c.list_tags("a") == ["1"]
    assert c.list_tags("a") == ["1"]
    assert len(fake.token_requests) == 1
    assert fake.token_requests[0]["scope"] == ["repository:a:pull"]
    assert fake.token_requests[0]["service"] == ["reg.example"]
    assert c.list_tags("b") == ["1"]
    assert len(fake.token_requests) == 2
    # only the registry host ever got the Bearer token; the token server got Basic
    for r in fake.requests:
        a = r.headers.get("Authorization") or ""
        assert a.startswith("Basic ") == (urllib.parse.urlsplit(r.url).netloc == "auth.example")
    assert c.scheme == "https"


def test_bearer_wrong_password_is_one_line_auth_error():
    fake = FakeTokenRegistry()
    c = RegistryClient("reg.example", auth=("u", "wrong"), transport=MockTransport(fake))
    with pytest.raises(AuthError) as ei:
        c.list_tags("a")
    assert "wrong username or password" in str(ei.value) and "\n" not in str(ei.value)


def test_bearer_anonymous_token():
    fake = FakeTokenRegistry(user="", password="")

    def handler(req):
        if "auth.example" in req.url and not req.headers.get("Authorization"):
            req.headers["Authorization"] = "Basic " + base64.b64encode(b":").decode()  # anonymous is ok
        return fake(req)

    c = RegistryClient("reg.example", auth=False, transport=MockTransport(handler))
    assert c.list_tags("a") == ["1"]
    assert "account" not in fake.token_requests[0]


def test_expired_token_is_refreshed():
    fake = FakeTokenRegistry(ttl=60)
    c = RegistryClient("reg.example", auth=("u", "p"), transport=MockTransport(fake))
    now = [1000.0]
    c.auth.clock = lambda: now[0]
    c.list_tags("a")
    now[0] += 50
    c.list_tags("a")
    assert len(fake.token_requests) == 1  # still valid
    now[0] += 6  # within 5 s of expiry: fetch a new one
    c.list_tags("a")
    assert len(fake.token_requests) == 2


def test_basic_is_sent_preemptively_after_first_challenge():
    seen = []
    want = "Basic " + base64.b64encode(b"u:p").decode()

    def handler(req):
        seen.append(req.headers.get("Authorization"))
        if req.headers.get("Authorization") != want:
            return Response(401, {"WWW-Authenticate": 'Basic realm="r"'})
        return Response(200, content=b"{}")

    c = RegistryClient("127.0.0.1:1", auth=("u", "p"), transport=MockTransport(handler))
    c.ping()
    c.ping()
    assert seen == [None, want, want]
    assert c.scheme == "http"  # loopback: plain http like docker


def test_basic_without_credentials_says_how_to_log_in():
    c = RegistryClient("127.0.0.1:1", auth=False,
                       transport=MockTransport(lambda r: Response(401, {"WWW-Authenticate": 'Basic realm="r"'})))
    with pytest.raises(AuthError, match="jupybox login 127.0.0.1:1"):
        c.ping()


def test_credentials_come_from_the_authfile(tmp_path):
    AuthFile(tmp_path / "c.json").set("reg.example:5000", Credentials("u", "p"))
    c = RegistryClient("reg.example:5000", authfile=tmp_path / "c.json",
                       transport=MockTransport(lambda r: Response(200)))
    assert c.auth.credentials == Credentials("u", "p")
    assert "p" not in repr(c.auth.credentials).replace("password", "")
