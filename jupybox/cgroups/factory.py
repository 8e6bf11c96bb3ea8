"""open_driver: pick the v1/hybrid or v2 driver for the machine (youki's create_cgroup_manager)."""

from __future__ import annotations

import os

from ..errors import CgroupError
from .base import CgroupDriver, check_name
from .detect import DEFAULT_ROOT, detect_layout, read_mountinfo, v1_mounts
from .v1 import V1Driver
from .v2 import V2Driver


def open_driver(
    root: str = DEFAULT_ROOT,
    parent: str = "jupybox",
    layout: str | None = None,
    mountinfo: str | None = None,
) -> CgroupDriver:
    """The driver for the cgroups at ``root``; jupybox's cgroups go under ``parent``.

    ``layout`` forces "v1"/"hybrid"/"v2" (tests: a v2-shaped tmp dir); ``mountinfo``
    replaces /proc/self/mountinfo (tests: fake v1 mounts)."""
    check_name(parent, "cgroup parent name")
    root = os.path.normpath(str(root))
    if layout is None:
        if mountinfo is None:
            mountinfo = read_mountinfo()
        layout = detect_layout(root, mountinfo)
    if layout == "v2":
        return V2Driver(root, parent)
    if layout in ("v1", "hybrid"):
        mounts = v1_mounts(root, read_mountinfo() if mountinfo is None else mountinfo)
        return V1Driver(root, parent, mounts, layout=layout)
    raise CgroupError(f"unknown cgroup layout {layout!r} (expected v1, hybrid or v2)")


def open_user_driver(
    parent: str = "jupybox",
    root: str = DEFAULT_ROOT,
    layout: str | None = None,
    self_cgroup: str | None = None,
    euid: int | None = None,
) -> CgroupDriver:
    """Not root: the user's delegated cgroup v2 subtree (systemd's user@UID.service and what it
    delegates), else the process-tree driver, which limits with rlimits and counts with psutil.

    v1 hierarchies are never delegated to users, so on v1 and hybrid there is no cgroup to use."""
    from .processtree import WHY_NOT, ProcessTreeDriver
    from .v2 import delegated_base

    check_name(parent, "cgroup parent name")
    root = os.path.normpath(str(root))
    if layout is None:
        try:
            layout = detect_layout(root, read_mountinfo())
        except CgroupError as e:
            return ProcessTreeDriver(str(e))
    if layout != "v2":
        return ProcessTreeDriver(f"cgroups here are {layout}: only a cgroup v2 subtree can be delegated to a user")
    base = delegated_base(root, euid=euid if euid is not None else os.geteuid(), self_cgroup=self_cgroup)
    if base == root:
        return ProcessTreeDriver(WHY_NOT)
    drv = V2Driver(root, parent, base)
    if not drv.controllers:
        return ProcessTreeDriver(f"the delegated cgroup {base} offers none of memory, cpu, pids")
    return drv
