"""A container that fills the store's disk must not wedge the store: every verb says so in one line
(exit 125), reading and removing need no free space (rm -f of the filler frees it), and no temp
file is left. On a small tmpfs the test mounts (and unmounts) itself."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from jupybox.testing import busybox_tarball, cache_dir, import_image

from .conftest import jb

pytestmark = [pytest.mark.root]


@pytest.fixture
def small_store(tmp_path, monkeypatch):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], check=True)
    root = mnt / "store"
    try:
        import_image(root, busybox_tarball(cache_dir()), "busybox:latest")
        yield root
    finally:
        from jupybox.testing.leaks import stop_services

        stop_services(root)
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _temp_files(root) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        if "/spare/" in dirpath + "/":
            continue  # a spare directory's staged files are its next owner's, on purpose
        out += [os.path.join(dirpath, f) for f in files if f.endswith(".tmp") and ".spare." not in f]
    return out


def _one_line(out, code=125):
    assert out.returncode == code, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_a_full_disk_wedges_nothing(small_store):
    root = small_store
    out = jb(root, "run", "-d", "--name", "filler", "--network", "none", "busybox", "sh", "-c",
             "dd if=/dev/zero of=/big bs=1M 2>/dev/null; touch /full; sleep 600")
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.statvfs(root).f_bavail > 0:
        time.sleep(0.1)
    assert os.statvfs(root).f_bavail == 0
    # reading works
    assert "filler" in jb(root, "ps", "-a").stdout
    assert jb(root, "inspect", "-f", "{{.State.Status}}", "filler").stdout.strip() == "running"
    assert jb(root, "logs", "filler").returncode == 0
    # what needs room says so, in one line, and leaves nothing
    assert "no space left on device" in _one_line(jb(root, "run", "--rm", "--network", "none", "busybox", "true"))
    out = jb(root, "run", "-d", "--network", "none", "busybox", "true")
    if out.returncode == 0:  # a sandbox staged before the disk filled needs no room: a whole container
        cid = out.stdout.strip()
        assert jb(root, "wait", cid).stdout.strip() == "0"  # its exit written (room was kept for it)
        assert jb(root, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid).stdout.split() == ["exited", "0"]
        assert jb(root, "rm", cid).returncode == 0
    else:
        assert "no space left on device" in _one_line(out)
    assert jb(root, "ps", "-a", "-q").stdout.split() == [jb(root, "inspect", "-f", "{{.Id}}", "filler").stdout[:12]]
    # the filler can be killed and removed, which frees the space
    assert jb(root, "kill", "filler").returncode == 0
    assert jb(root, "wait", "filler").stdout.strip() == "137"  # its exit written on the full disk
    assert jb(root, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "filler").stdout.split() == \
        ["exited", "137"]
    assert jb(root, "rm", "-f", "filler").returncode == 0, "rm -f of the filler"
    assert jb(root, "prune").returncode == 0
    assert os.statvfs(root).f_bavail > 0
    assert jb(root, "ps", "-a", "-q").stdout.strip() == ""
    from jupybox.testing.leaks import stop_services

    stop_services(root)  # (its sandboxes made ahead have temp files of their own, on purpose)
    assert _temp_files(root) == []
    out = jb(root, "run", "--rm", "--network", "none", "busybox", "echo", "room again")
    assert out.returncode == 0 and out.stdout == "room again\n", out


def test_a_foreground_run_whose_log_cannot_be_written_still_shows_its_output(small_store):
    root = small_store
    # fill the disk from outside the store's files
    with open(root / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
        except OSError:
            pass
    out = jb(root, "run", "--network", "none", "--name", "loud", "busybox", "sh", "-c", "seq 1 2000")
    (root / "filler").unlink()
    if out.returncode == 125:  # the store could not even record the container: said in one line
        assert "no space left on device" in _one_line(out)
        return
    assert out.returncode == 0 and out.stdout.split()[-1] == "2000", out
    assert "Traceback" not in out.stderr and "Exception" not in out.stderr
