"""``%%compose``: a compose project as a cell, with a live table of its services.

    %%compose -p shop -o urls
    services:
      web: {image: busybox, command: httpd -f -p 8080, ports: ["8080"]}
      db:  {image: redis-bookworm, healthcheck: {test: redis-cli ping, interval: 1s}}

    urls["web"]                     # "127.0.0.1:32768": service -> published address
    %compose ps                     # the last project: ps, logs [SERVICE...], down [-v], stop,
    %compose logs web               #   start, restart, up, config
    %compose down -v

The cell brings the project up (detached, as ``jupybox compose up -d``; ``--wait`` waits for
healthchecks) while a table under it shows each container's state, health, published ports, CPU
and memory (read from its cgroup by ``Container.stats()``, twice a second, as the ``%%container``
chart reads them); when the services are up, or something failed, the table becomes a static
HTML table, with the error in its last row. Errors in the YAML are IPython UsageErrors naming the
cell's line and key; nothing is started then.
"""

from __future__ import annotations

import contextvars
import html
import os
import shlex
import threading
import time

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .. import errors

REFRESH = 0.5  # seconds between two renders of the live table

_CSS = ("font-family:monospace;font-size:12px;border-collapse:collapse",
        "padding:2px 10px;text-align:left;border-bottom:1px solid #ddd")
_STATE_COLOURS = {"running": "#2ca02c", "healthy": "#2ca02c", "exited": "#7f7f7f", "unhealthy": "#d62728",
                  "starting": "#ff7f0e", "created": "#1f77b4", "error": "#d62728"}


def _parser():
    """``%%compose``'s parser: `jupybox compose`'s project options and `compose up`'s, plus the magic's own."""
    from ..cli.compose import add_project_options, add_up_options
    from ..cli.parser import Parser

    p = Parser(prog="%%compose", add_help=False)
    add_project_options(p)
    add_up_options(p)
    p.add_argument("-o", "--output", metavar="VAR", help="a mapping service -> published address")
    p.add_argument("--no-table", action="store_true")
    p.add_argument("services", nargs="*")
    return p


class ServiceTable:
    """The live table: a display updated from a thread, then replaced by its last, static render."""

    def __init__(self, session):
        self.session = session
        self.progress: dict[str, str] = {}  # container name -> last event ("Created", "Waiting", ...)
        self.cpu: dict[str, tuple[int, float]] = {}  # container id -> (cpu ns, time) of the last sample
        self.error: str | None = None
        self.handle = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def event(self, kind: str, name: str, status: str) -> None:
        if kind == "Container":
            with self._lock:
                self.progress[name] = status

    def start(self) -> None:
        from IPython.display import HTML, display

        self.handle = display(HTML(self.render(live=True)), display_id=True)
        ctx = contextvars.copy_context()  # the updates belong to the cell that started them
        self._thread = threading.Thread(target=ctx.run, args=(self._loop,), name="jupybox-compose", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from IPython.display import HTML

        while not self._stop.wait(REFRESH):
            try:
                self.handle.update(HTML(self.render(live=True)))
            except Exception:  # noqa: BLE001 - a container removed between two looks: next round
                continue

    def finish(self, error: str | None = None) -> None:
        from IPython.display import HTML

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.error = error
        if self.handle is not None:
            self.handle.update(HTML(self.render(live=False)))

    def rows(self) -> list[dict]:
        from ..compose import convert
        from ..compose.runtime import label
        from ..compose.views import ports_text

        rows = []
        seen = set()
        for c in self.session.containers():
            service = label(c, convert.SERVICE)
            seen.add(service)
            try:
                info = c.inspect()
            except errors.ContainerNotFound:
                continue
            state = info["State"]
            row = {"service": service, "container": c.name, "state": state["Status"],
                   "health": (state.get("Health") or {}).get("Status", ""),
                   "ports": ports_text(info["NetworkSettings"].get("Ports")), "cpu": "", "memory": "",
                   "progress": self.progress.get(c.name, "")}
            if state["Status"] == "exited":
                row["state"] = f"exited ({state.get('ExitCode')})"
            if state["Status"] == "running":
                row.update(self._usage(c))
            rows.append(row)
        for name in self.session.project.services:
            if name not in seen:
                rows.append({"service": name, "container": "", "state": "waiting", "health": "", "ports": "",
                             "cpu": "", "memory": "", "progress": ""})
        return sorted(rows, key=lambda r: (r["service"], r["container"]))

    def _usage(self, c) -> dict:
        from ..units import human_size

        try:
            st = c.stats()
        except errors.JupyboxError:
            return {}
        now = time.monotonic()
        last = self.cpu.get(c.id)
        self.cpu[c.id] = (st.cpu_usage_ns, now)
        cpu = ""
        if last is not None and now > last[1]:
            cpu = f"{100 * (st.cpu_usage_ns - last[0]) / ((now - last[1]) * 1e9):.1f}%"
        mem = human_size(st.memory_current)
        if st.memory_limit:
            mem += f" / {human_size(st.memory_limit)}"
        return {"cpu": cpu, "memory": mem}

    def render(self, live: bool) -> str:
        head = ["SERVICE", "CONTAINER", "STATE", "HEALTH", "PORTS", "CPU", "MEMORY"]
        rows = self.rows()
        cell = _CSS[1]
        out = [f"<table style='{_CSS[0]}'><tr>" + "".join(f"<th style='{cell}'>{h}</th>" for h in head) + "</tr>"]
        for r in rows:
            state = r["state"] + (f" · {r['progress']}" if live and r["progress"] else "")
            colour = _STATE_COLOURS.get(r["health"] or r["state"].split(" ")[0], "inherit")
            values = [r["service"], r["container"], state, r["health"], r["ports"], r["cpu"], r["memory"]]
            tds = []
            for i, v in enumerate(values):
                style = cell + (f";color:{colour}" if i in (2, 3) else "")
                tds.append(f"<td style='{style}'>{html.escape(str(v))}</td>")
            out.append("<tr>" + "".join(tds) + "</tr>")
        title = f"compose project {html.escape(self.session.project.name)}"
        if live:
            title += " — starting…"
        out.append("</table>")
        caption = f"<div style='font-family:monospace;font-size:12px;margin-bottom:4px'><b>{title}</b></div>"
        if self.error:
            style = "font-family:monospace;font-size:12px;color:#d62728"
            out.append(f"<div style='{style}'>{html.escape(self.error)}</div>")
        return caption + "".join(out)


def _rows_html(rows: list[dict], columns: list[str]) -> str:
    cell = _CSS[1]
    out = [f"<table style='{_CSS[0]}'><tr>" + "".join(f"<th style='{cell}'>{c.upper()}</th>" for c in columns)
           + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td style='{cell}'>{html.escape(str(r.get(c, '')))}</td>" for c in columns)
                   + "</tr>")
    return "".join(out) + "</table>"


@magics_class
class ComposeMagics(Magics):
    def __init__(self, shell=None):
        super().__init__(shell=shell)
        self.last = None  # the Session of the last %%compose cell

    @line_cell_magic
    def compose(self, line, cell=None):
        if cell is None:
            return self._verb(line)
        from ..cli.compose import up_options
        from ..compose import actions, load, views

        try:
            args = _parser().parse_args(shlex.split(line))
        except errors.UsageError as e:
            raise IPythonUsageError(str(e)) from None
        try:
            project = load(text=cell, text_name="<cell>", project_name=args.project_name, cwd=os.getcwd(),
                           profiles=args.profiles, env_files=args.env_file or None, services=args.services)
        except errors.JupyboxError as e:  # a bad cell: its line and key, nothing started
            raise IPythonUsageError(str(e)) from None
        for w in project.warnings:
            print(f"WARN: {w}")
        session = actions.Session(project)
        self.last = session
        table = None if args.no_table else ServiceTable(session)
        if table is not None:
            session.on_event = table.event  # the progress goes to the table, not to stderr
            table.start()
        try:
            actions.up(session, args.services or None, **up_options(args))
        except errors.JupyboxError as e:
            if table is not None:
                table.finish(error=str(e))
            raise IPythonUsageError(str(e)) from None
        except BaseException as e:
            if table is not None:
                table.finish(error=f"{type(e).__name__}: {e}")
            raise
        if table is not None:
            table.finish()
        if args.output:
            self.shell.user_ns[args.output] = views.addresses(session)
        return None

    def _verb(self, line: str):
        from IPython.display import HTML, display

        from ..compose import actions, logs, views

        words = shlex.split(line)
        if not words:
            raise IPythonUsageError("%compose VERB: down [-v], ps [-a], logs [SERVICE...], stop, start, restart, "
                                    "up, config (on the last %%compose project)")
        if self.last is None:
            raise IPythonUsageError("%compose: no project yet: run a %%compose cell first")
        verb, rest = words[0], words[1:]
        session = actions.Session(self.last.project)  # its progress printed, not tabled
        flags = {w for w in rest if w.startswith("-")}
        names = [w for w in rest if not w.startswith("-")] or None
        try:
            if verb == "down":
                actions.down(session, volumes=bool(flags & {"-v", "--volumes"}),
                             remove_orphans="--remove-orphans" in flags)
            elif verb == "ps":
                rows = views.ps_rows(session, names, all_=bool(flags & {"-a", "--all"}))
                display(HTML(_rows_html(rows, ["Name", "Service", "Status", "Ports"])))
                return None
            elif verb == "logs":
                logs.show(session, names, follow=bool(flags & {"-f", "--follow"}), color=True)
            elif verb in ("stop", "start", "restart"):
                getattr(actions, verb)(session, names)
            elif verb == "up":
                actions.up(session, names)
            elif verb == "config":
                import yaml

                print(yaml.safe_dump(session.project.config(), sort_keys=False), end="")
            else:
                raise IPythonUsageError(f"%compose {verb}: unknown verb (down, ps, logs, stop, start, restart, up, "
                                        "config)")
        except errors.JupyboxError as e:
            raise IPythonUsageError(str(e)) from None
        return None


def register(ip) -> None:
    ip.register_magics(ComposeMagics(shell=ip))


def unregister(ip) -> None:
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("compose", None)
