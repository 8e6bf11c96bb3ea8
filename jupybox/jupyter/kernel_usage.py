"""The kernel's side of a containerized kernel: its own cgroup, and ipykernel's ``usage_request``.

This module runs *inside* the kernel's container. The provisioner bind-mounts the jupybox package
read-only at ``/run/jupybox-python/jupybox`` and puts ``/run/jupybox-python`` on PYTHONPATH, so it
imports in any image that has a Python 3 (the ``host`` image, a Debian rootfs made with
mmdebstrap, ...), and it only needs the standard library and :mod:`jupybox.cgroups`.

:func:`own_cgroup_stats`
    One sample of the cgroup this process lives in, as a :class:`jupybox.cgroups.CgroupStats`,
    the very type ``Container.stats()`` returns on the host: ``%container self`` charts it live.
    Inside a jupybox container the runtime mounts the container's own cgroup read-only at
    /sys/fs/cgroup (cgroup v1: ``memory/``, ``cpu/``, ``cpuacct/``, ``pids/`` sub-mounts; v2: the
    cgroup directory itself) and the kernel has its own cgroup namespace, so ``/proc/self/cgroup``
    says ``/``. Outside a container the path from ``/proc/self/cgroup`` is followed instead, so
    the function also describes a plain kernel's cgroup (a systemd scope, say).

The IPython extension (``--ext=jupybox.jupyter.kernel_usage``, added by the provisioner to an
ipykernel command line)
    replaces the kernel's ``usage_request`` handler on the control channel (what
    jupyter-resource-usage's kernel panel sends every few seconds). ipykernel answers it with
    psutil's view of the *host* (all of its memory and CPUs); inside a container those figures
    are wrong. The reply keeps ipykernel's keys, filled from the cgroup:

    ``kernel_memory``      bytes charged to the container (the cgroup's memory usage)
    ``kernel_cpu``         CPU use of the whole container, percent of one CPU, since the last request
                           (the first time: since the kernel started)
    ``host_virtual_memory`` ``{"total": memory limit, "available": limit - usage, "used", "free",
                           "percent"}`` (the host's total when the container has no memory limit)
    ``cpu_count``          the CPUs the container may use (its quota rounded up, else the CPUs it can run on)
    ``host_cpu_percent``   CPU use as a percent of that quota
    ``container``          every :class:`CgroupStats` field plus ``id``, ``name`` and ``cgroup`` (1 or 2)

    ``JUPYBOX_CONTAINER_ID`` is known only once the container runs: the provisioner passes it to the
    kernel's start-up shim on stdin. For a kernel command the shim does not wrap, it writes it to
    ``/run/jupybox/container.json`` (read-only inside) instead and loading this extension exports it.
"""

from __future__ import annotations

import json
import os
import socket
import time

from ..cgroups.own import CGROUP_ROOT, PROC_SELF_CGROUP, cgroup_version, own_cgroup

INFO_FILE = "/run/jupybox/container.json"  # written by the provisioner after the start
PREVIOUS_KERNEL_ENV = "JUPYBOX_PREVIOUS_KERNEL"  # why the kernel before this one died (kernelend)


# -- the cgroup ------------------------------------------------------------------------------------
def own_cgroup_stats(root: str = CGROUP_ROOT, proc_self_cgroup: str = PROC_SELF_CGROUP):
    """One :class:`jupybox.cgroups.CgroupStats` sample of this process's own cgroup."""
    return own_cgroup(root, proc_self_cgroup).stats()


def container_info(path: str = INFO_FILE) -> dict:
    """What the provisioner wrote about this container (id, name, image), {} outside a jupybox kernel."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


# -- the usage_reply ---------------------------------------------------------------------------
def _host_memory_total() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class UsageMeter:
    """Builds ``usage_reply`` contents; remembers the previous CPU sample to compute a rate."""

    def __init__(self, root: str = CGROUP_ROOT, proc_self_cgroup: str = PROC_SELF_CGROUP):
        # nothing is read here: loading the extension must not slow the kernel's start
        self.root = root
        self.proc_self_cgroup = proc_self_cgroup
        self._cgroup = None
        self._last: tuple[float, int] | None = None  # (monotonic, cpu_usage_ns) of the previous reply

    def _group(self):
        if self._cgroup is None:
            self._cgroup = own_cgroup(self.root, self.proc_self_cgroup)
        return self._cgroup

    @staticmethod
    def _since_start() -> tuple[float, int] | None:
        """A baseline for the first reply: (the monotonic time this process started, 0 ns of CPU).

        The container's processes start with the kernel, so the first figure is the average since then.
        """
        try:
            with open("/proc/self/stat") as f:
                start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
            with open("/proc/uptime") as f:
                uptime = float(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return (time.monotonic() - age, 0) if age > 0 else None

    def content(self) -> dict:
        stats = self._group().stats()
        now = time.monotonic()
        if self._last is None:
            self._last = self._since_start()
        kernel_cpu = 0.0
        if self._last is not None and now > self._last[0]:
            kernel_cpu = max(0.0, (stats.cpu_usage_ns - self._last[1]) / ((now - self._last[0]) * 1e9) * 100)
        self._last = (now, stats.cpu_usage_ns)
        cpus = stats.cpu_quota or float(_usable_cpus())
        total = stats.memory_limit or _host_memory_total() or 0
        used = stats.memory_current
        free = max(0, total - used)
        info = container_info()
        container = stats.to_dict()
        container.update(id=info.get("id") or os.environ.get("JUPYBOX_CONTAINER_ID"),
                         name=info.get("name") or os.environ.get("JUPYBOX_CONTAINER_NAME"),
                         cgroup=cgroup_version(self.root))
        return {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "kernel_cpu": round(kernel_cpu, 2),
            "kernel_memory": used,
            "cpu_count": max(1, int(-(-cpus // 1))),  # ceil
            "host_cpu_percent": round(kernel_cpu / cpus, 2) if cpus else 0.0,
            "host_virtual_memory": {
                "total": total,
                "available": free,
                "used": used,
                "free": free,
                "percent": round(used / total * 100, 1) if total else 0.0,
            },
            "container": container,
        }


def install(kernel, meter: UsageMeter | None = None) -> UsageMeter:
    """Make ``kernel`` (an ipykernel Kernel) answer ``usage_request`` from its cgroup."""
    meter = meter or UsageMeter()

    def usage_request(stream, ident, parent):
        if not kernel.session:
            return
        try:
            content = meter.content()
        except Exception as e:  # noqa: BLE001 - answer anyway, never leave the frontend waiting
            content = {"hostname": socket.gethostname(), "pid": os.getpid(), "cpu_count": _usable_cpus(),
                       "error": f"jupybox: cannot read the kernel's cgroup: {e}"}
        kernel.session.send(stream, "usage_reply", content, parent, ident)

    types = list(getattr(kernel, "control_msg_types", []))
    if "usage_request" not in types:  # ipykernel < 6.11 has no usage_request at all
        kernel.control_msg_types = types + ["usage_request"]
    kernel.control_handlers["usage_request"] = usage_request
    kernel._jupybox_usage = meter  # noqa: SLF001 - for introspection and tests
    return meter


def _export_container_id(wait: float = 2.0) -> None:
    """JUPYBOX_CONTAINER_ID from the provisioner's info file (written right after the start)."""
    if os.environ.get("JUPYBOX_CONTAINER_ID") or not os.environ.get("JUPYBOX_IN_CONTAINER"):
        return
    deadline = time.monotonic() + wait
    while True:
        info = container_info()
        if info.get("id"):
            os.environ["JUPYBOX_CONTAINER_ID"] = info["id"]
            return
        if time.monotonic() > deadline or not os.path.isdir(os.path.dirname(INFO_FILE)):
            return
        time.sleep(0.01)


def load_ipython_extension(ipython) -> None:
    _export_container_id()
    _packages_prefix()
    _tell_previous_death(ipython)
    kernel = getattr(ipython, "kernel", None)
    if kernel is not None and hasattr(kernel, "control_handlers"):
        install(kernel)


def _tell_previous_death(ipython) -> None:
    """Why the kernel before this one died (the provisioner saw it: jupybox.jupyter.kernelend)."""
    reason = os.environ.pop(PREVIOUS_KERNEL_ENV, None)
    if reason and getattr(ipython, "events", None) is not None:
        from .kernelend import tell_once

        tell_once(ipython, reason)


def _packages_prefix() -> None:
    """%pip install into the kernel's writable prefix (jupybox.env.kernelpackages)."""
    from ..env.kernelpackages import activate

    activate()


def unload_ipython_extension(ipython) -> None:
    kernel = getattr(ipython, "kernel", None)
    if kernel is not None and hasattr(kernel, "control_handlers"):
        original = getattr(type(kernel), "usage_request", None)
        if original is not None:
            kernel.control_handlers["usage_request"] = getattr(kernel, "usage_request")
        else:
            kernel.control_handlers.pop("usage_request", None)
