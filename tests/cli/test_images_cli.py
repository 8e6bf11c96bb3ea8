"""The image verbs as a user types them: import, images, tag, inspect, history, rmi, save/load (root only)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root]


def jb(root, *args, input=None):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          input=input, capture_output=True, timeout=120)


def test_import_from_stdin_with_changes_then_run(jupybox_root, busybox_tar):
    data = gzip.decompress(busybox_tar.read_bytes())  # plain tar on stdin
    r = jb(jupybox_root, "import", "-c", 'CMD ["sh", "-c", "echo $GREETING from $(pwd)"]', "-c", "ENV GREETING=hi",
           "-c", "WORKDIR /srv", "-", "greeter:1", input=data)
    assert r.returncode == 0, r.stderr
    image_id = r.stdout.decode().strip()
    assert image_id.startswith("sha256:")
    r = jb(jupybox_root, "run", "--rm", "greeter:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "hi from /srv\n"


def test_images_tag_inspect_history_rmi(jupybox_root, busybox_tar):
    assert jb(jupybox_root, "import", busybox_tar, "bb:1").returncode == 0
    assert jb(jupybox_root, "tag", "bb:1", "bb:2").returncode == 0
    rows = [json.loads(line) for line in jb(jupybox_root, "images", "--format", "json").stdout.splitlines()]
    tags = {(r["Repository"], r["Tag"]) for r in rows}
    assert {("bb", "1"), ("bb", "2"), ("host", "latest")} <= tags
    info = json.loads(jb(jupybox_root, "inspect", "--type", "image", "bb:2").stdout)[0]
    assert info["Id"].startswith("sha256:") and len(info["RootFS"]["Layers"]) == 1
    assert "bb:1" in info["RepoTags"] and "bb:2" in info["RepoTags"]
    hist = jb(jupybox_root, "history", "bb:1").stdout.decode()
    assert "Imported from" in hist
    # docker's rules: a tag among others just goes; the image's last tag stays while a container uses it
    assert jb(jupybox_root, "create", "--name", "user", "bb:1", "true").returncode == 0
    r = jb(jupybox_root, "rmi", "bb:1")
    assert r.returncode == 0 and b"Untagged: bb:1" in r.stdout, r
    r = jb(jupybox_root, "rmi", "bb:2")
    assert r.returncode != 0 and b"container" in r.stderr, r
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert jb(jupybox_root, "rm", "user").returncode == 0
    r = jb(jupybox_root, "rmi", "bb:2")
    assert r.returncode == 0, r.stderr
    assert b"Deleted:" in r.stdout
    rows = [json.loads(line) for line in jb(jupybox_root, "images", "--format", "json").stdout.splitlines()]
    assert {(r["Repository"], r["Tag"]) for r in rows} == {("host", "latest")}


def test_host_image_cannot_be_removed(jupybox_root):
    r = jb(jupybox_root, "rmi", "host")
    assert r.returncode != 0 and b"host" in r.stderr


def test_unknown_image_and_bad_import(jupybox_root, tmp_path):
    r = jb(jupybox_root, "inspect", "--type", "image", "nope:1")
    assert r.returncode != 0 and len(r.stderr.decode().strip().splitlines()) == 1
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 100)
    r = jb(jupybox_root, "import", bad, "bad:1")
    assert r.returncode == 125 and len(r.stderr.decode().strip().splitlines()) == 1, r.stderr
    r = jb(jupybox_root, "import", tmp_path / "missing.tar", "bad:1")
    assert r.returncode != 0 and b"missing.tar" in r.stderr


def test_save_load_round_trip(jupybox_root, busybox_tar, tmp_path):
    assert jb(jupybox_root, "import", busybox_tar, "rt:1").returncode == 0
    archive = tmp_path / "rt.tar"
    assert jb(jupybox_root, "save", "-o", archive, "rt:1").returncode == 0
    assert jb(jupybox_root, "rmi", "rt:1").returncode == 0
    r = jb(jupybox_root, "load", "-i", archive)
    assert r.returncode == 0 and b"Loaded image: rt:1" in r.stdout, r
    assert jb(jupybox_root, "run", "--rm", "rt:1", "true").returncode == 0
