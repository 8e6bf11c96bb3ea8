"""Our images/ directory is a real OCI layout: skopeo and umoci read it."""

import gzip
import io
import json
import os
import shutil
import subprocess

import pytest

from jbx_image_helpers import IS_ROOT, d, f, make_tar, member, rootfs_tar
from jupybox.image import import_rootfs

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")


def run(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


@skopeo
def test_skopeo_inspects_our_layout(image_store):
    img = import_rootfs(image_store, io.BytesIO(rootfs_tar()), "interop:skopeo1", ['CMD ["/bin/sh"]'])
    import_rootfs(image_store, io.BytesIO(rootfs_tar([f("other")])), "other:skopeo2")
    out = json.loads(run("skopeo", "inspect", f"oci:{image_store.root}:skopeo1"))
    assert out["Digest"] == img.manifest_digest
    assert out["Layers"] == [l["digest"] for l in img.layers]
    raw = json.loads(run("skopeo", "inspect", "--config", f"oci:{image_store.root}:skopeo1"))
    assert raw["rootfs"]["diff_ids"] == img.diff_ids and raw["config"]["Cmd"] == ["/bin/sh"]


@skopeo
def test_skopeo_copies_into_our_store(image_store, tmp_path):
    """The other direction: skopeo writes an image (gzip layers) to an OCI dir; we register it."""
    img = import_rootfs(image_store, io.BytesIO(rootfs_tar()), "src:copy", compression="gzip")
    dst = tmp_path / "oci-copy"
    run("skopeo", "copy", f"oci:{image_store.root}:copy", f"oci:{dst}:x")
    index = json.loads((dst / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"]
    for blob in (dst / "blobs/sha256").iterdir():
        image_store.write_blob(blob.read_bytes())
    copied = image_store.add_image(mdigest, ["copied:x"])
    assert copied.id == img.id and copied.layers[0]["mediaType"].endswith("+gzip")
    assert image_store.layer_dirs(copied)


@umoci
@pytest.mark.skipif(not IS_ROOT, reason="umoci unpack needs root to keep ownership")
def test_umoci_unpacks_our_layout(image_store, tmp_path):
    l0 = make_tar([d("etc"), f("etc/keep", b"k"), f("etc/gone", b"g"), d("bin"), f("bin/tool", b"t", mode=0o4755)])
    l1 = make_tar([member("etc/.wh.gone"), f("etc/new", b"n")])
    import_rootfs(image_store, io.BytesIO(l0), "base:umoci0")
    base = image_store.resolve("base:umoci0")
    blob = image_store.write_blob(gzip.compress(l1))
    top = image_store.create_image({"config": {"Cmd": ["/bin/sh"]}},
                                   [base.layers[0]["digest"], blob], ["top:umoci1"])
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{image_store.root}:umoci1", str(bundle))
    rootfs = bundle / "rootfs"
    assert sorted(os.listdir(rootfs / "etc")) == ["keep", "new"]
    assert os.stat(rootfs / "bin/tool").st_mode & 0o7777 == 0o4755
    cfg = json.loads((bundle / "config.json").read_text())
    assert cfg["process"]["args"] == ["/bin/sh"]
    # and our own unpacking agrees with umoci's on the files
    ours = image_store.layer_dirs(top)
    assert len(ours) == 2 and os.path.isfile(ours[1] + "/etc/new")
