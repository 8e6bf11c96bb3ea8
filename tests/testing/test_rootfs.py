"""The test helpers themselves: busybox rootfs, cached tarballs, the loopback registry, leak checks."""

from __future__ import annotations

import os
import subprocess
import tarfile
import time

import pytest

from jupybox.testing import Registry, assert_no_leaks, busybox_rootfs, busybox_tarball, snapshot
from jupybox.testing.leaks import LeakError, cleanup_mounts_under, mounts
from jupybox.testing.rootfs import _is_static_elf


@pytest.mark.root
def test_busybox_rootfs_runs_in_chroot(busybox_dir):
    out = subprocess.run(
        ["chroot", str(busybox_dir), "/bin/sh", "-c", "echo ok; id -un; ls /usr/bin/awk >/dev/null && echo awk"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "root", "awk"]


def test_busybox_rootfs_layout(busybox_dir):
    assert _is_static_elf(str(busybox_dir / "bin" / "busybox"))
    assert os.readlink(busybox_dir / "bin" / "sh") == "busybox"
    assert os.readlink(busybox_dir / "usr" / "bin" / "env") == "../../bin/busybox"
    assert (busybox_dir / "tmp").stat().st_mode & 0o7777 == 0o1777
    for d in ("proc", "sys", "dev", "root", "home", "etc", "var"):
        assert (busybox_dir / d).is_dir(), d
    passwd = (busybox_dir / "etc" / "passwd").read_text()
    assert "root:x:0:0:" in passwd and "user:x:1000:1000:" in passwd and "nobody:x:65534:65534:" in passwd
    assert "root:x:0:" in (busybox_dir / "etc" / "group").read_text()
    # idempotent: building again over the same dir works
    busybox_rootfs(busybox_dir)


def test_busybox_tarball_is_cached_and_deterministic(tmp_path, busybox_tar):
    first = busybox_tarball(tmp_path)
    mtime = first.stat().st_mtime_ns
    time.sleep(0.01)
    second = busybox_tarball(tmp_path)
    assert second == first and second.stat().st_mtime_ns == mtime  # reused, not rebuilt
    # built the same way in another dir: byte-identical (stable digest)
    assert busybox_tarball(tmp_path / "other").read_bytes() == first.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    with tarfile.open(busybox_tar) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/busybox"].isfile() and members["bin/sh"].issym()
    assert members["tmp"].mode & 0o7777 == 0o1777
    assert members["home/user"].uid == 1000 and members["etc/passwd"].uid == 0
    assert not any(n.startswith(("/", "./")) for n in members)


def test_registry_answers_v2(registry):
    status, headers, _ = registry.get("/v2/")
    assert status == 200
    assert headers.get("Docker-Distribution-Api-Version") == "registry/2.0"
    assert registry.host.startswith("127.0.0.1:") and registry.url == f"http://{registry.host}"


def test_registry_with_auth(registry_factory):
    reg = registry_factory(auth=("user", "pass"))
    status, headers, _ = reg.get("/v2/", auth=False)
    assert status == 401
    assert headers.get("WWW-Authenticate", "").startswith("Basic realm=")
    assert reg.get("/v2/")[0] == 200


@pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"), reason="docker-registry is not installed")
def test_registry_stops_and_cleans_up():
    before = snapshot()
    with Registry() as reg:
        workdir, pid = reg.workdir, reg.proc.pid
        assert reg.get("/v2/")[0] == 200
    assert not workdir.exists()
    assert not os.path.exists(f"/proc/{pid}")
    assert_no_leaks(before, check_cgroups=False)  # cgroups: other runs' containers come and go


@pytest.mark.root
def test_leak_check_sees_a_mount(tmp_path):
    target = tmp_path / "jupybox-leak"
    target.mkdir()
    before = snapshot(roots=[tmp_path])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "none", str(target)], check=True)
    try:
        assert str(target) in mounts([tmp_path])
        with pytest.raises(LeakError, match="mounts"):
            assert_no_leaks(before, grace=0, check_cgroups=False)
    finally:
        assert cleanup_mounts_under(tmp_path) == [str(target)]
    assert_no_leaks(before, grace=0, check_cgroups=False)


def test_leak_check_sees_a_child_process():
    before = snapshot()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(LeakError, match="sleep 30"):
            assert_no_leaks(before, grace=0, check_fds=False)
    finally:
        proc.kill()
        proc.wait()
    assert_no_leaks(before, grace=0, check_cgroups=False)


@pytest.mark.leakcheck
def test_leakcheck_marker_passes_when_clean(jupybox_root):
    assert os.environ["JUPYBOX_ROOT"] == str(jupybox_root)
    subprocess.run(["true"], check=True)


@pytest.mark.slow
def test_debian_tarball_is_cached(debian_tar, test_cache):
    from jupybox.testing import debian_tarball

    mtime = debian_tar.stat().st_mtime_ns
    assert debian_tarball(test_cache, include=["python3"]) == debian_tar
    assert debian_tar.stat().st_mtime_ns == mtime
    with tarfile.open(debian_tar) as tar:
        names = set(tar.getnames())
    assert {"./usr/bin/python3", "./etc/debian_version"} <= names


def test_busybox_image_fixture(busybox_image, session_root):
    assert busybox_image.ref == str(busybox_image) == "busybox:latest"
    assert busybox_image.root == session_root
    index = (session_root / "images" / "index.json").read_text()
    assert "busybox" in index


@pytest.mark.root
def test_cgroup_attribution_by_container_dir(tmp_path):
    """With roots, only cgroups named after a container dir of those roots (or holding our
    processes) count: another run's empty cgroup is not our leak."""
    from jupybox.testing.leaks import _ours

    parent = "/sys/fs/cgroup/pids/jupybox-leaktest-%d" % os.getpid()
    mine, theirs = os.path.join(parent, "c-mine"), os.path.join(parent, "c-theirs")
    os.makedirs(mine)
    os.makedirs(theirs)
    try:
        (tmp_path / "containers" / "c-mine").mkdir(parents=True)
        assert _ours(mine, {}, (str(tmp_path),))
        assert not _ours(theirs, {}, (str(tmp_path),))
        assert _ours(theirs, {}, ())  # without roots: empty counts as ours
    finally:
        for d in (mine, theirs, parent):
            os.rmdir(d)
