"""A store on a full file system (a 20 MB tmpfs the test mounts and unmounts): every writing verb
fails in one line with exit 125 and leaves nothing half-written; reading and removing work with
no free space at all."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from jbx_image_helpers import needs_root

pytestmark = [needs_root]


def jb(root, *args, **kw):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "jbx-test-full", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(path: Path, name: str = "filler") -> None:
    """Fill the file system of ``path`` up to the last block."""
    with open(path / name, "wb", buffering=0) as f:
        block = b"\0" * (1 << 20)
        while block:
            try:
                f.write(block)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                block = block[:len(block) // 2]
    assert os.statvfs(path).f_bavail == 0


def snapshot(root: Path) -> dict:
    """What a failed write must not have changed."""
    def names(d):
        return sorted(os.listdir(d)) if d.exists() else []
    return {"index": (root / "images" / "index.json").read_bytes(), "blobs": names(root / "images" / "blobs" / "sha256"),
            "layers": names(root / "layers"), "tmp": names(root / "tmp")}


def rootfs(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("payload.bin")
        ti.size = size
        tf.addfile(ti, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def one_line_125(r, what: str) -> None:
    err = r.stderr.strip()
    assert r.returncode == 125 and len(err.splitlines()) == 1, (what, r.returncode, err)
    assert "no space left on device" in err.lower(), (what, err)


def test_writes_fail_cleanly_reads_and_removals_work(small_fs, tmp_path, busybox_tar, registry):
    root = small_fs / "root"
    assert jb(root, "import", busybox_tar, "bb:1").returncode == 0
    assert jb(root, "import", busybox_tar, "bb:2").returncode == 0
    # what the writes will try: an archive and a rootfs from outside, an image in a registry
    other = tmp_path / "other-root"
    big = tmp_path / "big.tar"
    big.write_bytes(rootfs(3 << 20))
    assert jb(other, "import", big, "big:1").returncode == 0
    assert jb(other, "save", "-o", tmp_path / "big-image.tar", "big:1").returncode == 0
    ref = f"{registry.host}/full/big:1"
    assert jb(other, "tag", "big:1", ref).returncode == 0
    assert jb(other, "push", "-q", ref).returncode == 0

    fill(small_fs)
    before = snapshot(root)
    for what, args in [("import", ("import", big, "new:1")),
                       ("load", ("load", "-i", tmp_path / "big-image.tar")),
                       ("pull", ("pull", "-q", ref)),
                       ("tag", ("tag", "bb:1", "bb:3")),
                       ("save", ("save", "-o", small_fs / "out.tar", "bb:1"))]:
        one_line_125(jb(root, *args), what)
        assert snapshot(root) == before, what  # nothing half-written, nothing left in tmp/
        assert sorted(os.listdir(small_fs)) == ["filler", "root"], what  # no partial out.tar
    assert jb(root, "fsck").stdout.strip() == "the store is consistent"

    # reading and removing need no free space
    assert os.statvfs(small_fs).f_bavail == 0
    r = jb(root, "images", "--format", "json")
    assert r.returncode == 0 and {json.loads(x)["Repository"] for x in r.stdout.splitlines()} == {"bb", "host"}
    r = jb(root, "rmi", "bb:1")
    assert r.returncode == 0 and r.stdout.strip().splitlines()[0] == "Untagged: bb:1", r.stderr
    r = jb(root, "rmi", "bb:2")
    assert r.returncode == 0 and "Deleted:" in r.stdout, r.stderr
    r = jb(root, "image", "prune", "-a", "-f")
    assert r.returncode == 0, r.stderr
    assert jb(root, "fsck").stdout.strip() == "the store is consistent"
    assert os.statvfs(small_fs).f_bavail > 0  # the image's blobs and layer went


def test_rmi_on_a_full_disk_without_the_layers_to_free(small_fs, busybox_tar):
    """A removal that frees almost nothing (another name of the same layers) still works: the
    index is rewritten with the store's reserve, made again once there is room."""
    root = small_fs / "root"
    assert jb(root, "import", busybox_tar, "a:1").returncode == 0
    assert jb(root, "tag", "a:1", "a:2").returncode == 0
    reserve = root / "images" / ".reserve"
    assert reserve.stat().st_size > 0
    fill(small_fs)
    r = jb(root, "rmi", "a:2")  # only a name goes: no blob, no layer is freed
    assert r.returncode == 0 and r.stdout.strip() == "Untagged: a:2", r.stderr
    assert not reserve.exists()  # spent
    # with no reserve left, a removal that needs room says so in one line and changes nothing
    fill(small_fs, "filler2")  # (the spent reserve was bigger than the index it made room for)
    before = snapshot(root)
    one_line_125(jb(root, "rmi", "a:1"), "rmi")
    assert snapshot(root) == before
    (small_fs / "filler").unlink()
    (small_fs / "filler2").unlink()
    assert jb(root, "tag", "a:1", "a:3").returncode == 0
    assert reserve.stat().st_size > 0  # there is room again: so is the reserve
