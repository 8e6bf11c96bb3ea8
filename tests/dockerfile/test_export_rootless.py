"""Build layers in a rootless store, for real: an unprivileged user made by the test writes an
overlay upper dir the way the kernel does under ``userxattr`` (whiteouts as 0/0 character devices,
``user.overlay.opaque=y``), and ``commit_upper`` turns it into a layer of its default store; COPY's
:class:`LayerWriter` writes a layer without chown, device nodes or ``trusted.*`` xattrs."""

from __future__ import annotations

import json
import textwrap
from types import SimpleNamespace

import pytest

from jupybox.testing.rootless import unavailable

from jupybox.dockerfile.upper import id_mapper

pytestmark = [pytest.mark.root, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]


@pytest.fixture(scope="module")
def user():
    from jupybox.testing.rootless import unprivileged_user

    with unprivileged_user(subids=False, prefix="jbxbe") as u:
        yield u


def _py(user, code: str) -> dict:
    out = user.python(textwrap.dedent(code))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


TAR_MEMBERS = """
    def members(path):
        out = {}
        with tarfile.open(path) as t:
            for m in t.getmembers():
                out[m.name] = {"type": m.type.decode(), "mode": m.mode, "uid": m.uid, "gid": m.gid,
                               "pax": {k: v for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")},
                               "link": m.linkname, "size": m.size}
        return out
"""


def test_commit_upper_whiteouts_and_user_opaque(user):
    code = TAR_MEMBERS + """
    import json, os, stat, tarfile
    from jupybox.dockerfile.upper import commit_upper
    from jupybox.image import ImageStore

    store = ImageStore()
    u = os.path.expanduser("~/upper")
    os.makedirs(u + "/etc")
    open(u + "/etc/hosts", "w").close()  # the runtime's empty mount point: left out
    os.makedirs(u + "/home")
    os.mknod(u + "/home/user", stat.S_IFCHR, 0)  # overlay's whiteout, made unprivileged
    os.makedirs(u + "/opq")
    os.setxattr(u + "/opq", "user.overlay.opaque", b"y")
    open(u + "/opq/new", "w").write("n")
    os.makedirs(u + "/d")
    open(u + "/d/a", "w").write("data")
    os.chmod(u + "/d/a", 0o4755)
    os.link(u + "/d/a", u + "/d/b")
    os.setxattr(u + "/d/a", "user.note", b"hello")
    os.setxattr(u + "/d", "user.overlay.origin", b"junk")  # overlay bookkeeping: dropped
    os.mkfifo(u + "/d/fifo")
    ref = commit_upper(store, u, None)
    d = str(store.layer_path(ref.diff_id))
    print(json.dumps({
        "members": members(str(store.blob_path(ref.desc["digest"]))),
        "upper_gone": not os.path.exists(u),
        "opaque": os.getxattr(d + "/opq", "user.overlay.opaque").decode(),
        "d_xattrs": os.listxattr(d + "/d"),
        "whiteout": [stat.S_ISCHR(os.lstat(d + "/home/user").st_mode), os.lstat(d + "/home/user").st_rdev],
    }))
    """
    out = _py(user, code)
    m = out["members"]
    assert sorted(m) == ["d", "d/a", "d/b", "d/fifo", "home", "home/.wh.user", "opq", "opq/.wh..wh..opq", "opq/new"]
    assert m["home/.wh.user"]["type"] == "0" and m["home/.wh.user"]["size"] == 0
    assert m["opq/.wh..wh..opq"]["type"] == "0"
    assert m["d/a"]["mode"] == 0o4755 and m["d/a"]["pax"] == {"SCHILY.xattr.user.note": "hello"}
    assert m["d/b"]["type"] == "1" and m["d/b"]["link"] == "d/a"
    assert m["d/fifo"]["type"] == "6"
    # host ids → ids inside the user namespace: the user is root there
    assert {(v["uid"], v["gid"]) for v in m.values()} == {(0, 0)}
    assert not any("overlay" in k for v in m.values() for k in v["pax"])
    # the upper dir became the store's layer directory, with only the markers the kernel reads
    assert out["upper_gone"] and out["opaque"] == "y" and out["whiteout"] == [True, 0]
    assert out["d_xattrs"] == []


def test_layer_writer_without_privileges(user):
    code = TAR_MEMBERS + """
    import json, os, stat, tarfile
    from jupybox.dockerfile.layers import LayerWriter
    from jupybox.image import ImageStore

    store = ImageStore()
    fifo = os.path.expanduser("~/a-fifo")
    os.mkfifo(fifo)
    with LayerWriter(store) as w:
        w.add_dir("app", 0o750, 1000, 1000, 1_600_000_000, opaque=True)
        w.add_file("app/tool", 0o4755, 1000, 1000, 1_600_000_000, data=b"#!/bin/sh\\n",
                   pax={"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.t": "x"})
        w.add_special("app/null", os.stat("/dev/null"), 0, 0)
        w.add_hardlink("app/null2", "app/null", 0, 0, 1_600_000_000)
        w.add_special("app/fifo", os.lstat(fifo), 0, 0)
        ref = w.commit()
        skipped = w.skipped_devices
    d = str(store.layer_path(ref.diff_id))
    st = os.lstat(d + "/app/tool")
    print(json.dumps({
        "members": members(str(store.blob_path(ref.diff_id))),
        "listing": sorted(os.listdir(d + "/app")),
        "opaque": os.getxattr(d + "/app", "user.overlay.opaque").decode(),
        "tool": [st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), os.listxattr(d + "/app/tool")],
        "app_mode": stat.S_IMODE(os.lstat(d + "/app").st_mode),
        "skipped": skipped, "uid": os.geteuid(), "gid": os.getegid(),
    }))
    """
    out = _py(user, code)
    m = out["members"]
    # the tar says what the image means ...
    assert m["app"]["uid"] == 1000 and m["app/tool"]["uid"] == 1000 and m["app/tool"]["mode"] == 0o4755
    assert "app/.wh..wh..opq" in m and m["app/null"]["type"] == "3" and m["app/null2"]["type"] == "1"
    assert m["app/tool"]["pax"] == {"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.t": "x"}
    # ... the directory holds what a normal user can make: its own files, no device nodes
    assert out["listing"] == ["fifo", "tool"] and out["skipped"] == 2
    assert out["opaque"] == "y" and out["app_mode"] == 0o750
    assert out["tool"] == [out["uid"], out["gid"], 0o4755, ["user.k"]]


def test_id_mapper_with_subids():
    uid_of, gid_of = id_mapper(SimpleNamespace(uids=((0, 1001, 1), (1, 100000, 65536)),
                                               gids=((0, 1002, 1), (1, 200000, 65536))))
    assert [uid_of(x) for x in (1001, 100000, 100999, 165535, 0, 5000)] == [0, 1, 1000, 65536, 65534, 65534]
    assert [gid_of(x) for x in (1002, 200004, 1001)] == [0, 5, 65534]
    ident_u, _ = id_mapper()  # this process is root: a root store keeps the ids
    assert ident_u(1234) == 1234
