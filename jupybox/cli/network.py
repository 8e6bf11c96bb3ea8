"""network create | ls | inspect | rm | connect | disconnect | prune, and port."""

from __future__ import annotations

import json

from .. import errors
from .format import dumps, table
from .status import container_status

PREDEFINED = ("host", "none")


def add_parsers(sub) -> None:
    p = sub.add_parser("network", help="Manage networks")
    nsub = p.add_subparsers(dest="network_verb", metavar="VERB", parser_class=type(p))
    q = nsub.add_parser("create", help="Create a bridge network")
    q.add_argument("-d", "--driver", default="bridge", help="bridge (the only driver)")
    q.add_argument("--subnet", help="an IPv4 CIDR (default: a free /16 from 172.17-31, then 192.168/20s)")
    q.add_argument("--gateway", help="the bridge's address (default: the subnet's first)")
    q.add_argument("--label", action="append", default=[], metavar="K=V")
    q.add_argument("name")
    q.set_defaults(func=cmd_create)
    q = nsub.add_parser("ls", help="List networks", aliases=["list"])
    q.add_argument("-q", "--quiet", action="store_true")
    q.add_argument("--no-trunc", action="store_true")
    q.add_argument("--format", help="'json' or 'table'")
    q.set_defaults(func=cmd_ls)
    q = nsub.add_parser("inspect", help="Network details as JSON")
    q.add_argument("-f", "--format", help="a template like {{.Id}} or {{json .IPAM.Config}}")
    q.add_argument("names", nargs="+")
    q.set_defaults(func=cmd_inspect)
    q = nsub.add_parser("rm", help="Remove networks (refused while containers are attached)", aliases=["remove"])
    q.add_argument("-f", "--force", action="store_true", help="no error if the network does not exist")
    q.add_argument("names", nargs="+")
    q.set_defaults(func=cmd_rm)
    q = nsub.add_parser("connect", help="Connect a container to a network")
    q.add_argument("--alias", action="append", default=[], help="another name of the container on this network")
    q.add_argument("network")
    q.add_argument("container")
    q.set_defaults(func=cmd_connect)
    q = nsub.add_parser("disconnect", help="Disconnect a container from a network")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("network")
    q.add_argument("container")
    q.set_defaults(func=cmd_disconnect)
    q = nsub.add_parser("prune", help="Remove user networks no container uses")
    q.add_argument("-f", "--force", action="store_true", help="(accepted: no prompt is ever shown)")
    q.set_defaults(func=cmd_prune)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])

    p = sub.add_parser("port", help="List a container's published ports")
    p.add_argument("container")
    p.add_argument("private", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    p.set_defaults(func=cmd_port)


def _nets(ctx):
    from ..network import networks

    return networks(ctx.engine.layout)


def _pseudo_id(ctx, name: str) -> str:
    import hashlib

    return hashlib.sha256(f"{ctx.engine.layout.root}:{name}".encode()).hexdigest()


def cmd_create(args, ctx) -> int:
    if args.driver != "bridge":
        raise errors.UsageError(f"network driver {args.driver!r} is not supported: bridge is the only one")
    labels = dict(item.partition("=")[::2] for item in args.label)
    net = _nets(ctx).create(args.name, subnet=args.subnet, gateway=args.gateway, labels=labels)
    ctx.print(net["id"])
    return 0


def _rows(ctx) -> list[dict]:
    nets = _nets(ctx)
    found = nets.load_all()
    rows = []
    if "bridge" not in found:
        rows.append({"ID": _pseudo_id(ctx, "bridge"), "Name": "bridge", "Driver": "bridge", "Scope": "local"})
    for net in found.values():
        rows.append({"ID": net["id"], "Name": net["name"], "Driver": net["driver"], "Scope": "local",
                     "Subnet": net["subnet"], "Bridge": net["bridge"]})
    for name in PREDEFINED:
        rows.append({"ID": _pseudo_id(ctx, name), "Name": name, "Driver": name if name == "host" else "null",
                     "Scope": "local"})
    rows.sort(key=lambda r: r["Name"])
    return rows


def cmd_ls(args, ctx) -> int:
    rows = _rows(ctx)
    if args.quiet:
        for r in rows:
            ctx.print(r["ID"] if args.no_trunc else r["ID"][:12])
    elif args.format == "json":
        for r in rows:
            ctx.print(json.dumps(r))
    else:
        ctx.print(table([[r["ID"] if args.no_trunc else r["ID"][:12], r["Name"], r["Driver"], r["Scope"]] for r in rows],
                        ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]))
    return 0


def cmd_inspect(args, ctx) -> int:
    from .containers import render

    nets = _nets(ctx)
    out = []
    for name in args.names:
        net = None if name in PREDEFINED else nets.get(name, make_default=False)
        if net is None:  # host, none, or the default bridge before its first use (made then)
            out.append({"Name": name, "Id": _pseudo_id(ctx, name), "Scope": "local",
                        "Driver": {"host": "host", "none": "null"}.get(name, "bridge"),
                        "IPAM": {"Driver": "default", "Config": []}, "Containers": {}, "Options": {}, "Labels": {}})
            continue
        out.append(nets.inspect(net))
    if args.format:
        for item in out:
            ctx.print(render(args.format, item))
        return 0
    ctx.print(dumps(out))
    return 0


def cmd_rm(args, ctx) -> int:
    nets = _nets(ctx)
    failed = False
    for name in args.names:
        try:
            nets.remove(name)
            ctx.print(name)
        except errors.NotFound:
            if not args.force:
                print(f"jupybox: network {name} not found", file=ctx.err)
                failed = True
        except errors.JupyboxError as e:
            print(f"jupybox: {e}", file=ctx.err)
            failed = True
    return 1 if failed else 0


def cmd_connect(args, ctx) -> int:
    rec = ctx.engine.records.get(args.container)
    _nets(ctx).connect(ctx.engine, rec, args.network, args.alias)
    return 0


def cmd_disconnect(args, ctx) -> int:
    rec = ctx.engine.records.get(args.container)
    _nets(ctx).disconnect(ctx.engine, rec, args.network, force=args.force)
    return 0


def cmd_prune(args, ctx) -> int:
    nets = _nets(ctx)
    used = set()
    for rec in ctx.engine.records.all():
        used.update(w["name"] for w in nets.container_networks(rec))
    removed = []
    for net in nets.load_all().values():
        if net.get("builtin") or net["name"] in used:
            continue
        try:
            nets.remove(net["name"])
            removed.append(net["name"])
        except errors.Conflict:
            continue
    if removed:
        ctx.print("Deleted Networks:")
        for name in removed:
            ctx.print(name)
    return 0


@container_status
def cmd_port(args, ctx) -> int:
    from ..runtime.container import Container

    rec = ctx.engine.records.get(args.container)
    published = Container(ctx.engine, rec).ports()
    if args.private:
        port, _, proto = args.private.partition("/")
        key = f"{port}/{proto or 'tcp'}"
        bindings = published.get(key)
        if not bindings:
            raise errors.NotFound(f"no public port '{key}' published for {args.container}")
        for b in bindings:
            ctx.print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key, bindings in published.items():
        for b in bindings:
            ctx.print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0
