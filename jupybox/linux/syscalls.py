"""Raw Linux system calls through ctypes: namespaces, mounts, pivot_root, hostname, prctl.

Everything here may run in a freshly forked child right before exec, so libc is loaded once at import,
argtypes are fixed once, and no call imports anything or allocates more than a few ctypes objects.

Every failure raises ``OSError(errno, "<what> <path>: <strerror>")``: ``e.errno`` is the kernel's
errno and the message names the object (a path, a namespace fd, a prctl option).
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "CLONE_NEWNS", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWPID", "CLONE_NEWNET", "CLONE_NEWCGROUP",
    "CLONE_NEWUSER", "CLONE_NEWTIME", "CLONE_NEW_ALL",
    "MS_RDONLY", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_SYNCHRONOUS", "MS_REMOUNT", "MS_MANDLOCK",
    "MS_DIRSYNC", "MS_NOSYMFOLLOW", "MS_NOATIME", "MS_NODIRATIME", "MS_BIND", "MS_MOVE", "MS_REC",
    "MS_SILENT", "MS_UNBINDABLE", "MS_PRIVATE", "MS_SLAVE", "MS_SHARED", "MS_RELATIME", "MS_STRICTATIME",
    "MS_LAZYTIME", "MNT_FORCE", "MNT_DETACH", "MNT_EXPIRE", "UMOUNT_NOFOLLOW",
    "MACHINE", "SYS_pivot_root", "SYS_pidfd_getfd", "SO_PEERPIDFD", "pidfd_getfd", "SYS_clone", "SYS_clone3", "SYS_personality", "SYS_seccomp",
    "libc", "syscall", "unshare", "setns", "mount", "umount2", "pivot_root", "pivot_into", "sethostname",
    "prctl", "set_no_new_privs", "get_no_new_privs", "set_pdeathsig", "get_pdeathsig",
    "set_child_subreaper", "get_child_subreaper", "set_keepcaps", "get_keepcaps", "exchange",
]

# ---- namespaces (linux/sched.h) ----
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
#: the seven namespaces docker's seccomp profile refuses to clone() without CAP_SYS_ADMIN (0x7E020000)
CLONE_NEW_ALL = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                 | CLONE_NEWPID | CLONE_NEWNET)

# ---- mount(2) flags (linux/mount.h) ----
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# ---- umount2(2) flags ----
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# ---- prctl(2) options (linux/prctl.h) ----
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

# ---- syscall numbers for the calls glibc does not wrap (or that tests need raw) ----
MACHINE = os.uname().machine
_SYSCALL_NUMBERS = {
    #           pivot_root clone clone3 personality seccomp
    "x86_64": (155, 56, 435, 135, 317),
    "aarch64": (41, 220, 435, 92, 277),
}
if MACHINE not in _SYSCALL_NUMBERS:  # pragma: no cover - only x86_64 and aarch64 are supported
    raise ImportError(f"jupybox.linux supports x86_64 and aarch64, not {MACHINE}")
SYS_pivot_root, SYS_clone, SYS_clone3, SYS_personality, SYS_seccomp = _SYSCALL_NUMBERS[MACHINE]
SYS_pidfd_getfd = 438  # the same on every architecture (the generic table, since Linux 5.6)
SO_PEERPIDFD = 77  # getsockopt: a pidfd of the peer of a unix socket (Linux 6.5)

# ---- libc, loaded once ----
libc = ctypes.CDLL(None, use_errno=True)

_c_int, _c_ulong, _c_char_p, _c_void_p = ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_void_p
_get_errno = ctypes.get_errno
_strerror = os.strerror
_fsencode = os.fsencode


def _fn(name, restype, *argtypes):
    f = getattr(libc, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_unshare = _fn("unshare", _c_int, _c_int)
_setns = _fn("setns", _c_int, _c_int, _c_int)
_mount = _fn("mount", _c_int, _c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p)
_umount2 = _fn("umount2", _c_int, _c_char_p, _c_int)
_sethostname = _fn("sethostname", _c_int, _c_char_p, ctypes.c_size_t)
_prctl = _fn("prctl", _c_int, _c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_renameat2 = _fn("renameat2", _c_int, _c_int, _c_char_p, _c_int, _c_char_p, ctypes.c_uint)
_syscall = libc.syscall  # variadic: arguments are converted one by one in syscall()
_syscall.restype = ctypes.c_long


def _fail(what: str) -> OSError:
    e = _get_errno()
    return OSError(e, f"{what}: {_strerror(e)}")


def _path(p) -> bytes | None:
    return None if p is None else _fsencode(p)


def _show(p) -> str:
    return os.fsdecode(p) if isinstance(p, (bytes, str, os.PathLike)) else str(p)


def syscall(nr: int, *args) -> int:
    """Call system call number ``nr`` directly; returns its non-negative result or raises OSError.

    Arguments may be ints (passed as long), str/bytes/PathLike (passed as C strings), None (NULL)
    or ctypes objects (passed as they are).
    """
    cargs = []
    for a in args:
        if isinstance(a, int):
            cargs.append(ctypes.c_ulong(a) if a > 0x7FFFFFFFFFFFFFFF else ctypes.c_long(a))
        elif isinstance(a, (str, bytes, os.PathLike)):
            cargs.append(_c_char_p(_fsencode(a)))
        else:  # None (NULL), ctypes objects, byref()
            cargs.append(a)
    ret = _syscall(ctypes.c_long(nr), *cargs)
    if ret == -1:
        raise _fail(f"syscall {nr}")
    return ret


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces (CLONE_NEW* flags)."""
    if _unshare(flags) != 0:
        raise _fail(f"unshare {flags:#x}")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace open at ``fd`` (``nstype`` 0 = any kind)."""
    if _setns(fd, nstype) != 0:
        raise _fail(f"setns fd {fd} type {nstype:#x}")


def mount(source, target, fstype, flags: int = 0, data=None) -> None:
    """mount(2). ``source``/``fstype``/``data`` may be None; paths may be str, bytes or PathLike."""
    if _mount(_path(source), _fsencode(target), _path(fstype), flags, _path(data)) != 0:
        e = _get_errno()
        detail = []
        if source is not None:
            detail.append(f"from {_show(source)}")
        if fstype is not None:
            detail.append(f"type {_show(fstype)}")
        detail.append(f"flags {flags:#x}")
        raise OSError(e, f"mount {_show(target)} ({', '.join(detail)}): {_strerror(e)}")


def umount2(target, flags: int = 0) -> None:
    """umount2(2) (e.g. ``MNT_DETACH`` for a lazy unmount)."""
    if _umount2(_fsencode(target), flags) != 0:
        raise _fail(f"umount {_show(target)}")


def pivot_root(new_root, put_old) -> None:
    """pivot_root(2) by syscall number (glibc has no wrapper)."""
    if _syscall(ctypes.c_long(SYS_pivot_root), _c_char_p(_fsencode(new_root)),
                _c_char_p(_fsencode(put_old))) != 0:
        raise _fail(f"pivot_root {_show(new_root)} (old root at {_show(put_old)})")


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A copy of descriptor ``target_fd`` of the process ``pidfd`` refers to (close-on-exec).
    Needs ptrace rights over that process (PTRACE_MODE_ATTACH_REALCREDS)."""
    fd = _syscall(ctypes.c_long(SYS_pidfd_getfd), _c_int(pidfd), _c_int(target_fd), _c_int(0))
    if fd < 0:
        raise _fail(f"pidfd_getfd {target_fd}")
    return fd


def exchange(a, b) -> None:
    """Swap two paths atomically (renameat2 RENAME_EXCHANGE): both must exist. EINVAL where the
    filesystem cannot (callers fall back to a rename)."""
    if _renameat2(_AT_FDCWD, _fsencode(a), _AT_FDCWD, _fsencode(b), _RENAME_EXCHANGE) != 0:
        e = _get_errno()
        raise OSError(e, _strerror(e), _show(a), None, _show(b))


def pivot_into(rootfs) -> None:
    """Make ``rootfs`` the root of this mount namespace, in runc's order (rootfs_linux.go pivotRoot).

    The caller must already be in a private mount namespace (unshare CLONE_NEWNS, ``/`` made rslave or
    rprivate) and ``rootfs`` must be a mount point (bind it onto itself first). Steps: open old and new
    roots, fchdir(new), ``pivot_root(".", ".")``, fchdir(old), make the old root rslave so the unmount
    cannot propagate to the host, ``umount2(".", MNT_DETACH)``, chdir("/"). No put_old directory needed.
    """
    oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        newroot = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(newroot)
            if _syscall(ctypes.c_long(SYS_pivot_root), _c_char_p(b"."), _c_char_p(b".")) != 0:
                raise _fail(f"pivot_root {_show(rootfs)}")
        finally:
            os.close(newroot)
        os.fchdir(oldroot)  # "." is now the old root, stacked under the new one
        mount(None, ".", None, MS_SLAVE | MS_REC)
        umount2(".", MNT_DETACH)
    finally:
        os.close(oldroot)
    os.chdir("/")


def sethostname(name: str | bytes) -> None:
    """sethostname(2) in the current UTS namespace."""
    b = name.encode() if isinstance(name, str) else bytes(name)
    if _sethostname(b, len(b)) != 0:
        raise _fail(f"sethostname {b.decode(errors='replace')!r}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns its (non-negative) result or raises OSError."""
    ret = _prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _fail(f"prctl option {option}")
    return ret


def set_no_new_privs() -> None:
    """PR_SET_NO_NEW_PRIVS: execve can never grant privileges again (setuid bits, file caps)."""
    if _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl PR_SET_NO_NEW_PRIVS")


def get_no_new_privs() -> bool:
    ret = _prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
    if ret < 0:
        raise _fail("prctl PR_GET_NO_NEW_PRIVS")
    return bool(ret)


def set_pdeathsig(sig: int) -> None:
    """PR_SET_PDEATHSIG: receive ``sig`` when the parent *thread* dies (0 clears). Reset by exec of setuid."""
    if _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise _fail(f"prctl PR_SET_PDEATHSIG {int(sig)}")


def get_pdeathsig() -> int:
    out = _c_int(0)
    if _prctl(PR_GET_PDEATHSIG, ctypes.addressof(out), 0, 0, 0) != 0:
        raise _fail("prctl PR_GET_PDEATHSIG")
    return out.value


def set_child_subreaper(on: bool = True) -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are reparented to this process."""
    if _prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        raise _fail("prctl PR_SET_CHILD_SUBREAPER")


def get_child_subreaper() -> bool:
    out = _c_int(0)
    if _prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(out), 0, 0, 0) != 0:
        raise _fail("prctl PR_GET_CHILD_SUBREAPER")
    return bool(out.value)


def set_keepcaps(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep permitted capabilities across a setuid() away from uid 0."""
    if _prctl(PR_SET_KEEPCAPS, 1 if on else 0, 0, 0, 0) != 0:
        raise _fail("prctl PR_SET_KEEPCAPS")


def get_keepcaps() -> bool:
    ret = _prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)
    if ret < 0:
        raise _fail("prctl PR_GET_KEEPCAPS")
    return bool(ret)


def malloc_trim() -> bool:
    """Give the C heap's free pages back to the system (glibc's malloc_trim(0)); False where the
    libc has no such call (musl). A long-lived Python process keeps the peak of its heap otherwise:
    freed objects leave holes that only this returns."""
    try:
        trim = _fn("malloc_trim", _c_int, ctypes.c_size_t)
    except AttributeError:
        return False
    return bool(trim(0))
