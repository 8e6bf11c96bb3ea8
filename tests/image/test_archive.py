"""save/load: docker-archive and oci-archive, against skopeo, umoci and hand-made docker 20.10/25+ archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading

import pytest

from jbx_archive_helpers import (IMG_A, IMG_B, OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST, ids, layer_tar,
                                 members_of, names, need, put, rootfs_file, sha, skopeo, tar_of,
                                 write_oci_layout)
from jupybox.errors import DigestMismatch, StoreError, UnsafeArchive, UsageError
from jupybox.image.archive import load, save

# ------------------------------------------------------------------ save

def test_docker_archive_layout_and_no_duplicate_members(tmp_path, store):
    a = put(store, IMG_A, ["a:1", "a:latest"])
    put(store, IMG_B, ["b:1"])
    out = tmp_path / "x.tar"
    save(store, ["a:1", "a:latest", "b:1"], out)
    names_ = members_of(out)
    assert len(names_) == len(set(names_)), "a duplicated tar entry breaks docker load"
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        repos = json.load(tf.extractfile("repositories"))
        assert len(manifest) == 2
        ea = next(e for e in manifest if "a:1" in e["RepoTags"])
        assert ea["RepoTags"] == ["a:1", "a:latest"]
        assert ea["Config"] == sha(IMG_A[1])[7:] + ".json"
        assert tf.extractfile(ea["Config"]).read() == IMG_A[1]  # byte for byte: the image ID survives
        for lname, tar in zip(ea["Layers"], IMG_A[3]):
            assert tf.extractfile(lname).read() == tar  # uncompressed, == diff_id
            assert lname == sha(tar)[7:] + ".tar"
        assert set(repos) == {"a", "b"} and set(repos["a"]) == {"1", "latest"}
    assert a.id == sha(IMG_A[1])


def test_skopeo_reads_our_docker_archive(tmp_path, store):
    need("skopeo")
    put(store, IMG_A, ["a:1"])
    out = tmp_path / "a.tar"
    save(store, ["a:1"], out)
    skopeo("copy", f"docker-archive:{out}", f"oci:{tmp_path}/oci:a")
    idx = json.loads((tmp_path / "oci" / "index.json").read_text())
    man = json.loads((tmp_path / "oci" / "blobs" / "sha256" / idx["manifests"][0]["digest"][7:]).read_bytes())
    cfg = json.loads((tmp_path / "oci" / "blobs" / "sha256" / man["config"]["digest"][7:]).read_bytes())
    assert cfg == json.loads(IMG_A[1])  # skopeo re-serializes the config when it converts to OCI
    # read directly, the archive's config is ours byte for byte (so the image ID survives)
    raw = skopeo("inspect", "--config", "--raw", f"docker-archive:{out}").stdout.encode()
    assert sha(raw) == sha(IMG_A[1])
    info = json.loads(skopeo("inspect", f"docker-archive:{out}").stdout)
    assert info["Labels"] == {"l": "a"}


def test_umoci_unpacks_our_oci_archive(tmp_path, store):
    need("umoci")
    put(store, IMG_A, ["a:1"])
    out = tmp_path / "a.oci.tar"
    save(store, ["a:1"], out, format="oci-archive")
    assert len(members_of(out)) == len(set(members_of(out)))
    lay = tmp_path / "layout"
    lay.mkdir()
    with tarfile.open(out) as tf:
        tf.extractall(lay)
    idx = json.loads((lay / "index.json").read_text())
    ref = idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    assert ref == "docker.io/library/a:1"
    assert idx["manifests"][0]["digest"] == sha(IMG_A[0])  # the stored manifest, as it is
    r = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{lay}:{ref}", str(tmp_path / "bundle")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "bundle" / "rootfs" / "etc" / "hello").read_bytes() == b"A2\n"
    assert (tmp_path / "bundle" / "rootfs" / "big").stat().st_size == 200_000
    # skopeo reads the archive directly too
    need("skopeo")
    skopeo("copy", f"oci-archive:{out}:{ref}", f"oci:{tmp_path}/copy:x")


def test_save_to_a_pipe_writes_gunzipped_layers(store, tmp_path):
    put(store, IMG_A, ["a:1"])  # the stored layers are gzipped: they must be gunzipped on the way out
    r, w = os.pipe()

    def writer():
        with os.fdopen(w, "wb") as f:
            save(store, "a:1", f)

    t = threading.Thread(target=writer)
    t.start()
    data = os.fdopen(r, "rb").read()
    t.join()
    out = tmp_path / "p.tar"
    out.write_bytes(data)
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        for lname, tar in zip(manifest[0]["Layers"], IMG_A[3]):
            assert tf.extractfile(lname).read() == tar
    # seekable file output gives the same bytes (the size is patched in place there)
    save(store, "a:1", tmp_path / "f.tar")
    assert (tmp_path / "f.tar").read_bytes() == data


def test_save_errors(store, tmp_path):
    with pytest.raises(Exception):
        save(store, ["nope:1"], tmp_path / "n.tar")
    assert not (tmp_path / "n.tar").exists()
    put(store, IMG_A, ["a:1"])
    with pytest.raises(UsageError, match="unknown archive format"):
        save(store, ["a:1"], tmp_path / "n.tar", format="zip")


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_multi_image_multi_tag_round_trip(tmp_path, store_factory, fmt):
    s1 = store_factory()
    a = put(s1, IMG_A, ["a:1", "reg.example:5000/team/a:2"])
    b = put(s1, IMG_B, ["b:1"])
    out = tmp_path / "all.tar"
    save(s1, ["a:1", "reg.example:5000/team/a:2", "b:1"], out, format=fmt)
    s2 = store_factory()
    loaded = load(s2, out)
    assert ids(loaded) == ids([a, b])
    assert names(loaded) == sorted(["a:1", "reg.example:5000/team/a:2", "b:1"])
    got = s2.resolve("reg.example:5000/team/a:2")
    assert got.id == a.id
    if fmt == "oci-archive":
        assert got.manifest_digest == a.manifest_digest  # blobs kept as they were
    assert rootfs_file(s2, got, "etc/hello") == b"A2\n"
    assert rootfs_file(s2, s2.resolve("b:1"), "b") == b"only in B\n"
    # loading twice is harmless
    assert ids(load(s2, out)) == ids([a, b])


def test_load_from_a_non_seekable_stream(tmp_path, store_factory):
    s1 = store_factory()
    a = put(s1, IMG_A, ["a:1"])
    out = tmp_path / "a.tar"
    save(s1, ["a:1"], out)
    s2 = store_factory()
    p = subprocess.Popen(["cat", str(out)], stdout=subprocess.PIPE)
    loaded = load(s2, p.stdout)
    p.wait()
    assert ids(loaded) == [a.id] and names(loaded) == ["a:1"]
    assert not list(s2.tmp.iterdir())


def test_load_gzipped_archive_from_a_stream(tmp_path, store_factory):
    s1 = store_factory()
    a = put(s1, IMG_A, ["a:1"])
    out = tmp_path / "a.tar"
    save(s1, ["a:1"], out)
    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(out.read_bytes(), 1))
    assert ids(load(store_factory(), tmp_path / "a.tar.gz")) == [a.id]


# ------------------------------------------------------------------ archives written by others

def test_load_skopeo_docker_archive(tmp_path, store):
    need("skopeo")
    lay = write_oci_layout(tmp_path / "lay", {"t": IMG_A})
    arch = tmp_path / "sk.tar"
    skopeo("copy", f"oci:{lay}:t", f"docker-archive:{arch}:skopeo/made:v1")
    assert any(n.endswith("/layer.tar") for n in members_of(arch))  # its legacy symlinks
    (img,) = load(store, arch)
    assert img.refs == ["skopeo/made:v1"]
    assert img.id == sha(IMG_A[1])
    assert img.diff_ids == [sha(t) for t in IMG_A[3]]
    assert rootfs_file(store, img, "etc/hello") == b"A2\n"


def test_load_skopeo_oci_archive(tmp_path, store_factory):
    need("skopeo")
    lay = write_oci_layout(tmp_path / "lay", {"t": IMG_A})
    arch = tmp_path / "sk.oci.tar"
    skopeo("copy", f"oci:{lay}:t", f"oci-archive:{arch}:v1")
    s = store_factory()
    (img,) = load(s, arch)  # only a tag in ref.name: no repository to name it with
    assert img.refs == [] and img.manifest_digest == sha(IMG_A[0])
    (img,) = load(store_factory(), arch, name="made/by-skopeo")
    assert img.refs == ["made/by-skopeo:v1"]
    arch2 = tmp_path / "sk2.oci.tar"
    skopeo("copy", f"oci:{lay}:t", f"oci-archive:{arch2}:localhost:5000/full/name:v2")
    (img,) = load(store_factory(), arch2)
    assert img.refs == ["localhost:5000/full/name:v2"]


def _docker_2010_archive(images: list[tuple[tuple, list[str]]], manifest_last=True) -> bytes:
    """As docker 20.10 `docker save` writes it: <v1id>/layer.tar real files, manifest.json last."""
    members = []
    entries = []
    for image, tags in images:
        _, config, _, tars = image
        cname = sha(config)[7:] + ".json"
        layers = []
        for i, t in enumerate(tars):
            v1 = hashlib.sha256(f"{sha(config)}-{i}".encode()).hexdigest()
            members += [(f"{v1}/", None, None), (f"{v1}/VERSION", b"1.0", None),
                        (f"{v1}/json", b'{"id":"%s"}' % v1.encode(), None), (f"{v1}/layer.tar", t, None)]
            layers.append(f"{v1}/layer.tar")
        members.append((cname, config, None))
        entries.append({"Config": cname, "RepoTags": tags, "Layers": layers})
    tail = [("manifest.json", json.dumps(entries).encode(), None), ("repositories", b"{}", None)]
    return tar_of(members + tail if manifest_last else tail + members)


def test_load_docker_2010_archive_from_stdin_with_manifest_last(tmp_path, store):
    data = _docker_2010_archive([(IMG_A, ["a:1", "a:2"]), (IMG_B, ["b:latest"])])
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb") as f:
            f.write(data)

    t = threading.Thread(target=feed)
    t.start()
    with os.fdopen(r, "rb") as f:
        loaded = load(store, f)
    t.join()
    assert names(loaded) == ["a:1", "a:2", "b:latest"]
    assert ids(loaded) == sorted([sha(IMG_A[1]), sha(IMG_B[1])])
    a = store.resolve("a:2")
    assert [l["mediaType"] for l in a.layers] == [OCI_LAYER, OCI_LAYER]  # kept uncompressed
    assert [l["digest"] for l in a.layers] == [sha(t) for t in IMG_A[3]]


def test_load_docker_25_archive_keeps_its_oci_manifest(tmp_path, store):
    """docker 25+: an OCI layout plus manifest.json pointing into blobs/sha256/."""
    manifest, config, _, tars = IMG_A
    # docker 25 stores uncompressed layers in blobs/ and references them from its manifest
    man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
                      "layers": [{"mediaType": OCI_LAYER, "digest": sha(t), "size": len(t)} for t in tars]}
                     ).encode()
    members = [("blobs/", None, None), ("blobs/sha256/", None, None)]
    for b in [man, config] + tars:
        members.append((f"blobs/sha256/{sha(b)[7:]}", b, None))
    members += [
        ("index.json", json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                   "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha(man), "size": len(man),
                                                  "annotations": {"io.containerd.image.name": "docker.io/library/a:25",
                                                                  "org.opencontainers.image.ref.name": "25"}}]}
                                  ).encode(), None),
        ("manifest.json", json.dumps([{"Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": ["a:25"],
                                       "Layers": [f"blobs/sha256/{sha(t)[7:]}" for t in tars]}]).encode(), None),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None),
        ("repositories", b"{}", None),
    ]
    arch = tmp_path / "d25.tar"
    arch.write_bytes(tar_of(members))
    (img,) = load(store, arch)
    assert img.refs == ["a:25"] and img.id == sha(config)
    assert img.manifest_digest == sha(man)


def test_load_gzipped_layers_in_a_docker_archive(tmp_path, store):
    _, config, blobs, tars = IMG_A
    members = [(sha(config)[7:] + ".json", config, None)]
    for b, _ in blobs:
        members.append((sha(b)[7:] + ".tar.gz", b, None))
    members.append(("manifest.json", json.dumps([{"Config": sha(config)[7:] + ".json", "RepoTags": ["gz:1"],
                                                  "Layers": [sha(b)[7:] + ".tar.gz" for b, _ in blobs]}]).encode(),
                    None))
    arch = tmp_path / "gz.tar"
    arch.write_bytes(tar_of(members))
    (img,) = load(store, arch)
    assert [l["mediaType"] for l in img.layers] == [OCI_LAYER_GZIP, OCI_LAYER_GZIP]
    assert img.id == sha(config)


# ------------------------------------------------------------------ hostile and broken archives

def test_wrong_diff_id_is_a_digest_mismatch(tmp_path, store):
    data = _docker_2010_archive([(IMG_A, ["a:1"])])
    bad = data.replace(b"A2\n", b"XX\n")
    assert bad != data
    arch = tmp_path / "bad.tar"
    arch.write_bytes(bad)
    with pytest.raises(DigestMismatch) as ei:
        load(store, arch)
    assert "diff_id" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(Exception):
        store.resolve("a:1")


def test_gzip_layer_with_wrong_diff_id(tmp_path, store):
    _, config, blobs, _ = IMG_A
    evil = gzip.compress(layer_tar({"evil": b"!"}))
    members = [(sha(config)[7:] + ".json", config, None), ("l0.tar", blobs[0][0], None), ("l1.tar", evil, None),
               ("manifest.json", json.dumps([{"Config": sha(config)[7:] + ".json", "RepoTags": ["a:1"],
                                              "Layers": ["l0.tar", "l1.tar"]}]).encode(), None)]
    arch = tmp_path / "bad.tar"
    arch.write_bytes(tar_of(members))
    with pytest.raises(DigestMismatch, match="diff_id"):
        load(store, arch)


def test_hostile_member_names(tmp_path, store):
    arch = tmp_path / "evil.tar"
    arch.write_bytes(tar_of([("../../etc/evil", b"x", None), ("manifest.json", b"[]", None)]))
    with pytest.raises(UnsafeArchive, match="escapes"):
        load(store, arch)
    arch.write_bytes(tar_of([("manifest.json", b'[{"Config":"c.json","Layers":[]}]', None),
                             ("c.json", None, "/etc/passwd")]))
    with pytest.raises(StoreError):
        load(store, arch)


def test_not_an_image_archive(tmp_path, store):
    arch = tmp_path / "plain.tar"
    arch.write_bytes(tar_of([("hello.txt", b"hi", None)]))
    with pytest.raises(StoreError, match="not an image archive"):
        load(store, arch)
    (tmp_path / "junk").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(StoreError):
        load(store, tmp_path / "junk")
    with pytest.raises(UsageError, match="no such file"):
        load(store, tmp_path / "missing.tar")
    arch.write_bytes(tar_of([("manifest.json", b'{"not": "a list"}', None)]))
    with pytest.raises(StoreError, match="manifest.json"):
        load(store, arch)


# ------------------------------------------------------------------ a real Docker engine (when installed)

def test_docker_loads_our_archive_and_we_load_docker_save(tmp_path, store_factory, docker_cli):
    s1 = store_factory()
    a = put(s1, IMG_A, ["a:1", "reg.example:5000/team/a:2"])
    b = put(s1, IMG_B, ["b:1"])
    save(s1, ["a:1", "reg.example:5000/team/a:2", "b:1"], tmp_path / "ours.tar")
    r = docker_cli("load", "-i", str(tmp_path / "ours.tar"), text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(line for line in r.stdout.splitlines() if line.startswith("Loaded image")) == [
        "Loaded image: a:1", "Loaded image: b:1", "Loaded image: reg.example:5000/team/a:2"]
    for ref, img in (("a:1", a), ("reg.example:5000/team/a:2", a), ("b:1", b)):
        r = docker_cli("image", "inspect", "-f", "{{.Id}}", ref, text=True)
        assert r.stdout.strip() == img.id  # the same image ID in docker and in jupybox
    # docker 20.10's own save (real files at <v1id>/layer.tar), from a file and from memory
    r = docker_cli("save", "-o", str(tmp_path / "theirs.tar"), "a:1", "b:1", "reg.example:5000/team/a:2")
    assert r.returncode == 0, r.stderr
    loaded = load(store_factory(), tmp_path / "theirs.tar")
    assert ids(loaded) == ids([a, b])
    assert names(loaded) == sorted(["a:1", "b:1", "reg.example:5000/team/a:2"])
    r = docker_cli("save", "a:1")
    s3 = store_factory()
    (img,) = load(s3, io.BufferedReader(io.BytesIO(r.stdout)))
    assert img.id == a.id and rootfs_file(s3, img, "etc/hello") == b"A2\n"


def test_podman_loads_our_archive_and_we_load_podman_save(tmp_path, busybox_image):
    """podman (Debian's 4.3) reads what `jupybox save` writes, and `jupybox load` reads `podman save`."""
    if not shutil.which("podman") or os.geteuid() != 0:
        pytest.skip("needs root and podman")
    import sys as _sys

    import tempfile

    runroot = tempfile.mkdtemp(prefix="jbx-pm-", dir="/run" if os.path.isdir("/run") else "/tmp")  # podman: <= 50 chars
    pm = [shutil.which("podman"), "--root", str(tmp_path / "pm-root"), "--runroot", runroot,
          "--storage-driver", "vfs", "--events-backend", "file"]
    try:
        jb = [_sys.executable, "-m", "jupybox", "--root", str(busybox_image.root)]
        ours = tmp_path / "ours.tar"
        assert subprocess.run(jb + ["save", "-o", str(ours), "busybox:latest"]).returncode == 0
        r = subprocess.run(pm + ["load", "-i", str(ours)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "busybox:latest" in r.stdout, r.stderr
        r = subprocess.run(pm + ["images", "--format", "{{.ID}}"], capture_output=True, text=True, timeout=60)
        assert busybox_image.store.resolve("busybox:latest").id.split(":")[1].startswith(r.stdout.strip())
        theirs = tmp_path / "theirs.tar"
        r = subprocess.run(pm + ["save", "-o", str(theirs), "localhost/busybox:latest"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(jb + ["load", "-i", str(theirs)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "localhost/busybox:latest" in r.stdout, r.stderr
        r = subprocess.run(jb + ["run", "--rm", "localhost/busybox:latest", "echo", "from-podman"], capture_output=True,
                           text=True, timeout=60)
        assert r.stdout == "from-podman\n", r.stderr
        subprocess.run(jb + ["rmi", "localhost/busybox:latest"], capture_output=True)
        subprocess.run(pm + ["rmi", "-a", "-f"], capture_output=True, timeout=60)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
