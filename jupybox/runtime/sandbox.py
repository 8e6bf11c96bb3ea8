"""A container's processes, made by the C init (jupybox/linux/init.c), seen from the service.

    the service (a subreaper)
    └─ H  jupybox-init: joins the cgroup, unshares the namespaces, forks PID 1, exits
       └─ 1  jupybox-init as PID 1: waits for its plan, assembles the root filesystem, takes the
             container's credentials, starts the command and stays as its init
             └─ the command

A :class:`Sandbox` is made before the container's spec is known (the slow parts, off the
critical path: the first write to a v1 cgroup.procs after an idle moment waits for an RCU grace
period, 8-16 ms on a 2-vCPU VM); :meth:`Sandbox.send` then starts it with its plan. The service spawns the
init with a vfork-style clone and an exec of a sealed memfd (a few hundred microseconds of its
own time), never a fork of itself.

Every process in the chain holds the write end of one close-on-exec pipe, the *report* pipe:
H writes ``P<pid>`` with PID 1's pid, a failure anywhere writes ``E<code> <message>`` with docker's
exit code (125 setup, 126 not executable, 127 not found). When the command has been exec'ed,
every write end is closed and the service reads EOF: that EOF is the "started" signal. PID 1
writes ``X<code>`` on the *status* pipe when the command has exited, before its own exit.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket

from ..errors import CommandNotExecutable, CommandNotFound, RuntimeFailure
from ..linux import _spawn
from ..linux import syscalls as sc
from . import initproto as proto
from .fdio import read_all

NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID | sc.CLONE_NEWCGROUP
INIT_BINARY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "linux", "jupybox-init")
# where PID 1 keeps its end of the status pipe (init.c's FD_STATUS_R): a service that re-adopts the
# container after a crash takes it from there with pidfd_getfd(2)
PID1_STATUS_FD = 6

_init_fd = -1


def init_fd() -> int:
    """The init program in a sealed memfd (made once per process): the container's /proc/1/exe
    then names no host path, and nothing inside can write to it (runc's fix for CVE-2019-5736)."""
    global _init_fd
    if _init_fd < 0:
        try:
            with open(INIT_BINARY, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise RuntimeFailure(f"{INIT_BINARY} is missing: reinstall jupybox (`make deps` builds it)") from None
        fd = os.memfd_create("jupybox-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        _init_fd = fd
    return _init_fd


_ERRORS = {126: CommandNotExecutable, 127: CommandNotFound}


def _with_hint(msg: str) -> str:
    """What the init's one line cannot know: fuse-overlayfs (a rootless root filesystem before
    Linux 5.11) fails with "cannot mount: Permission denied" when /dev/fuse is closed to the user."""
    if "fuse-overlayfs" in msg and "Permission denied" in msg and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return (f"{msg} (/dev/fuse is not open to this user: Debian's udev rule makes it 0666; "
                f"kernels before 5.11 need it for a rootless container's root filesystem)")
    return msg


def raise_failure(code: int, msg: str):
    exc = _ERRORS.get(code, RuntimeFailure)(_with_hint(msg))
    exc.exit_code = code
    raise exc


def parse_report(data: bytes) -> tuple[int, tuple[int, str] | None]:
    """(PID 1's pid or 0, the first failure (code, message) or None) from the report pipe."""
    pid, error = 0, None
    for line in data.splitlines():
        if line.startswith(b"P") and line[1:].isdigit():
            pid = pid or int(line[1:])
        elif line.startswith(b"E") and error is None:
            code, _, msg = line[1:].partition(b" ")
            try:
                error = (int(code), msg.decode(errors="replace"))
            except ValueError:
                error = (125, line[1:].decode(errors="replace"))
    return pid, error


def _spawn_init(fds: list[int]) -> int:
    try:
        return _spawn.spawn_init(init_fd(), fds)
    except OSError as e:
        raise RuntimeFailure(f"starting jupybox-init: {e}") from None


def _open_procs(procs_files: list[str]) -> list[int]:
    out = []
    try:
        for path in procs_files:
            out.append(os.open(path, os.O_WRONLY | os.O_CLOEXEC))
    except OSError as e:
        for fd in out:
            os.close(fd)
        raise RuntimeFailure(f"joining the container's cgroup: {e}") from None
    return out


class Sandbox:
    """A container's processes made before its plan is known; see the module's comment.

    The caller must be a subreaper (PID 1 becomes its child when H exits) whose threads live as
    long as the containers (PID 1's parent-death signal follows the thread that is its parent)."""

    def __init__(self, procs_files: list[str], new_net: bool = True, idmap=None):
        self.new_net = new_net
        self.pid = 0
        self._helper = 0
        sc.set_child_subreaper()
        self._sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._report_r, report_w = os.pipe2(os.O_CLOEXEC)
        self._status_r, status_w = os.pipe2(os.O_CLOEXEC)
        procs = []
        try:
            procs = _open_procs(procs_files)
            self._helper = _spawn_init([child_sock.fileno(), report_w, status_w, self._status_r] + procs)
            proto.send(self._sock, proto.CONFIG, proto.config_fields(
                exec_mode=False, ns_flags=NAMESPACES | (sc.CLONE_NEWNET if new_net else 0), new_netns=new_net,
                idmap=idmap, nprocs=len(procs), dumpable=os.geteuid() != 0))
        except BaseException:
            self.discard()
            raise
        finally:
            child_sock.close()
            os.close(report_w)
            os.close(status_w)
            for fd in procs:
                os.close(fd)

    # -- the helper ---------------------------------------------------------------------------
    @property
    def helper_pid(self) -> int:
        return self._helper

    @property
    def pending(self) -> bool:
        """True while the helper has not reported PID 1 yet (see :meth:`helper_fd`)."""
        return bool(self._helper)

    def helper_fd(self) -> int:
        """Readable when the helper has reported: call :meth:`ready` then (it will not block)."""
        return self._report_r

    def ready(self) -> int:
        """Wait until PID 1 exists (the helper reports it); return its host pid."""
        if self._helper:
            try:
                data = os.read(self._report_r, 4096)
            finally:
                _reap(self._helper)
                self._helper = 0
            self.pid, error = parse_report(data)
            if error is not None or not self.pid:
                self.discard()
                raise_failure(*(error or (125, "the container's process did not start")))
        return self.pid

    # -- PID 1 --------------------------------------------------------------------------------
    def _send(self, kind: bytes, fields, fds=(), what: str = "starting the container") -> None:
        try:
            proto.send(self._sock, kind, fields, fds)
        except ValueError as e:
            raise RuntimeFailure(f"{what}: {e}") from None
        except OSError as e:
            raise RuntimeFailure(f"{what}: {e}") from None

    def prepare_rootfs(self, rootfs_plan: dict) -> None:
        """Have PID 1 assemble the root filesystem now (a plan with ``rootfs_ready`` follows)."""
        self._send(proto.ROOTFS, proto.rootfs_fields(rootfs_plan), what="preparing the container's root filesystem")

    def arm(self, plan: dict) -> None:
        """Have PID 1 get ready for this very plan (its root filesystem made): ``send(None, ...)``
        starts it."""
        self._send(proto.ARM, _plan_fields(plan), what="preparing the container")

    def send(self, plan: dict | None, stdio: tuple[int, int, int], linger: bool = False) -> int:
        """Send the plan (None: the armed one) and return PID 1's host pid at once: the caller may
        do its own work while the container starts, then must call :meth:`started`.

        ``linger``: once it has reported the exit (:meth:`exit_status`), PID 1 waits for
        :meth:`release` before it exits and its namespaces are torn down."""
        self.ready()
        t = proto.PLAN_TAGS
        try:
            if plan is None:
                self._send(proto.GO, [(t["linger"], linger)], stdio)
            else:
                self._send(proto.START, _plan_fields(plan) + [(t["linger"], linger)], stdio)
        except RuntimeFailure:
            self.discard()
            raise
        return self.pid

    def started(self) -> int:
        """Wait until the command has been exec'ed; return PID 1's host pid (errors raise)."""
        data = read_all(self._report_r)
        os.close(self._report_r)
        self._report_r = -1
        _pid, error = parse_report(data)
        if error is not None:
            self.discard()
            raise_failure(*error)
        return self.pid

    def status_fd(self) -> int:
        """Readable when the command has exited (see :meth:`exit_status`), or at PID 1's end."""
        return self._status_r

    def exit_status(self) -> int | None:
        """The command's exit code as PID 1 reported it, or None (no init, or it died)."""
        return read_status(self._status_r)

    def release(self) -> None:
        """Let a lingering PID 1 exit (see :meth:`send`)."""
        try:
            proto.send(self._sock, proto.RELEASE)
        except OSError:
            pass

    def discard(self) -> None:
        """Kill what was made (an unused or failed sandbox) and reap it."""
        if self._helper:
            self._sock.close()  # a helper still waiting for its configuration ends at this EOF
            try:
                data = os.read(self._report_r, 4096) if self._report_r >= 0 else b""
                self.pid = self.pid or parse_report(data)[0]
            except OSError:
                pass
            _reap(self._helper)
            self._helper = 0
        if self._report_r >= 0:
            os.close(self._report_r)
            self._report_r = -1
        self._sock.close()
        self._close_status()
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(self.pid)
            self.pid = 0

    def _close_status(self) -> None:
        if self._status_r >= 0:
            os.close(self._status_r)
            self._status_r = -1

    def close(self) -> None:
        """After the container has exited: the control socket is no longer needed."""
        self._sock.close()
        self._close_status()


def read_status(fd: int) -> int | None:
    """``X<code>`` from a status pipe (PID 1's report of the command's exit), or None."""
    try:
        data = os.read(fd, 64)
    except OSError:
        return None
    try:
        return int(data[1:]) if data.startswith(b"X") else None
    except ValueError:
        return None  # a container's PID 1 is the container's: what it says is checked, not trusted


def _plan_fields(plan: dict) -> list:
    t = proto.PLAN_TAGS
    fields = proto.process_fields(plan)
    if plan.get("rootfs_ready"):
        fields.append((t["rootfs_ready"], True))
    else:
        fields += proto.rootfs_fields(plan)
    return fields


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except InterruptedError:
            continue
        except ChildProcessError:
            return


EXEC_NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt")


def exec_in(pid: int, procs_files: list[str], plan: dict, stdio=(0, 1, 2), idmap=None) -> int:
    """Start a process inside the running container whose PID 1 is ``pid``; return its host pid.

    The caller must be a subreaper and wait for the returned pid. Errors raise with docker's exit
    codes (126, 127). Namespaces the container shares with us (the host's network) are not joined:
    from inside a user namespace they could not be joined again."""
    opened = []
    try:
        names = []
        for ns in ("user",) + EXEC_NAMESPACES:  # the user namespace first: rootless, it owns the others
            if os.stat(f"/proc/{pid}/ns/{ns}").st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino:
                names.append(ns)
                opened.append(os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC))
        root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        for fd in opened:
            os.close(fd)
        raise RuntimeFailure("the container is not running") from None
    except OSError as e:
        for fd in opened:
            os.close(fd)
        raise RuntimeFailure(f"joining the container: {e}") from None
    sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    procs = []
    helper = 0
    try:
        procs = _open_procs(procs_files)
        helper = _spawn_init([child_sock.fileno(), report_w, _devnull(), _devnull()] + procs)
        t = proto.PLAN_TAGS
        proto.send(sock, proto.CONFIG, proto.config_fields(exec_mode=True, ns_flags=0, new_netns=False, idmap=idmap,
                                                           nprocs=len(procs), dumpable=os.geteuid() != 0))
        fields = proto.process_fields(plan) + [(t["namespace"], n) for n in names]
        proto.send(sock, proto.EXEC, fields, list(stdio) + [root] + opened)
    except (OSError, ValueError) as e:
        if helper:
            os.kill(helper, signal.SIGKILL)
        raise RuntimeFailure(f"joining the container: {e}") from None
    finally:
        child_sock.close()
        os.close(report_w)
        for fd in procs + opened + [root]:
            os.close(fd)
    data = read_all(report_r)
    os.close(report_r)
    sock.close()
    if helper:
        _reap(helper)
    xpid, error = parse_report(data)
    if error is not None:
        if xpid:
            _reap(xpid)
        raise_failure(*error)
    if not xpid:
        raise RuntimeFailure("joining the container: the exec helper failed")
    return xpid


_devnull_fd = -1


def _devnull() -> int:
    global _devnull_fd
    if _devnull_fd < 0:
        _devnull_fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    return _devnull_fd


def pid1_status_fd(pid: int) -> int | None:
    """A copy of PID 1's end of its status pipe (after a crash of the service that started it),
    or None where the kernel does not allow it (pidfd_getfd needs ptrace rights over PID 1)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        return sc.pidfd_getfd(pidfd, PID1_STATUS_FD)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EBADF, errno.ESRCH, errno.ENOSYS):
            raise
        return None
    finally:
        os.close(pidfd)
