"""The cgroup this process lives in, opened for reading (``stats()``), wherever it runs.

Inside a jupybox container the runtime mounts the container's own cgroup read-only at
/sys/fs/cgroup (cgroup v1: ``memory/``, ``cpu/``, ``cpuacct/``, ``pids/`` sub-mounts; v2: the
cgroup directory itself) and the process has its own cgroup namespace, so ``/proc/self/cgroup``
says ``/``. Outside a container the path from ``/proc/self/cgroup`` is followed instead (a
systemd scope, say). A kernel in a container charts itself with it (``%container self``).

Only the standard library and this package: it is imported inside containers, from the
read-only copy of jupybox the kernel provisioner mounts.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_SELF_CGROUP = "/proc/self/cgroup"
# v1 controller -> a file its stats() reads (a root cgroup lacks some, e.g. pids.current)
V1_CONTROLLERS = {"memory": "memory.usage_in_bytes", "cpu": "cpu.cfs_quota_us", "cpuacct": "cpuacct.usage",
                  "pids": "pids.current"}


def _own_paths(proc_self_cgroup: str) -> dict[str, str]:
    """controller -> path from /proc/self/cgroup ("" for the v2 line "0::/path")."""
    out: dict[str, str] = {}
    try:
        with open(proc_self_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if not controllers:
            out[""] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def _follow(mount: str, path: str | None) -> str:
    """``mount`` + the process's path in that hierarchy, when that directory is visible; else ``mount``.

    In a container with its own cgroup namespace the path is "/" and the mount is the cgroup itself.
    """
    if path and path != "/":
        d = os.path.join(mount, path.lstrip("/"))
        if os.path.isdir(d):
            return d
    return mount


def own_cgroup(root: str = CGROUP_ROOT, proc_self_cgroup: str = PROC_SELF_CGROUP):
    """The cgroup of this process as a jupybox ``Cgroup`` object (read-only use: ``stats()``)."""
    own = _own_paths(proc_self_cgroup)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):  # v2 (unified) mounted at root
        from .v2.manager import V2Cgroup

        return V2Cgroup("self", _follow(root, own.get("")), set())
    from .v1.manager import V1Cgroup

    paths: dict[str, str] = {}
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        entries = []
    for name in entries:  # "memory", "cpu", or a combined hierarchy "cpu,cpuacct"
        mount = os.path.join(root, name)
        if os.path.islink(mount) or not os.path.isdir(mount):
            continue
        for c in name.split(","):
            if c in V1_CONTROLLERS and c not in paths:
                d = _follow(mount, own.get(c))
                if os.path.exists(os.path.join(d, V1_CONTROLLERS[c])):
                    paths[c] = d
    if not paths:
        from ..errors import CgroupError

        raise CgroupError(f"no cgroup controllers are visible under {root}")
    return V1Cgroup("self", paths, {})


def cgroup_version(root: str = CGROUP_ROOT) -> int:
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1
