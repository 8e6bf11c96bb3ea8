"""What a container (or a hostile image) tries against its own isolation: PID 1 showing the host,
uids that wrap to root, io_uring, an image that hides its /proc. Each must fail."""

from __future__ import annotations

import tarfile

import pytest

from jupybox.testing import import_image

from .conftest import jb

pytestmark = [pytest.mark.root]

DOCKER_CAPS = "00000000a80425fb"


def test_pid1_is_small_c_with_the_containers_credentials(store):
    script = ("tr '\\0' ' ' < /proc/1/cmdline; echo; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/1/status; "
              "readlink /proc/1/exe || echo EXE-HIDDEN; readlink /proc/1/fd/3 /proc/1/fd/5 2>/dev/null || echo FD-HIDDEN; "
              "cat /proc/1/environ >/dev/null 2>&1 && echo ENV-READ || echo ENV-HIDDEN; "
              "cat /proc/1/maps >/dev/null 2>&1 && echo MAPS-READ || echo MAPS-HIDDEN")
    out = jb(store, "run", "--rm", "busybox", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].strip() == "jupybox-init"  # nothing of the host: no interpreter, store or socket
    assert f"CapEff:\t{DOCKER_CAPS}" in out.stdout and f"CapBnd:\t{DOCKER_CAPS}" in out.stdout
    assert "NoNewPrivs:\t1" in out.stdout and "Seccomp:\t2" in out.stdout
    for hidden in ("EXE-HIDDEN", "FD-HIDDEN", "MAPS-HIDDEN"):
        assert hidden in out.stdout, out.stdout  # not dumpable: not even root in the container reads them
    assert str(store) not in out.stdout


def test_pid1_of_a_user_container_is_that_user(store):
    out = jb(store, "run", "--rm", "-u", "1000:1000", "busybox", "sh", "-c", "grep -E '^(Uid|Gid|CapEff):' /proc/1/status")
    assert out.returncode == 0, out.stderr
    assert "Uid:\t1000\t1000\t1000\t1000" in out.stdout and "CapEff:\t0000000000000000" in out.stdout


@pytest.mark.parametrize("user", ["4294967296", "4294967295", "0:4294967296", "2147483648", "-1"])
def test_uids_that_wrap_are_refused(store, user):
    out = jb(store, "run", "--rm", "-u", user, "busybox", "id")
    assert out.returncode == 125, out
    assert "uids and gids must be in range 0-2147483647" in out.stderr and len(out.stderr.splitlines()) == 1
    assert "uid=0" not in out.stdout


def test_exec_with_a_wrapping_uid_is_refused(store):
    assert jb(store, "run", "-d", "--name", "target", "busybox", "sleep", "60").returncode == 0
    try:
        out = jb(store, "exec", "-u", "4294967296", "target", "id")
        assert out.returncode == 125 and "uids and gids must be in range" in out.stderr, out
        assert "uid=0" not in out.stdout
    finally:
        jb(store, "rm", "-f", "target")


def test_an_image_whose_user_wraps_is_refused(store, tmp_path):
    from jupybox.testing import busybox_tarball, cache_dir

    out = jb(store, "import", "-c", "USER 4294967296:4294967296", busybox_tarball(cache_dir()), "wrapuser:1")
    assert out.returncode == 0, out.stderr
    out = jb(store, "run", "--rm", "wrapuser:1", "id")
    assert out.returncode == 125 and "uids and gids must be in range" in out.stderr, out


def test_io_uring_is_refused(store):
    code = ("import ctypes, errno, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "params = ctypes.create_string_buffer(120)\n"
            "r = libc.syscall(425, 8, params)\n"  # io_uring_setup (x86_64 and aarch64 alike)
            "print(r, errno.errorcode.get(ctypes.get_errno()))\n")
    out = jb(store, "run", "--rm", "host", "python3", "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["-1", "EPERM"], out.stdout
    # with --privileged (no seccomp) the call is the kernel's to answer: the test would catch a no-op filter
    out = jb(store, "run", "--rm", "--privileged", "host", "python3", "-c", code)
    assert out.stdout.split()[1] != "EPERM" or out.stdout.split()[0] != "-1"


def _rootfs_with(tmp_path, **links) -> str:
    """busybox's rootfs with top-level entries replaced by symlinks (a hostile image)."""
    from jupybox.testing import busybox_tarball, cache_dir

    src = tarfile.open(busybox_tarball(cache_dir()))
    path = tmp_path / "hostile.tar"
    with tarfile.open(path, "w") as out:
        for m in src.getmembers():
            top = m.name.lstrip("./").split("/")[0]
            if top in links:
                continue
            out.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            out.addfile(info)
    return str(path)


@pytest.mark.parametrize("links", [{"dev": "proc"}, {"dev": "/proc"}, {"proc": "dev"}, {"sys": "/proc/sys"}])
def test_an_image_cannot_hide_its_own_proc(store, tmp_path, links):
    import_image(store, _rootfs_with(tmp_path, **links), "hostile:1")
    out = jb(store, "run", "--rm", "hostile:1", "sh", "-c", "grep -c '^' /proc/self/status")
    assert out.returncode == 125, out
    assert "refusing the image" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert jb(store, "ps", "-a", "-q").stdout.strip() == ""


def test_a_bind_into_proc_is_refused(store, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    out = jb(store, "run", "--rm", "-v", f"{d}:/proc/sys/kernel", "busybox", "true")
    assert out.returncode == 125 and "/proc" in out.stderr, out

