"""Where a store's service listens, who may talk to it, and how a client finds or starts it.

The socket is a file in ``<store>/run/`` (mode 0700, owned by the store's user), never an abstract
socket: abstract sockets belong to a network namespace, so any process sharing the host's network
(a ``--network host`` container, a rootless one, a kernel in a container) could reach one. A
container never sees ``run/``: its mount namespace has its own root, and where a bind mount would
show the store, ``run/`` is hidden under an empty tmpfs (``Engine.container_config``). The service
still checks every peer: the same uid, and the same PID namespace as the service, which no
container ever has (``check_peer``).

One service per store, user, namespace and configuration: the socket's name carries a hash of what
would make two services differ (the mount and network namespaces: a service makes its bridges in
its own; this installation; the environment the runtime reads), so a client with another
configuration gets a service of its own on the same store. Its log is
``run/<name>.log``; a lock file held while it runs makes a second one for the same name leave.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time

from ..paths import Layout

# what the service reads from its environment: a service spawned with other values is another one
ENV_KEYS = ("JUPYBOX_CGROUP_PARENT", "JUPYBOX_OVERLAY", "JUPYBOX_ISOLATION", "JUPYBOX_SPECULATE", "XDG_DATA_HOME",
            "PYTHONPATH")
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT = 20.0
MAX_SUN_PATH = 107


def name(root) -> str:
    """The file name (without suffix) of the service for ``root`` and this process's configuration."""
    try:
        from _blake2 import blake2b  # builtin: hashlib would load OpenSSL (~2 ms) for one hash
    except ImportError:  # pragma: no cover - other Pythons
        from hashlib import blake2b
    # a service in another mount namespace may see other files under the same paths, and one in
    # another network namespace would make the bridges there
    spaces = []
    for ns in ("mnt", "net"):
        try:
            spaces.append(str(os.stat(f"/proc/self/ns/{ns}").st_ino))
        except OSError:
            spaces.append("")
    key = "\0".join([os.path.realpath(root), str(os.geteuid()), sys.executable, PKG_PARENT, *spaces]
                    + [os.environ.get(k, "") for k in ENV_KEYS])
    return f"s-{blake2b(key.encode(), digest_size=10).hexdigest()}"


def run_dir(root) -> str:
    """``<root>/run``, made 0700 if missing (and made 0700 again if someone loosened it)."""
    layout = Layout(root)
    path = str(layout.run)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
            from ..errors import RuntimeFailure

            raise RuntimeFailure(f"{path} is not a directory of this user: refusing to use it") from None
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.mkdir(path, 0o700)
    return path


def sock_path(directory: str, filename: str) -> tuple[str, int]:
    """A path to pass to bind/connect, and a descriptor to close after (-1 if none): a long store
    path does not fit in sun_path (108 bytes), but /proc/self/fd/N/NAME always does."""
    path = os.path.join(directory, filename)
    if len(os.fsencode(path)) <= MAX_SUN_PATH:
        return path, -1
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{filename}", fd


def connect(root) -> socket.socket | None:
    """A connection to the running service of ``root``, or None."""
    directory = os.path.join(os.fspath(Layout(root).root), "run")
    try:
        path, fd = sock_path(directory, name(root) + ".sock")
    except OSError:
        return None  # no run/ yet: no service either
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        return sock
    except OSError:
        sock.close()
        return None
    finally:
        if fd >= 0:
            os.close(fd)


def spawn(root) -> int:
    """Start the service in a session of its own (it outlives this process); its pid."""
    directory = run_dir(root)
    env = dict(os.environ)
    # the service must import this very jupybox, wherever it was imported from
    env["PYTHONPATH"] = PKG_PARENT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    log = os.open(os.path.join(directory, name(root) + ".log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    # -P: the caller's working directory is not put first on sys.path (a checkout of another
    # jupybox there would be imported instead of this one)
    python = [sys.executable, "-P"] if sys.version_info >= (3, 11) else \
        [sys.executable, "-c", "import sys, runpy; del sys.path[0]; runpy.run_module('jupybox.service', run_name='__main__')"]
    try:
        return os.posix_spawn(
            sys.executable, python + (["-m", "jupybox.service"] if len(python) == 2 else [])
            + ["--root", os.path.abspath(os.fspath(root)), "--name", name(root)],
            env, file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, log, 1),
                               (os.POSIX_SPAWN_DUP2, log, 2)], setsid=True)
    finally:
        os.close(devnull)
        os.close(log)


def log_path(root) -> str:
    return os.path.join(os.fspath(Layout(root).root), "run", name(root) + ".log")


def connect_or_spawn(root) -> socket.socket:
    """A connection to the service of ``root``, started if none runs."""
    from ..errors import RuntimeFailure

    sock = connect(root)
    if sock is not None:
        return sock
    pid = spawn(root)
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.002
    while sock is None:
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"the jupybox service did not start (see {log_path(root)})")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
        sock = connect(root)
        if sock is None:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                sock = connect(root)
                if sock is None and os.waitstatus_to_exitcode(status) == 0:
                    # it lost the store's lock to another service: one that has not bound its
                    # socket yet, or one on its way out; try again until one answers
                    pid = spawn(root)
                elif sock is None:
                    raise RuntimeFailure(f"the jupybox service exited at start (see {log_path(root)})")
    return sock


# -- the service's side -------------------------------------------------------------------------
def listen(root, sock_name: str) -> tuple[socket.socket, int] | None:
    """Bind the socket (after taking the lock); None if another service holds the lock."""
    import fcntl

    directory = run_dir(root)
    lock = os.open(os.path.join(directory, sock_name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None
    path, fd = sock_path(directory, sock_name + ".sock")
    try:
        try:
            os.unlink(path)  # a dead service's (we hold the lock: no live one uses it)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        old = os.umask(0o077)
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        listener.listen(128)
    finally:
        if fd >= 0:
            os.close(fd)
    return listener, lock


_own_pidns = None


def check_peer(conn: socket.socket) -> str | None:
    """Why a connection must be refused, or None. The peer must have our uid and live in our PID
    namespace: every container has a PID namespace of its own, so no process of any container
    passes, whatever its network mode, user or capabilities."""
    global _own_pidns
    from ..linux.syscalls import SO_PEERPIDFD

    pid, uid, _gid = _cred(conn)
    if uid != os.geteuid():
        return f"uid {uid} is not the service's ({os.geteuid()})"
    if _own_pidns is None:
        _own_pidns = os.stat("/proc/self/ns/pid").st_ino
    pidfd = -1
    try:
        # a pidfd pins the peer: its pid cannot be reused while we look at /proc/<pid>
        pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError as e:
        if e.errno not in (errno.ENOPROTOOPT, errno.EINVAL):
            return f"SO_PEERPIDFD: {e.strerror}"
    try:
        if pidfd >= 0:
            pid = _pidfd_pid(pidfd)
        if pid <= 0:
            return "the peer has no pid in the service's PID namespace"
        try:
            ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
        except OSError:
            return "the peer is gone"
        if ns != _own_pidns:
            return "the peer is in another PID namespace (a container's)"
        if pidfd >= 0:
            try:
                signal.pidfd_send_signal(pidfd, 0)  # still the same process: the check was about it
            except ProcessLookupError:
                return "the peer is gone"
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return None


def _cred(conn: socket.socket) -> tuple[int, int, int]:
    from .wire import peer_cred

    return peer_cred(conn)


def _pidfd_pid(pidfd: int) -> int:
    """The pid (in our PID namespace) of the process a pidfd refers to; 0 when it has none here."""
    with open(f"/proc/self/fdinfo/{pidfd}") as f:
        for line in f:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return 0
