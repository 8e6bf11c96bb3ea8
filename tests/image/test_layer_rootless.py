"""Layers in a rootless store, for real: an unprivileged user made by the test imports layer tars
into its default store (~/.local/share/jupybox) through ``import_rootfs``, and overlayfs mounted
with ``userxattr`` in that user's own user namespace reads the markers the extractor wrote.

What a normal user cannot do is not faked: device nodes are left out (fifos kept), ownership is
the user's (root inside the user namespace), ``trusted.*``/``security.*`` xattrs are skipped,
opaque directories carry ``user.overlay.opaque=y`` and whiteouts are 0/0 character devices
(which an unprivileged ``mknod`` may create since Linux 5.8). The hostile-tar checks are the
same as root's: nothing is written outside the layer directory.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
import textwrap

import pytest

from jupybox.testing.rootless import unavailable

from jbx_image_helpers import make_tar, member

pytestmark = [pytest.mark.root, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]


@pytest.fixture(scope="module")
def user():
    from jupybox.testing.rootless import unprivileged_user

    with unprivileged_user(subids=False, prefix="jbxli") as u:
        yield u


def _d(name, **kw):
    return member(name, tarfile.DIRTYPE, **kw)


def _f(name, data=b"", **kw):
    return member(name, data=data, **kw)


def _give_tar(tmp_path, user, name, members) -> str:
    p = tmp_path / name
    p.write_bytes(make_tar(members))
    return str(user.give(p))


def _py(user, code: str, **kw) -> dict:
    """Run ``code`` as the user; its last stdout line is JSON."""
    out = user.python(textwrap.dedent(code), **kw)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"_stderr": out.stderr}


IMPORT = """
    import json, logging, sys
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    from jupybox.image import ImageStore, import_rootfs
    store = ImageStore()
    lower = import_rootfs(store, sys.argv[1], "rl-lower:1")
    top = import_rootfs(store, sys.argv[2], "rl-top:1")
    print(json.dumps({"root": str(store.layout.root),
                      "lower": store.layer_dirs(lower), "top": store.layer_dirs(top)}))
"""


def _lower_members():
    return [
        _d(".", mode=0o555),  # a read-only layer root, like Fedora's /: must still be committed
        _f("x", b"lower x"), _f("keep", b"kept"),
        _d("od"), _f("od/child", b"hidden by the opaque dir"),
    ]


def _top_members():
    return [
        _d("dev"),
        member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        member("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660),
        member("dev/null2", tarfile.LNKTYPE, linkname="dev/null"),  # a hard link to a skipped device
        member("dev/fifo", tarfile.FIFOTYPE, mode=0o620),
        _d("home"), _d("home/u", uid=1000, gid=1000, mode=0o750),
        _f("home/u/file", b"user's", uid=1000, gid=1000, mode=0o640),
        _d("bin"),
        _f("bin/su", b"\x7fELF su", mode=0o4755),
        _f("bin/wall", b"\x7fELF wall", mode=0o2755, gid=5),
        _f("xattrs", b"x", pax={"SCHILY.xattr.user.note": "kept",
                                "SCHILY.xattr.trusted.secret": "dropped",
                                "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                                "SCHILY.xattr.user.overlay.opaque": "y"}),
        member(".wh.x"),  # hides the lower layer's x
        _d("od"), _f("od/new", b"new"), member("od/.wh..wh..opq"),
    ]


@pytest.fixture(scope="module")
def imported(user, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rootless-layers")
    lower = _give_tar(tmp, user, "lower.tar", _lower_members())
    top = _give_tar(tmp, user, "top.tar", _top_members())
    res = _py(user, IMPORT.replace("sys.argv[1]", repr(lower)).replace("sys.argv[2]", repr(top)))
    assert res["root"] == str(user.home / ".local" / "share" / "jupybox")
    (lower_dir,) = res["lower"]
    (top_dir,) = res["top"]
    return res | {"lower_dir": os.path.realpath(lower_dir), "top_dir": os.path.realpath(top_dir),
                  "lower_short": lower_dir, "top_short": top_dir}


def test_devices_skipped_fifos_kept(imported):
    top = imported["top_dir"]
    for name in ("null", "sda", "null2"):
        assert not os.path.lexists(os.path.join(top, "dev", name)), name
    assert stat.S_ISFIFO(os.lstat(os.path.join(top, "dev", "fifo")).st_mode)
    assert stat.S_IMODE(os.lstat(os.path.join(top, "dev", "fifo")).st_mode) == 0o620
    # one debug line, and the import did not fail
    assert "3 device node(s) left out" in imported["_stderr"], imported["_stderr"]


def test_everything_owned_by_the_user(imported, user):
    for d in (imported["lower_dir"], imported["top_dir"]):
        for dirpath, dirnames, filenames in os.walk(d):
            for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
                st = os.lstat(n)
                assert (st.st_uid, st.st_gid) == (user.uid, user.gid), n
    top = imported["top_dir"]
    assert stat.S_IMODE(os.lstat(os.path.join(top, "home", "u")).st_mode) == 0o750
    assert stat.S_IMODE(os.lstat(os.path.join(top, "home", "u", "file")).st_mode) == 0o640
    assert stat.S_IMODE(os.lstat(imported["lower_dir"]).st_mode) == 0o555  # the read-only root, committed


def test_setuid_setgid_kept(imported):
    top = imported["top_dir"]
    assert stat.S_IMODE(os.lstat(os.path.join(top, "bin", "su")).st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(os.path.join(top, "bin", "wall")).st_mode) == 0o2755


def test_xattrs_user_kept_privileged_skipped(imported):
    p = os.path.join(imported["top_dir"], "xattrs")
    names = os.listxattr(p, follow_symlinks=False)  # as root: trusted.* would be listed too
    assert os.getxattr(p, "user.note") == b"kept"
    assert not any(n.startswith(("trusted.", "security.")) for n in names), names
    assert not any("overlay" in n for n in names), names


def test_whiteout_and_opaque_markers(imported):
    top = imported["top_dir"]
    st = os.lstat(os.path.join(top, "x"))
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    od = os.path.join(top, "od")
    assert os.getxattr(od, "user.overlay.opaque", follow_symlinks=False) == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(od, follow_symlinks=False)
    assert sorted(os.listdir(od)) == ["new"]
    names = [n for _, ds, fs in os.walk(top) for n in ds + fs]
    assert not any(n.startswith(".wh.") for n in names), names


def test_overlay_userxattr_reads_the_markers(imported, user):
    """The kernel, mounting overlayfs in the user's own user namespace, hides what the markers say."""
    mnt = user.home / "mnt"
    mnt.mkdir(exist_ok=True)
    os.chown(mnt, user.uid, user.gid)
    lower = f"{imported['top_short']}:{imported['lower_short']}"

    def ls(opts: str) -> tuple[list[str], list[str]]:
        script = f"mount -t overlay overlay -o lowerdir={lower}{opts} {mnt} && ls -A {mnt} && echo -- && ls -A {mnt}/od"
        out = user.run(["unshare", "-Urm", "sh", "-c", script], timeout=30)
        assert out.returncode == 0, out.stderr
        top, _, od = out.stdout.partition("--\n")
        return sorted(top.split()), sorted(od.split())

    top, od = ls(",userxattr")
    assert "x" not in top and "keep" in top and "bin" in top  # the whiteout hides the lower x
    assert od == ["new"]  # the opaque dir hides the lower od/child
    # without userxattr the kernel looks for trusted.overlay.opaque (invisible here): the lower
    # child shows through, so the marker read above is the user.* one
    _, od_plain = ls("")
    assert od_plain == ["child", "new"]


HOSTILE = {
    "dotdot": [_f("ok", b"ok"), _f("../escape", b"pwned")],
    "deep_dotdot": [_d("a"), _f("a/../../escape", b"pwned")],
    "absolute": [_f("/tmp/escape-abs", b"pwned")],
    "symlink_parent": [member("ln", tarfile.SYMTYPE, linkname="../../../outside"), _f("ln/escape", b"pwned")],
    "hardlink_out": [member("hl", tarfile.LNKTYPE, linkname="../../../outside/keep")],
    "device_then_link_out": [member("dev0", tarfile.CHRTYPE, devmajor=1, devminor=3),
                             member("hl", tarfile.LNKTYPE, linkname="../outside/keep")],
    "whiteout_dotdot": [member("d/.wh...")],
}


def test_hostile_tars_write_nothing_outside(user, tmp_path):
    outside = user.home / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "keep").write_text("keep")
    os.chown(outside, user.uid, user.gid)
    os.chown(outside / "keep", user.uid, user.gid)
    paths = {k: _give_tar(tmp_path, user, f"hostile-{k}.tar", v) for k, v in HOSTILE.items()}
    code = f"""
        import json, os
        from jupybox.errors import UnsafeArchive
        from jupybox.image import ImageStore, import_rootfs
        store = ImageStore()
        before = sorted(os.listdir(store.layers_root))
        res = {{}}
        for k, p in {paths!r}.items():
            try:
                import_rootfs(store, p)
                res[k] = "imported"
            except UnsafeArchive as e:
                res[k] = "unsafe: " + str(e)
        print(json.dumps({{"res": res, "same_layers": sorted(os.listdir(store.layers_root)) == before,
                           "tmp": os.listdir(store.tmp)}}))
    """
    out = _py(user, code)
    assert all(v.startswith("unsafe: ") for v in out["res"].values()), out["res"]
    assert out["same_layers"] and out["tmp"] == []
    assert (outside / "keep").read_text() == "keep" and sorted(os.listdir(outside)) == ["keep"]
    found = [os.path.join(dp, n) for dp, ds, fs in os.walk(user.home) for n in ds + fs if "escape" in n]
    assert found == [] and not os.path.lexists("/tmp/escape-abs")
