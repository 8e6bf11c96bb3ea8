"""build: a Dockerfile → an image (see :mod:`jupybox.dockerfile`)."""

from __future__ import annotations

import argparse
import os
import sys

from .. import errors


def add_parsers(sub) -> None:
    p = sub.add_parser("build", help="Build an image from a Dockerfile")
    p.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="name the image")
    p.add_argument("-f", "--file", metavar="FILE", help="the Dockerfile (default CONTEXT/Dockerfile; - for stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help="set a build-time variable")
    p.add_argument("--target", metavar="STAGE", help="build this stage (and what it needs) only")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="add a label to the image")
    p.add_argument("--network", default="none", help="network of RUN steps: none (default) or host")
    p.add_argument("--progress", default="auto", choices=["auto", "plain", "tty", "quiet"],
                   help="output: auto/plain (one line per step, RUN output), quiet")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id (and errors)")
    p.add_argument("--runner", choices=["in-process", "daemon"], help=argparse.SUPPRESS)
    p.add_argument("context", help="the build context directory (- : none, Dockerfile on stdin)")
    p.set_defaults(func=cmd_build)


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
    from ..dockerfile import build

    quiet = args.quiet or args.progress == "quiet"
    context = None if args.context == "-" else args.context
    dockerfile = args.file
    if args.context == "-" or dockerfile == "-":
        if dockerfile not in (None, "-"):
            raise errors.UsageError("the context is stdin: the Dockerfile cannot also come from a file")
        dockerfile = sys.stdin
    progress = "quiet" if quiet else ("plain" if args.progress == "tty" else args.progress)
    try:
        image = build(context, dockerfile, tags=args.tag, build_args=_pairs(args.build_arg, "--build-arg", True),
                      target=args.target, no_cache=args.no_cache, labels=_pairs(args.label, "--label"),
                      network=args.network, progress=progress, root=ctx.root, runner=args.runner,
                      out=ctx.out, err=ctx.err)
    except errors.BuildError as e:
        print(str(e), file=ctx.err)
        return 1
    if quiet:
        ctx.print(image.id)
        return 0
    ctx.print(f"Successfully built {image.short_id}")
    for ref in image.refs:
        if any(ref == t or ref == f"{t}:latest" or ref.endswith("/" + t) or ref.endswith("/" + t + ":latest")
               for t in args.tag):
            ctx.print(f"Successfully tagged {ref}")
    return 0
