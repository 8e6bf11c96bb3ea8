"""system shutdown | reset: the store as a whole (its service, and everything it made on the host)."""

from __future__ import annotations

from .. import errors


def add_parsers(sub) -> None:
    p = sub.add_parser("system", help="Manage the store: its service, and what it made on the host")
    ssub = p.add_subparsers(dest="system_verb", metavar="VERB", parser_class=type(p))
    q = ssub.add_parser("shutdown", help="Stop the store's service (refused while containers run, unless -f)")
    q.add_argument("-f", "--force", action="store_true", help="kill the running containers first")
    q.set_defaults(func=cmd_shutdown)
    q = ssub.add_parser("reset", help="Remove the store and everything it made on the host: its containers "
                                      "(killed), service, bridges, nftables table, cgroups, images, volumes")
    q.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    q.set_defaults(func=cmd_reset)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])


def cmd_shutdown(args, ctx) -> int:
    from ..paths import Layout
    from ..service import stop

    try:
        stop(Layout(ctx.root).root, force=args.force)
    except errors.Conflict as e:
        raise errors.Conflict(f"{e}") from None
    return 0


def cmd_reset(args, ctx) -> int:
    import os
    import sys

    from ..api import reset
    from ..paths import Layout

    root = Layout(ctx.root).root
    if not root.exists():
        ctx.print(f"{root}: no store here")
        return 0
    if not args.force:
        if not os.isatty(0):
            raise errors.UsageError("system reset removes the whole store: give -f to confirm")
        print(f"WARNING! This removes the store {root}: every container (killed), image, volume and network, "
              f"and what it made on the host.\nAre you sure you want to continue? [y/N] ", end="", file=sys.stderr,
              flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 1
    removed = reset(root)
    net = removed.get("network") or {}
    ctx.print(f"Removed {len(removed['containers'])} container(s), {len(net.get('bridges', []))} bridge(s), "
              f"{len(net.get('tables', []))} nftables table(s), and the store {root}")
    return 0
