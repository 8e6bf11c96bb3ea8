"""jupybox against real peers: Debian's docker-registry (distribution 2.8) and skopeo."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from jupybox.errors import AuthError, DigestMismatch, RegistryError
from jupybox.registry import (AuthFile, HTTPTransport, Response, RegistryClient, TransportError, login, logout,
                              pull, push)
from jupybox.registry.client import BlobUnknown, ManifestUnknown
from oci_helpers import OCI_MANIFEST, make_image, sha, skopeo, write_oci_layout

pytestmark = pytest.mark.usefixtures("need_skopeo")


def blob_file(reg, digest: str) -> Path:
    """Where distribution keeps a blob in its filesystem storage."""
    h = digest[7:]
    return reg.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / h[:2] / h / "data"


def store_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def tmp_leftovers(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(str(p.relative_to(root)) for p in tmp.rglob("*")) if tmp.exists() else []


def skopeo_push(tmp_path, reg, name, image, *extra):
    lay = write_oci_layout(tmp_path / f"lay-{name.replace('/', '_').replace(':', '_')}", {"t": image})
    skopeo("copy", "--dest-tls-verify=false", *extra, f"oci:{lay}:t", f"docker://{reg.host}/{name}")


IMG1 = make_image([{"etc/": None, "etc/hello": b"hello from layer 1\n"},
                   {"data/": None, "data/big": os.urandom(300_000)}])


class Spy(HTTPTransport):
    """The real transport, recording (method, path) of each request."""

    def __init__(self, fail=None):
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def handle_request(self, req):
        from urllib.parse import urlsplit
        self.calls.append((req.method, urlsplit(req.url).path))
        if self.fail:
            r = self.fail(req)
            if r is not None:
                return r
        return super().handle_request(req)


# ------------------------------------------------------------------ pull

def test_skopeo_pushes_jupybox_pulls_and_layers_unpack(tmp_path, registry, store, jupybox_root):
    skopeo_push(tmp_path, registry, "team/app:1", IMG1)
    events = []
    image = pull(store, f"{registry.host}/team/app:1", progress=events.append)
    manifest, config, layers = IMG1
    assert image.manifest_digest == sha(manifest)
    assert f"{registry.host}/team/app:1" in [str(r) for r in image.refs]
    assert store.resolve(f"{registry.host}/team/app:1").manifest_digest == sha(manifest)
    for b, _ in layers:
        assert store.has_blob(sha(b))
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    assert (store.layer_path(diff_ids[0]) / "etc" / "hello").read_bytes() == b"hello from layer 1\n"
    assert (store.layer_path(diff_ids[1]) / "data" / "big").stat().st_size == 300_000
    # the progress protocol
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "done" and events[-1]["digest"] == sha(manifest)
    done = {e["digest"]: e for e in events if e["kind"] == "blob-done"}
    assert set(done) == {sha(config)} | {sha(b) for b, _ in layers}
    assert all(e["status"] == "downloaded" and e["done"] == e["size"] for e in done.values())
    starts = [e for e in events if e["kind"] == "blob-start"]
    assert len(starts) == 3
    big = sha(layers[1][0])
    prog = [e["done"] for e in events if e["kind"] == "blob-progress" and e["digest"] == big]
    assert prog and prog == sorted(prog) and prog[-1] == len(layers[1][0])
    assert not tmp_leftovers(jupybox_root)


def test_pulling_again_fetches_only_the_manifest(tmp_path, registry, store):
    skopeo_push(tmp_path, registry, "app:1", IMG1)
    pull(store, f"{registry.host}/app:1")
    spy = Spy()
    events = []
    times = []
    for _ in range(3):
        t = time.perf_counter()
        img = pull(store, f"{registry.host}/app:1", transport=spy, progress=events.append)
        times.append(time.perf_counter() - t)
    assert img.manifest_digest == sha(IMG1[0])
    assert {m for m, _ in spy.calls} == {"GET"}
    assert all("/manifests/" in p for _, p in spy.calls), spy.calls
    assert {e["status"] for e in events if e["kind"] == "blob-done"} == {"exists"}
    print(f"pull of a present image: {min(times) * 1000:.1f} ms")
    assert min(times) < 0.5  # the target is < 50 ms; a loose bound keeps a noisy CI green


def test_pull_by_digest_and_a_missing_tag(tmp_path, registry, store):
    skopeo_push(tmp_path, registry, "app:1", IMG1)
    img = pull(store, f"{registry.host}/app@{sha(IMG1[0])}")
    assert img.manifest_digest == sha(IMG1[0])
    with pytest.raises(ManifestUnknown) as ei:
        pull(store, f"{registry.host}/app:nope")
    assert "manifest unknown" in str(ei.value) and "app:nope" in str(ei.value)
    with pytest.raises(RegistryError, match="404"):
        pull(store, f"{registry.host}/nothing-here:1")


def test_pull_docker_v2s2_manifest(tmp_path, registry, store):
    skopeo_push(tmp_path, registry, "v2s2:1", IMG1, "--format", "v2s2")
    c = RegistryClient(registry.host)
    m = c.get_manifest("v2s2", "1")
    assert m.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    img = pull(store, f"{registry.host}/v2s2:1")
    assert img.manifest_digest == m.digest  # stored as served
    assert json.loads(store.read_blob(img.manifest_digest))["mediaType"] == m.media_type
    assert (store.layer_path(img.diff_ids[0]) / "etc" / "hello").exists()
    # and pushed back as it is
    assert push(store, f"{registry.host}/v2s2-copy:1", source=f"{registry.host}/v2s2:1") == m.digest
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/v2s2-copy:1").stdout)
    assert info["Digest"] == m.digest


def test_pull_picks_the_platform_from_an_index(tmp_path, registry, store_factory):
    amd = make_image([{"arch": b"amd64\n"}], arch="amd64")
    arm = make_image([{"arch": b"arm64\n"}], arch="arm64")
    lay = tmp_path / "multi"
    write_oci_layout(lay, {"amd": amd, "arm": arm})
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(amd[0]), "size": len(amd[0]),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_MANIFEST, "digest": sha(arm[0]), "size": len(arm[0]),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": sha(amd[0]), "size": len(amd[0]),
         "platform": {"os": "unknown", "architecture": "unknown"}}]}
    ib = json.dumps(index).encode()
    (lay / "blobs" / "sha256" / sha(ib)[7:]).write_bytes(ib)
    (lay / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha(ib), "size": len(ib),
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{lay}:multi", f"docker://{registry.host}/multi:1")
    a = pull(store_factory(), f"{registry.host}/multi:1", platform="linux/amd64")
    assert a.manifest_digest == sha(amd[0])
    b = pull(store_factory(), f"{registry.host}/multi:1", platform="linux/arm64")
    assert b.manifest_digest == sha(arm[0])
    b8 = pull(store_factory(), f"{registry.host}/multi:1", platform={"os": "linux", "architecture": "arm64"})
    assert b8.manifest_digest == sha(arm[0])
    with pytest.raises(RegistryError) as ei:
        pull(store_factory(), f"{registry.host}/multi:1", platform="linux/s390x")
    assert "linux/s390x" in str(ei.value) and "linux/amd64" in str(ei.value) and "unknown" not in str(ei.value)


# ------------------------------------------------------------------ corruption and failures

def test_corrupted_blob_fails_with_digest_mismatch_and_leaves_nothing(tmp_path, registry, store, jupybox_root):
    skopeo_push(tmp_path, registry, "app:1", IMG1)
    bad = sha(IMG1[2][1][0])  # the 300 kB layer
    f = blob_file(registry, bad)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    f.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch) as ei:
        pull(store, f"{registry.host}/app:1")
    assert bad in str(ei.value) and "\n" not in str(ei.value)
    assert not store.has_blob(bad)
    assert not store.has_blob(sha(IMG1[0]))  # no manifest either
    assert not tmp_leftovers(jupybox_root)
    assert not any(bad[7:] in p for p in store_files(jupybox_root))
    with pytest.raises(Exception):
        store.resolve(f"{registry.host}/app:1")


def test_truncated_blob_is_a_size_mismatch(tmp_path, registry, store, jupybox_root):
    skopeo_push(tmp_path, registry, "app:1", IMG1)
    bad = sha(IMG1[2][1][0])
    f = blob_file(registry, bad)
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(DigestMismatch, match=bad):
        pull(store, f"{registry.host}/app:1")
    assert not store.has_blob(bad) and not tmp_leftovers(jupybox_root)


def test_missing_blob_is_a_clear_404(tmp_path, registry, store, jupybox_root):
    skopeo_push(tmp_path, registry, "app:1", IMG1)
    gone = sha(IMG1[2][0][0])
    blob_file(registry, gone).unlink()
    with pytest.raises(BlobUnknown) as ei:
        pull(store, f"{registry.host}/app:1")
    assert gone in str(ei.value) and "404" in str(ei.value) and "blob unknown" in str(ei.value)
    assert not store.has_blob(gone) and not tmp_leftovers(jupybox_root)


def test_retries_503_twice_then_succeeds_on_a_real_registry(tmp_path, registry, store):
    skopeo_push(tmp_path, registry, "app:1", IMG1)
    failures = {"n": 0}

    def flaky(req):
        if req.method == "GET" and "/blobs/" in req.url and failures["n"] < 2:
            failures["n"] += 1
            return Response(503, content=b"overloaded", request=req)
        return None

    spy = Spy(fail=flaky)
    img = pull(store, f"{registry.host}/app:1", transport=spy,
               client=RegistryClient(registry.host, transport=spy, backoff=0.01))
    assert img.manifest_digest == sha(IMG1[0]) and failures["n"] == 2


def test_a_registry_that_is_gone_is_a_one_line_error(store, registry):
    host = registry.host
    registry.stop()
    with pytest.raises(TransportError) as ei:
        pull(store, f"{host}/app:1", client=RegistryClient(host, backoff=0.01, retries=1))
    assert "connection refused" in str(ei.value) and "\n" not in str(ei.value)


# ------------------------------------------------------------------ push

def test_jupybox_pushes_skopeo_reads_it(tmp_path, registry, store):
    skopeo_push(tmp_path, registry, "src:1", IMG1)
    img = pull(store, f"{registry.host}/src:1")
    dest = f"{registry.host}/other/dest:2"
    digest = push(store, dest, source=f"{registry.host}/src:1")
    assert digest == img.manifest_digest
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dest}").stdout)
    assert info["Digest"] == digest
    assert info["Layers"] == [sha(b) for b, _ in IMG1[2]]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").stdout.encode()
    assert sha(raw) == digest and raw == IMG1[0]
    # and skopeo can copy it out, blob for blob
    skopeo("copy", "--src-tls-verify=false", f"docker://{dest}", f"oci:{tmp_path}/out:x")
    for b, _ in IMG1[2]:
        assert (tmp_path / "out" / "blobs" / "sha256" / sha(b)[7:]).read_bytes() == b


def test_push_mounts_known_blobs_and_skips_existing_ones(tmp_path, registry, store):
    skopeo_push(tmp_path, registry, "src:1", IMG1)
    pull(store, f"{registry.host}/src:1")
    spy = Spy()
    events = []
    push(store, f"{registry.host}/copy:1", source=f"{registry.host}/src:1", transport=spy, progress=events.append)
    status = {e["digest"]: e["status"] for e in events if e["kind"] == "blob-done"}
    assert set(status.values()) == {"mounted"}, status
    assert not [c for c in spy.calls if c[0] in ("PATCH", "PUT") and "/blobs/" in c[1]]
    # pushing again: the blobs exist (HEAD), nothing is uploaded
    spy.calls.clear()
    events.clear()
    push(store, f"{registry.host}/copy:1", source=f"{registry.host}/src:1", transport=spy,
         progress=events.append, mount_from=[])
    status = {e["digest"]: e["status"] for e in events if e["kind"] == "blob-done"}
    assert set(status.values()) <= {"exists", "mounted"}
    assert not [c for c in spy.calls if c[0] in ("PATCH",)]


def test_chunked_upload(tmp_path, registry, store_factory):
    src = store_factory()
    skopeo_push(tmp_path, registry, "src:1", IMG1)
    pull(src, f"{registry.host}/src:1")
    other = f"127.0.0.1:{registry.port}"  # same registry, but push to a fresh registry to force uploads
    from jupybox.testing import Registry
    with Registry() as reg2:
        spy = Spy()
        digest = push(src, f"{reg2.host}/chunked:1", source=f"{other}/src:1", transport=spy,
                      chunk_size=64 * 1024)
        patches = [c for c in spy.calls if c[0] == "PATCH"]
        big = len(IMG1[2][1][0])
        assert len(patches) >= big // (64 * 1024)
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{reg2.host}/chunked:1").stdout)
        assert info["Digest"] == digest
        # and the registry really has the bytes: pull them into a fresh store
        dst = store_factory()
        assert pull(dst, f"{reg2.host}/chunked:1").manifest_digest == digest
        for b, _ in IMG1[2]:
            assert dst.read_blob(sha(b)) == b


def test_push_of_an_unknown_image_is_a_clear_error(registry, store):
    with pytest.raises(Exception) as ei:
        push(store, f"{registry.host}/nope:1")
    assert "nope" in str(ei.value)


# ------------------------------------------------------------------ auth

@pytest.fixture
def auth_registry(registry_factory):
    return registry_factory(auth=("alice", "s3cret"))


def test_basic_auth_login_pull_logout(tmp_path, auth_registry, store):
    reg = auth_registry
    lay = write_oci_layout(tmp_path / "lay", {"t": IMG1})
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", f"oci:{lay}:t",
           f"docker://{reg.host}/private:1")
    authfile = tmp_path / "auth" / "config.json"
    # anonymous: refused, with a hint
    with pytest.raises(AuthError) as ei:
        pull(store, f"{reg.host}/private:1", authfile=authfile)
    assert "jupybox login" in str(ei.value) and "\n" not in str(ei.value)
    # wrong password: refused by login, and the file is not written
    with pytest.raises(AuthError) as ei:
        login(reg.host, "alice", "wrong", authfile=authfile)
    assert "401" in str(ei.value) and "wrong username or password" in str(ei.value) and "\n" not in str(ei.value)
    assert not authfile.exists()
    with pytest.raises(AuthError, match="401"):
        pull(store, f"{reg.host}/private:1", auth=("alice", "wrong"))
    # right password
    path = login(reg.host, "alice", "s3cret", authfile=authfile)
    assert path == authfile and (os.stat(authfile).st_mode & 0o777) == 0o600
    assert AuthFile(authfile).get(reg.host).username == "alice"
    img = pull(store, f"{reg.host}/private:1", authfile=authfile)
    assert img.manifest_digest == sha(IMG1[0])
    assert push(store, f"{reg.host}/private:copy", source=f"{reg.host}/private:1", authfile=authfile) == sha(IMG1[0])
    # skopeo reads the same file
    info = json.loads(skopeo("inspect", "--tls-verify=false", "--authfile", str(authfile),
                             f"docker://{reg.host}/private:copy").stdout)
    assert info["Digest"] == sha(IMG1[0])
    assert logout(reg.host, authfile=authfile) is True
    assert logout(reg.host, authfile=authfile) is False
    assert reg.host not in json.loads(authfile.read_text()).get("auths", {})
    with pytest.raises(AuthError):
        pull(store, f"{reg.host}/private:1", authfile=authfile)


def test_auth_from_docker_config_env(tmp_path, auth_registry, store, monkeypatch):
    reg = auth_registry
    lay = write_oci_layout(tmp_path / "lay", {"t": IMG1})
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", f"oci:{lay}:t",
           f"docker://{reg.host}/private:1")
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dockercfg"))
    login(reg.host, "alice", "s3cret")
    assert (tmp_path / "dockercfg" / "config.json").exists()
    assert pull(store, f"{reg.host}/private:1").manifest_digest == sha(IMG1[0])


def test_a_wrong_diff_id_fails_the_pull_and_registers_nothing(tmp_path, registry, store, jupybox_root):
    manifest, config, layers = IMG1
    cfg = json.loads(config)
    cfg["rootfs"]["diff_ids"][1] = "sha256:" + "ab" * 32
    bad_config = json.dumps(cfg).encode()
    man = json.loads(manifest)
    man["config"].update(digest=sha(bad_config), size=len(bad_config))
    bad_manifest = json.dumps(man).encode()
    skopeo_push(tmp_path, registry, "liar:1", (bad_manifest, bad_config, layers))
    with pytest.raises(DigestMismatch) as ei:
        pull(store, f"{registry.host}/liar:1")
    assert "ab" * 32 in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(Exception):
        store.resolve(f"{registry.host}/liar:1")
    assert not store.has_layer("sha256:" + "ab" * 32)
    assert not tmp_leftovers(jupybox_root)


def test_layer_count_must_match_the_config(tmp_path, registry, store):
    manifest, config, layers = IMG1
    cfg = json.loads(config)
    cfg["rootfs"]["diff_ids"] = cfg["rootfs"]["diff_ids"][:1]
    bad_config = json.dumps(cfg).encode()
    man = json.loads(manifest)
    man["config"].update(digest=sha(bad_config), size=len(bad_config))
    skopeo_push(tmp_path, registry, "short:1", (json.dumps(man).encode(), bad_config, layers))
    with pytest.raises(RegistryError, match="2 layers but the config 1 diff_ids"):
        pull(store, f"{registry.host}/short:1")
