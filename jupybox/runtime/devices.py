"""docker's ``--device HOST[:CONTAINER][:PERMS]``, and why ``--gpus`` is refused.

Every mount of a non-privileged container is nodev (see jupybox/linux/init.c): a node the
container makes itself can never be opened. A device given with --device is a node of its own:
PID 1 makes a fresh one with the host node's type, numbers, mode and owner (the host's node
itself, bound, in a user namespace) and binds it at its place.

Permissions: jupybox has no device cgroup (docker's refuses what PERMS does not grant, at open),
so only what it can hold is accepted: ``rw`` and ``rwm`` (``m``: docker's right to mknod the
device again is moot, nothing the container makes is usable) and no PERMS (docker's ``rwm``).
``r`` or ``w`` alone cannot be enforced (root in the container opens a node whatever its mode
says) and is refused rather than silently granting more.
"""

from __future__ import annotations

import os
import stat

from ..errors import UsageError

MAX_DEVICES = 128
GPUS_REFUSED = ("--gpus is not supported: jupybox has no GPU runtime (nvidia-container-toolkit); give the "
                "device nodes instead, e.g. --device /dev/nvidia0 --device /dev/nvidiactl --device /dev/nvidia-uvm "
                "(the image must hold the driver's user-space libraries)")


def _perms_ok(text: str) -> bool:
    return 0 < len(text) <= 3 and set(text) <= set("rwm") and len(set(text)) == len(text)


def parse_device(text) -> dict:
    """HOST[:CONTAINER][:PERMS] (or a DeviceMapping dict, as a spec keeps it) -> {path_on_host,
    path_in_container, permissions}; UsageError for what is malformed or cannot be enforced."""
    if isinstance(text, dict):
        src, dst, perms = (str(text.get(k) or "") for k in ("path_on_host", "path_in_container", "permissions"))
        return _checked(src, dst or src, perms or "rwm", f"{src}:{dst}:{perms}")
    parts = str(text).split(":")
    perms = "rwm"
    if len(parts) == 3:
        src, dst, perms = parts
    elif len(parts) == 2:
        src, dst = parts
        if _perms_ok(dst):
            dst, perms = src, dst
    elif len(parts) == 1:
        src = dst = parts[0]
    else:
        raise UsageError(f"invalid --device {text!r}: HOST[:CONTAINER][:PERMS] is expected")
    return _checked(src, dst or src, perms, text)


def _checked(src: str, dst: str, perms: str, text: str) -> dict:
    if not _perms_ok(perms):
        raise UsageError(f"invalid --device {text!r}: permissions are r, w and m (e.g. rwm), not {perms!r}")
    if not ("r" in perms and "w" in perms):
        raise UsageError(f"--device {text}: {perms!r} cannot be enforced (jupybox has no device cgroup, and root in "
                         f"the container opens a node whatever its mode): use rw or rwm")
    for path in (src, dst):
        if not path.startswith("/") or "\0" in path or len(path) > 4096:
            raise UsageError(f"invalid --device {text!r}: {path!r} is not an absolute path")
    return {"path_on_host": src, "path_in_container": os.path.normpath(dst), "permissions": perms}


def resolve(devices: list[dict]) -> list[dict]:
    """The host nodes of ``devices`` (checked again: a spec may come from the wire), as the plan
    gives them to PID 1: path inside, c/b, major, minor, mode, uid, gid, host path."""
    if len(devices) > MAX_DEVICES:
        raise UsageError(f"--device: at most {MAX_DEVICES}")
    out, seen = [], set()
    for given in devices:
        d = parse_device(given)
        src, dst = d["path_on_host"], d["path_in_container"]
        if dst == "/" or dst == "/proc" or dst.startswith("/proc/"):
            raise UsageError(f"invalid --device {src}:{dst}: not at / nor under /proc")
        if dst in seen:
            raise UsageError(f"--device: {dst} given twice")
        seen.add(dst)
        try:
            st = os.stat(src)  # a symlink (/dev/disk/by-id/...) means its target, as for docker
        except OSError as e:
            raise UsageError(f"error gathering device information while adding custom device {src!r}: "
                             f"{e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"--device {src}: a directory; name each device node in it")
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise UsageError(f"--device {src}: not a device node")
        out.append({"path_in_container": dst, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                    "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev), "mode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid, "gid": st.st_gid, "path_on_host": os.path.realpath(src),
                    "permissions": d["permissions"]})
    return out


def plan_records(resolved: list[dict]) -> list[tuple]:
    """The 'v' records of PID 1's plan (init.c, ``setup_devices``)."""
    return [(d["path_in_container"], d["type"], d["major"], d["minor"], d["mode"], d["uid"], d["gid"],
             d["path_on_host"]) for d in resolved]
