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
