"""Device files: root in a container has CAP_MKNOD (docker's default set) and jupybox has no device
cgroup, so the only wall between a container and the host's devices is that no mount a
non-privileged container sees allows device files (nodev). Each test makes a node of a host
device where the container can write, and opens it: /dev/kmsg (c 1 11) writes into the host's
kernel log, /dev/mem (c 1 1) reads the host's memory. Making the node may succeed; opening it
must not. (Block devices are not tried: even the host's root cannot open them on some VMs.)"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from .conftest import jb

pytestmark = [pytest.mark.root]

# every place a container can write: the write layer (/, /etc), /tmp (in the write layer), the
# /dev tmpfs, /dev/shm, a -v bind, a named volume, a --tmpfs
PLACES = ("/", "/etc", "/tmp", "/dev", "/dev/shm", "/bind", "/vol", "/tt")

PROBE = r"""
for d in {places}; do
  for n in kmsg:11 mem:1; do
    f=$d/jbx-${{n%%:*}}
    rm -f $f
    if ! mknod $f c 1 ${{n##*:}} 2>/dev/null; then echo "$f NOMKNOD"; continue; fi
    if [ ${{n%%:*}} = kmsg ]; then
      if (echo {marker} > $f) 2>/tmp/err; then echo "$f OPENED"; else echo "$f REFUSED $(cat /tmp/err)"; fi
    else
      if head -c 16 $f >/dev/null 2>/tmp/err; then echo "$f OPENED"; else echo "$f REFUSED $(cat /tmp/err)"; fi
    fi
    rm -f $f
  done
done
"""


def _probe(places, marker: str) -> str:
    return PROBE.format(places=" ".join(places), marker=marker)


def _host_kernel_log() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, timeout=60).stdout


def _assert_refused(out: str, places) -> None:
    lines = out.splitlines()
    assert len(lines) == 2 * len(places), out
    for line in lines:
        assert "OPENED" not in line, out
        # made (CAP_MKNOD) but refused at open: EACCES from nodev
        assert "REFUSED" in line and ("Permission denied" in line or "Operation not permitted" in line), out


def test_a_device_node_made_anywhere_cannot_be_opened(store, tmp_path):
    bind = tmp_path / "bind"
    bind.mkdir()
    marker = f"jupybox-kmsg-probe-{uuid.uuid4().hex}"
    out = jb(store, "run", "--rm", "-v", f"{bind}:/bind", "-v", "devprobe:/vol", "--tmpfs", "/tt",
             "busybox", "sh", "-c", _probe(PLACES, marker))
    assert out.returncode == 0, out.stderr
    _assert_refused(out.stdout, PLACES)
    assert marker not in _host_kernel_log()  # nothing reached the host's kernel log


def test_nodes_on_a_read_only_root_and_in_exec(store):
    """--read-only remounts the root: it stays nodev; `exec --privileged` (all capabilities) joins
    the container's mounts, which stay nodev too."""
    marker = f"jupybox-kmsg-probe-{uuid.uuid4().hex}"
    out = jb(store, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "busybox", "sh", "-c",
             _probe(("/tmp", "/dev"), marker))
    assert out.returncode == 0, out.stderr
    _assert_refused(out.stdout, ("/tmp", "/dev"))
    assert jb(store, "run", "-d", "--name", "devexec", "busybox", "sleep", "60").returncode == 0
    try:
        out = jb(store, "exec", "--privileged", "devexec", "sh", "-c", _probe(("/tmp", "/dev/shm"), marker))
        assert out.returncode == 0, out.stderr
        _assert_refused(out.stdout, ("/tmp", "/dev/shm"))
    finally:
        jb(store, "rm", "-f", "devexec")
    assert marker not in _host_kernel_log()


def test_a_bound_host_device_cannot_be_opened(store):
    """-v /dev/kmsg:/kmsg is a bind like any other: nodev (docker's device cgroup refuses it too)."""
    marker = f"jupybox-kmsg-probe-{uuid.uuid4().hex}"
    out = jb(store, "run", "--rm", "-v", "/dev/kmsg:/kmsg", "-v", "/dev:/hostdev", "busybox", "sh", "-c",
             f"echo {marker} > /kmsg; echo kmsg=$?; head -c 16 /hostdev/mem >/dev/null; echo mem=$?")
    assert "kmsg=1" in out.stdout and "mem=1" in out.stdout, out
    assert "Permission denied" in out.stderr, out.stderr
    assert marker not in _host_kernel_log()


def test_the_default_nodes_still_work(store):
    script = ("echo x > /dev/null && echo null-ok; "
              "head -c 4 /dev/zero | od -An -tx1; "
              "head -c 16 /dev/urandom | wc -c; head -c 16 /dev/random | wc -c; "
              "(echo x > /dev/full) 2>&1; "
              # no controlling terminal: the tty driver answers ENXIO (nodev would say EACCES)
              "(: < /dev/tty) 2>&1; "
              "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty")
    out = jb(store, "run", "--rm", "busybox", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    assert "null-ok" in out.stdout
    assert " 00 00 00 00" in out.stdout
    assert out.stdout.count("16\n") == 2
    assert "No space left on device" in out.stdout
    assert "No such device or address" in out.stdout and "Permission denied" not in out.stdout
    modes = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("c")]
    assert modes == ["crw-rw-rw-"] * 6, out.stdout


def test_a_secret_the_host_image_masks_stays_empty(store):
    """The host image covers /etc/shadow with the container's own /dev/null (not the host's, which
    a nodev bind would make unreadable)."""
    out = jb(store, "run", "--rm", "host", "sh", "-c", "wc -c < /etc/shadow; echo x > /etc/shadow; wc -c < /etc/shadow")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0"], out  # empty, and what is written goes nowhere


def test_privileged_can_still_open_a_node_it_makes(store):
    out = jb(store, "run", "--rm", "--privileged", "busybox", "sh", "-c",
             "mknod /tmp/mynull c 1 3 && echo x > /tmp/mynull && echo null-ok; "
             "mknod /dev/myzero c 1 5 && head -c 3 /dev/myzero | od -An -tx1")
    assert out.returncode == 0, out.stderr
    assert "null-ok" in out.stdout and " 00 00 00" in out.stdout, out


def test_rootless_binds_the_host_nodes_and_refuses_mknod(busybox_tar):
    """Rootless (a user namespace): mknod of a device is refused by the kernel; the default nodes
    are the host's, bound, and work."""
    import os
    import sys

    from jupybox.testing.rootless import unavailable, unprivileged_user

    if unavailable() is not None:
        pytest.skip(str(unavailable()))
    jupybox = os.path.join(os.path.dirname(sys.executable), "jupybox")
    with unprivileged_user(subids=True) as user:
        tar = user.give(busybox_tar, "busybox.tar.gz")
        assert user.run([jupybox, "import", str(tar), "busybox"]).returncode == 0
        out = user.run([jupybox, "run", "--rm", "--device", "/dev/zero:/dev/myzero", "busybox", "sh", "-c",
                        "mknod /tmp/k c 1 11 && echo MADE; echo x > /dev/null && echo null-ok; "
                        "head -c 2 /dev/zero | od -An -tx1; (echo x > /dev/full) 2>&1; "
                        "head -c 3 /dev/myzero | od -An -tx1; true"])
    assert out.returncode == 0, out.stderr
    assert "MADE" not in out.stdout and "null-ok" in out.stdout and " 00 00\n" in out.stdout, out
    assert "No space left on device" in out.stdout
    assert " 00 00 00" in out.stdout  # --device: the host's node, bound


def test_a_device_node_carried_by_an_image_cannot_be_opened(store, tmp_path):
    """A hostile image ships /kmsg (c 1 11) in its layer: whether the import keeps the node or not,
    the container cannot write through it."""
    import tarfile

    from jupybox.testing import busybox_tarball, cache_dir, import_image

    path = tmp_path / "hostile.tar"
    with tarfile.open(busybox_tarball(cache_dir())) as src, tarfile.open(path, "w") as out:
        for m in src.getmembers():
            out.addfile(m, src.extractfile(m) if m.isfile() else None)
        node = tarfile.TarInfo("kmsg")
        node.type, node.devmajor, node.devminor, node.mode = tarfile.CHRTYPE, 1, 11, 0o666
        out.addfile(node)
    import_image(store, str(path), "hostile-dev:1")
    marker = f"jupybox-kmsg-probe-{uuid.uuid4().hex}"
    out = jb(store, "run", "--rm", "hostile-dev:1", "sh", "-c", f"ls -l /kmsg; echo {marker} > /kmsg; echo rc=$?")
    assert "rc=1" in out.stdout, out
    assert marker not in _host_kernel_log()
