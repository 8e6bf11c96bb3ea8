"""``jupybox build --binder [DIR]``: an image from a repository's Binder files (see
:mod:`jupybox.env.binder`); ``--print`` shows the Dockerfile instead of building it."""

from __future__ import annotations

from .. import errors


def add_binder_options(p) -> None:
    g = p.add_argument_group("Binder builds (--binder [DIR]: requirements.txt, environment.yml, apt.txt, "
                             "runtime.txt, postBuild, start)")
    g.add_argument("--binder", action="store_true",
                   help="build the repository DIR (default .) from its Binder files, as repo2docker would")
    g.add_argument("--base", metavar="IMAGE", help="the base image: python3 and pip (default python:3.11-slim)")
    g.add_argument("--print", dest="print_dockerfile", action="store_true",
                   help="print the generated Dockerfile and build nothing")
    g.add_argument("--lock", metavar="FILE", help="a lock of exact versions and hashes: written after the build "
                                                  "when FILE is missing; when it exists, installed as it is")
    g.add_argument("--index-url", metavar="URL", help="pip's package index for the build")
    g.add_argument("--extra-index-url", metavar="URL", help="another package index")
    g.add_argument("--trusted-host", metavar="HOST", help="an index host pip may use without TLS")


def cmd_build_binder(args, ctx) -> int:
    from ..env import binder

    if args.file or args.target or args.output or args.secret:
        raise errors.UsageError("--binder generates the Dockerfile: -f, --target, -o and --secret do not apply")
    repo = args.context or "."
    if args.print_dockerfile:
        from ..image.store import ImageStore
        from ..paths import Layout

        store = ImageStore(Layout(ctx.root)) if args.base else None
        text, _ = binder.generate(repo, args.base, args.lock, store)
        ctx.out.write(text)
        return 0
    quiet = args.quiet or args.progress == "quiet"
    try:
        image, warnings = binder.build(repo, base=args.base, tags=args.tag, lock=args.lock, index_url=args.index_url,
                                       extra_index_url=args.extra_index_url, trusted_host=args.trusted_host,
                                       network=args.network or "host", no_cache=args.no_cache,
                                       progress="quiet" if quiet else args.progress, root=ctx.root, out=ctx.out,
                                       err=ctx.err)
    except errors.BuildError as e:
        print(str(e), file=ctx.err)
        return 1
    for w in warnings:
        print(f"jupybox: warning: {w}", file=ctx.err)
    if quiet:
        ctx.print(image.id)
        return 0
    ctx.print(f"Successfully built {image.short_id}")
    for ref in image.refs:
        ctx.print(f"Successfully tagged {ref}")
    if args.lock:
        ctx.print(f"Lock: {args.lock}")
    return 0
