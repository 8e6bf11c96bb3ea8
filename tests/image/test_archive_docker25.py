"""Docker 25+'s `docker save` format: an OCI image layout plus a docker manifest.json pointing into
blobs/sha256/. `jupybox load` reads it; `jupybox save --format docker-oci-archive` writes it, and
docker 20.10 (which knows only manifest.json), skopeo and our own load read what it writes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

import pytest

from jbx_archive_helpers import (IMG_A, IMG_B, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, ids, members_of, names, need,
                                 put, rootfs_file, sha, skopeo, tar_of)
from jupybox.image.archive import load, save

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PLATFORM = {"architecture": "amd64", "os": "linux"}


def docker25_archive(images: dict[str, tuple]) -> bytes:
    """An archive laid out as docker 25's image/tarexport/save.go writes it: uncompressed layers
    at blobs/sha256/<diff_id>, each layer's legacy v1 JSON as a blob too, the config, an OCI
    manifest per image, index.json with one descriptor per tag (containerd's full name and the
    tag as ref.name), manifest.json with LayerSources, repositories, oci-layout; files in the
    order a directory walk gives them (blobs first)."""
    blobs: dict[str, bytes] = {}
    index, manifest_json, repositories = [], [], {}
    for tags, (_, config, _, tars) in images.items():
        parent = ""
        for i, t in enumerate(tars):
            v1 = json.dumps({"id": sha(f"{i}{parent}".encode())[7:], "parent": parent,
                             "created": "1970-01-01T00:00:00Z", "os": "linux"}).encode()
            blobs[sha(v1)] = v1
            blobs[sha(t)] = t
            parent = sha(v1)[7:]
        blobs[sha(config)] = config
        layers = [{"mediaType": OCI_LAYER, "digest": sha(t), "size": len(t)} for t in tars]
        man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config),
                                     "platform": PLATFORM},
                          "layers": layers}).encode()
        blobs[sha(man)] = man
        for tag in tags.split(","):
            name, _, t = tag.rpartition(":")
            full = tag if "/" in name else f"docker.io/library/{tag}"
            index.append({"mediaType": OCI_MANIFEST, "digest": sha(man), "size": len(man), "platform": PLATFORM,
                          "annotations": {"io.containerd.image.name": full, "org.opencontainers.image.ref.name": t}})
            repositories.setdefault(name, {})[t] = sha(tars[-1])[7:]
        manifest_json.append({"Config": f"blobs/sha256/{sha(config)[7:]}", "RepoTags": tags.split(","),
                              "Layers": [f"blobs/sha256/{sha(t)[7:]}" for t in tars],
                              "LayerSources": {sha(t): d for t, d in zip(tars, layers)}})
    members = [("blobs/", None, None), ("blobs/sha256/", None, None)]
    members += [(f"blobs/sha256/{d[7:]}", b, None) for d, b in sorted(blobs.items())]
    members += [("index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode(), None),
                ("manifest.json", json.dumps(manifest_json).encode() + b"\n", None),
                ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None),
                ("repositories", json.dumps(repositories).encode() + b"\n", None)]
    return tar_of(members)


@pytest.mark.parametrize("from_stream", [False, True])
def test_load_what_docker_25_saves(tmp_path, store, from_stream):
    data = docker25_archive({"a:1,a:latest": IMG_A, "reg.example:5000/team/b:2": IMG_B})
    (tmp_path / "d25.tar").write_bytes(data)
    if from_stream:  # `docker save | jupybox load`: one pass, blobs before manifest.json
        p = subprocess.Popen(["cat", str(tmp_path / "d25.tar")], stdout=subprocess.PIPE)
        loaded = load(store, p.stdout)
        p.wait()
    else:
        loaded = load(store, tmp_path / "d25.tar")
    assert ids(loaded) == sorted([sha(IMG_A[1]), sha(IMG_B[1])])
    assert names(loaded) == ["a:1", "a:latest", "reg.example:5000/team/b:2"]
    a = store.resolve("a:latest")
    # docker's own OCI manifest is kept, and with it the digest docker shows for the image
    idx = json.loads(tarfile.open(fileobj=io.BytesIO(data)).extractfile("index.json").read())
    assert a.manifest_digest == idx["manifests"][0]["digest"]
    assert rootfs_file(store, a, "etc/hello") == b"A2\n"
    assert rootfs_file(store, store.resolve("reg.example:5000/team/b:2"), "b") == b"only in B\n"
    assert store.check() == [] and not list(store.tmp.iterdir())


def test_save_docker_oci_archive_layout(tmp_path, store):
    a = put(store, IMG_A, ["a:1", "reg.example:5000/team/a:2"])  # gzipped layers
    b = put(store, IMG_B, ["b:1"])  # plain layers
    out = tmp_path / "x.tar"
    save(store, ["a:1", "reg.example:5000/team/a:2", "b:1"], out, format="docker-oci-archive")
    assert len(members_of(out)) == len(set(members_of(out)))
    with tarfile.open(out) as tf:
        read = lambda n: tf.extractfile(n).read()  # noqa: E731
        assert json.loads(read("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(read("index.json"))
        assert [(d["digest"], d["annotations"]) for d in index["manifests"]] == [
            (a.manifest_digest, {"io.containerd.image.name": "docker.io/library/a:1",
                                 "org.opencontainers.image.ref.name": "1"}),
            (a.manifest_digest, {"io.containerd.image.name": "reg.example:5000/team/a:2",
                                 "org.opencontainers.image.ref.name": "2"}),
            (b.manifest_digest, {"io.containerd.image.name": "docker.io/library/b:1",
                                 "org.opencontainers.image.ref.name": "1"})]
        entries = json.loads(read("manifest.json"))
        assert [e["RepoTags"] for e in entries] == [["a:1", "reg.example:5000/team/a:2"], ["b:1"]]
        for e, img in zip(entries, (a, b)):
            assert e["Config"] == f"blobs/sha256/{img.id[7:]}" and sha(read(e["Config"])) == img.id
            assert e["Layers"] == [f"blobs/sha256/{d['digest'][7:]}" for d in img.layers]
            for path in e["Layers"]:
                assert sha(read(path)) == "sha256:" + path.rsplit("/", 1)[1]  # as stored, verified
        assert json.loads(read("repositories")) == {"a": {"1": a.diff_ids[-1][7:]},
                                                   "reg.example:5000/team/a": {"2": a.diff_ids[-1][7:]},
                                                   "b": {"1": b.diff_ids[-1][7:]}}


def test_docker_oci_archive_round_trip_and_skopeo(tmp_path, store_factory):
    s1 = store_factory()
    a = put(s1, IMG_A, ["a:1"])
    b = put(s1, IMG_B, ["b:1"])
    out = tmp_path / "x.tar"
    save(s1, ["a:1", "b:1"], out, format="docker-oci-archive")
    s2 = store_factory()
    loaded = load(s2, out)
    assert ids(loaded) == ids([a, b]) and names(loaded) == ["a:1", "b:1"]
    assert s2.resolve("a:1").manifest_digest == a.manifest_digest
    need("skopeo")
    info = json.loads(skopeo("inspect", f"docker-archive:{out}:a:1").stdout)  # read as docker's format
    assert info["Labels"] == {"l": "a"}
    skopeo("copy", f"oci-archive:{out}:1", f"oci:{tmp_path}/copy:x")  # and as an OCI layout


def test_the_cli_writes_it(tmp_path, jupybox_root, busybox_tar):
    def jb(*args):
        return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(jupybox_root), *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    assert jb("import", busybox_tar, "bb:1").returncode == 0
    r = jb("save", "--format", "docker-oci-archive", "-o", tmp_path / "bb.tar", "bb:1")
    assert r.returncode == 0, r.stderr
    assert {"index.json", "manifest.json", "oci-layout"} <= set(members_of(tmp_path / "bb.tar"))
    r = jb("save", "--format", "zip", "-o", tmp_path / "bb.zip", "bb:1")
    assert r.returncode == 125 and "invalid choice" in r.stderr  # a bad flag value: docker's 125


def test_docker_2010_loads_our_docker_oci_archive(tmp_path, store, docker_cli, busybox_tar):
    """docker 20.10 reads only manifest.json: its paths into blobs/sha256/ (a gzipped layer too)."""
    from jupybox.image import import_rootfs

    bb = import_rootfs(store, busybox_tar, "bb:1")
    a = put(store, IMG_A, ["reg.example:5000/team/a:2"])
    save(store, ["bb:1", "reg.example:5000/team/a:2"], tmp_path / "ours.tar", format="docker-oci-archive")
    r = docker_cli("load", "-i", str(tmp_path / "ours.tar"), text=True)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:-1]) == ["Loaded image: bb:1", "Loaded image: reg.example:5000/team/a:2"]
    for ref, img in (("bb:1", bb), ("reg.example:5000/team/a:2", a)):
        assert docker_cli("image", "inspect", "-f", "{{.Id}}", ref, text=True).stdout.strip() == img.id
    r = docker_cli("create", "--name", "copy1", "--network", "none", "reg.example:5000/team/a:2", "x")
    assert r.returncode == 0, r.stderr
    r = docker_cli("cp", "copy1:/etc/hello", "-")  # the layers are real: docker unpacked them
    assert r.returncode == 0, r.stderr
    assert tarfile.open(fileobj=io.BytesIO(r.stdout)).extractfile("hello").read() == b"A2\n"
