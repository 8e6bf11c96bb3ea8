"""RUN --mount and RUN --network for real (root: RUN steps are containers): cache directories the
store keeps, bind mounts of the context and of stages, tmpfs, secrets, and what the layers keep of
them (nothing)."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from jbx_build_helpers import apply_layer  # noqa: E402  (put on sys.path by conftest.py)
from jupybox.errors import BuildError

pytestmark = pytest.mark.root


def last_layer(bb, img) -> dict:
    tree: dict = {}
    apply_layer(tree, str(bb.store.blob_path(img.layers[-1]["digest"])))
    return tree


def test_cache_mount_is_kept_across_builds_and_pruned(bb):
    df = ("FROM busybox\n"
          "ARG V\n"
          "RUN --mount=type=cache,target=/root/.cache/pip "
          "echo $V >> /root/.cache/pip/seen && cat /root/.cache/pip/seen > /seen\n")
    img = bb.build(df, build_args={"V": "one"})
    assert bb.run(img.id, "cat /seen") == (0, "one\n")
    img = bb.build(df, build_args={"V": "two"})  # another key: runs again, with the same cache
    assert bb.run(img.id, "cat /seen") == (0, "one\ntwo\n")
    assert last_layer(bb, img).keys() == {"seen"}  # no /root/.cache: the mount point was taken out
    mounts = bb.root / "build-cache" / "mounts"
    assert len(os.listdir(mounts)) == 1
    # --no-cache: neither the step cache nor the cache directory; the steps of the build share theirs
    img = bb.build(df + "RUN --mount=type=cache,target=/root/.cache/pip cat /root/.cache/pip/seen > /again\n",
                   build_args={"V": "three"}, no_cache=True)
    assert bb.run(img.id, "cat /seen /again") == (0, "three\nthree\n")
    from jupybox.dockerfile.cachemounts import CacheMounts

    removed, freed = CacheMounts(bb.root, bb.root / "tmp").prune()
    assert [e["id"] for e in removed] == ["/root/.cache/pip"] and freed > 0
    assert os.listdir(mounts) == []
    img = bb.build(df, build_args={"V": "four"})
    assert bb.run(img.id, "cat /seen") == (0, "four\n")
    assert bb.leftovers() == []


def test_cache_sharing_modes(tmp_path):
    from jupybox.dockerfile.cachemounts import CacheMounts

    cm = CacheMounts(tmp_path, tmp_path / "tmp")
    shared = [cm.acquire("c", "shared", 0, 0, 0o755) for _ in range(2)]
    assert shared[0].path == shared[1].path  # one directory, used at once
    private = cm.acquire("c", "private", 0, 0, 0o755)
    assert private.path != shared[0].path  # instance 0 is in use: a new one
    private2 = cm.acquire("c", "private", 0, 0, 0o755)
    assert len({private.path, private2.path, shared[0].path}) == 3
    waiting = threading.Event()
    got = []

    def locked():
        waiting.set()
        h = cm.acquire("c", "locked", 0, 0, 0o755)
        got.append(h.path)
        h.release()

    t = threading.Thread(target=locked)
    t.start()
    waiting.wait()
    assert got == []  # it waits for instance 0, held shared by two
    for h in shared:
        h.release()
    t.join()
    assert got == [shared[0].path]
    assert [e["instances"] for e in cm.entries()] == [[0, 1, 2]]
    removed, _ = cm.prune()  # private instances still held: the cache stays
    assert removed == [] and [e["instances"] for e in cm.entries()] == [[1, 2]]
    private.release()
    private2.release()
    removed, _ = cm.prune()
    assert len(removed) == 1 and cm.entries() == []


def test_cache_mount_owner_mode_source_and_from(bb):
    img = bb.build("FROM busybox AS seed\n"
                   "RUN mkdir -p /data/sub && echo seeded > /data/sub/f\n"
                   "FROM busybox\n"
                   "RUN --mount=type=cache,target=/c,from=seed,source=/data cat /c/sub/f > /from-seed\n"
                   "RUN --mount=type=cache,target=/c2,source=a/b,id=src touch /c2/x\n"
                   "RUN --mount=type=cache,target=/c3,id=src [ -f /c3/a/b/x ] && echo ok > /ok\n")
    assert bb.run(img.id, "cat /from-seed /ok") == (0, "seeded\nok\n")


def test_bind_mounts_of_context_and_stages(bb):
    bb.files({"a.txt": "foo\n", "b.txt": "bar\n", "secret.env": "TOKEN=1\n", ".dockerignore": "secret.env\n"})
    img = bb.build("FROM busybox AS build\n"
                   "RUN mkdir out && echo built > out/artifact\n"
                   "FROM busybox\n"
                   "RUN --mount=source=.,target=/tmp/test --mount=source=b.txt,target=/tmp/b.txt "
                   "cat /tmp/test/a.txt /tmp/b.txt > /combined.txt && ! ls /tmp/test/secret.env\n"
                   "RUN --mount=from=build,source=out,target=/out cat /out/artifact > /artifact\n"
                   "RUN --mount=from=build,source=out,target=/out,rw echo changed > /out/artifact "
                   "&& ! touch /out/ro 2>/dev/null || true\n"
                   "RUN --mount=target=/ctx ! touch /ctx/a.txt 2>/dev/null\n")
    assert bb.run(img.id, "cat /combined.txt /artifact") == (0, "foo\nbar\nbuilt\n")
    tree = bb.tree(img)
    assert [k for k in tree if k.startswith(("tmp/test", "out", "ctx")) or k == "tmp/b.txt"] == []
    assert (bb.ctx / "a.txt").read_text() == "foo\n"  # read-only: the context is untouched
    assert bb.leftovers() == []


def test_bind_mount_content_is_the_cache_key(bb):
    """BuildKit's testMountDuplicate and testMountRWCache: a changed bound file reruns the step; a
    changed stage whose bound files are the same does not."""
    df = ("FROM busybox AS base\n"
          "RUN --mount=source=.,target=/tmp/test --mount=source=b.txt,target=/tmp/b.txt "
          "cat /tmp/test/a.txt /tmp/b.txt > /combined.txt\n")
    for text in ("foo\n", "updated\n"):
        img = bb.build(df, files={"a.txt": text, "b.txt": "bar\n"})
        assert bb.run(img.id, "cat /combined.txt") == (0, f"{text}bar\n")
    df = ("FROM busybox AS build\n"
          "COPY cachebust /\n"
          "RUN mkdir out && echo foo > out/foo\n"
          "FROM busybox AS second\n"
          "RUN --mount=from=build,src=out,target=/out,rw touch /out/bar && head -c 100 /dev/urandom | md5sum > /unique\n")
    first = bb.build(df, files={"cachebust": "0"})
    second = bb.build(df, files={"cachebust": "1"})
    assert bb.cached() == [False, False, True]
    assert first.id == second.id


def test_tmpfs_mount(bb):
    img = bb.build("FROM busybox\n"
                   "RUN --mount=type=tmpfs,target=/scratch,size=1m "
                   "grep ' /scratch tmpfs' /proc/mounts > /mounts && touch /scratch/x\n")
    code, out = bb.run(img.id, "cat /mounts; ls /scratch 2>&1")
    assert "size=1024k" in out and "x" not in out.split("\n")[1:]
    assert "scratch" not in bb.tree(img)


def test_secrets_never_reach_a_layer_the_history_or_the_config(bb):
    secret = b"s3cr3t-value-" + os.urandom(8).hex().encode()
    img = bb.build("FROM busybox\n"
                   "RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null && echo used > /used\n"
                   "RUN --mount=type=secret,id=token,env=TOKEN [ \"$TOKEN\" = \"$(cat /dev/null)$TOKEN\" ] "
                   "&& echo ${#TOKEN} > /len\n"
                   "RUN --mount=type=secret,id=absent ! test -e /run/secrets/absent\n",
                   secrets={"token": secret})
    assert bb.run(img.id, "cat /len") == (0, f"{len(secret)}\n")
    blobs = bb.root / "images" / "blobs" / "sha256"
    for blob in blobs.iterdir():
        assert secret not in blob.read_bytes(), blob
    for dirpath, _, files in os.walk(bb.root):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    assert secret not in f.read(), p
    assert "run/secrets" not in bb.tree(img) and "run/secrets/token" not in bb.tree(img)
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("jupybox-secret-")]
    with pytest.raises(BuildError, match=r"^Dockerfile:2: .*secret token: not found"):
        bb.build("FROM busybox\nRUN --mount=type=secret,id=token,required true\n")


@pytest.fixture
def echo_server():
    """A loopback TCP server answering "foo\\n" (BuildKit's echoserver), and its port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                c.sendall(b"foo\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    srv.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close from another thread does not)
    srv.close()
    t.join()


def test_run_network_modes(bb, echo_server):
    """BuildKit's testRunHostNetwork and testRunGlobalNetwork, on loopback only."""
    port = echo_server
    bb.build(f"FROM busybox\n"
             f"RUN --network=host nc 127.0.0.1 {port} | grep foo\n"
             f"RUN ! nc 127.0.0.1 {port}\n")  # the build's default network is none
    bb.build(f"FROM busybox\n"
             f"RUN nc 127.0.0.1 {port} | grep foo\n"
             f"RUN --network=none ! nc 127.0.0.1 {port}\n"
             f"RUN --network=default nc 127.0.0.1 {port} | grep foo\n", network="host")
    assert bb.leftovers() == []


def test_mounts_through_the_launcher_daemon(bb):
    """Notebooks build with the daemon runner: the same mounts reach its containers."""
    img = bb.build("FROM busybox\n"
                   "RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t "
                   "--mount=type=secret,id=s,env=S --mount=target=/ctx "
                   "echo \"$S $(cat /ctx/f) $(grep -c ' /t tmpfs' /proc/mounts)\" > /out && touch /c/x\n",
                   files={"f": "ctx-file"}, secrets={"s": b"shh"}, runner="daemon")
    assert bb.run(img.id, "cat /out") == (0, "shh ctx-file 1\n")
    # (the daemon keeps prewarmed sandboxes, so no leftovers() here: what the mounts made is gone)
    assert [n for n in os.listdir(bb.root / "tmp") if n.startswith("layer-")] == []
    assert not [n for n in os.listdir("/dev/shm") if n.startswith("jupybox-secret-")]
