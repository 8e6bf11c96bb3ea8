"""build: a Dockerfile → an image (see :mod:`jupybox.dockerfile`); builder: the build cache
(``builder du`` lists the cache mounts, ``builder prune`` removes them and the step cache)."""

from __future__ import annotations

import argparse
import os
import sys

from .. import errors


def add_parsers(sub) -> None:
    p = sub.add_parser("build", help="Build an image from a Dockerfile")
    p.add_argument("-f", "--file", metavar="FILE", help="the Dockerfile (default CONTEXT/Dockerfile; - for stdin)")
    add_build_options(p)
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty", "quiet"],
                   help="plain: one line per step and RUN output; tty: the same, RUN output shown in place; "
                        "auto: tty on a terminal, else plain")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id (and errors)")
    p.add_argument("--runner", choices=["in-process", "daemon"], help=argparse.SUPPRESS)
    p.add_argument("context", nargs="?", help="the build context directory (- : none, Dockerfile on stdin)")
    from .binder import add_binder_options

    add_binder_options(p)  # --binder [DIR]: a repository's Binder files (jupybox.env.binder)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("builder", help="Manage the build cache (du, prune)")
    bsub = p.add_subparsers(dest="builder_verb", metavar="VERB", parser_class=type(p))
    q = bsub.add_parser("du", help="List the cache mounts (RUN --mount=type=cache) and their sizes")
    q.set_defaults(func=cmd_builder_du)
    q = bsub.add_parser("prune", help="Remove the build cache: the cache mounts not in use and the step cache")
    q.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    q.add_argument("-a", "--all", action="store_true", help="accepted for docker's sake: everything goes anyway")
    q.set_defaults(func=cmd_builder_prune)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1] if not getattr(args, "builder_verb", None) else 0)


def add_build_options(p) -> None:
    """docker build's options about the image; shared with the %%dockerfile magic (one parser)."""
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="name the image")
    p.add_argument("--build-arg", action="append", default=[], metavar="K[=V]",
                   help="set a build-time variable (K alone: its value in this environment)")
    p.add_argument("--target", metavar="STAGE", help="build this stage (and what it needs) only")
    p.add_argument("--no-cache", action="store_true", help="use neither the step cache nor the cache mounts")
    p.add_argument("--pull", action="store_true", help="always pull the base images first")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="add a label to the image")
    p.add_argument("--network", help="network of RUN steps: none (default; host with --binder) or host")
    p.add_argument("--secret", action="append", default=[], metavar="id=ID,src=FILE|env=VAR",
                   help="a secret for RUN --mount=type=secret (never stored in the image)")
    p.add_argument("-o", "--output", action="append", default=[], metavar="type=local|tar,dest=PATH",
                   help="also write the image's files to a directory or a tar (dest=- : stdout)")
    p.add_argument("--iidfile", metavar="FILE", help="write the image id to FILE")


def build_options(args) -> dict:
    """``jupybox.dockerfile.build()``'s keyword arguments from :func:`add_build_options`' options."""
    from ..dockerfile.export import parse_output
    from ..dockerfile.secrets import parse_secrets

    return dict(tags=list(args.tag), build_args=_pairs(args.build_arg, "--build-arg", True), target=args.target,
                no_cache=args.no_cache, labels=_pairs(args.label, "--label"), network=args.network or "none",
                pull="always" if args.pull else True, secrets=parse_secrets(args.secret),
                outputs=[parse_output(o) for o in args.output], iidfile=args.iidfile)


def _pairs(items: list[str], what: str, from_env: bool = False) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise errors.UsageError(f"invalid {what} {item!r}: expected KEY=VALUE")
        if not eq:
            if from_env:
                if k in os.environ:
                    out[k] = os.environ[k]
                continue
            v = ""
        out[k] = v
    return out


def cmd_build(args, ctx) -> int:
    if args.binder:
        from .binder import cmd_build_binder

        return cmd_build_binder(args, ctx)
    if args.context is None:
        raise errors.UsageError("build: a context directory is required (or --binder [DIR])")
    from ..dockerfile import build

    quiet = args.quiet or args.progress == "quiet"
    context = None if args.context == "-" else args.context
    dockerfile = args.file
    if args.context == "-" or dockerfile == "-":
        if dockerfile not in (None, "-"):
            raise errors.UsageError("the context is stdin: the Dockerfile cannot also come from a file")
        dockerfile = sys.stdin
    options = build_options(args)
    to_stdout = any(o.dest == "-" for o in options["outputs"])
    progress = "quiet" if quiet else args.progress
    try:
        image = build(context, dockerfile, progress=progress, root=ctx.root, runner=args.runner,
                      out=ctx.err if to_stdout else ctx.out, err=ctx.err, **options)
    except errors.BuildError as e:
        print(str(e), file=ctx.err)
        return 1
    say = (lambda text: print(text, file=ctx.err)) if to_stdout else ctx.print  # stdout carries the tar
    if quiet:
        say(image.id)
        return 0
    say(f"Successfully built {image.short_id}")
    for ref in image.refs:
        if any(ref == t or ref == f"{t}:latest" or ref.endswith("/" + t) or ref.endswith("/" + t + ":latest")
               for t in args.tag):
            say(f"Successfully tagged {ref}")
    return 0


def _cache_mounts(ctx):
    from ..dockerfile.cachemounts import CacheMounts
    from ..paths import Layout

    layout = Layout(ctx.root)
    return layout, CacheMounts(layout.root, layout.root / "tmp")


def cmd_builder_du(args, ctx) -> int:
    import time

    from ..units import human_size_si
    from .format import table

    _, mounts = _cache_mounts(ctx)
    rows = [[e["key"][:12], e["id"], str(len(e["instances"])), human_size_si(e["size"]),
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["last_used"]))] for e in mounts.entries()]
    ctx.print(table(rows, ["CACHE ID", "MOUNT ID", "INSTANCES", "SIZE", "LAST USED"]))
    total = sum(e["size"] for e in mounts.entries())
    ctx.print(f"Total:\t{human_size_si(total)}")
    return 0


def cmd_builder_prune(args, ctx) -> int:
    from ..dockerfile.cache import BuildCache
    from ..units import human_size_si

    if not args.force:
        ctx.out.write("WARNING! This will remove all build cache.\nAre you sure you want to continue? [y/N] ")
        ctx.out.flush()
        if sys.stdin.readline().strip().lower() != "y":
            ctx.print("Total:\t0B")
            return 0
    layout, mounts = _cache_mounts(ctx)
    removed, freed = mounts.prune()
    freed += BuildCache(layout.root).clear()
    if removed:
        ctx.print("ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED")
        for e in removed:
            ctx.print(f"{e['key'][:12]}*\ttrue\t{human_size_si(e['size'])}\tcache mount {e['id']}")
    ctx.print(f"Total:\t{human_size_si(freed)}")
    return 0
