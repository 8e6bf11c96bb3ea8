"""info and version: what the host gives jupybox (its mode, cgroups, seccomp, networks), and why."""

from __future__ import annotations

import json
import platform


def add_parsers(sub) -> None:
    p = sub.add_parser("info", help="Mode, cgroup layout, store and what is available")
    p.add_argument("--format", help="'json'")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("version", help="Show the jupybox version")
    p.set_defaults(func=cmd_version)


ROOT_NOT_A_MOUNT_POINT = (
    "/ is not a mount point (jupybox runs in a chroot into a plain directory?): containers cannot start; "
    "bind the directory onto itself before entering it (`mount --bind DIR DIR`, then `chroot DIR`), "
    "or enter it with pivot_root instead of chroot")


def root_is_a_mount_point(mountinfo: str = "/proc/self/mountinfo") -> bool | None:
    """Is ``/`` (this process's root) a mount point? None when ``mountinfo`` cannot be read.

    A container's setup makes the mount under ``/`` private first (so that nothing it mounts reaches
    the machine's namespace), and the kernel does that only for the root of a mount. The kernel
    lists a process's mounts relative to its root, and leaves out those it cannot reach: a line
    whose mount point (the 5th field) is ``/`` exists exactly when ``/`` is a mount point."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            return any(line.split(" ", 5)[4:5] == ["/"] for line in f)
    except OSError:
        return None


def warnings() -> list[str]:
    """What keeps containers from running here although the mode says they can (docker's Warnings)."""
    return [ROOT_NOT_A_MOUNT_POINT] if root_is_a_mount_point() is False else []


def info(ctx) -> dict:
    """Everything a user needs to know about what runs here, and why not when it does not."""
    from ..linux import seccomp
    from ..runtime import mode as rmode

    engine = ctx.engine
    m = rmode.detect(str(engine.layout.tmp))
    try:
        drv = engine.cgroups
        cgroup = {"layout": drv.layout, "version": drv.version, "controllers": sorted(drv.controllers)}
        if getattr(drv, "reason", None):
            cgroup["why_none"] = drv.reason
            cgroup["instead"] = "memory and pids limits as rlimits; stats and charts from psutil; no CPU quota"
    except Exception as e:  # noqa: BLE001 - info must print whatever it can
        cgroup = {"error": str(e)}
    try:
        sec = {"libseccomp": seccomp.libseccomp_version(), "profile": "docker default"}
    except Exception as e:  # noqa: BLE001
        sec = {"error": str(e)}
    if not m.isolated:
        networks = "none: nothing runs isolated (`run --no-isolation` runs a plain process)"
    elif m.name == "root":
        networks = "bridge (default), user networks, none, host"
    else:
        networks = "host (default), none (bridge networks need root)"
    from ..runtime.options import default_network

    out = m.to_dict()
    out.update({
        "root": str(engine.layout.root),
        "kernel": platform.release(),
        "cgroups": cgroup,
        "seccomp": sec,
        "networks": networks,
        "default_network": default_network(),
        "containers": len(engine.records.all()),
        "storage_driver": m.overlay or "none",
        "python": platform.python_version(),
        "warnings": warnings() if m.isolated else [],
    })
    return out


def cmd_info(args, ctx) -> int:
    data = info(ctx)
    if args.format == "json":
        ctx.print(json.dumps(data, indent=2))
        return 0
    for k, v in data.items():
        if k == "warnings":
            continue
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, list):
            v = "; ".join(map(str, v))
        ctx.print(f"{k}: {v}")
    for w in data["warnings"]:  # last, as docker prints them
        ctx.print(f"WARNING: {w}")
    return 0


def cmd_version(args, ctx) -> int:
    from .. import __version__

    ctx.print(f"jupybox version {__version__}")
    return 0
