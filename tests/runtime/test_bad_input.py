"""Bad input: one line on stderr, docker's exit code, and nothing left behind (root only)."""

from __future__ import annotations

import json

import pytest

from jupybox.testing import leaks

pytestmark = [pytest.mark.root]

BB = "busybox:latest"


@pytest.fixture(autouse=True)
def cgroups_before():
    return leaks.cgroups()


def nothing_left(cli, before):
    assert cli("ps", "-a", "-q").stdout.strip() == ""
    assert leaks.new_cgroups(before, roots=[cli.root]) == set()


@pytest.mark.parametrize("args,needle", [
    (["run", "--rm", "no-such-image:1", "true"], "no-such-image"),
    (["run", "--rm", "--bogus-flag", BB, "true"], "--bogus-flag"),
    (["run", "--rm", "-m", "12xb", BB, "true"], "12xb"),
    (["run", "--rm", "-v", "/does/not/exist:/x", BB, "true"], "/does/not/exist"),
    (["run", "--rm", "--cap-add", "NOT_A_CAP", BB, "true"], "NOT_A_CAP"),
    (["run", "--rm", "--network", "bridge0", BB, "true"], "bridge0"),
    (["run", "--rm", "--cpus", "lots", BB, "true"], "lots"),
    (["run", "--rm", "--cpus", "1000", BB, "true"], "range of CPUs is from 0.01 to"),
    (["run", "--rm", "-w", "relative", BB, "true"], "'relative' is invalid, it needs to be an absolute path"),
    (["run", "--rm", "--hostname", "h" * 100, BB, "true"], "invalid hostname 'hhhh"),
])
def test_bad_run_input(cli, args, needle, cgroups_before):
    r = cli(*args)
    assert r.returncode == 125, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    nothing_left(cli, cgroups_before)


def test_missing_command(cli, busybox_image, tmp_path, cgroups_before):
    # an image with neither Cmd nor Entrypoint
    from jupybox.image import import_rootfs

    import_rootfs(busybox_image.store, busybox_image.tarball, "nocmd:latest")
    r = cli("run", "--rm", "nocmd:latest")
    assert r.returncode == 125 and "no command" in r.stderr
    nothing_left(cli, cgroups_before)


def test_command_not_found_exit_127(cli, cgroups_before):
    r = cli("run", "--rm", BB, "definitely-not-here")
    assert r.returncode == 127 and "definitely-not-here" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    nothing_left(cli, cgroups_before)


def test_an_empty_command_is_not_found_as_dockers(cli, cgroups_before):
    r = cli("run", "--rm", BB, "")
    assert r.returncode == 127 and r.stderr.strip() == 'jupybox: exec: "": executable file not found in $PATH'
    nothing_left(cli, cgroups_before)


def test_not_executable_exit_126(cli, cgroups_before):
    r = cli("run", "--rm", BB, "/etc/passwd")
    assert r.returncode == 126
    nothing_left(cli, cgroups_before)


def test_name_in_use(cli, cgroups_before):
    assert cli("run", "-d", "--name", "dup", BB, "sleep", "30").returncode == 0
    try:
        r = cli("run", "--rm", "--name", "dup", BB, "true")
        assert r.returncode == 125 and "already in use" in r.stderr
        assert len(json.loads(cli("inspect", "dup").stdout)) == 1
    finally:
        cli("rm", "-f", "dup")
    nothing_left(cli, cgroups_before)


def test_unknown_container(cli, cgroups_before):
    for verb in ("logs", "stop", "rm", "inspect", "exec"):
        args = [verb, "ghost"] + (["true"] if verb == "exec" else [])
        r = cli(*args)
        assert r.returncode != 0 and "ghost" in r.stderr, (verb, r.stderr)
