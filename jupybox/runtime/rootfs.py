"""The container's root filesystem, assembled inside its own mount namespace.

Runs in the container's PID 1 before anything of the user's runs. Every mount here lives only
in the container's private mount namespace: when the container's last process exits, the kernel
drops them all, so a kill -9 of jupybox at any moment cannot leave a stray mount on the host.

Order (runc's ``rootfs_linux.go``):
 1. make ``/`` recursively private so nothing propagates back to the host;
 2. overlayfs: the image layers as lower dirs, the container's write layer as upper dir;
 3. /proc, /dev (a small tmpfs with the usual nodes, devpts newinstance, shm, mqueue), /sys
    read-only, the container's own cgroup read-only under /sys/fs/cgroup;
 4. binds: the host image's directories, volumes, /etc/hosts, /etc/hostname, /etc/resolv.conf;
 5. Docker's masked and read-only /proc and /sys paths;
 6. pivot_root(".", ".") and a lazy unmount of the old root.
"""

from __future__ import annotations

import os
import stat

from ..linux import syscalls as sc
from .securejoin import ensure_path, secure_join

MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# name, major, minor, mode (docker's default device set)
DEVICES = (
    ("null", 1, 3, 0o666),
    ("zero", 1, 5, 0o666),
    ("full", 1, 7, 0o666),
    ("random", 1, 8, 0o666),
    ("urandom", 1, 9, 0o666),
    ("tty", 5, 0, 0o666),
)
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)

NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def _bind(src: str, dst: str, readonly: bool, recursive: bool = True, extra: int = 0) -> None:
    sc.mount(src, dst, None, sc.MS_BIND | (sc.MS_REC if recursive else 0))
    if readonly or extra:
        flags = sc.MS_BIND | sc.MS_REMOUNT | extra | (sc.MS_RDONLY if readonly else 0)
        try:
            sc.mount(None, dst, None, flags)
        except OSError:
            # the source mount may carry locked flags (nosuid, nodev, noexec): keep them
            st = os.statvfs(dst)
            locked = 0
            for bit, mflag in ((os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV), (os.ST_NOEXEC, sc.MS_NOEXEC)):
                if st.f_flag & bit:
                    locked |= mflag
            sc.mount(None, dst, None, flags | locked)


def _setup_dev(root: str, userns: str | None = None) -> None:
    dev = secure_join(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    sc.mount("tmpfs", dev, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k")
    old = os.umask(0)
    try:
        for name, major, minor, mode in DEVICES:
            if userns:
                # mknod of a device is refused in a user namespace: the host's node, bound (podman's way)
                os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY, mode))
                sc.mount(f"/dev/{name}", f"{dev}/{name}", None, sc.MS_BIND)
                continue
            os.mknod(f"{dev}/{name}", mode | stat.S_IFCHR, os.makedev(major, minor))
        for name, target in DEV_LINKS:
            os.symlink(target, f"{dev}/{name}")
        for sub in ("pts", "shm", "mqueue"):
            os.mkdir(f"{dev}/{sub}", 0o755)
    finally:
        os.umask(old)
    # gid 5 (tty) exists inside unless only root is mapped
    pts_gid = "" if userns == "single" else ",gid=5"
    sc.mount("devpts", f"{dev}/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC, f"newinstance,ptmxmode=0666,mode=0620{pts_gid}")
    sc.mount("shm", f"{dev}/shm", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k")
    sc.mount("mqueue", f"{dev}/mqueue", "mqueue", NOSUID_NODEV_NOEXEC)


def _setup_sys(root: str, new_netns: bool, cgroup_mounts: list) -> None:
    sysdir = ensure_path(root, "/sys")
    if new_netns:
        sc.mount("sysfs", sysdir, "sysfs", NOSUID_NODEV_NOEXEC | sc.MS_RDONLY)
    else:
        # sysfs shows the network namespace of its mounter: with the host's network, bind it
        _bind("/sys", sysdir, readonly=True)
    if not cgroup_mounts:
        return
    cgdir = f"{sysdir}/fs/cgroup"
    if not os.path.isdir(cgdir):
        return
    if len(cgroup_mounts) == 1 and cgroup_mounts[0][1] == "":
        _bind(cgroup_mounts[0][0], cgdir, readonly=True, recursive=False, extra=NOSUID_NODEV_NOEXEC)
        return
    sc.mount("cgroup", cgdir, "tmpfs", NOSUID_NODEV_NOEXEC, "mode=755,size=64k")
    for host_dir, name in cgroup_mounts:
        target = f"{cgdir}/{name}"
        os.mkdir(target, 0o755)
        _bind(host_dir, target, readonly=True, recursive=False, extra=NOSUID_NODEV_NOEXEC)
    sc.mount(None, cgdir, None, sc.MS_REMOUNT | sc.MS_RDONLY | NOSUID_NODEV_NOEXEC, "mode=755,size=64k")


def _mask(root: str) -> None:
    for path in MASKED_PATHS:
        target = secure_join(root, path)
        try:
            st = os.lstat(target)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY, "size=0")
        else:
            sc.mount(f"{root}/dev/null", target, None, sc.MS_BIND)
    for path in READONLY_PATHS:
        target = secure_join(root, path)
        if os.path.lexists(target):
            _bind(target, target, readonly=True, extra=NOSUID_NODEV_NOEXEC)


def _fuse_overlayfs(options: str, target: str) -> None:
    """Rootless on kernels without overlayfs in user namespaces (< 5.11): the FUSE version. Its
    daemon lives in the container's PID namespace and ends with it. Its messages go to a file, not
    a pipe: the daemon it leaves behind would hold a pipe open for good."""
    import subprocess
    import tempfile

    opts = ",".join(o for o in options.split(",") if o != "userxattr")
    # The daemon must not live in this mount namespace: pivot_root would move its root onto its
    # own mount, and it would wait for itself. It runs in a copy of the namespace (unshare -m,
    # propagation unchanged), and its mount reaches this one because the target is shared.
    sc.mount(target, target, None, sc.MS_BIND)
    sc.mount(None, target, None, sc.MS_SHARED)
    with tempfile.TemporaryFile() as err:
        try:
            out = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "--",
                                  "fuse-overlayfs", "-o", opts, target], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=err, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            raise OSError(f"fuse-overlayfs: {e}") from None
        if out.returncode != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            raise OSError(f"fuse-overlayfs: {lines[-1] if lines else f'exit status {out.returncode}'}")
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)  # pivot_root refuses shared mounts


def pivot(root: str) -> None:
    """runc's order: pivot_root(".", ".") then detach the old root stacked underneath."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    new_root = os.open(root, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(new_root)
        sc.pivot_root(".", ".")
        os.fchdir(old_root)  # the old root sits at "." on top of the new one
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def setup(plan: dict) -> None:
    """Build the root filesystem described by the launch plan, then pivot into it."""
    root = plan["rootfs"]
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    if plan.get("fuse_overlayfs"):
        _fuse_overlayfs(plan["overlay"], root)
    else:
        sc.mount("overlay", root, "overlay", 0, plan["overlay"])
    for link, target in plan.get("symlinks", ()):
        path = os.path.join(root, link.lstrip("/"))
        if not os.path.lexists(path):
            os.symlink(target, path)

    proc = ensure_path(root, "/proc")
    sc.mount("proc", proc, "proc", NOSUID_NODEV_NOEXEC)
    _setup_dev(root, plan.get("userns"))
    _setup_sys(root, plan["network"] != "host", plan.get("cgroup_mounts") or [])

    for m in plan["mounts"]:
        kind = m["type"]
        if kind == "tmpfs":
            target = ensure_path(root, m["destination"])
            flags = sc.MS_NOSUID | sc.MS_NODEV | (sc.MS_RDONLY if m.get("readonly") else 0)
            sc.mount("tmpfs", target, "tmpfs", flags, ",".join(m.get("options") or ["mode=1777"]))
            continue
        is_dir = m.get("is_dir", True)
        target = ensure_path(root, m["destination"], is_dir=is_dir)
        _bind(m["source"], target, readonly=m.get("readonly", False), extra=m.get("flags", 0))

    if not plan.get("privileged"):
        _mask(root)
    if plan.get("readonly_rootfs"):
        sc.mount(None, root, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
    pivot(root)
