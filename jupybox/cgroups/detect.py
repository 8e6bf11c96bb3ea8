"""Which cgroup layout the host has, and where the v1 controllers are mounted.

Everything is derived from /proc/self/mountinfo (the text is a parameter so it
is testable), never from assumed paths:

* the mount at ``root`` is ``cgroup2``                      -> "v2" (pure unified)
* ``root`` is a tmpfs holding a ``cgroup2`` mount (unified/) -> "hybrid" (v1 controllers + empty cgroup2)
* ``root`` holds only v1 ``cgroup`` mounts                  -> "v1"

This is the statfs-magic rule of runc/systemd (CGROUP2_SUPER_MAGIC at the root
= v2; TMPFS_MAGIC with a cgroup2 ``unified`` = hybrid; else v1) read from
mountinfo instead of statfs, because statfs needs ctypes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import CgroupError

MOUNTINFO = "/proc/self/mountinfo"
DEFAULT_ROOT = "/sys/fs/cgroup"

_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(s: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), s)


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str
    root: str  # the path inside the filesystem that is mounted (v1 in a container: /docker/ID)
    super_options: tuple[str, ...]

    @property
    def controllers(self) -> tuple[str, ...]:
        """For a v1 ``cgroup`` mount: the controllers of its hierarchy (rw/ro and name=... dropped)."""
        skip = {"rw", "ro"}
        return tuple(o for o in self.super_options if o not in skip and "=" not in o)


def read_mountinfo() -> str:
    with open(MOUNTINFO) as f:
        return f.read()


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse mountinfo lines: 'ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS'."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 3:
            continue
        entries.append(
            MountEntry(
                mount_point=_unescape(fields[4]),
                fstype=fields[sep + 1],
                root=_unescape(fields[3]),
                super_options=tuple(fields[sep + 3].split(",")) if len(fields) > sep + 3 else (),
            )
        )
    return entries


def _under(path: str, root: str) -> bool:
    return path.startswith(root.rstrip("/") + "/")


def _mount_at(entries: list[MountEntry], path: str) -> MountEntry | None:
    """The mount visible at ``path`` (the last one mounted there wins), or the one covering it."""
    best = None
    for e in entries:  # mountinfo lists mounts in mount order: later ones hide earlier ones
        mp = e.mount_point
        if mp == path or mp == "/" or _under(path, mp):
            if best is None or len(mp) >= len(best.mount_point):
                best = e
    return best


def detect_layout(root: str = DEFAULT_ROOT, mountinfo: str | None = None) -> str:
    """'v1', 'hybrid' or 'v2' for the cgroup filesystems at ``root``; CgroupError when there are none."""
    root = os.path.normpath(root)
    entries = parse_mountinfo(read_mountinfo() if mountinfo is None else mountinfo)
    at_root = _mount_at(entries, root)
    if at_root is not None and at_root.fstype == "cgroup2":
        return "v2"
    inside = [e for e in entries if _under(e.mount_point, root)]
    if any(e.fstype == "cgroup2" for e in inside):
        return "hybrid"
    if any(e.fstype == "cgroup" for e in inside):
        return "v1"
    raise CgroupError(f"no cgroup filesystem mounted at {root}")


def v1_mounts(root: str = DEFAULT_ROOT, mountinfo: str | None = None) -> dict[str, str]:
    """controller -> mount point of its v1 hierarchy under ``root`` (combined mounts map several names
    to one mount point, e.g. cpu and cpuacct -> /sys/fs/cgroup/cpu,cpuacct)."""
    root = os.path.normpath(root)
    entries = parse_mountinfo(read_mountinfo() if mountinfo is None else mountinfo)
    out: dict[str, str] = {}
    for e in entries:
        if e.fstype != "cgroup" or not _under(e.mount_point, root):
            continue
        for c in e.controllers:
            # the same hierarchy can be mounted twice (bind mounts): keep the first one
            out.setdefault(c, e.mount_point)
    return out


def cgroup2_mount(root: str = DEFAULT_ROOT, mountinfo: str | None = None) -> str | None:
    """Mount point of the cgroup2 filesystem at or under ``root`` (root itself on v2, root/unified on hybrid)."""
    root = os.path.normpath(root)
    entries = parse_mountinfo(read_mountinfo() if mountinfo is None else mountinfo)
    at_root = _mount_at(entries, root)
    if at_root is not None and at_root.fstype == "cgroup2":
        return root
    for e in entries:
        if e.fstype == "cgroup2" and _under(e.mount_point, root):
            return e.mount_point
    return None
