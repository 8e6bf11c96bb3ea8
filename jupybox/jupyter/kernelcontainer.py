"""What a boxed kernel's container is made of: its mounts, its environment, its start-up shim.

The provisioner (:mod:`jupybox.jupyter.provisioner`) runs the kernel; this mixin of it decides what
the container holds.

Files: the connection file reaches the kernel through its stdin, not a mount. A ``python3 -m
MODULE ... -f {connection_file}`` command runs as ``python3 -c SHIM ...`` in the same
interpreter: the shim reads the connection file and the container's id from stdin (written by
the provisioner right after the start), writes the file to /dev/shm inside (a tmpfs, so it works
with a read-only root too; ipykernel 6 rewrites it at start), exports JUPYBOX_CONTAINER_ID, and
runs MODULE like ``-m`` does. So nothing per-kernel is mounted and two kernels started from the
same directory have identical mounts: the service's prewarmed sandbox, built like the previous
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

import json
import os
import re
import shutil
import sys
import tempfile

from .. import errors
from ..runtime.spec import Mount

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


def under(path: str, top: str) -> bool:
    top = top.rstrip("/") or "/"
    return path == top or path.startswith(top + "/") or top == "/"


class KernelContainer:
    """The provisioner's part that makes the container's contents (a mixin of JupyboxProvisioner:
    it reads the provisioner's settings, kernel spec and kernel manager)."""

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

    def _kernel_env(self, env: dict, name: str, previous_death: str | None = None) -> dict[str, str]:
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
        if previous_death:
            from .kernel_usage import PREVIOUS_KERNEL_ENV

            out[PREVIOUS_KERNEL_ENV] = previous_death  # told by the kernel extension (kernelend.tell_once)
        return out

    def _mounts(self, cwd: str | None, connection_file: str | None, via_stdin: bool) -> tuple[list, str | None]:
        """The mounts, in order, and the kernel's working directory inside.

        With ``via_stdin`` nothing per-kernel is mounted (the shim writes the connection file inside):
        kernels started from the same directory have the same mounts, so the service's prewarmed
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
            if real in NEVER_MOUNT_CWD or real in hide or under(real, store):
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
                if under(path, source) and path != source:
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
