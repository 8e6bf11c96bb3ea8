"""Every change to images or layers bumps the store's generation (``Layout.generation()``), so
what the runtime made ahead of time for the old store is thrown away; reading does not."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from jbx_image_helpers import f, make_tar, rootfs_tar
from jupybox.image import ImageStore, import_rootfs, scratch
from jupybox.image.archive import load, save


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "root")


class Generation:
    def __init__(self, store):
        self.layout = store.layout
        self.last = self.layout.generation()

    def changed(self) -> bool:
        now = self.layout.generation()
        changed, self.last = now != self.last, now
        return changed


def test_each_mutation_bumps_reads_do_not(store, tmp_path):
    gen = Generation(store)
    a = import_rootfs(store, io.BytesIO(rootfs_tar([f("a", b"a")])), "a:1")
    assert gen.changed(), "import"

    store.list(), store.resolve("a:1"), store.layer_dirs(a), store.check(), a.inspect()
    save(store, ["a:1"], tmp_path / "a.tar")
    assert not gen.changed(), "reading"

    store.tag("a:1", "a:2")
    assert gen.changed(), "tag"
    store.remove("a:2")
    assert gen.changed(), "rmi (untag)"
    store.remove("a:1")
    assert gen.changed(), "rmi (delete)"
    (img,) = load(store, tmp_path / "a.tar")
    assert gen.changed(), "load"

    tar = make_tar([f("b", b"b")])
    blob = store.write_blob(tar)
    assert not gen.changed(), "a blob alone is no image"
    store.ensure_layer({"digest": blob, "size": len(tar)}, None)
    assert gen.changed(), "a layer directory made"
    b = store.create_image({"config": {}}, [blob], ["b:1"])
    assert gen.changed(), "commit (create_image)"
    store.layers.remove(b.diff_ids[0][7:])
    assert gen.changed(), "a layer directory removed"
    assert store.layer_dirs(b)  # unpacked again on demand
    assert gen.changed(), "a layer directory made again"

    d = store.tmp_dir("layer")
    open(os.path.join(d, "x"), "w").close()
    store.adopt_layer_dir(d, "sha256:" + "0" * 64)  # a build's layer directory
    assert gen.changed(), "a build's layer directory"

    img = store.resolve(img.id)
    os.system(f"rm -rf {store.layer_path(img.diff_ids[0])}")
    gen.changed()
    assert any(p.endswith("(repaired)") for p in store.check(repair=True))
    assert gen.changed(), "fsck --repair"
    assert store.check(repair=True) == [] and not gen.changed(), "nothing to repair"

    store.remove("b:1")
    gen.changed()
    assert store.prune(all=True)["deleted"]
    assert gen.changed(), "image prune"
    store.write_blob(b"garbage")
    gen.changed()
    assert store.gc()["blobs"] == 1
    assert gen.changed(), "gc"


    leftover = store.tmp / re.sub(r"-s\d+-", "-s1-", scratch.name("blob"))
    leftover.write_bytes(b"x")
    store.remove_crash_leftovers()
    assert not gen.changed(), "tmp/ is no part of any image"


def test_pull_and_build_bump(tmp_path, registry, busybox_tar):
    def jb(root, *args):
        r = subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r

    src, dst = tmp_path / "src", tmp_path / "dst"
    jb(src, "import", busybox_tar, "bb:1")
    ref = f"{registry.host}/gen/bb:1"
    jb(src, "tag", "bb:1", ref)
    jb(src, "push", "-q", ref)
    gen = Generation(ImageStore(dst))
    jb(dst, "pull", "-q", ref)
    assert gen.changed(), "pull"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nENV GREETING=hi\n")
    jb(dst, "build", "-q", "-t", "built:1", ctx)
    assert gen.changed(), "build"
