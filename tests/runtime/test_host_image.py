"""The built-in `host` image: the host's programs and Python, read-only, without its secrets (root only)."""

from __future__ import annotations

import os
import sys

import pytest

pytestmark = [pytest.mark.root]


def test_host_python_and_its_packages(runner):
    code, out, err, _ = runner.run("host", ["python3", "-c", "import sys, numpy, psutil; print(sys.prefix)"])
    assert code == 0, err
    assert out.strip() == sys.prefix


def test_host_system_is_read_only(runner):
    code, out, _ = runner.sh("host", "touch /usr/x 2>/dev/null && echo rw || echo ro; "
                                     "touch /etc/x 2>/dev/null && echo rw || echo ro; echo t > /tmp/t && cat /tmp/t")
    assert out.split() == ["ro", "ro", "t"]


def test_host_hides_secrets_homes_and_scratch(runner, busybox_image, tmp_path):
    marker = tmp_path / "host-only"
    marker.write_text("secret")
    script = (
        "wc -c < /etc/shadow; ls -A /home | wc -l; ls -A /tmp | wc -l; ls -A /var | wc -l; ls -A /tmp; "
        f"test -e {marker} && echo marker-visible || echo marker-hidden; "
        f"test -e {busybox_image.root} && echo store-visible || echo store-hidden"
    )
    code, out, err = runner.sh("host", script)
    lines = out.split()
    assert lines[0] == "0"  # /dev/null bound over /etc/shadow
    # fresh, empty /home and /tmp, but for the way to the running Python's prefix (a virtualenv
    # under /tmp, say); /var holds only an empty tmp/
    prefix_tops = {p.split("/")[2] for p in (sys.prefix, sys.base_prefix) if p.startswith("/tmp/")}
    in_tmp = int(lines[2])
    assert (lines[1], lines[3]) == ("0", "1")
    assert set(lines[4:4 + in_tmp]) == prefix_tops
    assert lines[4 + in_tmp] == "marker-hidden"
    assert lines[5 + in_tmp] == "store-hidden"


def test_host_root_shows_only_the_python_prefix(runner):
    if not sys.prefix.startswith("/root/") and not sys.base_prefix.startswith("/root/"):
        code, out, _ = runner.sh("host", "ls -A /root | wc -l")
        assert out.strip() == "0"
        return
    code, out, _ = runner.sh("host", "ls -A /root")
    visible = set(out.split())
    # only the first component of the prefix path under /root (e.g. .pyenv), never .bashrc or .ssh
    allowed = {p.split("/")[2] for p in (sys.prefix, sys.base_prefix) if p.startswith("/root/")}
    assert visible <= allowed
    assert not os.path.exists("/root/.ssh") or ".ssh" not in visible


def test_a_host_without_etc_hosts_runs_the_host_image(tmp_path):
    """A minimal Debian has no /etc/hosts: the host image shows the host's /etc read-only, where no
    mount point can be made for the container's own; it runs without one (it was: 'making the mount
    point /etc/hosts: Read-only file system'). In a mount namespace of its own, /etc without hosts."""
    import shutil
    import subprocess

    etc = tmp_path / "etc"
    shutil.copytree("/etc", etc, symlinks=True, ignore_dangling_symlinks=True,
                    ignore=lambda d, names: [n for n in names if not os.path.lexists(os.path.join(d, n))])
    (etc / "hosts").unlink()
    root = tmp_path / "store"
    script = (f"mount --make-rprivate / && mount --bind {etc} /etc && "
              f"{sys.executable} -m jupybox --root {root} run --rm --network none host "
              "sh -c 'test -e /etc/hosts && echo has-hosts || echo no-hosts; cat /etc/hostname'; "
              f"rc=$?; {sys.executable} -m jupybox --root {root} system reset -f >/dev/null; exit $rc")
    r = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "no-hosts" and len(out) == 2, r.stdout  # its own /etc/hostname, still
