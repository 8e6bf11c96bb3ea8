"""kernel install | list | remove: Jupyter kernels that run in a jupybox container.

    jupybox kernel install --name py-2g -m 2g --cpus 1        # "Python 3 (jupybox: host, 2 GB, 1 CPU)"
    jupybox kernel install --name deb --image debian-ipykernel --network none --user
    jupybox kernel list
    jupybox kernel remove py-2g

The kernelspec selects jupybox's kernel provisioner (see jupybox.jupyter.provisioner); the limits
are checked now, with the parser of ``jupybox run``, so a typo fails here with exit code 125.
"""

from __future__ import annotations

import json
import os

from .. import errors
from ..units import human_size, parse_size
from .format import table


def add_parsers(sub) -> None:
    p = sub.add_parser("kernel", help="Manage Jupyter kernels that run in a container")
    ksub = p.add_subparsers(dest="kernel_verb", metavar="VERB", parser_class=type(p))

    q = ksub.add_parser("install", help="Install a kernelspec whose kernel runs in a container")
    q.add_argument("--name", required=True, help="kernel name (letters, digits, - . _)")
    q.add_argument("--display-name", metavar="TEXT", help="name shown in JupyterLab (default: from the settings)")
    q.add_argument("--image", default="host", help="image the kernel runs in (default: host)")
    q.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, e.g. 2g")
    q.add_argument("--memory-swap", metavar="SIZE", help="memory+swap limit (default: no swap)")
    q.add_argument("--cpus", metavar="N", help="number of CPUs, e.g. 1.5")
    q.add_argument("--pids-limit", metavar="N", help="maximum number of processes (-1: unlimited)")
    q.add_argument("-v", "--volume", action="append", default=[], dest="volumes", metavar="SRC:DST[:ro]", help="bind mount SRC:DST[:ro]")
    q.add_argument("--tmpfs", action="append", default=[], metavar="DST[:OPTS]", help="tmpfs mount DST[:OPTIONS]")
    q.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="environment variable K=V")
    q.add_argument("--network", choices=("host", "none"), default="host",
                   help="host: share the server's network (default); none: no network, ipc sockets")
    cwd = q.add_mutually_exclusive_group()
    cwd.add_argument("--no-mount-cwd", dest="mount_cwd", action="store_false", default=True,
                     help="do not mount the notebook's directory into the kernel")
    cwd.add_argument("--mount-cwd", dest="mount_cwd", metavar="PATH",
                     help="mount the notebook's directory at PATH inside (default: the same path)")
    q.add_argument("--read-only", action="store_true", help="read-only root filesystem")
    q.add_argument("--persist-packages", action="store_true",
                   help="keep what %%pip installs across restarts (a named volume per kernel)")
    where = q.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix (the virtualenv)")
    where.add_argument("--prefix", metavar="P", help="install into PREFIX/share/jupyter/kernels")
    q.set_defaults(func=cmd_install)

    q = ksub.add_parser("list", aliases=["ls"], help="List the installed jupybox kernels")
    q.add_argument("-q", "--quiet", action="store_true", help="only names")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.set_defaults(func=cmd_list)

    q = ksub.add_parser("remove", aliases=["rm"], help="Remove jupybox kernelspecs")
    q.add_argument("names", nargs="+", metavar="NAME")
    q.set_defaults(func=cmd_remove)
    p.set_defaults(func=lambda args, ctx: (p.print_help(), 0)[1])


def _root(ctx) -> str | None:
    """The store the kernel must use: --root, or $JUPYBOX_ROOT when set (the server may not have it)."""
    root = ctx.root or os.environ.get("JUPYBOX_ROOT")
    return os.path.abspath(root) if root else None


def cmd_install(args, ctx) -> int:
    from ..jupyter import kernelspec

    config = {
        "image": args.image, "memory": args.memory, "memory_swap": args.memory_swap, "cpus": args.cpus,
        "pids_limit": args.pids_limit, "volumes": [_abs_volume(v) for v in args.volumes], "tmpfs": args.tmpfs,
        "network": args.network, "mount_cwd": args.mount_cwd, "read_only": args.read_only or None,
        "root": _root(ctx), "persist_packages": args.persist_packages or None,
    }
    config = {k: v for k, v in config.items() if v is not None}
    kernelspec.validate_config(config)  # before anything else: a bad limit is exit 125
    try:
        ctx.engine.store.resolve(args.image)
    except errors.ImageNotFound:
        print(f"jupybox: warning: image {args.image!r} is not in the store yet: pull or import it "
              "before starting the kernel", file=ctx.err)
    except errors.JupyboxError:
        pass
    path = kernelspec.install(args.name, display_name=args.display_name, env=args.env, user=args.user,
                              sys_prefix=args.sys_prefix, prefix=args.prefix, **config)
    ctx.print(f"Installed kernelspec {args.name.lower()} in {path}")
    from jupyter_client.kernelspec import KernelSpecManager

    if os.path.dirname(path) not in KernelSpecManager().kernel_dirs:
        print(f"jupybox: note: {os.path.dirname(path)} is not in Jupyter's kernel path: add "
              f"{os.path.dirname(os.path.dirname(path))} to JUPYTER_PATH", file=ctx.err)
    return 0


def _abs_volume(text: str) -> str:
    """-v ./data:/data -> an absolute source, as `jupybox run` resolves it, so the spec works anywhere."""
    src, sep, rest = text.partition(":")
    if sep and (src.startswith(".") or src.startswith("/")):
        return os.path.abspath(src) + sep + rest
    return text


def _row(k) -> list[str]:
    c = k.config
    mem = c.get("memory")
    return [
        k.name,
        c.get("image", "host"),
        human_size(parse_size(mem)) if mem not in (None, "") else "-",
        f"{float(c['cpus']):g}" if c.get("cpus") else "-",
        c.get("network", "host"),
        k.resource_dir,
    ]


def cmd_list(args, ctx) -> int:
    from ..jupyter import kernelspec

    kernels = kernelspec.list_kernels()
    if args.quiet:
        for k in kernels:
            ctx.print(k.name)
    elif args.format == "json":
        ctx.print(json.dumps([{"name": k.name, "display_name": k.display_name, "resource_dir": k.resource_dir,
                               "config": k.config, "env": k.env, "argv": k.argv} for k in kernels], indent=2))
    else:
        ctx.print(table([_row(k) for k in kernels], ["NAME", "IMAGE", "MEMORY", "CPUS", "NETWORK", "PATH"]))
    return 0


def cmd_remove(args, ctx) -> int:
    from ..jupyter import kernelspec

    failed = False
    for name in args.names:
        try:
            kernelspec.remove(name)
            ctx.print(name)
        except errors.JupyboxError as e:
            print(f"jupybox: {e}", file=ctx.err)
            failed = True
    return 1 if failed else 0
