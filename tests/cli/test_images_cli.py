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
    assert r.returncode == 1 and len(r.stderr.decode().strip().splitlines()) == 1, r.stderr  # docker's code
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


# ---------------------------------------------------------------------------------------------
# exit codes, verb by verb, as the docker CLI gives them (20.10, against dockerd 20.10): every
# error once the arguments parse is 1 (the daemon's "No such image", a conflict, a bad reference
# or filter, a damaged archive, an unreachable registry), a bad flag is 125. {tmp} is a scratch
# directory holding "notatar"; bb:1 exists and the container "user" uses it.

EXIT_CODES = [
    (("rmi", "nosuch"), 1),
    (("image", "rm", "nosuch"), 1),
    (("rmi", "bb:1"), 1),  # in use by a container
    (("tag", "nosuch", "x:1"), 1),
    (("tag", "bb:1", "BAD"), 1),
    (("history", "nosuch"), 1),
    (("image", "inspect", "nosuch"), 1),
    (("save", "-o", "{tmp}/o.tar", "nosuch"), 1),
    (("load", "-i", "{tmp}/missing.tar"), 1),
    (("load", "-i", "{tmp}/notatar"), 1),
    (("import", "{tmp}/missing.tar", "x:1"), 1),
    (("import", "{tmp}/notatar", "x:1"), 1),
    (("pull", "127.0.0.1:1/nosuch:1"), 1),
    (("push", "127.0.0.1:1/nosuch:1"), 1),
    (("image", "prune", "-f", "--filter", "bogus=1"), 1),
    (("image", "prune", "-f", "--filter", "until=notatime"), 1),
    (("images", "nosuch"), 0),
    (("images", "--bogus"), 125),
]


def _cases(tmp):
    (tmp / "notatar").write_bytes(b"not a tar archive" * 100)
    return [(tuple(a.format(tmp=tmp) for a in args), code) for args, code in EXIT_CODES]


def _label(args):
    return " ".join(a.rsplit("/", 1)[-1] if "/" in a and not a.startswith("127.") else a for a in args)


def test_exit_codes_are_dockers(jupybox_root, busybox_tar, tmp_path):
    assert jb(jupybox_root, "import", busybox_tar, "bb:1").returncode == 0
    assert jb(jupybox_root, "create", "--name", "user", "bb:1", "true").returncode == 0
    got = {}
    for args, want in _cases(tmp_path):
        r = jb(jupybox_root, *args)
        got[_label(args)] = (r.returncode, want)
        if r.returncode:
            assert len(r.stderr.decode().strip().splitlines()) == 1, (args, r.stderr)
    assert {k: v for k, v in got.items() if v[0] != v[1]} == {}


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory):
    from jupybox.testing.images import docker_or_skip

    with docker_or_skip(tmp_path_factory.mktemp("dockerd"), text=True) as run:
        yield run


def test_the_table_is_what_docker_does(docker_cli, busybox_tar, tmp_path):
    assert docker_cli("import", str(busybox_tar), "bb:1").returncode == 0
    assert docker_cli("create", "--name", "user", "--network", "none", "bb:1", "true").returncode == 0
    got = {}
    for args, want in _cases(tmp_path):
        got[_label(args)] = (docker_cli(*args).returncode, want)
    assert {k: v for k, v in got.items() if v[0] != v[1]} == {}


def test_images_shows_host_as_what_it_is(jupybox_root):
    out = jb(jupybox_root, "images").stdout.decode().splitlines()
    (host,) = [line.split() for line in out if line.startswith("host ")]
    assert host[-2:] == ["-", "host"], out  # CREATED, SIZE: not "19 months ago", not 0B
    (row,) = [json.loads(line) for line in jb(jupybox_root, "images", "--format", "json").stdout.splitlines()]
    assert row["CreatedSince"] == "-" and row["Size"] == "host"


def test_images_by_repository(jupybox_root, busybox_tar):
    for ref in ("bb:1", "bb:2", "other:1"):
        assert jb(jupybox_root, "import", busybox_tar, ref).returncode == 0
    def listed(*pattern):
        rows = jb(jupybox_root, "images", "--format", "json", *pattern).stdout.splitlines()
        return sorted(f"{r['Repository']}:{r['Tag']}" for r in map(json.loads, rows))
    assert listed("bb") == ["bb:1", "bb:2"]
    assert listed("bb:2") == ["bb:2"]
    assert listed("b*") == ["bb:1", "bb:2"]
    assert listed("nosuch") == []


def test_missing_image_to_run_says_how_to_get_it(jupybox_root):
    r = jb(jupybox_root, "run", "--rm", "busybox", "true")
    err = r.stderr.decode().strip()
    assert r.returncode == 125 and len(err.splitlines()) == 1, err
    assert "No such image: busybox" in err and "jupybox pull busybox" in err and "jupybox import" in err
    r = jb(jupybox_root, "rmi", "busybox")  # the management verbs say only what docker says
    assert r.stderr.decode().strip() == "jupybox: No such image: busybox"


def test_image_prune_as_docker_prints_it(jupybox_root, busybox_tar):
    assert jb(jupybox_root, "import", busybox_tar, "app:1").returncode == 0
    old = json.loads(jb(jupybox_root, "image", "inspect", "app:1").stdout)[0]["Id"]
    assert jb(jupybox_root, "import", busybox_tar, "app:1").returncode == 0  # app:1 moves on: old is dangling
    r = jb(jupybox_root, "image", "prune", input=b"n\n")  # asks first; anything but y keeps everything
    assert r.stdout.decode() == ("WARNING! This will remove all dangling images.\n"
                                 "Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n")
    r = jb(jupybox_root, "image", "prune", input=b"y\n")
    out = r.stdout.decode()
    assert r.returncode == 0 and f"Deleted Images:\ndeleted: {old}\n\nTotal reclaimed space: " in out, out
    assert out.rstrip().rsplit(" ", 1)[-1].endswith(("B", "kB", "MB"))
    r = jb(jupybox_root, "image", "prune", "-f")
    assert r.stdout.decode() == "Total reclaimed space: 0B\n"
    r = jb(jupybox_root, "image", "prune", "-a", "-f", "--filter", "until=24h")  # made now: kept
    assert r.stdout.decode() == "Total reclaimed space: 0B\n"
    r = jb(jupybox_root, "image", "prune", "-a", "-f")
    lines = r.stdout.decode().splitlines()
    assert lines[:2] == ["Deleted Images:", "untagged: app:1"] and lines[2].startswith("deleted: sha256:")
    assert lines[-1].startswith("Total reclaimed space: ") and lines[-1] != "Total reclaimed space: 0B"
    rows = [json.loads(line) for line in jb(jupybox_root, "images", "--format", "json").stdout.splitlines()]
    assert [r["Repository"] for r in rows] == ["host"]
