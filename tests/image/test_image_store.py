import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from jbx_image_helpers import d, f, make_tar, member, needs_overlay, rootfs_tar
from jupybox.errors import Conflict, DigestMismatch, ImageNotFound, StoreError, UsageError
from jupybox.image import import_rootfs
from jupybox.image import mediatypes as mt
from jupybox.image import scratch
from jupybox.paths import Layout

def dead_writers_entry(kind: str) -> str:
    """A tmp/ name of the store's scheme whose writer is gone (this pid, another start time)."""
    return re.sub(r"-s\d+-", "-s1-", scratch.name(kind))


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def blob_json(store, digest):
    return json.loads(store.read_blob(digest))


def push_like_a_pull(store, layers_tars, refs, gz=True, manifest_type=mt.OCI_MANIFEST, config_extra=None):
    """What the registry client does: write blobs with the blob API, then add_image."""
    descs = []
    for tar in layers_tars:
        blob = gzip.compress(tar, 1) if gz else tar
        with store.open_blob_writer(expected_digest=sha(blob), expected_size=len(blob)) as w:
            for i in range(0, len(blob), 1000):
                w.write(blob[i:i + 1000])
            dgst = w.commit()
        ltype = (mt.OCI_LAYER_GZIP if gz else mt.OCI_LAYER) if manifest_type == mt.OCI_MANIFEST else mt.DOCKER_LAYER_GZIP
        descs.append({"mediaType": ltype, "digest": dgst, "size": len(blob)})
    config = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in layers_tars]},
              "history": [{"created_by": f"layer {i}"} for i in range(len(layers_tars))]}
    config.update(config_extra or {})
    cbytes = json.dumps(config).encode()
    cdigest = store.write_blob(cbytes)
    manifest = {"schemaVersion": 2, "mediaType": manifest_type,
                "config": {"mediaType": mt.OCI_CONFIG if manifest_type == mt.OCI_MANIFEST else mt.DOCKER_CONFIG,
                           "digest": cdigest, "size": len(cbytes)},
                "layers": descs}
    mdigest = store.write_blob(json.dumps(manifest).encode())
    return store.add_image(mdigest, refs), mdigest


@pytest.fixture
def imported(image_store):
    img = import_rootfs(image_store, io.BytesIO(rootfs_tar()), "myimg", ["CMD [\"/bin/sh\"]"])
    return image_store, img


def test_import_list_tag_resolve_rmi(imported):
    store, img = imported
    assert [i.refs for i in store.list()] == [["myimg:latest"], ["host:latest"]]
    assert store.list()[-1].is_host
    for key in ("myimg", "myimg:latest", "docker.io/library/myimg:latest", img.short_id, img.id[7:19],
                img.id, img.id[:15], img.id[7:]):
        assert store.resolve(key).id == img.id, key
    store.tag("myimg", "localhost:5000/team/app:v1")
    assert sorted(store.resolve(img.short_id).refs) == ["localhost:5000/team/app:v1", "myimg:latest"]
    assert store.resolve("localhost:5000/team/app:v1").id == img.id
    assert store.remove("myimg") == ["Untagged: myimg:latest"]
    assert store.resolve(img.id).refs == ["localhost:5000/team/app:v1"]
    out = store.remove("localhost:5000/team/app:v1")
    assert out == ["Untagged: localhost:5000/team/app:v1", f"Deleted: {img.id}"]
    with pytest.raises(ImageNotFound, match=f"^No such image: {img.short_id}$"):
        store.resolve(img.short_id)
    assert not store.has_blob(img.id) and not store.has_blob(img.manifest_digest)
    assert not store.has_layer(img.diff_ids[0]) and not store.has_blob(img.layers[0]["digest"])
    assert [i.is_host for i in store.list()] == [True]


def test_resolve_errors(image_store):
    # a name says how to get the image (as `docker run` would pull it); an id, and docker's
    # management verbs (hint=False), say only what is missing
    with pytest.raises(ImageNotFound, match=r"^No such image: nothere \(get it with `jupybox pull nothere`, "
                                            r"or make it with `jupybox import ROOTFS.tar nothere`\)$"):
        image_store.resolve("nothere")
    with pytest.raises(ImageNotFound, match="^No such image: nothere$"):
        image_store.resolve("nothere", hint=False)
    with pytest.raises(ImageNotFound, match="^No such image: 0123abcd$"):
        image_store.resolve("0123abcd")
    with pytest.raises(UsageError, match="must be lowercase"):
        image_store.resolve("NotHere")
    assert image_store.resolve("host").is_host and image_store.resolve("host:latest").is_host


def test_index_is_valid_oci(imported):
    store, img = imported
    lay = Layout(store.layout.root)
    assert json.loads((lay.images / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    idx = json.loads((lay.images / "index.json").read_text())
    assert idx["schemaVersion"] == 2 and idx["mediaType"] == mt.OCI_INDEX
    (entry,) = idx["manifests"]
    assert entry["mediaType"] == mt.OCI_MANIFEST
    assert entry["annotations"] == {mt.ANNOTATION_REF_NAME: "latest", mt.ANNOTATION_NAME: "docker.io/library/myimg:latest"}
    mbytes = (lay.images / "blobs/sha256" / entry["digest"][7:]).read_bytes()
    assert sha(mbytes) == entry["digest"] and len(mbytes) == entry["size"]
    manifest = json.loads(mbytes)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == mt.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == mt.OCI_CONFIG
    cbytes = (lay.images / "blobs/sha256" / manifest["config"]["digest"][7:]).read_bytes()
    assert sha(cbytes) == manifest["config"]["digest"] == img.id and len(cbytes) == manifest["config"]["size"]
    config = json.loads(cbytes)
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == mt.OCI_LAYER  # import stores the layer uncompressed
    lbytes = (lay.images / "blobs/sha256" / layer["digest"][7:]).read_bytes()
    assert sha(lbytes) == layer["digest"] and len(lbytes) == layer["size"]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(rootfs_tar())]} == {"type": "layers", "diff_ids": [layer["digest"]]}
    assert config["os"] == "linux" and config["architecture"] and config["created"]
    assert config["config"]["Cmd"] == ["/bin/sh"]


def test_inspect_history_accessors(imported):
    store, img = imported
    ins = img.inspect()
    assert ins["Id"] == img.id and ins["RepoTags"] == ["myimg:latest"] and ins["RepoDigests"] == []
    assert ins["RootFS"] == {"Type": "layers", "Layers": img.diff_ids}
    assert ins["Config"]["Cmd"] == ["/bin/sh"] and ins["Os"] == "linux" and ins["Size"] == img.size > 0
    (h,) = img.history()
    assert h["comment"] == "Imported from -" and h["size"] == img.size and not h["empty_layer"]
    assert img.cmd == ["/bin/sh"] and img.entrypoint is None and img.env == [] and img.workdir == ""
    assert img.created_at is not None and len(img.short_id) == 12


def test_pull_flow_add_image(image_store):
    store = image_store
    l0 = make_tar([d("etc"), f("etc/a", b"a"), f("etc/b", b"b")])
    l1 = make_tar([member("etc/.wh.a"), f("etc/c", b"c")])
    img, md = push_like_a_pull(store, [l0, l1], ["busybox:1.36"])
    store.add_image(md, ["busybox@" + md])
    img = store.resolve("busybox:1.36")
    assert img.repo_digests == [f"busybox@{md}"] and img.refs == ["busybox:1.36"]
    assert store.resolve(f"busybox@{md}").id == img.id
    assert [h["created_by"] for h in img.history()] == ["layer 1", "layer 0"]
    dirs = store.layer_dirs(img)
    assert len(dirs) == 2 and all(p.startswith(str(store.links_dir)) for p in dirs)
    assert os.path.realpath(dirs[0]) == str(store.layer_path(sha(l0)))  # bottom first
    assert sorted(os.listdir(dirs[1] + "/etc")) == ["a", "c"]  # 'a' is the whiteout device
    assert store.layer_dirs(img, relative=True) == ["l/" + os.path.basename(p) for p in dirs]
    # rmi by tag removes the digest name too (docker)
    assert store.remove("busybox:1.36")[-1] == f"Deleted: {img.id}"


def test_docker_v2s2_manifest_accepted(image_store):
    img, md = push_like_a_pull(image_store, [make_tar([f("x")])], ["dockerish"], manifest_type=mt.DOCKER_MANIFEST)
    idx = json.loads(image_store.index_path.read_text())
    assert idx["manifests"][0]["mediaType"] == mt.DOCKER_MANIFEST
    assert image_store.layer_dirs(img)


def test_add_image_verifies_diff_id_and_blob(image_store):
    store = image_store
    tar = make_tar([f("x", b"1")])
    with pytest.raises(DigestMismatch, match="diff_id"):
        push_like_a_pull(store, [tar], ["bad"], config_extra={"rootfs": {"type": "layers", "diff_ids": [sha(b"no")]}})
    assert [i.is_host for i in store.list()] == [True]
    assert os.listdir(store.tmp) == [] and [n for n in os.listdir(store.layers_root) if n != "l"] == []
    # a layer blob corrupted on disk is caught when unpacking
    img, md = push_like_a_pull(store, [tar], ["good"])
    blob = store.blob_path(img.layers[0]["digest"])
    data = bytearray(blob.read_bytes())
    data[-30] ^= 1
    blob.write_bytes(bytes(data))
    os.system(f"rm -rf {store.layer_path(img.diff_ids[0])}")
    with pytest.raises((DigestMismatch, StoreError)):
        store.layer_dirs(img)


def test_blob_writer(image_store):
    store = image_store
    with pytest.raises(DigestMismatch):
        with store.open_blob_writer(expected_digest=sha(b"abc")) as w:
            w.write(b"abd")
            w.commit()
    with pytest.raises(DigestMismatch):
        with store.open_blob_writer(expected_size=2) as w:
            w.write(b"abc")
    with pytest.raises(RuntimeError):
        with store.open_blob_writer() as w:
            w.write(b"partial")
            raise RuntimeError("network dropped")
    assert os.listdir(store.tmp) == []
    dgst = store.write_blob(b"hello", media_type="text/plain")
    assert dgst == sha(b"hello") and store.read_blob(dgst) == b"hello" and store.has_blob(dgst)
    assert store.write_blob(b"hello") == dgst  # dedup
    with pytest.raises(StoreError):
        store.read_blob(sha(b"missing"))


def test_tag_moves_and_dangling(image_store):
    store = image_store
    a = import_rootfs(store, io.BytesIO(rootfs_tar([f("a")])), "app:1")
    b = import_rootfs(store, io.BytesIO(rootfs_tar([f("b")])), "app:2")
    store.tag("app:2", "app:1")  # a loses its only name: kept as <none>
    assert store.resolve("app:1").id == b.id
    dangling = store.resolve(a.id)
    assert dangling.refs == [] and dangling.name == "<none>:<none>"
    assert store.remove(a.id) == [f"Deleted: {a.id}"]
    with pytest.raises(UsageError):
        store.tag("app:2", "app@" + sha(b"x"))
    with pytest.raises(Conflict):
        store.tag("app:2", "host")
    with pytest.raises(UsageError):
        store.tag("host", "myhost")


def test_remove_guards(image_store):
    store = image_store
    img = import_rootfs(store, io.BytesIO(rootfs_tar()), "one")
    store.tag("one", "two")
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        store.remove(img.short_id)
    with pytest.raises(Conflict, match="host image cannot be removed"):
        store.remove("host")
    with pytest.raises(ImageNotFound):
        store.remove("three")
    used = {img.id}
    store.in_use = lambda image_id: image_id in used
    assert store.remove("two") == ["Untagged: two:latest"]  # other names remain: fine
    with pytest.raises(Conflict, match="must force"):
        store.remove("one")
    assert store.remove("one", force=True) == ["Untagged: one:latest"]  # kept, dangling, still usable
    assert store.resolve(img.id).refs == [] and store.layer_dirs(img)
    assert store.gc()["layers"] == 0 and store.has_layer(img.diff_ids[0])
    used.clear()
    assert store.remove(img.short_id) == [f"Deleted: {img.id}"]


def test_concurrent_tagging_from_two_processes(image_store):
    store = image_store
    img = import_rootfs(store, io.BytesIO(rootfs_tar()), "base")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO!r})
        from jupybox.image import ImageStore
        s = ImageStore({str(store.layout.root)!r})
        for i in range(25):
            s.tag("base", f"p{{sys.argv[1]}}-{{i}}:t")
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)]) for n in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    refs = store.resolve(img.id).refs
    assert len(refs) == 1 + 75 and all(f"p{n}-{i}:t" in refs for n in range(3) for i in range(25))
    idx = json.loads(store.index_path.read_text())
    assert len(idx["manifests"]) == 76


def test_tagging_while_gc_and_check_run(image_store):
    """Lock ordering: taggers (lease, then index lock) against gc/check (exclusive lock, then
    index lock when repairing) must neither deadlock nor lose tags."""
    store = image_store
    img = import_rootfs(store, io.BytesIO(rootfs_tar()), "base")
    root = str(store.layout.root)
    tagger = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO!r})
        from jupybox.image import ImageStore
        s = ImageStore({root!r})
        for i in range(30):
            s.tag("base", f"t{{sys.argv[1]}}-{{i}}")
    """)
    cleaner = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {REPO!r})
        from jupybox.image import ImageStore
        s = ImageStore({root!r})
        for i in range(15):
            s.check(repair=True)
            s.gc()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", tagger, str(n)]) for n in range(2)]
    procs.append(subprocess.Popen([sys.executable, "-c", cleaner]))
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert len(store.resolve(img.id).refs) == 61
    assert store.check() == []


def test_crash_leftovers_found_and_repaired(image_store):
    store = image_store
    a = import_rootfs(store, io.BytesIO(rootfs_tar([f("a", b"a" * 5000)])), "a")
    b_img, _ = push_like_a_pull(store, [make_tar([f("b", b"b" * 5000)])], ["b"])
    assert store.check() == []
    # a crash mid-write: tmp garbage; a truncated blob; a layer dir that never got committed;
    # an index entry whose manifest is gone
    blob, layer, index = dead_writers_entry("blob"), dead_writers_entry("layer"), dead_writers_entry("index")
    (store.tmp / blob).write_bytes(b"half a blob")
    (store.tmp / layer).mkdir()
    (store.tmp / layer / "f").write_text("half a layer")
    (store.tmp / index).write_text("{")
    lblob = store.blob_path(a.layers[0]["digest"])
    lblob.write_bytes(lblob.read_bytes()[:1000])
    os.system(f"rm -rf {store.layer_path(b_img.diff_ids[0])}")
    idx = json.loads(store.index_path.read_text())
    idx["manifests"].append({"mediaType": mt.OCI_MANIFEST, "digest": sha(b"gone"), "size": 4,
                             "annotations": {mt.ANNOTATION_NAME: "docker.io/library/gone:latest",
                                             mt.ANNOTATION_REF_NAME: "latest"}})
    store.index_path.write_text(json.dumps(idx))
    problems = store.check()
    text = "\n".join(problems)
    for needle in (f"tmp/{blob}", f"tmp/{layer}", f"tmp/{index}", f"corrupt blob {a.layers[0]['digest']}",
                   f"layer {b_img.diff_ids[0]} is not unpacked", "gone:latest points at a missing manifest"):
        assert needle in text, (needle, problems)
    assert not any(p.endswith("(repaired)") for p in problems)
    repaired = store.check(repair=True)
    assert all(p.endswith("(repaired)") or "cannot be pushed" in p for p in repaired), repaired
    assert os.listdir(store.tmp) == []
    left = store.check()
    # a's layer blob is gone for good, but its unpacked dir is intact: the image still runs
    assert len(left) == 1 and "cannot be pushed" in left[0]
    assert store.has_layer(b_img.diff_ids[0]) and store.layer_dirs(b_img)
    assert store.resolve("a").layer_dirs()
    with pytest.raises(ImageNotFound):
        store.resolve("gone")


def test_tmp_entries_of_live_writers_and_of_other_components_stay(image_store):
    """Only the store's own entries whose writer is gone are garbage: not a live process's (however
    old), not an unnamed entry that is locked or recent, never another component's (the runtime's)."""
    store = image_store
    live = subprocess.Popen(["sleep", "60"])
    try:
        mine = scratch.name("layer").replace(f"-p{os.getpid()}-s", f"-p{live.pid}-s", 1)
        start = scratch.start_time(live.pid)
        mine = re.sub(r"-s\d+-", f"-s{start}-", mine)
        (store.tmp / mine).mkdir()
        old = time.time() - 2 * scratch.UNNAMED_MAX_AGE
        for n in ("layer-build-abc", "rm-0123", "vol-x.1", "blob-legacy-old"):
            (store.tmp / n).mkdir()
        os.utime(store.tmp / "rm-0123", (old, old))
        os.utime(store.tmp / "blob-legacy-old", (old, old))
        assert [p.name for p in scratch.leftovers(store.tmp)] == ["blob-legacy-old"]
        assert store.remove_crash_leftovers()["tmp"] == 1
        assert sorted(os.listdir(store.tmp)) == sorted([mine, "layer-build-abc", "rm-0123", "vol-x.1"])
    finally:
        live.kill()
        live.wait()
    assert scratch.leftovers(store.tmp) == [store.tmp / mine]  # its writer is gone now


def test_check_leaves_locked_tmp_alone(image_store):
    store = image_store
    w = store.open_blob_writer()
    w.write(b"in progress")
    assert store.check() == [] and store.gc()["tmp"] == 0
    assert w.commit() == sha(b"in progress")


def test_gc(image_store):
    store = image_store
    img = import_rootfs(store, io.BytesIO(rootfs_tar()), "keep")
    junk = store.write_blob(b"unreferenced")
    tar = make_tar([f("orphan")])
    orphan = store.write_blob(tar)
    store.ensure_layer({"digest": orphan, "size": len(tar)}, sha(tar))
    assert store.has_layer(sha(tar))
    (store.tmp / dead_writers_entry("blob")).write_bytes(b"x")
    res = store.gc()
    assert res["blobs"] == 2 and res["layers"] == 1 and res["tmp"] == 1 and res["links"] == 0 and res["bytes"] > 0
    assert not store.has_blob(junk) and not store.has_blob(orphan) and not store.has_layer(sha(tar))
    assert store.has_blob(img.id) and store.has_blob(img.manifest_digest) and store.has_layer(img.diff_ids[0])
    assert sorted(os.listdir(store.links_dir)) == [os.path.basename(p) for p in store.layer_dirs(img)]
    assert store.check() == []


def test_layer_unpacked_on_demand(imported):
    store, img = imported
    (d0,) = store.layer_dirs(img)
    os.system(f"rm -rf {store.layer_path(img.diff_ids[0])} {d0}")
    assert store.layer_dirs(img) == [d0] and os.path.isfile(d0 + "/bin/hello")


def test_create_image_computes_diff_ids(image_store):
    store = image_store
    tar = make_tar([f("x", b"1")])
    blob = store.write_blob(gzip.compress(tar))
    img = store.create_image({"config": {"Cmd": ["x"]}}, [blob], ["made"])
    assert img.diff_ids == [sha(tar)] and img.layers[0]["mediaType"] == mt.OCI_LAYER_GZIP
    assert img.architecture and img.os == "linux"


@needs_overlay
def test_layer_dirs_mount_as_overlay(image_store, tmp_path):
    store = image_store
    l0 = make_tar([d("etc"), f("etc/a", b"a"), f("etc/b", b"b"), d("opt"), f("opt/x")])
    l1 = make_tar([member("etc/.wh.a"), d("opt"), f("opt/y"), member("opt/.wh..wh..opq")])
    img, _ = push_like_a_pull(store, [l0, l1], ["ov"])
    rel = store.layer_dirs(img, relative=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # short relative paths, as docker does: chdir into layers/ and name l/<id>
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + ":".join(reversed(rel)), str(mnt)],
                   check=True, cwd=store.layers_root)
    try:
        assert sorted(os.listdir(mnt / "etc")) == ["b"]
        assert sorted(os.listdir(mnt / "opt")) == ["y"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
