import bz2
import gzip
import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from jbx_image_helpers import IS_ROOT, d, f, hard, make_tar, member, needs_overlay, needs_root, sym
from jupybox.errors import DigestMismatch, StoreError, UnsafeArchive
from jupybox.image.layer import detect_compression, extract_layer, unpack_layer
from jupybox.image.tarheader import FastTarInfo


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def unpack(tmp_path, data: bytes, name="layer", **kw):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return unpack_layer(io.BytesIO(data), tmp_path / name, tmp_dir=tmp, **kw)


def assert_nothing_left(tmp_path, name="layer"):
    assert not (tmp_path / name).exists(), "a partial layer dir was left"
    assert os.listdir(tmp_path / "tmp") == [], "tmp/ garbage was left"


# ---------------------------------------------------------------- hostile archives

HOSTILE = {
    "dotdot": [f("../../etc/x")],
    "dotdot-into-sentinel": [f("../outside/evil")],  # the layer dir is a sibling of the sentinel
    "dotdot-normalized-away": [f("./a/./../../outside/evil")],
    "dotdot-inside": [d("a"), f("a/../../x")],
    "absolute": [f("/abs/path")],
    "symlink-abs-then-write": [sym("a", "{outside}"), f("a/x")],
    "symlink-dotdot-then-write": [sym("up", ".."), f("up/x")],
    "symlink-dotdot-then-dir": [sym("up", ".."), d("up/dir")],
    "symlink-deep-then-write": [d("a"), sym("a/b", "../../.."), f("a/b/c/x")],
    "dir-replaced-by-symlink": [d("a"), f("a/ok"), sym("a", "{outside}"), f("a/x")],
    "hardlink-to-symlink-then-write": [sym("a", "{outside}"), hard("b", "a"), f("b/x")],
    "hardlink-etc-passwd": [hard("p", "/etc/passwd")],
    "hardlink-dotdot": [hard("p", "../../outside/keep")],
    "hardlink-missing": [hard("p", "nothere")],
    "hardlink-through-symlink": [sym("a", "{outside}"), hard("p", "a/keep")],
    "hardlink-to-whiteout": [f("x"), member(".wh.y"), hard("p", "y")],
    "hardlink-to-marker": [hard("p", ".wh.y")],
    "absurd-size": [f("big", b"", size=1 << 50)],
    "whiteout-dotdot": [member(".wh..."), ],
    "whiteout-dot": [member(".wh..")],
    "whiteout-empty": [member(".wh.")],
    "whiteout-outside": [member("../.wh.x")],
    "whiteout-through-symlink": [sym("a", "{outside}"), member("a/.wh.keep")],
    "opaque-through-symlink": [sym("a", "{outside}"), member("a/.wh..wh..opq")],
    "whiteout-as-dir": [d(".wh.x"), f(".wh.x/y")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_rejected(tmp_path, sentinel, case):
    members = []
    for ti, data in HOSTILE[case]:
        ti.linkname = ti.linkname.replace("{outside}", str(sentinel))
        members.append((ti, data))
    data = make_tar(members, format=tarfile.GNU_FORMAT)
    with pytest.raises(UnsafeArchive) as e:
        unpack(tmp_path, data)
    msg = str(e.value)
    assert "\n" not in msg and "member" in msg
    assert_nothing_left(tmp_path)


def test_hostile_message_names_member(tmp_path, sentinel):
    with pytest.raises(UnsafeArchive, match=r"member '\.\./\.\./etc/x'"):
        unpack(tmp_path, make_tar([f("../../etc/x")]))


def test_oversized_pax_header_rejected(tmp_path):
    raw = bytearray(make_tar([f("a", b"hi")]))
    # forge a pax extended header claiming 1 GiB of records
    hdr = tarfile.TarInfo("././@PaxHeader")
    hdr.type = tarfile.XHDTYPE
    hdr.size = 1 << 30
    forged = hdr.tobuf(tarfile.USTAR_FORMAT) + bytes(raw)
    with pytest.raises((UnsafeArchive, StoreError)):
        unpack(tmp_path, forged)
    assert_nothing_left(tmp_path)


def test_not_a_tar_and_truncated(tmp_path):
    with pytest.raises(StoreError, match="not a tar"):
        unpack(tmp_path, b"hello world" * 100)
    assert_nothing_left(tmp_path)
    good = make_tar([f("a", b"x" * 5000), f("b", b"y" * 5000)])
    with pytest.raises(StoreError, match="truncated|unexpected end"):
        unpack(tmp_path, good[:3000])
    assert_nothing_left(tmp_path)
    with pytest.raises(StoreError, match="truncated"):
        unpack(tmp_path, gzip.compress(good)[:-20])
    assert_nothing_left(tmp_path)


def test_garbage_header_midway(tmp_path):
    good = make_tar([f("a", b"x" * 10)])
    bad = good[:1024] + b"\x01" * 512 + bytes(1024)
    with pytest.raises(StoreError, match="bad tar header"):
        unpack(tmp_path, bad)
    assert_nothing_left(tmp_path)


# ---------------------------------------------------------------- normal behaviour


def test_duplicates_later_wins(tmp_path):
    info = unpack(tmp_path, make_tar([
        f("a", b"first"), f("a", b"second"),
        d("dir"), f("dir/x"), f("dir", b"now a file"),
        f("s", b"file"), sym("s", "target"),
        d("keep", mode=0o700), f("keep/y"), d("keep", mode=0o755),
    ]))
    root = tmp_path / "layer"
    assert (root / "a").read_bytes() == b"second"
    assert (root / "dir").read_bytes() == b"now a file"
    assert os.readlink(root / "s") == "target"
    assert (root / "keep" / "y").exists() and stat.S_IMODE((root / "keep").stat().st_mode) == 0o755
    assert info.entries == 10


def test_implicit_parents_and_root_entry(tmp_path):
    unpack(tmp_path, make_tar([d("./", mode=0o751), f("./a/b/c/file", b"z"), f("a//b/./c/other", b"o")]))
    root = tmp_path / "layer"
    assert (root / "a/b/c/file").read_bytes() == b"z"
    assert sorted(os.listdir(root / "a/b/c")) == ["file", "other"]
    assert stat.S_IMODE((root / "a").stat().st_mode) == 0o755
    assert stat.S_IMODE(root.stat().st_mode) == 0o751


def test_whiteouts_and_opaque_markers(tmp_path):
    # the opaque marker comes AFTER the directory's own members: they must survive
    info = unpack(tmp_path, make_tar([
        member(".wh.foo"),
        d("dir"), f("dir/mine", b"same layer"),
        member("dir/.wh..wh..opq"),
        member("other/.wh.gone"),
        f("present"), member(".wh.present"),  # a whiteout never hides content of its own layer
        member(".wh..wh.plnk"),  # aufs metadata: skipped
    ]))
    root = tmp_path / "layer"
    st = os.lstat(root / "foo")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert stat.S_ISCHR(os.lstat(root / "other" / "gone").st_mode)
    assert (root / "dir" / "mine").read_bytes() == b"same layer"
    assert (root / "present").is_file()
    names = set(os.listdir(root)) | set(os.listdir(root / "dir"))
    assert not any(n.startswith(".wh.") for n in names), names
    xattr = "trusted.overlay.opaque" if IS_ROOT else "user.overlay.opaque"
    assert os.getxattr(root / "dir", xattr) == b"y"
    assert info.entries == 8


def test_archive_overlay_xattrs_dropped(tmp_path):
    unpack(tmp_path, make_tar([
        member("d", tarfile.DIRTYPE, pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc",
                                          "SCHILY.xattr.user.overlay.opaque": "y",
                                          "SCHILY.xattr.user.ok": "1"}),
    ]))
    names = os.listxattr(tmp_path / "layer" / "d")
    assert "user.ok" in names
    assert not any("overlay" in n for n in names)


@needs_root
def test_metadata_survives(tmp_path):
    data = make_tar([
        d("usr", uid=0, gid=0), d("usr/bin"),
        f("usr/bin/su", b"\x7fELF", mode=0o4755, mtime=1_234_567_890),
        f("usr/bin/wall", b"w", mode=0o2755, gid=5),
        d("tmp", mode=0o1777),
        f("home", b"user file", uid=1000, gid=1000, mode=0o640),
        member("cap", data=b"c", pax={"SCHILY.xattr.user.foo": "bar",
                                      "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"
                                                                          "\x00\x00\x00\x00\x00\x00\x00\x00"
                                                                          "\x00\x00\x00\x00"}),
        hard("su-link", "usr/bin/su"),
        sym("usr/bin/sh", "/bin/busybox", uid=1000, gid=1000),
        member("null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        member("loop", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0),
        member("fifo", tarfile.FIFOTYPE, mode=0o600),
    ])
    unpack(tmp_path, data)
    root = tmp_path / "layer"
    su = os.lstat(root / "usr/bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755 and su.st_mtime == 1_234_567_890
    assert stat.S_IMODE(os.lstat(root / "usr/bin/wall").st_mode) == 0o2755
    assert os.lstat(root / "usr/bin/wall").st_gid == 5
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777
    h = os.lstat(root / "home")
    assert (h.st_uid, h.st_gid, stat.S_IMODE(h.st_mode)) == (1000, 1000, 0o640)
    assert os.getxattr(root / "cap", "user.foo") == b"bar"
    assert "security.capability" in os.listxattr(root / "cap")
    assert os.lstat(root / "su-link").st_ino == su.st_ino and su.st_nlink == 2
    s = os.lstat(root / "usr/bin/sh")
    assert os.readlink(root / "usr/bin/sh") == "/bin/busybox" and (s.st_uid, s.st_gid) == (1000, 1000)
    n = os.lstat(root / "null")
    assert stat.S_ISCHR(n.st_mode) and os.major(n.st_rdev) == 1 and os.minor(n.st_rdev) == 3
    assert stat.S_IMODE(n.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(root / "loop").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)


def test_non_utf8_and_long_names(tmp_path):
    long = "d/" + "x" * 200 + "/" + "y" * 150
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        name = f"layer{fmt}"
        unpack(tmp_path, make_tar([f(long, b"long"), sym("l", "t" * 300), f("caf\udce9", b"latin1")], format=fmt),
               name=name)
        root = tmp_path / name
        assert (root / long).read_bytes() == b"long"
        assert os.readlink(root / "l") == "t" * 300
        assert b"caf\xe9" in os.listdir(os.fsencode(root))


# ---------------------------------------------------------------- compression and digests


def _compressors():
    import zstandard

    return {
        "none": lambda b: b,
        "gzip": gzip.compress,
        "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
        "bzip2": bz2.compress,
        "xz": lzma.compress,
    }


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd", "bzip2", "xz"])
def test_compressions_and_digests(tmp_path, kind):
    tar = make_tar([d("a"), f("a/big", os.urandom(3 << 20)), f("a/small", b"s")])
    blob = _compressors()[kind](tar)
    assert detect_compression(blob[:8]) == kind
    info = unpack(tmp_path, blob, expected_diff_id=sha(tar), expected_digest=sha(blob), expected_size=len(blob))
    assert (info.diff_id, info.digest, info.size, info.tar_size, info.compression) == \
        (sha(tar), sha(blob), len(blob), len(tar), kind)
    assert (tmp_path / "layer/a/small").read_bytes() == b"s"
    assert (tmp_path / "layer/a/big").stat().st_size == 3 << 20


def test_multi_member_gzip_and_zstd_frames(tmp_path):
    import zstandard

    tar = make_tar([f("a", b"1" * 100000), f("b", b"2" * 100000)])
    half = len(tar) // 2
    for i, blob in enumerate([gzip.compress(tar[:half]) + gzip.compress(tar[half:]) + bytes(100),
                              zstandard.ZstdCompressor().compress(tar[:half]) +
                              zstandard.ZstdCompressor().compress(tar[half:])]):
        info = unpack(tmp_path, blob, name=f"l{i}", expected_diff_id=sha(tar))
        assert (tmp_path / f"l{i}/b").read_bytes() == b"2" * 100000 and info.digest == sha(blob)


def test_gzip_trailing_garbage(tmp_path):
    tar = make_tar([f("a")])
    with pytest.raises(StoreError, match="trailing garbage"):
        unpack(tmp_path, gzip.compress(tar) + b"garbage")
    assert_nothing_left(tmp_path)


def test_diff_id_mismatch_removes_dir(tmp_path):
    tar = make_tar([f("a", b"content")])
    with pytest.raises(DigestMismatch, match="diff_id"):
        unpack(tmp_path, gzip.compress(tar), expected_diff_id="sha256:" + "0" * 64)
    assert_nothing_left(tmp_path)
    with pytest.raises(DigestMismatch, match="digest"):
        unpack(tmp_path, tar, expected_digest="sha256:" + "1" * 64)
    assert_nothing_left(tmp_path)


def test_trailing_data_after_tar_is_hashed(tmp_path):
    tar = make_tar([f("a")]) + bytes(4096)  # GNU tar pads records with zeros: part of the diff_id
    info = unpack(tmp_path, tar)
    assert info.diff_id == sha(tar) and info.tar_size == len(tar)


def test_empty_layer(tmp_path):
    tar = make_tar([])
    info = unpack(tmp_path, gzip.compress(tar))
    assert info.diff_id == sha(tar) and os.listdir(tmp_path / "layer") == []
    info = unpack(tmp_path, b"", name="zero")
    assert info.diff_id == sha(b"") and os.listdir(tmp_path / "zero") == []


def test_concurrent_commit_keeps_first(tmp_path):
    tar = make_tar([f("a", b"1")])
    unpack(tmp_path, tar)
    info = unpack(tmp_path, tar)
    assert info.existed and (tmp_path / "layer/a").read_bytes() == b"1"
    assert os.listdir(tmp_path / "tmp") == []


def test_tee_sees_the_uncompressed_stream(tmp_path):
    tar = make_tar([f("a", os.urandom(200000))])
    chunks = []
    out = tmp_path / "x"
    out.mkdir()
    info = extract_layer(io.BytesIO(gzip.compress(tar)), out, tee=lambda c: chunks.append(bytes(c)))
    assert b"".join(chunks) == tar and info.diff_id == sha(tar)


def test_fast_header_parser_matches_tarfile():
    cases = [
        f("plain"), d("some/dir/"), sym("l", "target"), hard("h", "plain"),
        f("u" * 90 + "/" + "v" * 90, b"prefix", uid=1000),  # ustar prefix field
        f("big-ids", uid=3_000_000, gid=2_100_000),  # base-256 in GNU format
        member("dev", tarfile.CHRTYPE, devmajor=4, devminor=64),
        f("neg-mtime", mtime=-5),
    ]
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT):
        for ti, _ in cases:
            try:
                buf = ti.tobuf(fmt, "utf-8", "surrogateescape")
            except ValueError:
                continue
            for off in range(0, len(buf), 512):
                block = buf[off:off + 512]
                try:
                    a = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
                except tarfile.HeaderError:
                    continue
                b = FastTarInfo.frombuf(block, "utf-8", "surrogateescape")
                for k in ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname",
                          "uname", "gname", "devmajor", "devminor"):
                    assert getattr(a, k) == getattr(b, k), (ti.name, fmt, k)


# ---------------------------------------------------------------- through overlayfs


@needs_overlay
def test_overlay_sees_whiteouts_and_opaque(tmp_path):
    lower = make_tar([
        f("foo", b"lower foo"), f("bar", b"lower bar"),
        d("dir"), f("dir/a", b"lower a"), f("dir/b", b"lower b"),
        d("keep"), f("keep/k", b"lower k"),
    ])
    upper = make_tar([
        member(".wh.foo"),
        d("dir"), f("dir/c", b"upper c"),
        member("dir/.wh..wh..opq"),  # after dir/c: must not delete it
        member("keep/.wh.k"),
    ])
    unpack(tmp_path, lower, name="l1")
    unpack(tmp_path, upper, name="l2")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={tmp_path / 'l2'}:{tmp_path / 'l1'}",
                    str(mnt)], check=True)
    try:
        assert sorted(os.listdir(mnt)) == ["bar", "dir", "keep"]
        assert sorted(os.listdir(mnt / "dir")) == ["c"]
        assert (mnt / "dir/c").read_bytes() == b"upper c"
        assert os.listdir(mnt / "keep") == []
        assert (mnt / "bar").read_bytes() == b"lower bar"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ---------------------------------------------------------------- against GNU tar


def _meta(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (
                st.st_mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                st.st_nlink, st.st_mtime_ns // 10**9, st.st_rdev,
                sorted(os.listxattr(p, follow_symlinks=False)),
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else
                (open(p, "rb").read() if stat.S_ISREG(st.st_mode) else None))
    return out


@needs_root
@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar is not installed")
@pytest.mark.parametrize("fmt", ["gnu", "oldgnu", "posix", "posix-sparse-1.0"])
def test_same_result_as_gnu_tar(tmp_path, fmt):
    src = tmp_path / "src"
    (src / "dir/sub").mkdir(parents=True)
    (src / "dir/sub/file").write_bytes(b"data" * 1000)
    os.chmod(src / "dir/sub/file", 0o4711)
    os.chown(src / "dir/sub/file", 1000, 1001)
    os.link(src / "dir/sub/file", src / "hardlink")
    os.symlink("dir/sub/file", src / "symlink")
    os.mkfifo(src / "fifo")
    os.mknod(src / "tty", 0o620 | stat.S_IFCHR, os.makedev(5, 0))
    os.setxattr(src / "dir/sub/file", "user.k", b"v")
    with open(src / "sparse", "wb") as fh:
        fh.seek(3_000_000)
        fh.write(b"tail")
    (src / ("n" * 120)).write_bytes(b"long name")
    os.chmod(src / "dir", 0o750)
    args = ["--format=posix", "--sparse-version=1.0"] if fmt == "posix-sparse-1.0" else [f"--format={fmt}"]
    if fmt.startswith("posix"):
        args.append("--xattrs")
    tarball = tmp_path / "layer.tar"
    subprocess.run(["tar", "--sparse", *args, "-cf", str(tarball), "-C", str(src), "."], check=True)
    unpack_layer(str(tarball), tmp_path / "ours", tmp_dir=tmp_path)
    (tmp_path / "gnu").mkdir()
    subprocess.run(["tar", "--xattrs", "--xattrs-include=*", "-xpf", str(tarball), "-C", str(tmp_path / "gnu")],
                   check=True)
    ours, theirs = _meta(tmp_path / "ours"), _meta(tmp_path / "gnu")
    assert ours.keys() == theirs.keys()
    assert {k: v for k, v in ours.items() if v != theirs[k]} == {}
    assert os.stat(tmp_path / "ours/sparse").st_blocks < 100  # holes stay holes
