"""The container verbs' exit statuses, as docker's: a table checked against jupybox and against
docker itself (a private dockerd), so that a script written for one behaves the same with the other."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root]

# (arguments, docker's exit status), with a created (never started) container named "user"
EXIT_CODES = [
    (("logs", "ghost"), 1),
    (("inspect", "ghost"), 1),
    (("inspect", ""), 1),
    (("wait", "ghost"), 1),
    (("wait", "ghost", "user"), 1),
    (("start", "ghost"), 1),
    (("stats", "--no-stream", "ghost"), 1),
    (("exec", "ghost", "true"), 1),
    (("exec", "user", "true"), 1),  # not running
    (("stop", "ghost"), 1),
    (("kill", "ghost"), 1),
    (("kill", "user"), 1),  # not running
    (("rm", "ghost"), 1),
    (("port", "ghost"), 1),
    (("logs", "user"), 0),
    (("stop", "user"), 0),
    (("logs", "--bogus", "user"), 125),
    (("inspect", "--bogus", "user"), 125),
]


def jb(root, *args):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=120)


def test_exit_codes_are_dockers(jupybox_root, busybox_tar):
    assert jb(jupybox_root, "import", str(busybox_tar), "bb:1").returncode == 0
    assert jb(jupybox_root, "create", "--name", "user", "--network", "none", "bb:1", "true").returncode == 0
    got = {}
    for args, want in EXIT_CODES:
        r = jb(jupybox_root, *args)
        got[" ".join(args)] = (r.returncode, want)
        if r.returncode:  # one line that names what was asked, even when it is empty
            (line,) = r.stderr.strip().splitlines()
            assert any(a in line for a in args[1:] if a) or "''" in line, line
    assert {k: v for k, v in got.items() if v[0] != v[1]} == {}


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory):
    from jupybox.testing.images import docker_or_skip

    with docker_or_skip(tmp_path_factory.mktemp("dockerd"), text=True) as run:
        yield run


def test_the_table_is_what_docker_does(docker_cli, busybox_tar):
    assert docker_cli("import", str(busybox_tar), "bb:1").returncode == 0
    assert docker_cli("create", "--name", "user", "--network", "none", "bb:1", "true").returncode == 0
    got = {" ".join(args): (docker_cli(*args).returncode, want) for args, want in EXIT_CODES}
    assert {k: v for k, v in got.items() if v[0] != v[1]} == {}


def test_run_d_in_parallel_gives_one_id_per_line(jupybox_root, busybox_tar):
    """`xargs -P 10 jupybox run -d ...` into one pipe, Python unbuffered (PYTHONUNBUFFERED=1, as on
    many CI machines): every line one whole id (print() wrote the id and its newline apart)."""
    import os

    assert jb(jupybox_root, "import", str(busybox_tar), "bb:1").returncode == 0
    cmd = f"{sys.executable} -m jupybox --root {jupybox_root} run -d --network none bb:1 true"
    r = subprocess.run(["xargs", "-P", "10", "-I{}", "sh", "-c", cmd], input="\n".join(map(str, range(30))),
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 30 and all(len(line) == 64 for line in lines), lines
    assert jb(jupybox_root, "rm", "-f", *lines).returncode == 0
