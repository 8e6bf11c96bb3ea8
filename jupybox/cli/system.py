"""system shutdown | reset: the store as a whole (its service, and everything it made on the host)."""

from __future__ import annotations

from .. import errors


def add_parsers(sub) -> None:
    p = sub.add_parser("system", help="Manage the store: its service, and what it made on this machine")
    ssub = p.add_subparsers(dest="system_verb", metavar="VERB", parser_class=type(p))
    q = ssub.add_parser("shutdown", help="Stop the store's service (refused while containers run, unless -f)")
    q.add_argument("-f", "--force", action="store_true", help="kill the running containers first")
    q.set_defaults(func=cmd_shutdown)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])


def cmd_shutdown(args, ctx) -> int:
    from ..paths import Layout
    from ..service import stop

    try:
        stop(Layout(ctx.root).root, force=args.force)
    except errors.Conflict as e:
        raise errors.Conflict(f"{e}") from None
    return 0
