"""compose: several containers from one file (see :mod:`jupybox.compose`).

    jupybox compose [-f FILE]... [-p NAME] [--env-file FILE]... [--profile P]... VERB ...

Errors in the project (a bad file, a cycle, a missing variable, a port clash) are one line with
the file, the line and the key, and exit 1, as docker compose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .. import errors


def add_parsers(sub) -> None:
    p = sub.add_parser("compose", help="Define and run multi-container applications")
    p.add_argument("-f", "--file", dest="files", action="append", default=[], metavar="FILE",
                   help="compose file (repeatable: later files override earlier ones)")
    p.add_argument("--project-directory", help="working directory (default: the first file's directory)")
    add_project_options(p)
    p.add_argument("--ansi", choices=["never", "always", "auto"], default="auto")
    v = p.add_subparsers(dest="compose_verb", metavar="VERB", parser_class=type(p))

    q = v.add_parser("up", help="Create and start containers")
    q.add_argument("-d", "--detach", action="store_true", help="run in the background")
    add_up_options(q)
    q.add_argument("-t", "--timeout", type=float, help="shutdown timeout when attached")
    q.add_argument("services", nargs="*")
    q = v.add_parser("down", help="Stop and remove containers, networks (and volumes with -v)")
    q.add_argument("-v", "--volumes", action="store_true", help="remove named and anonymous volumes")
    q.add_argument("--rmi", choices=["local", "all"], help="remove images: local (built ones) or all")
    q.add_argument("--remove-orphans", action="store_true")
    q.add_argument("-t", "--timeout", type=float)
    q = v.add_parser("ps", help="List containers")
    q.add_argument("-a", "--all", action="store_true")
    q.add_argument("-q", "--quiet", action="store_true")
    q.add_argument("--services", dest="list_services", action="store_true")
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.add_argument("services_", nargs="*", metavar="SERVICE")
    q = v.add_parser("logs", help="View output from containers")
    q.add_argument("-f", "--follow", action="store_true")
    q.add_argument("--tail", default="all")
    q.add_argument("-t", "--timestamps", action="store_true")
    q.add_argument("--no-color", action="store_true")
    q.add_argument("--no-log-prefix", action="store_true")
    q.add_argument("services", nargs="*")
    for name, text in (("start", "Start services"), ("stop", "Stop services"), ("restart", "Restart services"),
                       ("build", "Build services"), ("pull", "Pull images"), ("push", "Push images"),
                       ("top", "Display the running processes"), ("images", "List images used by containers")):
        q = v.add_parser(name, help=text)
        if name in ("stop", "restart"):
            q.add_argument("-t", "--timeout", type=float)
        if name == "pull":
            q.add_argument("--ignore-pull-failures", action="store_true")
        if name == "build":
            q.add_argument("-q", "--quiet", action="store_true")
        q.add_argument("services", nargs="*")
    q = v.add_parser("exec", help="Execute a command in a running container")
    q.add_argument("-d", "--detach", action="store_true")
    q.add_argument("-e", "--env", action="append", default=[])
    q.add_argument("-u", "--user")
    q.add_argument("-w", "--workdir")
    q.add_argument("-T", "--no-TTY", action="store_true")
    q.add_argument("--index", type=int, default=1)
    q.add_argument("service")
    q.add_argument("command", nargs=argparse.REMAINDER)
    q = v.add_parser("run", help="Run a one-off command on a service")
    q.add_argument("-d", "--detach", action="store_true")
    q.add_argument("--rm", dest="remove", action="store_true")
    q.add_argument("--name")
    q.add_argument("-e", "--env", action="append", default=[])
    q.add_argument("--entrypoint")
    q.add_argument("-u", "--user")
    q.add_argument("-w", "--workdir")
    q.add_argument("-p", "--publish", action="append", default=[])
    q.add_argument("--service-ports", action="store_true")
    q.add_argument("--no-deps", action="store_true")
    q.add_argument("-T", "--no-TTY", action="store_true")
    q.add_argument("service")
    q.add_argument("command", nargs=argparse.REMAINDER)
    q = v.add_parser("config", help="Print the normalized compose model")
    q.add_argument("--format", choices=["yaml", "json"], default="yaml")
    q.add_argument("-q", "--quiet", action="store_true")
    q.add_argument("--services", dest="list_services", action="store_true")
    q.add_argument("--volumes", dest="list_volumes", action="store_true")
    q.add_argument("--networks", dest="list_networks", action="store_true")
    q.add_argument("--profiles", dest="list_profiles", action="store_true")
    q.add_argument("--hash", metavar="SERVICES")
    p.set_defaults(func=cmd_compose)


def add_project_options(p) -> None:
    """compose's options about the project; shared with the %%compose magic (one parser)."""
    p.add_argument("-p", "--project-name", help="project name (default: the directory's name)")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE", help="alternate environment file")
    p.add_argument("--profile", dest="profiles", action="append", default=None, metavar="PROFILE",
                   help="enable services of this profile (repeatable)")


def add_up_options(q) -> None:
    """compose up's options; shared with the %%compose magic, which is an `up -d` of the cell."""
    q.add_argument("--build", action="store_true", help="build images before starting")
    q.add_argument("--no-build", action="store_true")
    q.add_argument("--wait", action="store_true", help="wait until services are running/healthy (implies -d)")
    q.add_argument("--wait-timeout", type=float, help="seconds to wait for --wait")
    q.add_argument("--force-recreate", action="store_true")
    q.add_argument("--no-recreate", action="store_true")
    q.add_argument("--no-start", action="store_true")
    q.add_argument("--remove-orphans", action="store_true")
    q.add_argument("--pull", choices=["always", "missing", "never"])


def up_options(args) -> dict:
    """``compose.actions.up``'s keyword arguments from :func:`add_up_options`' options."""
    return dict(build=args.build, wait=args.wait, wait_timeout=args.wait_timeout, force_recreate=args.force_recreate,
                no_recreate=args.no_recreate, no_build=args.no_build, no_start=args.no_start,
                remove_orphans=args.remove_orphans, pull=args.pull)


def load_project(args, services=None):
    from ..compose import load

    project = load(args.files or None, project_name=args.project_name, project_directory=args.project_directory,
                   env_files=args.env_file or None, profiles=args.profiles, services=services)
    for w in project.warnings:
        print(f"WARN: {w}", file=sys.stderr)
    return project


def cmd_compose(args, ctx) -> int:
    verb = args.compose_verb
    if verb is None:
        raise errors.UsageError("compose: a verb is needed (up, down, ps, logs, config, ...): "
                                "jupybox compose --help")
    return VERBS[verb](args, ctx)


# verbs that find a project's containers by their labels: with -p, they need no file
BY_LABEL = ("down", "ps", "logs", "stop", "start", "restart", "top", "images")


def _session(args, ctx, services=None):
    from ..compose.actions import Session
    from ..compose.loader import find_files
    from ..compose.project import Project

    if (args.project_name and not args.files and args.compose_verb in BY_LABEL and not os.environ.get("COMPOSE_FILE")
            and not find_files(os.getcwd())):
        return Session(Project.named(args.project_name, os.getcwd()), root=ctx.root, err=ctx.err)
    return Session(load_project(args, services), root=ctx.root, err=ctx.err)


def _env(items) -> dict:
    from ..runtime.options import parse_env

    return parse_env(items)


def cmd_config(args, ctx) -> int:
    import yaml

    project = load_project(args)
    if args.quiet:
        return 0
    if args.list_services:
        for s in project.select():
            ctx.print(s)
        return 0
    if args.list_volumes:
        for v in sorted(project.volumes):
            ctx.print(v)
        return 0
    if args.list_networks:
        for n in sorted(project.networks):
            ctx.print(n)
        return 0
    if args.list_profiles:
        every = {**project.services, **project.disabled}
        for p in sorted({p for s in every.values() for p in s.get("profiles") or []}):
            ctx.print(p)
        return 0
    if args.hash:
        from ..compose.convert import config_hash

        names = project.select() if args.hash == "*" else args.hash.split(",")
        for s in names:
            project.service(s)
            ctx.print(f"{s} {config_hash(project, s)}")
        return 0
    model = project.config()
    if args.format == "json":
        ctx.print(json.dumps(model, indent=2))
    else:
        ctx.out.write(yaml.safe_dump(model, sort_keys=False, default_flow_style=False, allow_unicode=True))
    return 0


def cmd_up(args, ctx) -> int:
    from ..compose import actions

    session = _session(args, ctx, args.services)
    actions.up(session, args.services or None, **up_options(args))
    if args.detach or args.wait or args.no_start:
        return 0
    return _attached(session, args, ctx)


def _attached(session, args, ctx) -> int:
    """``up`` without -d: follow the logs; Ctrl-C stops the services, as docker compose does."""
    from ..compose import actions, logs

    try:
        logs.show(session, args.services or None, follow=True, color=_color(args, ctx))
    except KeyboardInterrupt:
        print("Gracefully stopping... (press Ctrl+C again to force)", file=ctx.err)
        actions.stop(session, args.services or None, args.timeout)
        return 130
    return 0


def _color(args, ctx) -> bool:
    if args.ansi == "never" or getattr(args, "no_color", False):
        return False
    return args.ansi == "always" or ctx.out.isatty()


def cmd_down(args, ctx) -> int:
    from ..compose import actions

    actions.down(_session(args, ctx), volumes=args.volumes, rmi=args.rmi, remove_orphans=args.remove_orphans,
                 timeout=args.timeout)
    return 0


def cmd_ps(args, ctx) -> int:
    from ..compose import views
    from .format import table

    session = _session(args, ctx)
    if args.list_services:
        for s in sorted({c.config["spec"]["labels"].get("com.docker.compose.service") for c in session.containers()
                         if args.all or c.status == "running"}):
            ctx.print(s)
        return 0
    rows = views.ps_rows(session, args.services_ or None, args.all)
    if args.quiet:
        for r in rows:
            ctx.print(r["ID"])
    elif args.format == "json":
        ctx.print(json.dumps([{k: v for k, v in r.items()} for r in rows]))
    else:
        from .format import truncate

        body = [[r["Name"], r["Image"], json.dumps(truncate(r["Command"], 22), ensure_ascii=False), r["Service"],
                 f"{_ago(r['Created'])} ago", r["Status"], r["Ports"]] for r in rows]
        ctx.print(table(body, ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]))
    return 0


def _ago(iso: str) -> str:
    from ..runtime.container import age
    from .format import ago

    return ago(age(iso))


def cmd_logs(args, ctx) -> int:
    from ..compose import logs

    tail = None if args.tail == "all" else int(args.tail)
    try:
        logs.show(_session(args, ctx), args.services or None, follow=args.follow, tail=tail,
                  color=_color(args, ctx), prefix=not args.no_log_prefix, timestamps=args.timestamps,
                  write=lambda s: (ctx.out.write(s), ctx.out.flush()))
    except KeyboardInterrupt:
        return 130
    return 0


def _simple(name):
    def run(args, ctx) -> int:
        from ..compose import actions

        session = _session(args, ctx)
        services = args.services or None
        if name in ("stop", "restart"):
            getattr(actions, name)(session, services, args.timeout)
        elif name == "pull":
            actions.pull(session, services, args.ignore_pull_failures)
        elif name == "build":
            actions.build(session, services, args.quiet)
        else:
            getattr(actions, name)(session, services)
        return 0

    return run


def cmd_exec(args, ctx) -> int:
    from ..compose import actions

    if not args.command:
        raise errors.UsageError("compose exec: a command is needed: exec SERVICE COMMAND [ARGS...]")
    if args.detach:
        raise errors.UsageError("compose exec: -d is not supported (the command runs attached)")
    session = _session(args, ctx)
    session.project.service(args.service)
    return actions.exec_(session, args.service, args.command, index=args.index, env=_env(args.env), user=args.user,
                         workdir=args.workdir)


def cmd_run(args, ctx) -> int:
    from ..compose import actions

    session = _session(args, ctx, [args.service])
    return actions.run(session, args.service, args.command or None, remove=args.remove, detach=args.detach,
                       name=args.name, env=_env(args.env), entrypoint=args.entrypoint, user=args.user,
                       workdir=args.workdir, no_deps=args.no_deps, service_ports=args.service_ports,
                       publish=args.publish)


def cmd_top(args, ctx) -> int:
    from ..compose import views
    from .format import table

    for name, rows in views.top_rows(_session(args, ctx), args.services or None).items():
        ctx.print(name)
        ctx.print(table(rows, ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]))
        ctx.print("")
    return 0


def cmd_images(args, ctx) -> int:
    from ..compose import views
    from ..units import human_size_si
    from .format import table

    rows = views.image_rows(_session(args, ctx), args.services or None)
    ctx.print(table([[r["Container"], r["Repository"], r["Tag"], r["ID"], human_size_si(r["Size"])] for r in rows],
                    ["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]))
    return 0


VERBS = {
    "config": cmd_config, "up": cmd_up, "down": cmd_down, "ps": cmd_ps, "logs": cmd_logs, "exec": cmd_exec,
    "run": cmd_run, "top": cmd_top, "images": cmd_images,
    **{n: _simple(n) for n in ("start", "stop", "restart", "build", "pull", "push")},
}
