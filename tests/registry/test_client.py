"""Manifests that are wrong in every way a registry can serve them (fake transport)."""

from __future__ import annotations

import contextlib
import json

import pytest

from jupybox.errors import DigestMismatch, RegistryError
from jupybox.registry import MockTransport, RegistryClient, Response, pull
from jupybox.registry.pull import host_platform, parse_platform, select_manifest
from oci_helpers import OCI_MANIFEST, make_image, sha

MAN, CFG, LAYERS = make_image([{"a": b"x"}])


def serve(manifest: bytes, content_type: str = OCI_MANIFEST, blobs: dict | None = None, calls=None):
    blobs = blobs or {}

    def handler(req):
        if calls is not None:
            calls.append((req.method, req.url))
        if "/manifests/" in req.url:
            return Response(200, {"Content-Type": content_type, "Content-Length": str(len(manifest))},
                            content=manifest)
        if "/blobs/" in req.url:
            d = req.url.rsplit("/", 1)[1]
            if d in blobs:
                return Response(200, {"Content-Length": str(len(blobs[d]))}, content=blobs[d])
            return Response(404, content=b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}')
        return Response(200, content=b"{}")

    return MockTransport(handler)


class _Locks:
    @contextlib.contextmanager
    def exclusive(self, wait=True):
        yield False  # as if another writer held a lease: the failed pull's cleanup leaves the store alone


class NoStore:
    """Any store call (but the gc locks) means the client went too far."""

    locks = _Locks()

    def lease(self):
        return contextlib.nullcontext()

    def __getattr__(self, name):
        raise AssertionError(f"store.{name} must not be reached")


def test_malformed_manifest_json():
    with pytest.raises(RegistryError) as ei:
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(b'{"schemaVersion": 2, "config": '))
    assert "malformed manifest JSON" in str(ei.value) and "x:1" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(RegistryError, match="not a JSON object"):
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(b"[1, 2]"))


def test_unknown_manifest_media_type():
    doc = json.loads(MAN)
    doc["mediaType"] = "application/vnd.example.thing.v1+json"
    with pytest.raises(RegistryError, match="unsupported manifest media type 'application/vnd.example.thing"):
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(json.dumps(doc).encode(), doc["mediaType"]))


def test_schema1_is_refused_clearly():
    doc = {"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}
    with pytest.raises(RegistryError, match="schema 1 is not supported"):
        pull(NoStore(), "127.0.0.1:1/x:1",
             transport=serve(json.dumps(doc).encode(), "application/vnd.docker.distribution.manifest.v1+prettyjws"))


def test_unknown_config_and_layer_media_types():
    doc = json.loads(MAN)
    doc["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    with pytest.raises(RegistryError, match="not a container image: config media type 'application/vnd.cncf.helm"):
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(json.dumps(doc).encode()))
    doc = json.loads(MAN)
    doc["layers"][0]["mediaType"] = "application/x-weird"
    with pytest.raises(RegistryError, match="unsupported layer media type 'application/x-weird'"):
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(json.dumps(doc).encode()))


def test_bad_descriptors():
    doc = json.loads(MAN)
    doc["layers"][0]["digest"] = "sha256:1234"
    with pytest.raises(RegistryError, match="invalid digest"):
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(json.dumps(doc).encode()))
    doc = json.loads(MAN)
    del doc["layers"][0]["size"]
    with pytest.raises(RegistryError, match="bad layer 0 descriptor"):
        pull(NoStore(), "127.0.0.1:1/x:1", transport=serve(json.dumps(doc).encode()))


def test_manifest_by_digest_is_verified():
    other = MAN.replace(b'"schemaVersion":2', b'"schemaVersion": 2')
    c = RegistryClient("127.0.0.1:1", auth=False, transport=serve(other))
    with pytest.raises(DigestMismatch) as ei:
        c.get_manifest("x", sha(MAN))
    assert sha(MAN) in str(ei.value) and sha(other) in str(ei.value)


def test_served_digest_header_must_match():
    def handler(req):
        return Response(200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": "sha256:" + "0" * 64},
                        content=MAN)

    with pytest.raises(DigestMismatch, match="served digest"):
        RegistryClient("127.0.0.1:1", auth=False, transport=MockTransport(handler)).get_manifest("x", "1")


def test_oversized_manifest_is_refused():
    big = b'{"schemaVersion":2,"x":"' + b"a" * (5 << 20) + b'"}'
    with pytest.raises(RegistryError, match="too large"):
        RegistryClient("127.0.0.1:1", auth=False, transport=serve(big)).get_manifest("x", "1")


def test_platform_selection():
    idx = {"manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
        {"digest": "sha256:" + "3" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:" + "4" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": "sha256:" + "5" * 64, "platform": {"os": "windows", "architecture": "amd64"}},
    ]}
    assert select_manifest(idx, parse_platform("linux/amd64"))["digest"][7] == "1"
    assert select_manifest(idx, parse_platform("linux/arm/v7"))["digest"][7] == "3"
    assert select_manifest(idx, parse_platform("linux/arm64/v8"))["digest"][7] == "4"
    assert select_manifest(idx, parse_platform("arm64"))["digest"][7] == "4"
    assert select_manifest(idx, parse_platform("linux/x86_64"))["digest"][7] == "1"
    with pytest.raises(RegistryError, match="invalid platform"):
        parse_platform("linux/")
    assert host_platform()["os"] == "linux"


def test_index_without_the_platform_lists_what_exists():
    idx = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(MAN), "size": len(MAN),
         "platform": {"os": "linux", "architecture": "riscv64"}}]}).encode()
    with pytest.raises(RegistryError, match=r"no manifest for platform linux/amd64 \(available: linux/riscv64\)"):
        pull(NoStore(), "127.0.0.1:1/x:1", platform="linux/amd64",
             transport=serve(idx, "application/vnd.oci.image.index.v1+json"))
