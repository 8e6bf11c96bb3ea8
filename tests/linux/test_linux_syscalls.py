"""jupybox.linux.syscalls: namespaces, mounts, pivot_root, hostname, prctl — each in a forked child."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest

from jupybox.linux import syscalls as sc

ROOT_REASON = "needs root (namespaces, mounts)"


def needs_root(test):
    """The project's ``root`` marker, plus a skip that says why."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason=ROOT_REASON)(test))


SYS_getpid = {"x86_64": 39, "aarch64": 172}[sc.MACHINE]


def _mountpoints(pid="self") -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[4] for line in f]


def test_constants_match_kernel_headers():
    assert (sc.CLONE_NEWNS, sc.CLONE_NEWUTS, sc.CLONE_NEWIPC, sc.CLONE_NEWUSER, sc.CLONE_NEWPID,
            sc.CLONE_NEWNET, sc.CLONE_NEWCGROUP) == (0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000,
                                                     0x40000000, 0x2000000)
    assert sc.CLONE_NEW_ALL == 0x7E020000 == 2114060288  # the mask in docker's seccomp profile
    assert (sc.MS_RDONLY, sc.MS_NOSUID, sc.MS_NODEV, sc.MS_NOEXEC, sc.MS_REMOUNT, sc.MS_BIND, sc.MS_REC,
            sc.MS_PRIVATE, sc.MS_SLAVE, sc.MS_SHARED) == (1, 2, 4, 8, 32, 4096, 16384, 1 << 18, 1 << 19, 1 << 20)
    assert (sc.MS_NOATIME, sc.MS_RELATIME, sc.MS_STRICTATIME, sc.MNT_DETACH) == (1024, 1 << 21, 1 << 24, 2)


def test_raw_syscall_and_its_errors():
    assert sc.syscall(SYS_getpid) == os.getpid()
    with pytest.raises(OSError) as e:
        sc.syscall(sc.SYS_pivot_root, "/nonexistent-jbx", "/nonexistent-jbx")
    assert e.value.errno in (errno.ENOENT, errno.EPERM, errno.EINVAL)


@needs_root
def test_uts_namespace_changes_only_the_childs_hostname(in_child):
    before = os.uname().nodename

    def child():
        sc.unshare(sc.CLONE_NEWUTS)
        sc.sethostname("jbx-uts-test")
        with open("/proc/sys/kernel/hostname") as f:
            return os.uname().nodename, f.read().strip()

    assert in_child(child) == ("jbx-uts-test", "jbx-uts-test")
    assert os.uname().nodename == before != "jbx-uts-test"


@needs_root
def test_setns_returns_to_the_original_uts_namespace(in_child):
    original = os.uname().nodename

    def child():
        fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
        sc.unshare(sc.CLONE_NEWUTS)
        sc.sethostname("jbx-setns-test")
        changed = os.uname().nodename
        with pytest.raises(OSError) as wrong:
            sc.setns(fd, sc.CLONE_NEWNET)  # fd is a UTS namespace: EINVAL
        sc.setns(fd, sc.CLONE_NEWUTS)
        return changed, os.uname().nodename, wrong.value.errno, str(wrong.value)

    changed, back, err, msg = in_child(child)
    assert changed == "jbx-setns-test"
    assert back == original
    assert err == errno.EINVAL and "setns" in msg


@needs_root
def test_tmpfs_in_new_mount_namespace_is_invisible_to_parent(tmp_path):
    target = tmp_path / "mnt"
    target.mkdir()
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            sc.mount("jbx-test", target, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV, "size=1m,mode=0755")
            (target / "marker").write_text("inside")
            ok = str(target) in _mountpoints() and (target / "marker").exists()
            os.write(ready_w, b"1" if ok else b"0")
            os.read(done_r, 1)  # stay alive (and mounted) while the parent looks
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        assert os.read(ready_r, 1) == b"1", "child could not mount its tmpfs"
        # the mount exists — in the child's namespace only
        assert str(target) in _mountpoints(pid)
        assert str(target) not in _mountpoints()
        assert not (target / "marker").exists()
        assert os.listdir(target) == []
    finally:
        os.write(done_w, b"x")
        os.close(done_w)
        os.close(ready_r)
        _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0


@needs_root
def test_mount_and_umount_errors_name_the_path(in_child, tmp_path):
    plain = tmp_path / "not-a-mountpoint"
    plain.mkdir()

    def child():
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        out = []
        for call in (lambda: sc.mount("tmpfs", "/nonexistent-jbx/dir", "tmpfs"),
                     lambda: sc.umount2(plain),
                     lambda: sc.mount("none", plain, "no-such-fs-type")):
            try:
                call()
                out.append(None)
            except OSError as e:
                out.append((e.errno, str(e)))
        return out

    missing, not_mounted, bad_type = in_child(child)
    assert missing[0] == errno.ENOENT and "mount /nonexistent-jbx/dir" in missing[1]
    assert not_mounted[0] == errno.EINVAL and f"umount {plain}" in not_mounted[1]
    assert bad_type[0] == errno.ENODEV and str(plain) in bad_type[1] and "no-such-fs-type" in bad_type[1]


def _prepare_rootfs(base) -> str:
    """In a private mount namespace: a tmpfs at base/t holding base/t/rootfs with a few entries."""
    sc.unshare(sc.CLONE_NEWNS)
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    t = os.path.join(base, "t")
    os.mkdir(t)
    sc.mount("jbx-root", t, "tmpfs", 0, "size=4m")
    rootfs = os.path.join(t, "rootfs")
    os.makedirs(os.path.join(rootfs, "proc"))
    with open(os.path.join(rootfs, "marker"), "w") as f:
        f.write("new root")
    return rootfs


@needs_root
def test_pivot_into_a_bind_mounted_rootfs(in_child, tmp_path):
    def child():
        rootfs = _prepare_rootfs(str(tmp_path))
        # rootfs is a plain directory: pivot_root refuses it until it is a mount point
        try:
            sc.pivot_into(rootfs)
            unbound = None
        except OSError as e:
            unbound = e.errno
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
        sc.pivot_into(rootfs)
        listing = sorted(os.listdir("/"))
        with open("/marker") as f:
            marker = f.read()
        sc.mount("proc", "/proc", "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        mounts = _mountpoints()
        return unbound, os.getcwd(), listing, marker, mounts, os.path.exists(str(tmp_path))

    unbound, cwd, listing, marker, mounts, host_visible = in_child(child)
    assert unbound == errno.EINVAL
    assert cwd == "/"
    assert listing == ["marker", "proc"]
    assert marker == "new root"
    assert mounts == ["/", "/proc"], "the old root must be fully detached"
    assert host_visible is False
    assert os.path.isdir(tmp_path)  # the parent's view is untouched


@needs_root
def test_pivot_root_syscall_with_put_old(in_child, tmp_path):
    def child():
        rootfs = _prepare_rootfs(str(tmp_path))
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
        os.mkdir(os.path.join(rootfs, "oldroot"))
        os.chdir(rootfs)
        sc.pivot_root(".", "oldroot")
        os.chdir("/")
        saw_old = os.path.isdir("/oldroot/proc/self")  # the host's /proc under the old root
        sc.umount2("/oldroot", sc.MNT_DETACH)
        return saw_old, sorted(os.listdir("/")), os.listdir("/oldroot")

    saw_old, listing, old = in_child(child)
    assert saw_old is True
    assert listing == ["marker", "oldroot", "proc"]
    assert old == []


def test_no_new_privs_in_child_only(in_child, status):
    def child():
        before = sc.get_no_new_privs()
        sc.set_no_new_privs()
        with open("/proc/self/status") as f:
            line = [x for x in f if x.startswith("NoNewPrivs:")][0]
        return before, sc.get_no_new_privs(), line.split()[1]

    assert in_child(child) == (False, True, "1")
    assert status()["NoNewPrivs"] == "0"


def test_keepcaps_and_pdeathsig_round_trip(in_child):
    def child():
        out = [sc.get_keepcaps()]
        sc.set_keepcaps(True)
        out.append(sc.get_keepcaps())
        sc.set_keepcaps(False)
        out.append(sc.get_keepcaps())
        out.append(sc.get_pdeathsig())
        sc.set_pdeathsig(signal.SIGUSR1)
        out.append(sc.get_pdeathsig())
        with pytest.raises(OSError) as e:
            sc.set_pdeathsig(1000)
        out.append(e.value.errno)
        return out

    assert in_child(child) == [False, True, False, 0, int(signal.SIGUSR1), errno.EINVAL]


def test_subreaper_inherits_orphan_killed_by_pdeathsig(in_child):
    """C is a subreaper; C -> M -> G; G asks for SIGKILL when M dies; M exits; C reaps G, killed."""

    def child():
        assert not sc.get_child_subreaper()
        sc.set_child_subreaper()
        assert sc.get_child_subreaper()
        r, w = os.pipe()
        gr, gw = os.pipe()
        m = os.fork()
        if m == 0:
            g = os.fork()
            if g == 0:
                sc.set_pdeathsig(signal.SIGKILL)
                os.write(gw, str(os.getpid()).encode())
                time.sleep(30)
                os._exit(0)
            os.write(w, os.read(gr, 32))  # M leaves once G has set its death signal
            os._exit(0)
        os.close(w)
        gpid = int(os.read(r, 32))
        os.waitpid(m, 0)
        start = time.monotonic()
        pid, st = os.waitpid(gpid, 0)  # G was reparented to us, the subreaper
        return pid == gpid, os.WIFSIGNALED(st) and os.WTERMSIG(st), time.monotonic() - start

    reaped, sig, waited = in_child(child)
    assert reaped is True
    assert sig == signal.SIGKILL
    assert waited < 10
