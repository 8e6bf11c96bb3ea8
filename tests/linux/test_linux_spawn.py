"""jupybox.linux._spawn: a container's last steps in C (security, execve), checked from the exec'ed program.

Every test that changes this process's state (exec_in_place, fd games) runs in a forked child; spawn()
itself only ever changes its own child.
"""

from __future__ import annotations

import errno
import os
import signal
import tempfile

import pytest

from jupybox.linux import _spawn
from jupybox.linux import caps as C
from jupybox.linux import seccomp as S
from jupybox.linux import syscalls as sc
from jupybox.runtime.fdio import read_all

DOCKER_MASK = 0x00000000A80425FB
STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "SigIgn", "SigBlk",
               "Uid", "Gid", "Groups")


def needs_root(test):
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ids, capabilities)")(test))


def run(script: str, **kw) -> tuple[int, str]:
    """Spawn /bin/sh -c SCRIPT with ``kw``; return its exit code and what it printed."""
    r, w = os.pipe()
    try:
        pid = _spawn.spawn("/bin/sh", ["sh", "-c", script], ["PATH=/usr/bin:/bin"], fds=(0, w, w), **kw)
    finally:
        os.close(w)
    out = read_all(r)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode()


def status_of(**kw) -> dict[str, str]:
    code, out = run("cat /proc/self/status", **kw)
    assert code == 0, out
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return {k: fields[k].strip() for k in STATUS_KEYS}


def test_plain_spawn_changes_nothing_but_signals():
    mine = {k: v for k, v in C.current_caps().items()}
    got = status_of()
    assert int(got["CapEff"], 16) == mine["CapEff"] and int(got["CapBnd"], 16) == mine["CapBnd"]
    assert got["NoNewPrivs"] == "0" and got["Seccomp"] == "0"
    # Python ignores SIGPIPE and SIGXFSZ, and a launcher may block signals: the command gets defaults
    assert got["SigIgn"] == "0000000000000000" and got["SigBlk"] == "0000000000000000"


def test_signals_reset_even_when_ignored_and_blocked_here():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        got = status_of()
    finally:
        signal.signal(signal.SIGINT, old)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    assert got["SigIgn"] == "0000000000000000" and got["SigBlk"] == "0000000000000000"


def test_even_glibc_s_own_signals_are_reset(in_child):
    """A parent may leave signal 32 (glibc's SIGCANCEL) ignored, which glibc's sigaction cannot undo:
    seen in CI, where something above the test run ignored it."""
    import ctypes

    def child():
        class KernelSigaction(ctypes.Structure):
            _fields_ = [("handler", ctypes.c_void_p), ("flags", ctypes.c_ulong), ("restorer", ctypes.c_void_p),
                        ("mask", ctypes.c_uint64)]

        libc = ctypes.CDLL(None, use_errno=True)
        ignore = KernelSigaction(1, 0, None, 0)  # SIG_IGN
        rt_sigaction = {"x86_64": 13, "aarch64": 134}[sc.MACHINE]
        assert libc.syscall(rt_sigaction, 32, ctypes.byref(ignore), None, 8) == 0
        return status_of()["SigIgn"]

    assert in_child(child) == "0000000000000000"


@needs_root
def test_docker_defaults_as_root():
    prog = S.filter_for(C.DOCKER_DEFAULT_CAPS)
    got = status_of(caps=C.caps_mask(C.DOCKER_DEFAULT_CAPS), last_cap=C.LAST_CAP, no_new_privs=True, seccomp=prog)
    assert got["CapEff"] == got["CapPrm"] == got["CapBnd"] == f"{DOCKER_MASK:016x}"
    assert got["CapInh"] == got["CapAmb"] == "0000000000000000"  # CVE-2022-24769
    assert got["NoNewPrivs"] == "1" and got["Seccomp"] == "2"
    assert C.current_caps()["CapBnd"] != DOCKER_MASK  # this process is untouched


@needs_root
def test_asking_for_more_than_we_have_is_clamped():
    mine = C.current_caps()
    got = status_of(caps=C.caps_mask(C.ALL_CAPS), last_cap=C.LAST_CAP)
    assert int(got["CapEff"], 16) == mine["CapPrm"] & C.caps_mask(C.ALL_CAPS)


@needs_root
def test_no_capabilities_at_all():
    got = status_of(caps=0, last_cap=C.LAST_CAP)
    assert {got[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")} == {"0000000000000000"}


@needs_root
def test_user_groups_and_setuid_clear_effective():
    got = status_of(caps=C.caps_mask(C.DOCKER_DEFAULT_CAPS), last_cap=C.LAST_CAP, groups=[5, 6], gid=100,
                    uid=1000, no_new_privs=True)
    assert got["Uid"].split() == ["1000"] * 4 and got["Gid"].split() == ["100"] * 4
    assert got["Groups"].split() == ["5", "6"]
    assert got["CapEff"] == got["CapPrm"] == "0000000000000000"
    assert got["CapBnd"] == f"{DOCKER_MASK:016x}"  # docker's non-root user keeps the bounding set


@needs_root
def test_setuid_without_cap_setuid_fails_at_that_step():
    with pytest.raises(OSError) as e:
        _spawn.spawn("/bin/true", ["true"], [], caps=0, last_cap=C.LAST_CAP, uid=1000)
    assert e.value.errno == errno.EPERM and e.value.filename == "setuid"


def test_rlimits():
    code, out = run("ulimit -S -n; ulimit -H -n", rlimits=[(7, 64)])  # RLIMIT_NOFILE
    assert code == 0 and out.split() == ["64", "64"]


def test_environment_cwd_and_argv(tmp_path):
    r, w = os.pipe()
    pid = _spawn.spawn("/bin/sh", ["my-sh", "-c", 'echo "$0|$A|$(pwd)"'], ["A=b c", "PATH=/bin"], cwd=str(tmp_path),
                       fds=(0, w, w))
    os.close(w)
    out = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert out == f"my-sh|b c|{tmp_path}\n"


@pytest.mark.parametrize("kw, step, err", [
    ({"path": "/no/such/program"}, "execve", errno.ENOENT),
    ({"path": "not-executable"}, "execve", errno.EACCES),
    ({"path": "not-a-program"}, "execve", errno.ENOEXEC),
    ({"cwd": "/no/such/dir"}, "chdir", errno.ENOENT),
    ({"fds": (0, 1, 987)}, "stdio", errno.EBADF),
])
def test_failures_name_their_step_and_leave_no_child(kw, step, err, tmp_path, in_child):
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    (tmp_path / "not-a-program").write_bytes(b"\x7fELF garbage")
    (tmp_path / "not-a-program").chmod(0o755)
    path = str(tmp_path / kw.pop("path", "/bin/true"))

    def child():  # a process with no other children: nothing may be left to reap after a failure
        try:
            _spawn.spawn(path, ["x"], [], **kw)
            return "started"
        except OSError as e:
            failed = (e.errno, e.filename)
        try:
            os.waitpid(-1, os.WNOHANG)
            return "a child is left"
        except ChildProcessError:
            return failed

    assert in_child(child) == (err, step)


def test_bad_arguments_are_python_errors():
    with pytest.raises(ValueError):
        _spawn.spawn("/bin/true", [], [])
    with pytest.raises(ValueError):
        _spawn.spawn("/bin/true", ["a\0b"], [])
    with pytest.raises(ValueError):
        _spawn.spawn("/bin/true", ["true"], [], seccomp=b"1234567")  # not whole instructions
    with pytest.raises(TypeError):
        _spawn.spawn("/bin/true", ["true"], [], fds=(0, 1))


def test_swapped_stdio_and_no_other_descriptor_leaks(in_child):
    def child():
        # stdout and stderr swapped through each other, and a descriptor that is not close-on-exec
        leak = os.open("/dev/null", os.O_RDONLY)
        os.set_inheritable(leak, True)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        pid = _spawn.spawn("/bin/sh", ["sh", "-c", "echo to-err >&2; echo to-out; ls /proc/self/fd"], ["PATH=/bin"],
                           fds=(0, 2, 1))
        for fd in (1, 2, out_w, err_w):
            os.close(fd)
        os.waitpid(pid, 0)
        return os.read(out_r, 4096).decode(), os.read(err_r, 4096).decode(), leak

    out, err, leak = in_child(child)
    assert out == "to-err\n"
    assert err.splitlines()[0] == "to-out"
    fds = {int(x) for x in err.splitlines()[1:]}
    assert leak not in fds and fds <= {0, 1, 2, 3}  # 3: ls's own directory handle


@needs_root
def test_exec_in_place(in_child):
    def child():
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _spawn.exec_in_place("/bin/sh", ["sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"],
                                     ["PATH=/bin"], fds=(0, w, w), caps=C.caps_mask(C.DOCKER_DEFAULT_CAPS),
                                     last_cap=C.LAST_CAP, no_new_privs=True)
            finally:
                os._exit(99)
        os.close(w)
        out = os.read(r, 4096).decode()
        _, st = os.waitpid(pid, 0)
        return out, os.waitstatus_to_exitcode(st)

    out, code = in_child(child)
    assert code == 0
    assert out.split() == ["CapEff:", f"{DOCKER_MASK:016x}", "NoNewPrivs:", "1"]


def test_exec_in_place_failure_returns_as_oserror(in_child):
    def child():
        try:
            _spawn.exec_in_place("/bin/true", ["true"], [], cwd=tempfile.gettempdir() + "/no/such/dir")
        except OSError as e:
            return e.errno, e.filename
        return None

    assert in_child(child) == (errno.ENOENT, "chdir")
