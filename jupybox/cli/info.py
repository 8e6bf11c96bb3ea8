"""info and version: what this machine gives jupybox."""

from __future__ import annotations

import json
import os
import platform


def add_parsers(sub) -> None:
    p = sub.add_parser("info", help="Mode, cgroup layout, store and what is available")
    p.add_argument("--format", help="'json'")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("version", help="Show the jupybox version")
    p.set_defaults(func=cmd_version)


def info(ctx) -> dict:
    from ..linux import seccomp

    engine = ctx.engine
    try:
        drv = engine.cgroups
        cgroup = {"layout": drv.layout, "version": drv.version, "controllers": sorted(drv.controllers)}
    except Exception as e:  # noqa: BLE001 - info must print whatever it can
        cgroup = {"error": str(e)}
    try:
        sec = {"libseccomp": seccomp.libseccomp_version(), "profile": "docker default"}
    except Exception as e:  # noqa: BLE001
        sec = {"error": str(e)}
    return {
        "mode": "root" if os.geteuid() == 0 else "rootless",
        "root": str(engine.layout.root),
        "kernel": platform.release(),
        "cgroups": cgroup,
        "seccomp": sec,
        "containers": len(engine.records.all()),
        "storage_driver": "overlay",
        "python": platform.python_version(),
    }


def cmd_info(args, ctx) -> int:
    data = info(ctx)
    if args.format == "json":
        ctx.print(json.dumps(data, indent=2))
        return 0
    for k, v in data.items():
        ctx.print(f"{k}: {v if not isinstance(v, dict) else ', '.join(f'{a}={b}' for a, b in v.items())}")
    return 0


def cmd_version(args, ctx) -> int:
    from .. import __version__

    ctx.print(f"jupybox version {__version__}")
    return 0
