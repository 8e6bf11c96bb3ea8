"""Upper dir → OCI layer (whiteouts, opaque dirs, hard links, xattrs, runtime artifacts), and the
merged image view COPY uses."""

from __future__ import annotations

import os
import stat
import tarfile

import pytest

from jupybox.dockerfile.context import ImageFS
from jupybox.dockerfile.upper import commit_upper

pytestmark = pytest.mark.root


def make_upper(root):
    u = root / "upper"
    (u / "etc").mkdir(parents=True)
    for n in ("hosts", "hostname", "resolv.conf"):
        (u / "etc" / n).write_text("")  # what the runtime makes: empty mount points
    (u / "proc").mkdir()  # a mount point the image did not have
    (u / "home").mkdir()
    os.mknod(u / "home" / "user", stat.S_IFCHR | 0o000, 0)  # overlay whiteout
    (u / "opq").mkdir()
    os.setxattr(u / "opq", "trusted.overlay.opaque", b"y")
    (u / "opq" / "new").write_text("n")
    (u / "d").mkdir()
    (u / "d" / "a").write_text("data")
    os.link(u / "d" / "a", u / "d" / "b")
    os.setxattr(u / "d" / "a", "user.note", b"hello")
    os.setxattr(u / "d", "trusted.overlay.origin", b"junk")  # overlay bookkeeping: dropped
    os.symlink("a", u / "d" / "ln")
    os.mkfifo(u / "d" / "fifo")
    os.chown(u / "d" / "a", 1000, 2000)
    os.chmod(u / "d" / "a", 0o4755)  # after chown, which clears setuid
    return u


def test_commit_upper(busybox_image, tmp_path):
    store = busybox_image.store
    base = ImageFS(store.layer_dirs(store.resolve("busybox")))
    u = make_upper(tmp_path)
    ref = commit_upper(store, str(u), base)
    assert not u.exists()  # the upper dir became the unpacked layer
    with tarfile.open(store.blob_path(ref.desc["digest"])) as t:
        members = {m.name: m for m in t.getmembers()}
    assert sorted(members) == ["d", "d/a", "d/b", "d/fifo", "d/ln", "home", "home/.wh.user", "opq",
                               "opq/.wh..wh..opq", "opq/new"]
    a, b = members["d/a"], members["d/b"]
    assert a.isreg() and a.mode == 0o4755 and (a.uid, a.gid) == (1000, 2000)
    assert a.pax_headers.get("SCHILY.xattr.user.note") == "hello"
    assert b.islnk() and b.linkname == "d/a"
    assert members["d/ln"].issym() and members["d/fifo"].isfifo()
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    d = store.layer_path(ref.diff_id)
    assert d.is_dir() and os.getxattr(d / "opq", "trusted.overlay.opaque") == b"y"
    with pytest.raises(OSError):
        os.getxattr(d / "d", "trusted.overlay.origin")
    assert ref.desc["digest"] == ref.diff_id and ref.desc["size"] == os.path.getsize(store.blob_path(ref.diff_id))


def test_commit_upper_empty_change_set(busybox_image, tmp_path):
    u = tmp_path / "upper"
    (u / "etc").mkdir(parents=True)
    (u / "etc" / "hosts").write_text("")
    assert commit_upper(busybox_image.store, str(u), None) is None


def test_nonempty_runtime_file_is_kept(busybox_image, tmp_path):
    u = tmp_path / "upper"
    (u / "etc").mkdir(parents=True)
    (u / "etc" / "hosts").write_text("127.0.0.1 custom\n")
    ref = commit_upper(busybox_image.store, str(u), None)
    with tarfile.open(busybox_image.store.blob_path(ref.diff_id)) as t:
        assert t.getnames() == ["etc", "etc/hosts"]


def test_image_fs_merges_layers(tmp_path):
    low, mid, top = (tmp_path / n for n in ("low", "mid", "top"))
    for p in ("a/x", "a/y", "b/z", "keep"):
        (low / p).parent.mkdir(parents=True, exist_ok=True)
        (low / p).write_text("low")
    (mid / "a").mkdir(parents=True)
    os.mknod(mid / "a" / "x", stat.S_IFCHR, 0)
    (mid / "b").mkdir()
    os.setxattr(mid / "b", "trusted.overlay.opaque", b"y")
    (mid / "b" / "w").write_text("mid")
    (top / "a").mkdir(parents=True)
    (top / "a" / "y").write_text("top")
    os.symlink("/a", top / "link")
    fs = ImageFS([str(low), str(mid), str(top)])
    assert fs.listdir("") == ["a", "b", "keep", "link"]
    assert fs.listdir("a") == ["y"] and fs.lstat("a/x") is None
    assert fs.listdir("b") == ["w"] and fs.lstat("b/z") is None
    assert open(fs.host_path("a/y")).read() == "top"
    assert fs.resolve("link/y") == "a/y" and fs.resolve("link/../../../keep") == "keep"
    assert fs.read("link/y") == b"top"


def test_layer_writer_never_writes_through_a_symlink(busybox_image, tmp_path):
    from jupybox.dockerfile.layers import LayerWriter

    target = tmp_path / "host-dir"
    target.mkdir()
    with LayerWriter(busybox_image.store) as w:
        w.add_dir("d", 0o755, 0, 0, 0)
        w.add_symlink("d/s", str(target), 0, 0, 0)
        with pytest.raises(ValueError, match="parent is not a directory"):
            w.add_file("d/s/escaped", 0o644, 0, 0, 0, data=b"x")
        with pytest.raises(ValueError, match="parent is not a directory"):
            w.add_file("missing/x", 0o644, 0, 0, 0, data=b"x")
    assert list(target.iterdir()) == []
