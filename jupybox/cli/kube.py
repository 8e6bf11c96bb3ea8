"""kube generate | play | down (see :mod:`jupybox.kube`)."""

from __future__ import annotations

import os


def add_parsers(sub) -> None:
    p = sub.add_parser("kube", help="Kubernetes manifests from containers; run manifests locally")
    k = p.add_subparsers(dest="kube_verb", metavar="VERB", parser_class=type(p))
    q = k.add_parser("generate", help="A Pod (or Deployment + Service) from containers or compose projects")
    q.add_argument("names", nargs="*", metavar="CONTAINER|COMPOSE-PROJECT")
    q.add_argument("-f", "--filename", help="write the YAML to this file (default: standard output)")
    q.add_argument("-s", "--service", action="store_true", help="a Deployment and a Service per workload")
    q.add_argument("--push", metavar="REGISTRY", help="push the images to REGISTRY first and name them there")
    q.add_argument("--compose-file", action="append", default=[], metavar="FILE",
                   help="generate from a compose file's services instead (repeatable)")
    q.add_argument("-p", "--project-name", help="the compose project's name (with --compose-file)")
    q.set_defaults(func=cmd_generate)
    q = k.add_parser("play", help="Run a manifest's Pods and Deployments as containers")
    q.add_argument("file")
    q.set_defaults(func=cmd_play)
    q = k.add_parser("down", help="Remove what kube play made from a manifest")
    q.add_argument("-v", "--volumes", action="store_true", help="remove the claimed volumes too")
    q.add_argument("file")
    q.set_defaults(func=cmd_down)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])


def _warn(ctx):
    return lambda line: print(f"jupybox: kube: {line}", file=ctx.err)


def cmd_generate(args, ctx) -> int:
    from .. import kube

    docs, warnings = kube.generate(args.names, compose_files=args.compose_file, project_name=args.project_name,
                                   service=args.service, push=args.push, root=ctx.root)
    for line in warnings:
        _warn(ctx)(line)
    text = kube.to_yaml(docs)
    if args.filename:
        tmp = f"{args.filename}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.filename)
    else:
        ctx.out.write(text)
    return 0


def cmd_play(args, ctx) -> int:
    from .. import kube

    for name in kube.play(args.file, ctx.root, _warn(ctx)):
        ctx.print(name)
    return 0


def cmd_down(args, ctx) -> int:
    from .. import kube

    for name in kube.down(args.file, ctx.root, _warn(ctx), volumes=args.volumes):
        ctx.print(name)
    return 0
