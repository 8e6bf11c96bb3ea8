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
    ``poll/wait``    the container's exit, as the store's service reports it. A kernel that died
                     on its own (the OOM killer at its memory limit, a crash) is told: the reason
                     in the server's log and in the next kernel's first cell
                     (:mod:`jupybox.jupyter.kernelend`).
    restart          is shutdown + launch: a fresh container (new id, fresh write layer), same ports.
    cleanup          the container was started with ``remove=True``, so when it exits the store's
                     service removes its cgroup and record; its mounts lived only in its mount
                     namespace. A kernel that crashes is the same exit. cleanup also removes a
                     record left by a service that died, and (not on restart) the per-kernel
                     directory (ipc sockets; the mounted connection file of a command the shim does
                     not wrap).
    A dead server leaves no kernel: ``detach=False`` ties the container to the server process
    (the service kills attached containers when its client goes away).

Network: ``network="host"`` (default). The kernel shares the server's network namespace and binds
the loopback ports the server allocated in the connection file: no forwarding process (nothing to
keep alive, no extra copy of every message), the very ports and connection file a local kernel
gets, so interrupt, restart (same ports) and the jupyter_client/server code paths are unchanged.
The price: the kernel can reach loopback services (the server's HTTP port needs its token; other
kernels' ports need their HMAC key, which the container never sees, see
:mod:`jupybox.jupyter.kernelcontainer`). ``network="none"`` gives the kernel no network at all:
the provisioner then switches the kernel manager to ZMQ's ``ipc`` transport with the sockets in a
private per-kernel directory bind-mounted at the same path, since unix sockets work across
namespaces through a bind mount.

What the container holds (the connection file through the start-up shim, the notebook's
directory, the environment, the jupybox package for the kernel's side):
:mod:`jupybox.jupyter.kernelcontainer`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, Unicode

from .. import errors
from .kernelcontainer import PYTHON_NAMES, USAGE_EXTENSION, KernelContainer, under
from .kernelend import KernelStartError, StderrTail, death_reason, fd_of, server_stderr, tail_lines
from .kernelspec import validate_config

__all__ = ["JupyboxProvisioner", "KernelStartError", "listening_tcp_ports"]

PORT_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")


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


class JupyboxProvisioner(KernelContainer, LocalProvisioner):
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
    _stderr: StderrTail | None = None
    _exit: int | None = None
    _result: dict | None = None  # the container's exit (exit_code, oom_killed, extra)
    _stopping = False  # a SIGKILL/SIGTERM of ours went to the kernel: its end is no death to tell
    _death: str | None = None  # why the last kernel died on its own, for the next one
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
            if km.transport != "ipc" or not under(str(km.ip), ipc):
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

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict:
        import jupybox

        s = self._settings
        if s is None:  # launch without pre_launch (not what KernelManager does)
            s = self._settings = validate_config(self._config())
        self._exit = self._result = None
        self._stopping = False
        previous, self._death = self._death, None
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
            "env": self._kernel_env(env, name, previous), "workdir": workdir, "network": s["network"], "name": name,
            "remove": True, "read_only": bool(s.get("read_only")), "entrypoint": [],
            "labels": {"io.jupybox.kernel.id": str(self.kernel_id or ""),
                       "io.jupybox.kernel.name": str(getattr(km, "kernel_name", "") or "")},
        }
        stdout = fd_of(kwargs.get("stdout"), None)
        if stdout is None:
            stdout = fd_of(sys.__stdout__, 1)
        dest = fd_of(kwargs.get("stderr"), None)
        if dest is None:
            dest = server_stderr()
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
        self._stderr = StderrTail(read_fd, dest)
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
                tail = tail_lines(self._stderr.text()) if self._stderr else ""
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
            tail = tail_lines(self._stderr.text())
        how = f"exited with code {code}" if code < 128 else f"was killed by signal {code - 128}"
        if (self._result or {}).get("oom_killed"):
            how += f" (out of memory: limit {self._settings.get('memory')})"
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
            self._result = c.result()
        except TimeoutError:
            return None
        except errors.JupyboxError:  # its record is gone and nobody reported the exit
            code = 137
        self._exit = code if code is not None and code >= 0 else 137
        return self._exit

    async def poll(self) -> int | None:
        """jupyter_client's restarter asks this (``is_alive``); a kernel found dead on its own is
        told here: the reason in the server's log, and kept for the kernel the restarter starts."""
        if self.container is None:
            return 0
        code = self._exit_code()
        if code is not None and not self._stopping and self._death is None and self._result is not None:
            self._death = death_reason(self._label(), self._result, (self._settings or {}).get("memory"))
            if self._death:
                self.log.warning("%s", self._death)
        return code

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
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self._stopping = True
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
        """A record (and cgroup) left only if the store's service died before it could remove the container."""
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
            elif self._cwd_dest and under(str(path), self._cwd_dest) and self._cwd_dest != "/":
                path = host_cwd / os.path.relpath(str(path), self._cwd_dest)
        path = path.resolve()
        return path.as_posix() if path.exists() else None
