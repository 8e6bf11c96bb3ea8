"""ps, logs, inspect, stop, kill, rm, stats, wait, prune: the verbs that look at and end containers."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time

from .. import errors
from .format import ago, dumps, table, truncate
from .status import container_status


def add_parsers(sub) -> None:
    p = sub.add_parser("ps", help="List containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running)")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")
    p.add_argument("--no-trunc", action="store_true")
    p.add_argument("--format", help="'json' or 'table'")
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help="Fetch the logs of a container")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", default="all", help="number of lines from the end (default all)")
    p.add_argument("container")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("inspect", help="Low-level information on containers or images, as JSON")
    p.add_argument("--type", choices=["container", "image"])
    p.add_argument("-f", "--format", help="a key path like .State.Status")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("stop", help="Stop running containers (SIGTERM, then SIGKILL)")
    p.add_argument("-t", "--time", type=float, default=10, help="seconds to wait before killing")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help="Send a signal to running containers")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("rm", help="Remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("-v", "--volumes", action="store_true", help="(accepted; anonymous volumes are kept)")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("stats", help="Live CPU, memory and pids of running containers")
    p.add_argument("--no-stream", action="store_true", help="print once and exit")
    p.add_argument("--format", help="'json' or 'table'")
    p.add_argument("-a", "--all", action="store_true")
    p.add_argument("containers", nargs="*")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("wait", help="Block until containers stop, print their exit codes")
    p.add_argument("containers", nargs="+")
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("prune", help="Remove stopped containers and whatever a crash left behind")
    p.add_argument("-f", "--force", action="store_true", help="(accepted: no prompt is ever shown)")
    p.set_defaults(func=cmd_prune)


# -- ps ----------------------------------------------------------------------------------------
def _status_text(state) -> str:
    from ..runtime.container import age

    s = state.status.value
    if s == "running":
        health = (state.health or {}).get("Status")
        suffix = {"starting": " (health: starting)", "healthy": " (healthy)", "unhealthy": " (unhealthy)"}.get(
            health, "")
        return f"Up {ago(age(state.started_at))}{suffix}"
    if s == "exited" and state.restarting:
        return f"Restarting ({state.exit_code}) {ago(age(state.finished_at))} ago"
    if s == "exited":
        return f"Exited ({state.exit_code}) {ago(age(state.finished_at))} ago"
    return s.capitalize()


def ps_rows(engine, all_: bool) -> list[dict]:
    from ..runtime.container import age

    rows = []
    published = _published(engine)
    for rec in engine.records.all():
        try:
            state = engine.reconcile(rec)
        except errors.ContainerNotFound:
            continue
        if not all_ and state.status.value != "running":
            continue
        cfg = rec.config
        rows.append({
            "ID": rec.id, "Image": cfg["image"]["ref"], "Command": shlex.join(cfg["argv"]),
            "CreatedAt": cfg.get("created", ""), "RunningFor": ago(age(cfg.get("created", ""))),
            "State": "restarting" if state.status.value == "exited" and state.restarting else state.status.value,
            "Status": _status_text(state), "Names": rec.name,
            "ExitCode": state.exit_code, "Pid": state.pid,
            "Ports": ", ".join(published.get(rec.id, [])) if state.status.value == "running" else "",
        })
    return rows


def _published(engine) -> dict[str, list[str]]:
    """Container id -> its published ports as ps shows them (nothing to read without networks)."""
    if not (engine.layout.root / "networks").exists():
        return {}
    from ..network import networks
    from ..network.ports import describe

    return {cid: [describe(p) for p in ports] for cid, ports in networks(engine.layout).ports_by_container().items()}


def cmd_ps(args, ctx) -> int:
    ctx.adopt_orphans()
    rows = ps_rows(ctx.engine, args.all)
    if args.quiet:
        for r in rows:
            ctx.print(r["ID"] if args.no_trunc else r["ID"][:12])
        return 0
    if args.format == "json":
        for r in rows:
            ctx.print(json.dumps(r))
        return 0
    body = [[r["ID"] if args.no_trunc else r["ID"][:12], truncate(r["Image"], 30),
             json.dumps(r["Command"] if args.no_trunc else truncate(r["Command"], 22), ensure_ascii=False),
             f"{r['RunningFor']} ago", r["Status"], r["Ports"], r["Names"]] for r in rows]
    ctx.print(table(body, ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]))
    return 0


# -- logs --------------------------------------------------------------------------------------
@container_status
def cmd_logs(args, ctx) -> int:
    engine = ctx.engine
    if args.follow:
        ctx.adopt_orphans()
    rec = engine.records.get(args.container)
    tail = None if args.tail == "all" else int(args.tail)
    out_f = open(rec.stdout_log, "ab+")
    err_f = open(rec.stderr_log, "ab+")
    try:
        for f, stream in ((out_f, sys.stdout), (err_f, sys.stderr)):
            f.seek(0)
            data = f.read()
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            stream.buffer.write(data)
            stream.flush()
        if not args.follow:
            return 0
        while True:
            moved = False
            for f, stream in ((out_f, sys.stdout), (err_f, sys.stderr)):
                data = f.read()
                if data:
                    stream.buffer.write(data)
                    stream.flush()
                    moved = True
            if not moved:
                if engine.reconcile(rec).status.value != "running":
                    return 0
                time.sleep(0.1)
    finally:
        out_f.close()
        err_f.close()


# -- inspect -----------------------------------------------------------------------------------
def _pick(obj, path: str):
    for key in [k for k in path.split(".") if k]:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _text(value) -> str:
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


# single braces too: IPython's line magics turn "{{" into "{" before %container sees the line
_ACTION = re.compile(r"{{?\s*(json\s+)?(\.[\w.]*)\s*}}?")


def render(template: str, obj) -> str:
    """The part of Go's text/template that `docker inspect -f` is used with: literal text,
    ``{{.A.B}}`` and ``{{json .A.B}}``. Anything else is a one-line error, not an empty line."""
    out = _ACTION.sub(lambda m: json.dumps(_pick(obj, m.group(2))) if m.group(1) else _text(_pick(obj, m.group(2))),
                      template)
    if "{{" in out:
        raise errors.UsageError(f"template: unsupported action in {template!r} (use {{{{.Path}}}} or {{{{json .Path}}}})")
    return out


@container_status
def cmd_inspect(args, ctx) -> int:
    from ..runtime.container import inspect_record

    engine = ctx.engine
    ctx.adopt_orphans()
    out = []
    for name in args.names:
        item = None
        if args.type != "image":
            try:
                item = inspect_record(engine, engine.records.get(name))
            except errors.ContainerNotFound:
                if args.type == "container":
                    raise
        if item is None:
            try:
                item = engine.store.resolve(name).inspect()
            except errors.ImageNotFound:
                raise errors.NotFound(f"no such object: {name or repr(name)}") from None
        out.append(item)
    if args.format:
        for item in out:
            ctx.print(render(args.format, item))
        return 0
    ctx.print(dumps(out))
    return 0


# -- stop, kill, rm, wait ----------------------------------------------------------------------
def _each(ctx, names, fn) -> int:
    """docker's behaviour for multi-container verbs: go on, report each failure, exit 1 at the end."""
    failed = False
    for name in names:
        try:
            fn(ctx.engine.records.get(name))
            ctx.print(name)
        except errors.JupyboxError as e:
            print(f"jupybox: {e}", file=ctx.err)
            failed = True
    return 1 if failed else 0


def cmd_stop(args, ctx) -> int:
    return _each(ctx, args.containers, lambda rec: ctx.service().call("stop", id=rec.id, timeout=args.time))


def cmd_kill(args, ctx) -> int:
    from ..runtime.engine import signal_number

    sig = signal_number(args.signal)
    return _each(ctx, args.containers, lambda rec: ctx.service().call("kill", id=rec.id, signal=sig))


def cmd_rm(args, ctx) -> int:
    return _each(ctx, args.containers, lambda rec: ctx.service().call("remove", id=rec.id, force=args.force))


@container_status
def cmd_wait(args, ctx) -> int:
    for name in args.containers:
        reply = ctx.service().call("wait", id=ctx.engine.records.get(name).id)
        ctx.print(reply["exit_code"] if reply.get("exit_code") is not None else -1)
    return 0


def cmd_prune(args, ctx) -> int:
    result = ctx.service().call("prune")["result"]
    if result["containers"]:
        ctx.print("Deleted Containers:")
        for cid in result["containers"]:
            ctx.print(cid)
    if result["cgroups"]:
        ctx.print(f"Removed {len(result['cgroups'])} stale cgroup(s)")
    if result.get("cells"):
        ctx.print(f"Removed {result['cells']} notebook cell director(y/ies) whose kernel is gone")
    ctx.print(f"Total reclaimed: {len(result['containers'])} container(s)")
    return 0


# -- stats -------------------------------------------------------------------------------------
def stats_row(rec, st, prev=None) -> dict:
    from ..units import human_size

    cpu = 0.0
    if prev is not None and st.timestamp > prev.timestamp:
        cpu = (st.cpu_usage_ns - prev.cpu_usage_ns) / 1e9 / (st.timestamp - prev.timestamp) * 100
    limit = st.memory_limit
    mem_pct = (st.memory_current / limit * 100) if limit else 0.0
    return {
        "ID": rec.id[:12], "Name": rec.name, "CPUPerc": f"{cpu:.2f}%",
        "MemUsage": f"{human_size(st.memory_current)} / {human_size(limit) if limit else 'unlimited'}",
        "MemPerc": f"{mem_pct:.2f}%" if limit else "--", "PIDs": str(st.pids_current),
        "cpu_percent": cpu, "memory": st.memory_current, "memory_limit": limit, "memory_peak": st.memory_peak,
        "pids": st.pids_current, "pids_limit": st.pids_limit, "oom_kills": st.oom_kills,
        "throttled_periods": st.nr_throttled,
    }


@container_status
def cmd_stats(args, ctx) -> int:
    engine = ctx.engine
    ctx.adopt_orphans()
    if args.containers:
        recs = [engine.records.get(n) for n in args.containers]
    else:
        recs = [r for r in engine.records.all() if engine.reconcile(r).status.value == "running"]
    def take() -> dict:
        sample = {}
        for rec in recs:
            try:
                sample[rec.id] = (rec, engine.stats(rec))
            except errors.JupyboxError:
                continue
        return sample

    # docker stats --no-stream samples twice to show a CPU rate
    prev = {k: v[1] for k, v in take().items()}
    time.sleep(0.25)
    while True:
        sample = take()
        rows = [stats_row(rec, st, prev.get(cid)) for cid, (rec, st) in sample.items()]
        if args.format == "json":
            for r in rows:
                ctx.print(json.dumps({k: v for k, v in r.items()}))
        else:
            if not args.no_stream and os.isatty(1):
                ctx.out.write("\033[2J\033[H")
            ctx.print(table([[r["ID"], r["Name"], r["CPUPerc"], r["MemUsage"], r["MemPerc"], r["PIDs"]] for r in rows],
                            ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS"]))
        ctx.out.flush()
        if args.no_stream or not sample:
            return 0
        prev = {k: v[1] for k, v in sample.items()}
        time.sleep(1)
