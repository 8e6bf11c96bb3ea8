"""volume create | ls | inspect | rm | prune."""

from __future__ import annotations

import json

from .. import errors
from .format import table


def add_parsers(sub) -> None:
    p = sub.add_parser("volume", help="Manage named volumes")
    vsub = p.add_subparsers(dest="volume_verb", metavar="VERB", parser_class=type(p))
    q = vsub.add_parser("create", help="Create a volume")
    q.add_argument("-l", "--label", action="append", default=[])
    q.add_argument("name", nargs="?")
    q.set_defaults(func=cmd_create)
    q = vsub.add_parser("ls", help="List volumes")
    q.add_argument("-q", "--quiet", action="store_true")
    q.add_argument("--format")
    q.set_defaults(func=cmd_ls)
    q = vsub.add_parser("inspect", help="Volume details as JSON")
    q.add_argument("names", nargs="+")
    q.set_defaults(func=cmd_inspect)
    q = vsub.add_parser("rm", help="Remove volumes (refused while a container uses them)")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("names", nargs="+")
    q.set_defaults(func=cmd_rm)
    q = vsub.add_parser("prune", help="Remove volumes no container uses")
    q.add_argument("-f", "--force", action="store_true")
    q.set_defaults(func=cmd_prune)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])


def _volumes(ctx):
    from ..runtime.volumes import Volumes

    return Volumes(ctx.engine.layout)


def users_of(ctx, name: str) -> list[str]:
    return [r.id for r in ctx.engine.records.all() if any(m.get("volume") == name for m in r.config.get("mounts", []))]


def cmd_create(args, ctx) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    ctx.print(_volumes(ctx).ensure(args.name, labels).name)
    return 0


def cmd_ls(args, ctx) -> int:
    vols = _volumes(ctx).list()
    if args.quiet:
        for v in vols:
            ctx.print(v.name)
    elif args.format == "json":
        for v in vols:
            ctx.print(json.dumps({"Driver": "local", "Name": v.name, "Mountpoint": str(v.data)}))
    else:
        ctx.print(table([["local", v.name] for v in vols], ["DRIVER", "VOLUME NAME"]))
    return 0


def cmd_inspect(args, ctx) -> int:
    vols = _volumes(ctx)
    ctx.print(json.dumps([vols.get(n).inspect() for n in args.names], indent=4))
    return 0


def cmd_rm(args, ctx) -> int:
    vols = _volumes(ctx)
    failed = False
    for name in args.names:
        try:
            vols.remove(name, users_of(ctx, name))
            ctx.print(name)
        except errors.JupyboxError as e:
            print(f"jupybox: {e}", file=ctx.err)
            failed = True
    return 1 if failed else 0


def cmd_prune(args, ctx) -> int:
    vols = _volumes(ctx)
    used = {m.get("volume") for r in ctx.engine.records.all() for m in r.config.get("mounts", [])}
    removed = []
    for v in vols.list():
        if v.name not in used:
            vols.remove(v.name)
            removed.append(v.name)
    if removed:
        ctx.print("Deleted Volumes:")
        for n in removed:
            ctx.print(n)
    ctx.print(f"Total reclaimed: {len(removed)} volume(s)")
    return 0
