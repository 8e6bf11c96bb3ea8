"""info and version: what this machine gives jupybox."""

from __future__ import annotations

import json
import platform


def add_parsers(sub) -> None:
    p = sub.add_parser("info", help="Mode, cgroup layout, store and what is available")
    p.add_argument("--format", help="'json'")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("version", help="Show the jupybox version")
    p.set_defaults(func=cmd_version)


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
    })
    return out


def cmd_info(args, ctx) -> int:
    data = info(ctx)
    if args.format == "json":
        ctx.print(json.dumps(data, indent=2))
        return 0
    for k, v in data.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        elif isinstance(v, list):
            v = "; ".join(map(str, v))
        ctx.print(f"{k}: {v}")
    return 0


def cmd_version(args, ctx) -> int:
    from .. import __version__

    ctx.print(f"jupybox version {__version__}")
    return 0
