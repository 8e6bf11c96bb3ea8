"""Creating the container's processes: the fork chain, and how errors travel back.

    P (the monitor: the CLI process, or the launcher daemon serving the API)
    └─ H  attaches itself to the container's cgroup, unshares the namespaces, forks C, exits
       └─ C  PID 1 in the new PID namespace, made before its plan is known (the :class:`Sandbox`
             can be made ahead of time); builds the root filesystem and pivots into it (ahead of
             time too when it can guess it), then resolves the user and stays as the init
             (reaping, forwarding signals)
             └─ the command: started by ``linux._spawn`` (a vfork-style child that applies user,
                capabilities, no_new_privs and seccomp and execs; with --no-init C itself execs)

P is a subreaper, so C is re-parented to P when H exits, and P collects C's exit status.
C carries PR_SET_PDEATHSIG=SIGKILL towards P: a container never outlives its monitor, so a
kill -9 of jupybox cannot leave processes nobody accounts for.
P must be a small single-threaded process: the notebook kernel never forks (it asks the
launcher daemon, see ``launcherd``); the CLI process is small enough to fork directly.

Every process in the chain holds the write end of one close-on-exec pipe. H writes
``P<pid>`` with C's pid; a failure anywhere writes ``E<json>`` with docker's exit code
(125 setup, 126 not executable, 127 not found). When the command has been exec'ed, every
write end is closed and P reads EOF: that EOF is the "started" signal.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import stat
import traceback

from ..errors import CommandNotExecutable, CommandNotFound, RuntimeFailure
from ..linux import _spawn, netdev
from ..linux import syscalls as sc
from . import init as pid1
from . import rootfs, security, wire
from .fdio import read_all

NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWPID | sc.CLONE_NEWCGROUP


class Failure(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code


def _report(fd: int, code: int, msg: str) -> None:
    try:
        os.write(fd, b"E" + json.dumps({"code": code, "msg": msg}).encode() + b"\n")
    except OSError:
        pass


def _find_executable(name: str, env: dict) -> str:
    """Docker's lookup: a name with a slash is used as is, else each PATH entry is tried."""
    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in env.get("PATH", "/usr/bin:/bin").split(":")]
    denied = None
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            denied = denied or f"{path}: is a directory"
            continue
        if not os.access(path, os.X_OK):
            denied = denied or f"{path}: permission denied"
            continue
        return path
    if denied:
        raise Failure(126, f"exec: {denied}")
    if "/" in name:
        raise Failure(127, f"exec: {name}: no such file or directory")
    raise Failure(127, f'exec: "{name}": executable file not found in $PATH')


def _command(plan: dict, user: tuple, fds=None, in_place: bool = False) -> int:
    """Run the container's command with its security applied: in a child whose pid is returned,
    or (``in_place``) in this very process, never returning. Errors raise Failure."""
    uid, gid, groups, _home = user
    env = plan["env_resolved"]
    path = _find_executable(plan["argv"][0], env)
    try:
        options = security.exec_options(plan, uid, gid, groups)
    except security.UserError as e:
        raise Failure(125, str(e)) from None
    run = _spawn.exec_in_place if in_place else _spawn.spawn
    try:
        return run(path, plan["argv"], [f"{k}={v}" for k, v in env.items()], cwd=plan["cwd"], fds=fds, **options)
    except OSError as e:
        step, why = e.filename, e.strerror
        if step == "execve":
            code = 126 if e.errno in (errno.EACCES, errno.ENOEXEC, errno.EPERM) else 127 if e.errno == errno.ENOENT else 125
            raise Failure(code, f"exec {plan['argv'][0]}: {why}") from None
        if step == "chdir":
            raise Failure(126 if e.errno == errno.EACCES else 125, f"chdir to cwd ({plan['cwd']}): {why}") from None
        raise Failure(125, f"{step or 'starting the command'}: {why}") from None
    except ValueError as e:  # a NUL byte in an argument or a variable
        raise Failure(125, f"exec {plan['argv'][0]}: {e}") from None


def _setup_rootfs(plan: dict) -> None:
    try:
        rootfs.setup(plan)
    except OSError as e:
        raise Failure(125, f"setting up the root filesystem: {e}") from None


def _user(plan: dict, code: int) -> tuple:
    """The plan's user in the container's /etc files, and the environment with its HOME."""
    try:
        user = security.resolve_user(plan.get("user"))
    except security.UserError as e:
        raise Failure(code, str(e)) from None
    env = dict(plan["env"])
    env.setdefault("HOME", user[3])
    plan["env_resolved"] = env
    return user


def _prepare(plan: dict) -> tuple:
    """C, once the plan is known: the root filesystem (unless made ahead), hostname, user, env."""
    if not plan.get("rootfs_ready"):
        _setup_rootfs(plan)
    if plan.get("hostname"):
        sc.sethostname(plan["hostname"])
    return _user(plan, 125)


def _workdir(plan: dict) -> None:
    """The working directory, made if missing (docker does), once the container surely starts."""
    cwd = plan["cwd"]
    if not os.path.isdir(cwd):
        try:
            os.makedirs(cwd, 0o755, exist_ok=True)
        except OSError as e:
            raise Failure(125, f"creating the working directory {cwd}: {e.strerror}") from None


def _sandbox_child(sock: socket.socket, err_w: int, status_w: int, new_net: bool) -> None:
    """C: PID 1 of fresh namespaces, inside its cgroup, made before the plan is known."""
    if new_net:
        netdev.set_up("lo")
    child = [0]
    pid1.install_forwarding(lambda: child[0])

    early_failure = None
    armed = None  # (plan, user) made ready ahead of its "go"
    while True:
        got = wire.recv(sock)
        if got is None:  # the sandbox was discarded
            os._exit(0)
        (kind, plan), fds = got
        if kind == "go":
            options = plan
            plan, user = armed or (None, Failure(125, "starting the container: it was not prepared"))
            break
        if kind == "start":
            options, user = plan, None
            break
        # ("rootfs", plan): assemble the root now; ("arm", plan): the user and hostname too.
        # A failure waits for the start to be told.
        try:
            if kind == "rootfs":
                _setup_rootfs(plan)
            elif early_failure is None:
                armed = plan, _prepare(plan)
        except Failure as f:
            if kind == "rootfs":
                early_failure = f
            else:
                armed = (plan, f)  # told at "go"; a different plan may still start
    # the container dies with its monitor: nothing can outlive jupybox unaccounted for
    sc.set_pdeathsig(signal.SIGKILL)
    r, _, _ = select.select([sock], [], [], 0)
    if r and not sock.recv(1, socket.MSG_PEEK):
        os._exit(0)  # the monitor died before the line above took effect
    linger = bool(options and options.get("linger"))
    if not linger:
        sock.close()
    try:
        if early_failure is not None:
            raise early_failure
        if isinstance(user, Failure):
            raise user
        user = _prepare(plan) if user is None else user
        _workdir(plan)
        stdio = tuple(fds[:3]) if len(fds) >= 3 else None
        if not plan.get("init", True):
            _command(plan, user, stdio, in_place=True)  # --no-init: the command itself is PID 1
        child[0] = _command(plan, user, stdio)
    except Failure as f:
        _report(err_w, f.code, str(f))
        os._exit(f.code)
    except BaseException:  # noqa: BLE001
        _report(err_w, 125, traceback.format_exc().strip().splitlines()[-1])
        os._exit(125)
    pid1.forward_pending(child[0])
    for fd in fds:
        os.close(fd)
    os.close(err_w)
    code = pid1.reap_until(child[0])
    # tell the monitor now: the namespaces' teardown in our exit can take a millisecond or two
    try:
        os.write(status_w, b"X%d" % code)
    except OSError:
        pass
    if linger:
        # the namespaces' teardown in our exit takes a CPU for a millisecond or two: the monitor
        # lets us go once its client has taken the exit in (it closes the socket)
        try:
            sock.recv(1)
        except OSError:
            pass
    os._exit(code)


def _close_all_but(keep: set[int]) -> None:
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 65536)


def _helper(sock: socket.socket, err_w: int, status_w: int, procs_files: list[str], new_net: bool,
            setup=None, parent: int = 0, idmap=None) -> None:
    """H: right after fork. Never returns."""
    try:
        # a monitor killed now must not leave a helper making a cgroup and a directory after the
        # next `prune` has looked: the helper dies with it
        sc.set_pdeathsig(signal.SIGKILL)
        if parent and os.getppid() != parent:
            os._exit(1)
        # nothing of the parent's reaches the container but what the plan sends; and first, before
        # the setup: a port reservation the monitor closes must be free at once, not held by us
        _close_all_but({sock.fileno(), err_w, status_w})
        if setup is not None:
            setup()
        # PID 1 never writes to the caller's terminal or pipes: stdio arrives with the plan
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
        os.setpgid(0, 0)
        for path in procs_files:
            with open(path, "w") as f:
                f.write("0")
        flags = NAMESPACES | (sc.CLONE_NEWNET if new_net else 0)
        if idmap is not None:
            # rootless: a user namespace of the container's own, owning the others (runc's order)
            from ..linux.userns import unshare_mapped

            unshare_mapped(idmap, flags)
        else:
            sc.unshare(flags)
        pid = os.fork()
        if pid == 0:
            try:
                _sandbox_child(sock, err_w, status_w, new_net)
            except BaseException as e:  # noqa: BLE001
                _report(err_w, 125, f"starting the container: {e}")
            os._exit(125)
        os.write(err_w, b"P%d\n" % pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001
        _report(err_w, 125, f"creating the container's namespaces: {e}")
        os._exit(125)


_ERRORS = {126: CommandNotExecutable, 127: CommandNotFound}


def _raise(error: dict):
    cls = _ERRORS.get(error["code"], RuntimeFailure)
    exc = cls(error["msg"])
    exc.exit_code = error["code"]
    raise exc


def _parse(data: bytes) -> tuple[int, dict | None]:
    pid, error = 0, None
    for line in data.splitlines():
        if line.startswith(b"P"):
            pid = int(line[1:])
        elif line.startswith(b"E") and error is None:
            try:
                error = json.loads(line[1:])
            except ValueError:
                error = {"code": 125, "msg": line[1:].decode(errors="replace")}
    return pid, error


class Sandbox:
    """A container's processes made before its plan is known.

    Creating one (cgroup attach, unshare, fork of PID 1) can happen ahead of time, off the
    critical path: the first write to a v1 cgroup.procs after an idle moment waits for an RCU
    grace period (8-16 ms here). :meth:`start` then only sends the plan: the root filesystem, the
    security settings and the exec. The caller must be a subreaper so that PID 1 becomes its
    child when the helper exits.
    """

    def __init__(self, procs_files: list[str], new_net: bool = True, setup=None, idmap=None):
        """``setup()`` runs first in the helper, in parallel with the caller (the launcher daemon
        gives it the container directory and the cgroup to make). ``idmap`` (rootless): the
        container gets its own user namespace, mapped so (see ``linux.userns``)."""
        self.new_net = new_net
        self.pid = 0
        self._helper = 0
        # PID 1 must be re-parented to us, not to the host's init, when the helper exits
        sc.set_child_subreaper()
        self._sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._err_r, err_w = os.pipe2(os.O_CLOEXEC)
        # PID 1 writes the main process's exit code here before its own, slower, exit
        self._status_r, status_w = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        helper = os.fork()
        if helper == 0:
            self._sock.close()
            os.close(self._err_r)
            os.close(self._status_r)
            _helper(child_sock, err_w, status_w, procs_files, new_net, setup, parent, idmap)
        child_sock.close()
        os.close(err_w)
        os.close(status_w)
        self._helper = helper

    def status_fd(self) -> int:
        """Readable when the main process has exited (see :meth:`exit_status`), or at PID 1's end."""
        return self._status_r

    def exit_status(self) -> int | None:
        """The main process's exit code as PID 1 reported it, or None (no init, or it died)."""
        try:
            data = os.read(self._status_r, 64)
        except OSError:
            return None
        return int(data[1:]) if data.startswith(b"X") else None

    @property
    def helper_pid(self) -> int:
        return self._helper

    @property
    def pending(self) -> bool:
        """True while the helper has not reported PID 1 yet (see :meth:`helper_fd`)."""
        return bool(self._helper)

    def helper_fd(self) -> int:
        """Readable when the helper has reported: call :meth:`ready` then (it will not block)."""
        return self._err_r

    def ready(self) -> int:
        """Wait until PID 1 exists (the helper reports it); return its host pid."""
        if self._helper:
            try:
                line = os.read(self._err_r, 4096)
            finally:
                os.waitpid(self._helper, 0)
                self._helper = 0
            self.pid, error = _parse(line)
            if error is not None or not self.pid:
                self.discard()
                _raise(error or {"code": 125, "msg": "the container's process did not start"})
        return self.pid

    def prepare_rootfs(self, rootfs_plan: dict) -> None:
        """Have PID 1 assemble the root filesystem now (a plan with ``rootfs_ready`` follows)."""
        try:
            wire.send(self._sock, ("rootfs", rootfs_plan))
        except OSError as e:
            raise RuntimeFailure(f"preparing the container's root filesystem: {e}") from None

    def arm(self, plan: dict) -> None:
        """Have PID 1 get ready for this very plan (its root filesystem made): a later
        ``send(None, stdio)`` starts it."""
        try:
            wire.send(self._sock, ("arm", plan))
        except OSError as e:
            raise RuntimeFailure(f"preparing the container: {e}") from None

    def send(self, plan: dict | None, stdio: tuple[int, int, int], linger: bool = False) -> int:
        """Send the plan (None: the armed one) and return PID 1's host pid at once: the caller may
        do its own work while the container starts, then must call :meth:`started`.

        ``linger``: once it has reported the exit (:meth:`exit_status`), PID 1 waits for
        :meth:`release` before it exits and its namespaces are torn down."""
        self.ready()
        try:
            if plan is None:
                wire.send(self._sock, ("go", {"linger": linger}), stdio)
            else:
                wire.send(self._sock, ("start", dict(plan, linger=linger)), stdio)
        except OSError as e:
            self.discard()
            raise RuntimeFailure(f"starting the container: {e}") from None
        return self.pid

    def started(self) -> int:
        """Wait until the command has been exec'ed; return PID 1's host pid (errors: see _raise)."""
        data = read_all(self._err_r)
        os.close(self._err_r)
        self._err_r = -1
        _pid, error = _parse(data)
        if error is not None:
            self.discard()
            _raise(error)
        return self.pid

    def discard(self) -> None:
        """Kill what was made (an unused or failed sandbox) and reap it."""
        if self._helper:
            try:
                os.waitpid(self._helper, 0)
                self.pid, _ = _parse(os.read(self._err_r, 4096))
            except OSError:
                pass
            self._helper = 0
        if self._err_r >= 0:
            os.close(self._err_r)
            self._err_r = -1
        self._sock.close()
        self._close_status()
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0

    def _close_status(self) -> None:
        if self._status_r >= 0:
            os.close(self._status_r)
            self._status_r = -1

    def release(self) -> None:
        """Let a lingering PID 1 exit (see :meth:`send`)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """After the container has exited: the lifeline socket is no longer needed."""
        self._sock.close()
        self._close_status()


def _exec_child(pid: int, procs_files: list[str], plan: dict, stdio, err_w: int) -> None:
    """The child of `exec`: join the cgroup and the namespaces, start the command in the PID namespace."""
    try:
        for target, fd in enumerate(stdio):
            if fd != target:
                os.dup2(fd, target, inheritable=True)
        _close_all_but({err_w})
        for path in procs_files:
            with open(path, "w") as f:
                f.write("0")
        # the user namespace first (rootless: it owns the others), the mount namespace last: after
        # it, /proc/<pid> of the host is out of sight. Namespaces the container shares with us (the
        # host's network) are skipped: from inside a user namespace they could not be joined again.
        names = [ns for ns in ("user",) + EXEC_NAMESPACES
                 if os.stat(f"/proc/{pid}/ns/{ns}").st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino]
        fds = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in names]
        for fd in fds:
            sc.setns(fd, 0)
            os.close(fd)
        user = _user(plan, 126)
        # the child lands in the container's PID namespace (setns(CLONE_NEWPID) is for children)
        child = _command(plan, user)
        os.write(err_w, b"P%d\n" % child)
        os._exit(0)
    except Failure as f:
        _report(err_w, f.code, str(f))
        os._exit(f.code)
    except BaseException as e:  # noqa: BLE001
        _report(err_w, 126, f"joining the container: {e}")
        os._exit(126)


EXEC_NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt")


def exec_in(pid: int, procs_files: list[str], plan: dict, stdio=(0, 1, 2)) -> int:
    """Start a process inside the running container whose PID 1 is ``pid``; return its host pid.

    The caller must be a subreaper and wait for the returned pid. Errors come back as
    RuntimeFailure with docker's exit codes (126, 127)."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    helper = os.fork()
    if helper == 0:
        os.close(err_r)
        _exec_child(pid, procs_files, plan, stdio, err_w)
    os.close(err_w)
    data = read_all(err_r)
    os.close(err_r)
    os.waitpid(helper, 0)
    xpid, error = _parse(data)
    if error is not None:
        if xpid:
            try:
                os.waitpid(xpid, 0)
            except ChildProcessError:
                pass
        _raise(error)
    return xpid
