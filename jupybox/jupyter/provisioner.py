"""A jupyter_client kernel provisioner that runs the kernel in a jupybox container.

Registered as the entry point ``jupyter_client.kernel_provisioners: jupybox-provisioner``; a
kernelspec selects it with ``metadata.kernel_provisioner`` (``jupybox kernel install`` writes one,
see :mod:`jupybox.jupyter.kernelspec`). Its ``config`` stanza becomes this class's traits (they can
also be set server-wide: ``c.JupyboxProvisioner.root = "/srv/jupybox"``).

Life of a kernel
    ``pre_launch``   validates the stanza (a bad limit fails here with the message), allocates the
                     ports and writes the connection file exactly as the local provisioner does
                     (this class extends ``LocalProvisioner`` for that and for returning the ports).
    ``launch_kernel`` runs the kernelspec's argv (``python3 -m ipykernel_launcher -f {connection_file}``)
                     in the image with ``jupybox.run(..., detach=False, remove=True)``, then waits
                     until the kernel has bound its five ports (LISTEN in /proc/net/tcp, or its ipc
                     sockets exist). If the container exits first, or ``jupybox.run`` refuses (unknown
                     image, python missing), it raises :class:`KernelStartError` carrying the last
                     lines of the kernel's stderr: jupyter_server returns it to JupyterLab as the
                     message of the failed request, and logs it.
    ``send_signal``  goes to the container's PID 1, an init that forwards SIGINT/SIGTERM/... to the
                     kernel: JupyterLab's interrupt (interrupt_mode "signal") is a SIGINT to the kernel.
    ``kill``         SIGKILL to PID 1: the whole PID namespace dies at once.
    ``poll/wait``    the exit event of the launcher daemon that monitors the container.
    restart          is shutdown + launch: a fresh container (new id, fresh write layer), same ports.
    cleanup          the container was started with ``remove=True``, so when it exits the launcher
                     removes its cgroup and record; its mounts lived only in its mount namespace.
                     A kernel that crashes is the same exit. cleanup also removes a record left by a
                     launcher that died, and (not on restart) the per-kernel directory (ipc sockets;
                     the mounted connection file of a command the shim does not wrap).
    A dead server leaves no kernel: ``detach=False`` ties the container to the server process
    (the launcher kills attached containers when its client goes away).

Decisions
    Network: ``network="host"`` (default). The kernel shares the server's network namespace and binds
    the loopback ports the server allocated in the connection file: no forwarding process (nothing
    to keep alive, no extra copy of every message), the very ports and connection file a local
    kernel gets, so interrupt, restart (same ports) and the jupyter_client/server code paths are
    unchanged. The price: the kernel can reach loopback services (the server's HTTP port needs its
    token; other kernels' ports need their HMAC key, which the container never sees, see below).
    ``network="none"`` gives the kernel no network at all: the provisioner then switches the kernel
    manager to ZMQ's ``ipc`` transport with the sockets in a private per-kernel directory
    bind-mounted at the same path, since unix sockets work across namespaces through a bind mount.

    Files: the connection file reaches the kernel through its stdin, not a mount. A ``python3 -m
    MODULE ... -f {connection_file}`` command runs as ``python3 -c SHIM ...`` in the same
    interpreter: the shim reads the connection file and the container's id from stdin (written by
    the provisioner right after the start), writes the file to /dev/shm inside (a tmpfs, so it works
    with a read-only root too; ipykernel 6 rewrites it at start), exports JUPYBOX_CONTAINER_ID, and
    runs MODULE like ``-m`` does. So nothing per-kernel is mounted and two kernels started from the
    same directory have identical mounts: the launcher's prewarmed sandbox, built like the previous
    container, fits the next kernel and every restart (15-20 ms saved per start). Any other command
    gets a private copy of the connection file bind-mounted at its own path, and the id in
    ``/run/jupybox/container.json``. Never the runtime directory: it holds every kernel's connection
    file and key, and with a shared network a kernel holding another kernel's key could run code
    outside its container. For the same reason, if a read-write mount (the notebook directory, a -v
    volume) contains the runtime directory or the jupybox store, an empty tmpfs covers them inside.
    The notebook's working directory (``cwd`` from jupyter_server, else the server's cwd, like a
    local kernel) is bind-mounted read-write at the same path and is the kernel's working
    directory, so the kernel sees the user's files. ``mount_cwd: false`` turns that off (the
    kernel starts in the image's WorkingDir); ``mount_cwd: "/home/jovyan/work"`` mounts it there
    instead. ``/`` and the top-level system directories are never mounted this way.

    Kernel command and environment: the kernelspec's argv, run by PATH inside the image (a bare
    ``python3`` is not replaced by the server's interpreter path as jupyter_client does locally:
    the image decides; for ``host`` the PATH starts with the server's virtualenv anyway). The
    environment is *not* the server's: it is the kernelspec's ``env`` (with ``${VAR}`` substituted
    from the server's), the stanza's ``env``, ``JPY_SESSION_NAME`` and the locale (LANG, LC_*, TZ),
    plus ``JUPYBOX_IN_CONTAINER=1``, ``JUPYBOX_CONTAINER_NAME``, ``JUPYBOX_KERNEL_ID``.
    ``JPY_PARENT_PID`` is 1, the container's init, which is the kernel's real parent: the server's
    pid means nothing in the kernel's PID namespace and ipykernel's parent poller would exit at once
    (1 also tells ipykernel it was launched by a manager: no console banner). The container's end is
    the kernel's end anyway. ``JUPYBOX_CONTAINER_ID`` is known only after the start: the shim sets
    it (see Files; for other commands the kernel extension exports it from the info file).

    Kernel side: the jupybox package is bind-mounted read-only at ``/run/jupybox-python/jupybox``
    with ``/run/jupybox-python`` on PYTHONPATH, so any image with Python 3 can import it, and an
    ipykernel command line gets ``--ext=jupybox.jupyter.kernel_usage``: that extension answers
    ``usage_request`` (jupyter-resource-usage's kernel panel) from the container's cgroup (see
    :mod:`jupybox.jupyter.kernel_usage`). ``usage_extension: false`` leaves the command alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Unicode

from .. import errors
from ..runtime.fdio import chunks
from ..runtime.spec import Mount
from .kernelspec import validate_config

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
PYTHON_NAMES = {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
INSIDE = "/run/jupybox"  # the per-kernel info directory inside the container (read-only, mounted mode)
INSIDE_PYTHON = "/run/jupybox-python"  # on PYTHONPATH; holds the jupybox package (read-only)
INSIDE_CONNECTION = "/dev/shm/jupybox-connection.json"  # a tmpfs in every container, even --read-only
# Runs first in the kernel's own interpreter (``python3 -c SHIM PATH -m MODULE ARGS...``): reads what the
# provisioner writes on stdin (the connection file, the container's id), writes the connection file
# inside, sets the environment, then runs MODULE as ``python3 -m`` would. No extra process, no mount.
SHIM = (
    "# jupybox kernel shim: the connection file comes on stdin, then python -m MODULE ARGS\n"
    "import json,os,sys\n"
    "d=json.loads(sys.stdin.buffer.read() or b'{}')\n"
    "n=os.open(os.devnull,os.O_RDONLY);os.dup2(n,0);os.close(n)\n"
    "f=os.open(sys.argv[1],os.O_WRONLY|os.O_CREAT|os.O_TRUNC,0o600)\n"
    "os.write(f,json.dumps(d['connection']).encode());os.close(f)\n"
    "os.environ.update(d.get('env') or {})\n"
    "m=sys.argv[3];sys.argv=[m]+sys.argv[4:];del d,n,f\n"
    "import runpy;runpy.run_module(m,run_name='__main__',alter_sys=True)\n"
)
USAGE_EXTENSION = "jupybox.jupyter.kernel_usage"
PASS_ENV = ("JPY_SESSION_NAME", "LANG", "LANGUAGE", "TZ")
NEVER_MOUNT_CWD = {"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                   "/run", "/sbin", "/sys", "/usr", "/var"}
STDERR_TAIL = 16384  # bytes of the kernel's stderr kept for error messages

try:  # jupyter_server turns a tornado HTTPError's log_message into the message JupyterLab shows
    from tornado.web import HTTPError as _HTTPError
except ImportError:  # pragma: no cover - jupyter_client without tornado
    _HTTPError = None


class KernelStartError(errors.RuntimeFailure, *((_HTTPError,) if _HTTPError else ())):
    """The kernel's container could not start, or the kernel died before it was ready.

    Also a ``tornado.web.HTTPError`` (500) when tornado is installed: for any other exception
    jupyter_server answers the browser with a bare "Unhandled error", and the user would not learn
    that the image has no ipykernel.
    """

    def __init__(self, message: str):
        self.message = message
        if _HTTPError is not None:
            _HTTPError.__init__(self, 500, message, reason="Kernel failed to start")
        else:  # pragma: no cover
            Exception.__init__(self, message)

    def __str__(self) -> str:
        return self.message


# -- helpers ---------------------------------------------------------------------------------
def listening_tcp_ports(paths=("/proc/net/tcp", "/proc/net/tcp6")) -> set[int]:
    """Local ports in LISTEN state in this network namespace."""
    ports: set[int] = set()
    for path in paths:
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    parts = line.split(None, 4)
                    if len(parts) > 3 and parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def _under(path: str, top: str) -> bool:
    top = top.rstrip("/") or "/"
    return path == top or path.startswith(top + "/") or top == "/"


class _StderrTail(threading.Thread):
    """Copies the kernel's stderr to the server's (as a local kernel's would be) and keeps the end."""

    def __init__(self, fd: int, dest: int | None):
        super().__init__(name="jupybox-kernel-stderr", daemon=True)
        self.fd = fd
        self.dest = dest
        self.buf = bytearray()
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            for chunk in chunks(self.fd):
                if self.dest is not None:
                    view = memoryview(chunk)
                    while view:
                        try:
                            view = view[os.write(self.dest, view):]
                        except OSError:
                            break
                with self.lock:
                    self.buf += chunk
                    del self.buf[:-STDERR_TAIL]
        except OSError:
            pass  # the kernel's end of the pipe went away
        finally:
            os.close(self.fd)

    def text(self) -> str:
        with self.lock:
            return bytes(self.buf).decode(errors="replace")


def _tail_lines(text: str, lines: int = 12, chars: int = 2000) -> str:
    kept = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    out = "\n".join(kept)
    return out[-chars:]


def _fd_of(obj, default: int | None) -> int | None:
    if isinstance(obj, int) and obj >= 0:
        return obj
    try:
        return obj.fileno()
    except Exception:  # noqa: BLE001 - None, subprocess.PIPE, objects without a real fd
        return default


def _server_stderr() -> int | None:
    for stream in (sys.__stderr__, sys.stderr):
        fd = _fd_of(stream, None)
        if fd is not None:
            return fd
    return 2


# -- the provisioner ---------------------------------------------------------------------------
class JupyboxProvisioner(LocalProvisioner):
    """Runs the kernel in a jupybox container; see the module docstring for the design."""

    # the kernelspec's "config" stanza (validated by jupybox.jupyter.kernelspec.validate_config)
    image = Unicode("host", config=True, help="The image the kernel runs in (default: the built-in host image).")
    memory = AnyTrait(None, allow_none=True, config=True, help='Memory limit, e.g. "2g".')
    memory_swap = AnyTrait(None, allow_none=True, config=True, help="memory+swap limit; unset = no swap.")
    cpus = AnyTrait(None, allow_none=True, config=True, help="CPU limit, e.g. 1.5.")
    pids_limit = AnyTrait(None, allow_none=True, config=True, help="Maximum number of processes.")
    volumes = AnyTrait([], config=True, help='Extra mounts, docker -v syntax: ["/data:/data:ro"].')
    tmpfs = AnyTrait([], config=True, help='tmpfs mounts: ["/scratch:size=1g"].')
    network = Unicode("host", config=True, help='"host" (shared, loopback ports) or "none" (ipc sockets).')
    mount_cwd = AnyTrait(True, config=True,
                         help="Mount the notebook's directory read-write: true (same path), false, or a path inside.")
    root = Unicode(None, allow_none=True, config=True, help="jupybox state directory (default $JUPYBOX_ROOT).")
    read_only = Bool(False, config=True, help="Read-only root filesystem.")
    start_timeout = Float(60.0, config=True, help="Seconds the kernel may take to open its ports.")
    usage_extension = Bool(True, config=True, help="Load jupybox.jupyter.kernel_usage into an ipykernel.")
    env = AnyTrait({}, config=True, help="Extra environment variables for the kernel.")
    persist_packages = Bool(False, config=True, help="Keep what %pip installs in a named volume across restarts.")

    container = None  # the jupybox Container of the running kernel
    container_id: str | None = None
    container_name: str | None = None
    kernel_dir: str | None = None  # per-kernel host directory: info/ (read-only inside) and ipc/
    _settings: dict | None = None
    _stderr: _StderrTail | None = None
    _exit: int | None = None
    _cwd_dest: str | None = None

    # -- identity ----------------------------------------------------------------------------
    @property
    def has_process(self) -> bool:
        return self.container is not None

    def _label(self) -> str:
        spec = self.kernel_spec
        name = getattr(spec, "display_name", None) or getattr(spec, "name", None) or "jupybox"
        return f"kernel {name!r}"

    def _config(self) -> dict:
        out = {}
        for key in ("image", "memory", "memory_swap", "cpus", "pids_limit", "volumes", "tmpfs", "network",
                    "mount_cwd", "root", "read_only", "start_timeout", "usage_extension", "env", "persist_packages"):
            out[key] = getattr(self, key)
        return out

    # -- start -------------------------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        try:
            self._settings = validate_config(self._config())
        except errors.JupyboxError as e:
            raise KernelStartError(f"jupybox: cannot start {self._label()}: {e}") from None
        km = self.parent
        if km is not None and (self._settings["network"] == "none" or km.transport == "ipc"):
            ipc = os.path.join(self._ensure_kernel_dir(), "ipc")
            os.makedirs(ipc, mode=0o700, exist_ok=True)
            if km.transport != "ipc" or not _under(str(km.ip), ipc):
                km.transport = "ipc"
                km.ip = os.path.join(ipc, "kernel")
                km.cache_ports = False
        kwargs = await super().pre_launch(**kwargs)
        cmd = list(kwargs["cmd"])
        argv = list(getattr(self.kernel_spec, "argv", None) or [])
        if cmd and argv and argv[0] in PYTHON_NAMES and cmd[0] == sys.executable:
            cmd[0] = argv[0]  # let the image's PATH decide (jupyter_client put the server's python here)
        if self._settings.get("usage_extension", True) and any("ipykernel" in a for a in cmd[:4]):
            if not any(a.startswith("--ext") for a in cmd):
                cmd.append(f"--ext={USAGE_EXTENSION}")
        kwargs["cmd"] = cmd
        return kwargs

    def _ensure_kernel_dir(self) -> str:
        """The per-kernel host directory; its path stays the same for the kernel's life (ipc sockets)."""
        if self.kernel_dir is None:
            self.kernel_dir = tempfile.mkdtemp(prefix="jupybox-kernel-")
        else:
            os.makedirs(self.kernel_dir, mode=0o700, exist_ok=True)
        return self.kernel_dir

    def _remove_kernel_dir(self) -> None:
        if self.kernel_dir:
            shutil.rmtree(self.kernel_dir, ignore_errors=True)

    def _kernel_env(self, env: dict, name: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in PASS_ENV:
            if env.get(key):
                out[key] = env[key]
        for key, value in env.items():
            if key.startswith("LC_"):
                out[key] = value
        for key in (getattr(self.kernel_spec, "env", None) or {}):
            if key in env:
                out[key] = env[key]  # substituted by KernelProvisionerBase.pre_launch
        out.update(self._packages_env())
        out.update(self._settings.get("env") or {})
        pythonpath = out.get("PYTHONPATH")
        out["PYTHONPATH"] = INSIDE_PYTHON + (os.pathsep + pythonpath if pythonpath else "")
        out["JPY_PARENT_PID"] = "1"  # its real parent, the container's init: no parent poller, no console banner
        out["JUPYBOX_IN_CONTAINER"] = "1"
        out["JUPYBOX_CONTAINER_NAME"] = name
        if self.kernel_id:
            out["JUPYBOX_KERNEL_ID"] = str(self.kernel_id)
        return out

    def _mounts(self, cwd: str | None, connection_file: str | None, via_stdin: bool) -> tuple[list, str | None]:
        """The mounts, in order, and the kernel's working directory inside.

        With ``via_stdin`` nothing per-kernel is mounted (the shim writes the connection file inside):
        kernels started from the same directory have the same mounts, so the launcher's prewarmed
        sandbox, built like the previous container, fits the next kernel and a restart.
        """
        from ..paths import default_root
        from ..runtime.options import parse_volume

        s = self._settings
        # what a read-write mount must not expose: other kernels' keys, the container store
        store = os.path.realpath(s.get("root") or default_root())
        hide = [store]
        if connection_file:
            hide.append(os.path.dirname(connection_file))
        mounts: list = [parse_volume(v) for v in s.get("volumes") or []]
        workdir = None
        self._cwd_dest = None
        mount_cwd = s.get("mount_cwd", True)
        if mount_cwd is not False and cwd:
            real = os.path.realpath(cwd)
            if real in NEVER_MOUNT_CWD or real in hide or _under(real, store):
                self.log.warning("jupybox: not mounting the working directory %s into the kernel", real)
            elif os.path.isdir(real):
                dest = real if mount_cwd is True else mount_cwd
                mounts.append(Mount(destination=dest, source=real, type="bind"))
                workdir = self._cwd_dest = dest
        hidden = []
        for m in list(mounts):
            if m.type != "bind" or m.readonly:
                continue
            source = os.path.realpath(m.source)
            for path in hide:
                if _under(path, source) and path != source:
                    inside = os.path.join(m.destination, os.path.relpath(path, source))
                    if inside not in hidden:
                        hidden.append(inside)
                        mounts.append(Mount(destination=inside, type="tmpfs", options=["mode=755", "size=1m"]))
        if not via_stdin:
            mounts += self._per_kernel_mounts(connection_file)
        package = os.path.dirname(os.path.realpath(errors.__file__))
        mounts.append(Mount(destination=f"{INSIDE_PYTHON}/jupybox", source=package, type="bind", readonly=True))
        mounts += self._packages_mounts()
        km = self.parent
        if km is not None and km.transport == "ipc":
            ipc = os.path.dirname(str(km.ip))
            mounts.append(Mount(destination=ipc, source=ipc, type="bind"))
        return mounts, workdir

    def _packages_env(self) -> dict:
        """%pip install's writable prefix over the image's environment (jupybox.env.kernelpackages)."""
        from ..env.kernelpackages import kernel_env

        return kernel_env(self._settings)

    def _packages_mounts(self) -> list:
        from ..env.kernelpackages import kernel_mounts

        return kernel_mounts(self._settings, str(getattr(self.parent, "kernel_name", "") or "kernel"))

    def _per_kernel_mounts(self, connection_file: str | None) -> list:
        """For a command the shim cannot wrap: the connection file and the info directory, mounted."""
        mounts = []
        kdir = self._ensure_kernel_dir()
        if connection_file:
            # a private copy: ipykernel < 7 rewrites its connection file at start (same content); it
            # may write its copy, never the server's file
            copy = os.path.join(kdir, "connection.json")
            with open(connection_file, "rb") as f:
                data = f.read()
            fd = os.open(copy + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(copy + ".tmp", copy)
            mounts.append(Mount(destination=connection_file, source=copy, type="bind"))
        info = os.path.join(kdir, "info")
        os.makedirs(info, exist_ok=True)
        try:
            os.unlink(os.path.join(info, "container.json"))
        except FileNotFoundError:
            pass
        mounts.append(Mount(destination=INSIDE, source=info, type="bind", readonly=True))
        return mounts

    @staticmethod
    def _shim_argv(cmd: list[str], connection_file: str | None) -> list[str] | None:
        """``python3 -m MODULE ... -f CONNECTION_FILE`` -> the same through the stdin shim; else None."""
        if not connection_file or len(cmd) < 3 or cmd[1] != "-m" or connection_file not in cmd:
            return None
        if not re.fullmatch(r"python[0-9.]*", os.path.basename(cmd[0])):
            return None
        rest = [INSIDE_CONNECTION if a == connection_file else a for a in cmd[1:]]
        return [cmd[0], "-c", SHIM, INSIDE_CONNECTION] + rest

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict:
        import jupybox

        s = self._settings
        if s is None:  # launch without pre_launch (not what KernelManager does)
            s = self._settings = validate_config(self._config())
        self._exit = None
        name = f"kernel-{str(self.kernel_id or 'x')[:8]}-{secrets.token_hex(3)}"
        env = dict(kwargs.get("env") or {})
        cwd = kwargs.get("cwd") or os.getcwd()
        connection_file = None
        km = self.parent
        if km is not None and getattr(km, "connection_file", None):
            connection_file = os.path.realpath(km.connection_file)
        shim = self._shim_argv(list(cmd), connection_file)
        mounts, workdir = self._mounts(str(cwd), connection_file, via_stdin=shim is not None)
        options = {
            "memory": s.get("memory"), "memory_swap": s.get("memory_swap"), "cpus": s.get("cpus"),
            "pids_limit": s.get("pids_limit"), "volumes": mounts, "tmpfs": s.get("tmpfs") or [],
            "env": self._kernel_env(env, name), "workdir": workdir, "network": s["network"], "name": name,
            "remove": True, "read_only": bool(s.get("read_only")), "entrypoint": [],
            "labels": {"io.jupybox.kernel.id": str(self.kernel_id or ""),
                       "io.jupybox.kernel.name": str(getattr(km, "kernel_name", "") or "")},
        }
        stdout = _fd_of(kwargs.get("stdout"), None)
        if stdout is None:
            stdout = _fd_of(sys.__stdout__, 1)
        dest = _fd_of(kwargs.get("stderr"), None)
        if dest is None:
            dest = _server_stderr()
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)  # the kernel's stderr
        stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC) if shim else (None, None)
        container = None
        try:
            container = await asyncio.to_thread(
                jupybox.run, s["image"], shim or list(cmd), root=s.get("root"), stdin=stdin_r, stdout=stdout,
                stderr=write_fd, detach=False, **options,
            )
        except errors.JupyboxError as e:
            os.close(read_fd)
            self._remove_kernel_dir()
            raise KernelStartError(f"jupybox: cannot start {self._label()} in image {s['image']!r}: {e}") from None
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
            if stdin_r is not None:
                os.close(stdin_r)
                if container is None:
                    os.close(stdin_w)
        if stdin_w is not None:
            self._send_to_shim(stdin_w, connection_file, container, name)
        self._stderr = _StderrTail(read_fd, dest)
        self._stderr.start()
        self.container = container
        self.container_id = container.id
        self.container_name = name
        try:
            self.pid = container.pid
        except errors.JupyboxError:
            self.pid = None
        self.pgid = None
        self.cwd = str(cwd)
        try:
            if shim is None:
                self._write_info(container, name)
            await self._wait_ready()
        except BaseException:
            await self._abort()
            raise
        self.log.info("jupybox: %s runs in container %s (%s, image %s)", self._label(), container.id[:12],
                      name, s["image"])
        return self.connection_info

    @staticmethod
    def _send_to_shim(fd: int, connection_file: str, container, name: str) -> None:
        """What the shim reads on stdin: the connection file, JUPYBOX_CONTAINER_ID. Then EOF."""
        try:
            with open(connection_file) as f:
                connection = json.load(f)
            data = json.dumps({"connection": connection,
                               "env": {"JUPYBOX_CONTAINER_ID": container.id, "JUPYBOX_CONTAINER_NAME": name}})
            view = memoryview(data.encode())
            while view:  # a few hundred bytes: the pipe buffer takes them at once
                view = view[os.write(fd, view):]
        except OSError:
            pass  # the kernel died already: _wait_ready reports it with its stderr
        finally:
            os.close(fd)

    def _write_info(self, container, name: str) -> None:
        s = self._settings
        info = {"id": container.id, "name": name, "image": s["image"], "kernel_id": str(self.kernel_id or ""),
                "memory": s.get("memory"), "cpus": s.get("cpus"), "pids_limit": s.get("pids_limit"),
                "network": s["network"]}
        path = os.path.join(self._ensure_kernel_dir(), "info", "container.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, path)

    def _ports_open(self) -> bool:
        info = self.connection_info or {}
        ports = [info.get(k) for k in PORT_NAMES]
        if not all(isinstance(p, int) and p > 0 for p in ports):
            return True  # nothing to watch: let jupyter_client's own timeouts decide
        if info.get("transport", "tcp") == "ipc":
            return all(os.path.exists(f"{info['ip']}-{p}") for p in ports)
        return set(ports) <= listening_tcp_ports()

    async def _wait_ready(self) -> None:
        timeout = float(self._settings.get("start_timeout") or self.start_timeout)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            code = self._exit_code()
            if code is not None:
                raise KernelStartError(self._died_message(code))
            if self._ports_open():
                return
            if time.monotonic() > deadline:
                tail = _tail_lines(self._stderr.text()) if self._stderr else ""
                raise KernelStartError(
                    f"jupybox: {self._label()} did not open its ports within {timeout:g} s"
                    + (f"; its stderr ends with:\n{tail}" if tail else "")
                )
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.005)  # reading /proc/net/tcp costs ~0.1 ms; the kernel waits for us

    def _died_message(self, code: int) -> str:
        tail = ""
        if self._stderr is not None:
            self._stderr.join(2.0)  # the pipe reaches EOF when the container's last process is gone
            tail = _tail_lines(self._stderr.text())
        how = f"exited with code {code}" if code < 128 else f"was killed by signal {code - 128}"
        if code == 137 and "oom" in tail.lower():
            how += " (out of memory)"
        msg = f"jupybox: {self._label()} {how} in its container (image {self._settings['image']!r}) before it was ready"
        return msg + (f":\n{tail}" if tail else " (it wrote nothing on stderr)")

    async def _abort(self) -> None:
        """After a failed start: make sure nothing of this launch is left running."""
        c = self.container
        if c is not None and self._exit_code() is None:
            try:
                c.kill(signal.SIGKILL)
            except errors.JupyboxError:
                pass
            deadline = time.monotonic() + 10
            while self._exit_code() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        self._release()
        self._remove_leftover()
        # jupyter_server does not call cleanup() after a failed start; a retry makes the directory again
        self._remove_kernel_dir()

    # -- running ---------------------------------------------------------------------------------
    def _exit_code(self) -> int | None:
        """None while the container runs; its exit code (docker's convention) once it has exited."""
        if self._exit is not None:
            return self._exit
        c = self.container
        if c is None:
            return 0
        try:
            code = c.wait(timeout=0)
        except TimeoutError:
            return None
        except errors.JupyboxError:  # its record is gone and nobody reported the exit
            code = 137
        self._exit = code if code is not None and code >= 0 else 137
        return self._exit

    async def poll(self) -> int | None:
        if self.container is None:
            return 0
        return self._exit_code()

    async def wait(self) -> int | None:
        if self.container is None:
            return 0
        while (code := self._exit_code()) is None:
            await asyncio.sleep(0.02)
        self._release()
        return code

    def _release(self) -> None:
        if self._stderr is not None:
            self._stderr.join(2.0)
            self._stderr = None
        self.container = None

    async def send_signal(self, signum: int) -> None:
        c = self.container
        if c is None:
            return
        if signum == 0:  # a liveness probe, like os.kill(pid, 0)
            if self._exit_code() is not None:
                raise ProcessLookupError(f"container {self.container_id[:12]} has exited")
            return
        try:
            c.kill(signum)
        except errors.JupyboxError:
            pass  # it exited meanwhile: poll() will say so

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    # -- cleanup ---------------------------------------------------------------------------------
    def _remove_leftover(self) -> None:
        """A record (and cgroup) left only if the launcher died before it could remove the container."""
        cid = self.container_id
        if not cid:
            return
        import jupybox

        root = (self._settings or {}).get("root") or self.root
        try:
            jupybox.container(cid, root=root).remove(force=True)
        except errors.JupyboxError:
            pass

    async def cleanup(self, restart: bool = False) -> None:
        if self.container is not None:
            if self._exit_code() is None:
                await self.kill(restart)
                deadline = time.monotonic() + 10
                while self._exit_code() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            self._release()
        self._remove_leftover()
        if not restart:
            self._remove_kernel_dir()
        await super().cleanup(restart=restart)

    # -- persistence -----------------------------------------------------------------------------
    async def get_provisioner_info(self) -> dict:
        info = await super().get_provisioner_info()
        info.update({
            "container_id": self.container_id, "container_name": self.container_name,
            "root": (self._settings or {}).get("root") or self.root, "kernel_dir": self.kernel_dir,
            "image": (self._settings or {}).get("image", self.image), "cwd": str(self.cwd) if self.cwd else None,
        })
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        import jupybox

        self.container_id = provisioner_info.get("container_id")
        self.container_name = provisioner_info.get("container_name")
        self.kernel_dir = provisioner_info.get("kernel_dir")
        self.cwd = provisioner_info.get("cwd")
        if provisioner_info.get("root"):
            self.root = provisioner_info["root"]
        self._settings = validate_config(self._config())
        self._exit = None
        self.container = None
        if self.container_id:
            try:
                c = jupybox.container(self.container_id, root=self.root)
                if c.status == "running":
                    self.container = c
            except errors.JupyboxError:
                pass

    def resolve_path(self, path_str: str) -> str | None:
        """A path the kernel names, on the host: relative to its cwd, or under the cwd's mount point."""
        path = Path(path_str).expanduser()
        host_cwd = Path(self.cwd) if self.cwd else None
        if host_cwd is not None:
            if not path.is_absolute():
                path = host_cwd / path
            elif self._cwd_dest and _under(str(path), self._cwd_dest) and self._cwd_dest != "/":
                path = host_cwd / os.path.relpath(str(path), self._cwd_dest)
        path = path.resolve()
        return path.as_posix() if path.exists() else None
