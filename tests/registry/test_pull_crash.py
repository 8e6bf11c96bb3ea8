"""kill -9 of `jupybox pull` at several moments: the next pull completes and the store checks clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from jupybox.image import ImageStore, import_rootfs

pytestmark = [pytest.mark.root]


def jb(root, *args, **kw):
    return subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture
def pushed(tmp_path, registry, busybox_tar):
    """A ~40 MB image (busybox plus incompressible data) pushed to the loopback registry."""
    src = tmp_path / "src-root"
    store = ImageStore(src)
    big = tmp_path / "big.tar"
    with tarfile.open(big, "w") as tf:
        data = tmp_path / "payload"
        data.write_bytes(os.urandom(40 << 20))
        tf.add(data, arcname="payload.bin")
    import_rootfs(store, big, "big:1")
    ref = f"{registry.host}/crash/big:1"
    assert jb(src, "tag", "big:1", ref).returncode == 0
    r = jb(src, "push", "-q", ref)
    assert r.returncode == 0, r.stderr
    return ref


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3, 0.6])
def test_kill9_during_pull_then_pull_again(tmp_path, pushed, delay):
    root = tmp_path / "dst-root"
    proc = subprocess.Popen([sys.executable, "-m", "jupybox", "--root", str(root), "pull", "-q", pushed],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = jb(root, "image", "prune", "-f")  # what the kill left in tmp/ goes, the pull's blobs too
    assert r.returncode == 0 and not os.listdir(root / "tmp"), (r.stderr, os.listdir(root / "tmp"))
    r = jb(root, "pull", "-q", pushed)
    assert r.returncode == 0, r.stderr
    r = jb(root, "fsck", "--repair")
    assert r.returncode == 0, r.stdout + r.stderr
    r = jb(root, "fsck")
    assert r.returncode == 0 and "consistent" in r.stdout, r.stdout
    r = jb(root, "run", "--rm", "--entrypoint", "", pushed, "/payload.bin")
    # the image has no shell: running the payload fails to exec (126), which proves the layer is there
    assert r.returncode == 126, r.stderr
