"""The chroot helper (python -m jupybox.testing.chroot): a chroot as users have it, where `/` is a
mount point or not, with nothing left mounted on the machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jupybox.testing.leaks import mounts

pytestmark = [pytest.mark.root]

CHROOT = [sys.executable, "-m", "jupybox.testing.chroot"]
# the mount points of the reading process, relative to its root (the chroot's directory)
MOUNT_POINTS = "cut -d' ' -f5 /proc/self/mountinfo"


def in_chroot(root, script, mount_point=False, how=None):
    how = how or ("--mount-point" if mount_point else None)
    argv = CHROOT + ([how] if how else []) + [str(root), "--", "/bin/sh", "-c", script]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("mount_point", [False, True])
def test_root_is_a_mount_point_only_when_asked(tmp_path, mount_point):
    points = in_chroot(tmp_path, MOUNT_POINTS, mount_point).split()
    assert ("/" in points) == mount_point
    # the machine's tools and its kernel's file systems are there either way
    assert {"/usr", "/proc", "/sys", "/dev"} <= set(points)


def test_the_machine_is_seen_and_tmp_is_the_chroots_own(tmp_path):
    out = in_chroot(tmp_path, f"{sys.executable} -c 'import sys; print(sys.version_info[0])'; "
                              "echo made-inside > /tmp/mark; ls -ld /tmp | cut -c1-10")
    assert out.split() == ["3", "drwxrwxrwt"]
    assert (tmp_path / "tmp" / "mark").read_text() == "made-inside\n"


def test_nothing_is_left_mounted(tmp_path):
    # the chroot's directory on a shared mount (as on a systemd machine): whatever is mounted in
    # it would propagate back here but for the helper's own mount namespace, a slave of this one
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "--bind", shared, shared], check=True)
    try:
        subprocess.run(["mount", "--make-shared", shared], check=True)
        root = shared / "chroot"
        root.mkdir()
        # this process's mounts, read from inside while the chroot's binds and a tmpfs are there
        here = f"/proc/{os.getpid()}/mountinfo"
        out = in_chroot(root, "mount -t tmpfs none /tmp && ls /usr/bin/env && "
                              f"awk '$5 ~ \"^{shared}/\"' {here} | wc -l", mount_point=True)
        assert out.split() == ["/usr/bin/env", "0"]
        assert mounts([str(shared)], keyword="") == {str(shared)}
        # again in the same directory: its mount points (left empty) are bound again
        assert "/usr" in in_chroot(root, MOUNT_POINTS).split()
    finally:
        subprocess.run(["umount", "--lazy", shared], check=True)  # with whatever a failure left under it


def test_on_a_shared_mount_what_propagates_shows_at_the_peer(tmp_path):
    root = tmp_path / "chroot"
    (root / "x").mkdir(parents=True)
    # a tmpfs on the chroot's own file system appears at the peer; / is still not a mount point
    out = in_chroot(root, f"mount -t tmpfs none /x && {MOUNT_POINTS} | grep -c -x -e /.peer/chroot/x -e /",
                    how="--on-shared-mount")
    assert out.split() == ["1"]
    # where nothing is mounted on it, nothing shows (the machine's directories bound in do not)
    assert in_chroot(root, f"{MOUNT_POINTS} | grep -c ^/.peer/ || true", how="--on-shared-mount").split() == ["0"]
    assert mounts([str(tmp_path)], keyword="") == set()
