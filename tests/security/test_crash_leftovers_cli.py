"""The README's promise, through the CLI: after a kill -9 of `load` (or `build`) midway, the next
`jupybox prune` removes what it left in the store's tmp/, and the store is consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import jb

pytestmark = [pytest.mark.root]


def test_kill9_during_load_then_prune_leaves_tmp_empty(store, tmp_path):
    archive = tmp_path / "bb.tar"
    assert jb(store, "save", "-o", archive, "busybox:latest").returncode == 0
    assert jb(store, "rmi", "busybox:latest").returncode == 0
    data = archive.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "jupybox", "--root", str(store), "load"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.stdin.write(data[:len(data) // 2])  # the load is now in the middle of a blob
    proc.stdin.flush()
    tmp = store / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not [n for n in os.listdir(tmp) if not n.startswith(".")]:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    left = [n for n in os.listdir(tmp) if not n.startswith(".")]
    assert left, "the kill left nothing to clean (it came too late)"
    out = jb(store, "prune")
    assert out.returncode == 0, out.stderr
    assert [n for n in os.listdir(tmp) if not n.startswith(".")] == []
    assert jb(store, "fsck").stdout.strip() == "the store is consistent"
    # and the archive still loads, whole
    assert jb(store, "load", "-i", archive).returncode == 0
    assert jb(store, "run", "--rm", "busybox:latest", "true").returncode == 0


