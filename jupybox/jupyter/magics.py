"""IPython magics: ``%%container`` runs a cell in a container, ``%container VERB`` runs any CLI verb.

    %load_ext jupybox

    %%container -m 256m --cpus 0.5 -i data -o result
    result = sum(data)                     # Python, run by the image's python3 (default image: host)

    %%container busybox sh                 # with COMMAND, the cell is that program's script
    echo hello from $(hostname)

    %container ps -a                       # an HTML table; returns a list of Container objects
    %container monitor web                 # live chart of a detached container

Where no container can run (no namespace can be made: mybinder.org, some hardened hosts; see
``jupybox.runtime.mode``), ``%%container`` runs the cell as a plain process instead, with rlimits
and the same chart, under a NO ISOLATION notice shown on every such cell (``runtime.unisolated``
says what it can and cannot honour).

Options are parsed by the CLI's own parser (``jupybox.cli.run.add_run_options``): the magic and
``jupybox run`` accept exactly the same flags. A bad flag is an IPython ``UsageError`` (one line,
the kernel lives on); other jupybox errors keep their type and show as one line.

Settings (``%config JupyboxMagics.default_image = "busybox"``, or ``c.JupyboxMagics....`` in a
config file): default_image, default_memory, default_cpus, default_pids_limit, chart, chart_after,
live_chart, chart_rate, summary, max_output, interrupt_grace, python, root.

``%container last`` (or ``jupybox.jupyter.last()``) is the last cell's run: its container,
result, chart samples and summary.
"""

from __future__ import annotations

import io
import os
import shlex
import sys
import threading
import time

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, magics_class, needs_local_scope
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode

from .. import errors
from .cellrunner import CellRun, ChartSession, TransferError, container_name, one_line, status_text
from . import cell_identity

__all__ = ["JupyboxMagics", "TransferError", "load_ipython_extension", "unload_ipython_extension", "cell_parser"]

CELL_HELP = """\
usage: %%container [run options] [--bg] [-i VAR[,VAR]] [-o VAR[,VAR]] [--no-raise-error] [--keep]
                   [--no-chart] [--max-output N] [IMAGE [COMMAND ...]]

Without COMMAND the cell is Python, run by the image's python3 (for the default image `host`,
the kernel's own interpreter, read-only view of this machine). With COMMAND (sh, bash, python3,
Rscript...) the cell is that program's script (its stdin), like %%script. IMAGE may be left out
before a COMMAND: a first word that names no image but a program (`%%container sh -c 'ls /'`)
is the COMMAND, run in the default image.

  -i VAR[,VAR]      copy notebook variables into the container (cloudpickle: functions and classes
                    too); for a COMMAND cell, str/int/float/bool values become environment variables
  -o VAR[,VAR]      copy variables back into the notebook when the cell succeeds (Python cells;
                    unpickled in the kernel: trust the cell and its image as the kernel's own code)
  --bg, -d          run detached: returns the Container (see %container logs/exec/stop/monitor)
  --no-raise-error  do not raise ContainerError / ContainerOOMError on a failure
  --keep            keep the stopped container (default: removed when the cell ends)
  --no-chart        no chart (the one-line summary stays); --chart draws it even for a quick cell
                    (by default it appears once a cell runs JupyboxMagics.chart_after seconds)
  --rate HZ         samples per second for the chart (default JupyboxMagics.chart_rate)
  --max-output N    show at most N lines of each stream, head and tail (default
                    JupyboxMagics.max_output; 0: all); the full log stays for %container logs NAME

A Python cell behaves like an IPython cell: its last expression is displayed (rich: HTML,
images), matplotlib figures appear at plt.show() and at the end, and a traceback shows the
notebook cell's own lines.

Where no container can run (no namespace can be made, as on mybinder.org), the cell runs as a
plain process on this machine, with rlimits for -m and --pids-limit, under a NO ISOLATION notice;
only the host image works there, and options that need a container (-v, --user, --network ...)
are errors.

Run options (the same as `jupybox run`):
"""

VERB_HELP = """\
%container VERB [ARGS...]    any jupybox CLI verb, through the CLI's parser:
  ps [-a], images, history IMAGE, volume ls, stats      HTML tables (return Python objects)
  inspect NAME...                                       a collapsible JSON view (returns the dicts)
  run -d IMAGE CMD..., create, start NAME               return a Container
  run IMAGE CMD...                                      streams into the cell, like %%container
  exec NAME CMD..., logs [-f] NAME, stop, kill, rm, wait, pull, push, tag, rmi, volume ..., info
  monitor NAME [--rate HZ]                              live chart of a running container until it
                                                        stops (or the cell is interrupted)
"""


def _names(values: list[str], flag: str) -> list[str]:
    out = []
    for v in values:
        for name in v.split(","):
            name = name.strip()
            if not name:
                continue
            if not name.isidentifier():
                raise IPythonUsageError(f"{flag} {name}: not a Python variable name")
            out.append(name)
    return out


def cell_parser():
    """``%%container``'s parser: ``jupybox run``'s options plus the magic's own."""
    from ..cli.parser import Parser
    from ..cli.run import add_run_options

    # argparse %-formats a usage string: "%%" in it would print as "%"
    p = Parser(prog="%%container", add_help=False, conflict_handler="resolve",
               usage="%%%%container [options] [IMAGE [COMMAND ...]]")
    add_run_options(p)
    _add_pin_options(p)
    p.add_argument("--help", action="store_true", help="show this help")
    # -i is docker's --interactive; in the magic -i/-o move values, as in rpy2's %%R
    p.add_argument("-i", "--input", action="append", default=[], metavar="VAR[,VAR]",
                   help="notebook variables to copy into the container")
    p.add_argument("-o", "--output", action="append", default=[], metavar="VAR[,VAR]",
                   help="variables to copy back into the notebook")
    p.add_argument("--bg", action="store_true", help="run detached and return the Container")
    p.add_argument("--no-raise-error", action="store_true", help="no exception on a non-zero exit or OOM kill")
    p.add_argument("--keep", action="store_true", help="keep the container when the cell ends")
    p.add_argument("--chart", dest="chart", action="store_true", default=None, help="draw the chart")
    p.add_argument("--no-chart", dest="chart", action="store_false", help="no chart, only the summary")
    p.add_argument("--rate", type=float, help="chart samples per second")
    p.add_argument("--max-output", type=int, metavar="N", help="lines of each stream shown (head and tail; 0: all)")
    p.add_argument("image", nargs="?", help="image (default: JupyboxMagics.default_image)")
    return p


def dockerfile_parser():
    """``%%dockerfile``'s parser: ``jupybox build``'s options about the image, the cell as the Dockerfile."""
    from ..cli.build import add_build_options
    from ..cli.parser import Parser

    p = Parser(prog="%%dockerfile", add_help=False, usage="%%%%dockerfile [options] NAME[:TAG]")
    add_build_options(p)
    p.add_argument("--context", default=None, help="build context (default: the notebook's directory)")
    p.add_argument("--help", action="help", help="show this help")
    p.add_argument("name", metavar="NAME[:TAG]", help="the image's name (more with -t)")
    return p


def _add_pin_options(parser) -> None:
    from ..env.pins import add_pin_options  # --locked

    add_pin_options(parser)


def _parse(parser, words: list[str]):
    """Parse with jupybox's parser; its UsageError becomes IPython's (one line, kernel alive)."""
    from ..cli.parser import _HelpShown

    try:
        return parser.parse_args(words)
    except errors.UsageError as e:
        raise IPythonUsageError(str(e)) from None
    except _HelpShown:
        return None


@magics_class
class JupyboxMagics(Magics):
    """The jupybox magics; settings are traitlets (``%config JupyboxMagics``)."""

    default_image = Unicode("host", help="image for %%container when none is given").tag(config=True)
    default_memory = Unicode(None, allow_none=True, help="default -m for %%container, e.g. '512m'").tag(config=True)
    default_cpus = Float(None, allow_none=True, help="default --cpus for %%container").tag(config=True)
    default_pids_limit = Int(None, allow_none=True, help="default --pids-limit for %%container").tag(config=True)
    chart = Bool(True, help="chart CPU, memory and pids of %%container cells").tag(config=True)
    chart_after = Float(1.0, help="seconds a cell runs before its chart appears (a quicker cell shows only "
                                  "its summary; --chart draws it anyway)").tag(config=True)
    max_output = Int(10000, help="lines of each stream a cell shows, its head and tail (0: all); the full "
                                 "output stays readable with %container logs NAME").tag(config=True)
    live_chart = CaselessStrEnum(
        ["auto", "always", "never"], "auto",
        help="the live widget: 'auto' shows it in interactive front ends (JupyterLab, Notebook, VS Code), "
             "not in terminals or batch runs (nbclient, papermill), which get only the final PNG",
    ).tag(config=True)
    chart_rate = Float(4.0, help="chart samples per second").tag(config=True)
    summary = Bool(True, help="print the one-line summary (wall, CPU, peak memory, exit) after a cell").tag(config=True)
    interrupt_grace = Float(2.0, help="seconds between SIGINT and SIGKILL when a cell is interrupted").tag(config=True)
    python = Unicode("python3", help="the interpreter that runs Python cells inside the image").tag(config=True)
    root = Unicode(None, allow_none=True, help="jupybox state directory (default $JUPYBOX_ROOT)").tag(config=True)

    def __init__(self, shell=None, **kwargs):
        super().__init__(shell=shell, **kwargs)
        self.last = None  # the last CellRun (its .container, .result, .series)

    # -- %%container / %container ------------------------------------------------------------
    @needs_local_scope
    @line_cell_magic
    def container(self, line, cell=None, local_ns=None):
        """Run a cell in a container (%%container), or a jupybox CLI verb (%container VERB).

        %%container [run options] [-i VAR] [-o VAR] [--bg] [--no-raise-error] [IMAGE [COMMAND ...]]
        %container ps | images | inspect NAME | logs NAME | exec NAME CMD | monitor NAME | ...

        `%%container --help` and `%container --help` list every option.
        """
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame in tracebacks
        try:
            if cell is None:
                return self._verb(line)
            return self._cell(line, cell, local_ns)
        except errors.UsageError as e:
            raise IPythonUsageError(str(e)) from None
        except errors.JupyboxError as e:
            raise one_line(e) from None

    def _user_ns(self, local_ns=None) -> dict:
        return self.shell.user_ns if self.shell is not None else (local_ns or {})

    def _live(self) -> bool:
        from .display import in_kernel

        if self.live_chart == "never" or not self.chart or not in_kernel(self.shell):
            return False
        if self.live_chart == "always":
            return True
        return widgets_frontend(self.shell)

    def _cell(self, line: str, cell: str, local_ns=None):
        from ..cli.parser import split_command
        from ..cli.run import options_from_args

        parser = cell_parser()
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise IPythonUsageError(f"%%container: {e}") from None
        head, command = split_command(parser, words, positionals=1)
        args = _parse(parser, head)
        if args is None or args.help:
            print(CELL_HELP + parser.format_help().split("\n", 2)[-1])
            return None
        options = options_from_args(args)
        for key in ("interactive", "tty"):
            options.pop(key, None)
        if options.get("memory") is None and self.default_memory:
            options["memory"] = self.default_memory
        if options.get("cpus") is None and self.default_cpus:
            options["cpus"] = self.default_cpus
        if options.get("pids_limit") is None and self.default_pids_limit:
            options["pids_limit"] = self.default_pids_limit
        bg = args.bg or args.detach
        image = args.image
        if image is not None and self._is_command(image):
            image, command = self.default_image, [image] + command
        image = image or self.default_image
        if args.max_output is not None and args.max_output < 0:
            raise IPythonUsageError(f"--max-output {args.max_output}: a number of lines, 0 for all")
        run = CellRun(
            image=image, command=command, cell=cell, options=options,
            user_ns=self._user_ns(local_ns), inputs=_names(args.input, "-i"), outputs=_names(args.output, "-o"),
            bg=bg, raise_error=not args.no_raise_error, keep=args.keep,
            chart=self.chart if args.chart is None else args.chart, live=self._live() if args.chart is not False else False,
            summary=self.summary, rate=args.rate or self.chart_rate, grace=self.interrupt_grace,
            python=self.python, root=self.root, chart_after=0.0 if args.chart else self.chart_after,
            max_output=self.max_output if args.max_output is None else args.max_output,
            pin=lambda image: self._pin(image, options, args), **cell_identity(self.shell, line, cell))
        self.last = run
        return run.run()

    def _pin(self, image: str, options: dict, args) -> str:
        """The image digest the cell runs, recorded in its output; --locked checked (jupybox.env.pins)."""
        from ..env.pins import magic_pin

        return magic_pin(self, image, options, args)

    def _is_command(self, word: str) -> bool:
        """``%%container sh -c '...'``: a first word that is no image but a program is the COMMAND,
        run in the default image. Image-shaped words (``name:tag``, ``repo/name``) stay images."""
        import shutil

        if word == self.default_image or any(ch in word for ch in ":/@"):
            return False
        try:
            self._engine(self.root).store.resolve(word)
            return False
        except errors.ImageNotFound:
            pass
        except Exception:  # noqa: BLE001 - a store that cannot answer: decide by the program alone
            pass
        return shutil.which(word) is not None

    # -- %container VERB ---------------------------------------------------------------------
    def _verb(self, line: str):
        try:
            argv = shlex.split(line)
        except ValueError as e:
            raise IPythonUsageError(f"%container: {e}") from None
        if not argv or argv[0] in ("-h", "--help", "help"):
            from ..cli.parser import build

            print(VERB_HELP)
            print(build(prog="%container").format_help())
            return None
        root = self.root
        words = list(argv)
        while words and words[0].startswith("--root"):
            if words[0] == "--root" and len(words) > 1:
                root, words = words[1], words[2:]
            elif words[0].startswith("--root="):
                root, words = words[0].split("=", 1)[1], words[1:]
            else:
                break
        if words and words[0] == "monitor":
            return self._monitor(words[1:], root)
        if words and words[0] == "self":
            return self._self(words[1:])
        if words and words[0] == "last":
            return self.last
        from ..cli.parser import _HelpShown, build, parse

        parser = build(prog="%container")
        try:
            args = parse(parser, words)
        except _HelpShown:
            return None
        verb = args.verb
        if verb == "image" and getattr(args, "image_verb", None) in ("ls", "inspect"):
            verb = f"image_{args.image_verb}"
        if verb == "volume" and getattr(args, "volume_verb", None) in ("ls", "inspect"):
            verb = f"volume_{args.volume_verb}"
        handler = getattr(self, f"_v_{verb}", None)
        if handler is not None:
            result = handler(args, root, words)
            if result is not NotImplemented:
                return result
        return self._cli(words, root)

    def _ctx(self, root, out=None, err=None):
        from ..cli import Context

        return Context(root, out=out or io.StringIO(), err=err or io.StringIO())

    def _cli(self, words: list[str], root):
        """Any verb through ``jupybox.cli.execute``; its output printed into the cell."""
        from ..cli import execute

        ctx = self._ctx(root)
        try:
            code = execute(words, ctx)
        finally:
            out, err = ctx.out.getvalue(), ctx.err.getvalue()
            if out:
                sys.stdout.write(out)
                sys.stdout.flush()
            if err:
                sys.stderr.write(err)
                sys.stderr.flush()
        if code:
            print(f"(exit status {code})", file=sys.stderr)
        return None

    def _engine(self, root):
        from ..api import engine

        return engine(root)

    def _handle(self, name: str, root):
        """A Container whose verbs go through the store's service (the kernel never forks)."""
        from ..api import container

        return container(name, root=root)

    # rich verbs: return NotImplemented to fall back to the CLI's text
    def _v_ps(self, args, root, words):
        from ..cli.containers import ps_rows
        from .display import ObjectList

        if args.quiet or args.format:
            return NotImplemented
        rows = ps_rows(self._engine(root), args.all)
        for r in rows:
            r["ShortID"] = r["ID"] if args.no_trunc else r["ID"][:12]
            r["Created"] = f"{r['RunningFor']} ago"
        from .cellrunner import CELL_LABEL

        items, shown = [], []
        for r in rows:
            try:
                c = self._handle(r["ID"], root)
                label = (c.config["spec"].get("labels") or {}).get(CELL_LABEL)
            except errors.JupyboxError:
                continue
            if label:  # a cell's container: the cell, not the runner's command line
                r["Command"] = label
            items.append(c)
            shown.append(r)
        rows = shown
        # a notebook is narrow: long columns are clipped (the whole text in their tooltip), names never
        cols = [("ShortID", "CONTAINER ID"), ("Image", "IMAGE", 24), ("Command", "COMMAND", 32),
                ("Created", "CREATED"), ("Status", "STATUS", 28), ("Names", "NAMES")]
        return ObjectList(items, rows, cols, empty="no containers" + ("" if args.all else " running (ps -a: all)"))

    def _v_images(self, args, root, words):
        from ..cli.images import image_rows
        from .display import ObjectList

        if args.quiet or args.format:
            return NotImplemented
        store = self._engine(root).store
        rows = image_rows(store)
        for r in rows:
            r["ShortID"] = r["ID"] if args.no_trunc else r["ID"].split(":")[-1][:12]
        cols = [("Repository", "REPOSITORY"), ("Tag", "TAG")] + ([("Digest", "DIGEST")] if args.digests else []) + [
            ("ShortID", "IMAGE ID"), ("CreatedSince", "CREATED"), ("Size", "SIZE")]
        return ObjectList(store.list(), rows, cols, empty="no images")

    _v_image_ls = _v_images

    def _v_history(self, args, root, words):
        from ..cli.format import ago
        from ..runtime.container import age as _age
        from ..units import human_size_si
        from .display import Table

        if args.quiet or args.format:
            return NotImplemented
        img = self._engine(root).store.resolve(args.image)
        rows = []
        for i, h in enumerate(img.history()):
            created_by = h.get("created_by", "")
            rows.append({
                "ID": img.short_id if i == 0 else "<missing>",
                "Created": f"{ago(_age(h.get('created', '')))} ago" if h.get("created") else "N/A",
                "CreatedBy": created_by if args.no_trunc else created_by[:60],
                "Size": human_size_si(h.get("size") or 0), "Comment": h.get("comment", ""),
            })
        return Table(rows, [("ID", "IMAGE"), ("Created", "CREATED"), ("CreatedBy", "CREATED BY"), ("Size", "SIZE"),
                            ("Comment", "COMMENT")], empty="no history")

    def _v_volume_ls(self, args, root, words):
        from ..runtime.volumes import Volumes
        from .display import ObjectList

        if args.quiet or args.format:
            return NotImplemented
        vols = Volumes(self._engine(root).layout).list()
        rows = [{"Driver": "local", "Name": v.name, "Mountpoint": str(v.data)} for v in vols]
        return ObjectList(vols, rows, [("Driver", "DRIVER"), ("Name", "VOLUME NAME")], empty="no volumes")

    def _v_stats(self, args, root, words):
        from ..cli.containers import stats_row
        from .display import Table

        if args.format:
            return NotImplemented
        eng = self._engine(root)
        if args.containers:
            recs = [eng.records.get(n) for n in args.containers]
        else:
            recs = [r for r in eng.records.all() if eng.reconcile(r).status.value == "running"]

        def sample():
            out = {}
            for rec in recs:
                try:
                    out[rec.id] = (rec, eng.stats(rec))
                except errors.JupyboxError:
                    continue
            return out

        first = sample()
        if first:
            time.sleep(0.25)  # two samples for a CPU rate, as `jupybox stats --no-stream`
        second = sample()
        rows = [stats_row(rec, st, first.get(cid, (None, None))[1]) for cid, (rec, st) in second.items()]
        return Table(rows, [("ID", "CONTAINER ID"), ("Name", "NAME"), ("CPUPerc", "CPU %"), ("MemUsage", "MEM USAGE / LIMIT"),
                            ("MemPerc", "MEM %"), ("PIDs", "PIDS")], empty="no running containers")

    def _v_inspect(self, args, root, words):
        from ..cli.containers import cmd_inspect
        from .display import JSONView

        if args.format:
            return NotImplemented
        import json

        ctx = self._ctx(root)
        cmd_inspect(args, ctx)
        return JSONView(json.loads(ctx.out.getvalue()))

    def _v_image_inspect(self, args, root, words):
        from .display import JSONView

        store = self._engine(root).store
        return JSONView([store.resolve(r).inspect() for r in args.images])

    def _v_volume_inspect(self, args, root, words):
        from ..runtime.volumes import Volumes
        from .display import JSONView

        vols = Volumes(self._engine(root).layout)
        return JSONView([vols.get(n).inspect() for n in args.names])

    def _v_create(self, args, root, words):
        self._cli(words, root)
        from ..api import engine

        recs = engine(root).records.all()
        newest = max(recs, key=lambda r: r.config.get("created", ""), default=None)
        return self._handle(newest.id, root) if newest is not None else None

    def _v_start(self, args, root, words):
        if args.attach or args.interactive:
            raise IPythonUsageError("%container start: -a/-i are not supported in a notebook; "
                                    "use %container logs -f NAME or %container monitor NAME")
        out = []
        for name in args.containers:
            c = self._handle(name, root)
            c.start()
            print(name)
            out.append(c)
        return out[0] if len(out) == 1 else out

    def _v_run(self, args, root, words):
        from ..cli.run import options_from_args

        options = options_from_args(args)
        for key in ("interactive", "tty"):
            options.pop(key, None)
        if args.detach:
            import jupybox
            from ..paths import Layout
            from ..runtime import mode

            m = mode.detect(str(Layout(root).ensure().tmp))
            if not m.isolated:
                raise errors.UsageError(f"-d needs isolation, and no container can run here ({m.reason})")
            c = jupybox.run(args.image, args.command or None, root=root, detach=True, **options)
            print(c.id)
            return c
        run = CellRun(image=args.image, command=args.command, cell=None, options=options, user_ns=self._user_ns(),
                      keep=not args.remove and bool(args.name), chart=self.chart, live=self._live(),
                      summary=self.summary, rate=self.chart_rate, grace=self.interrupt_grace, root=root)
        self.last = run
        return run.run()

    def _v_exec(self, args, root, words):
        from ..runtime.options import parse_env, read_env_file
        from .cellrunner import _pump

        if args.detach or args.interactive:
            raise IPythonUsageError("%container exec: -d/-i are not supported in a notebook")
        if not args.command:
            raise IPythonUsageError("%container exec: a command is required")
        c = self._handle(args.container, root)
        env = {}
        for path in args.env_file:
            env.update(read_env_file(path))
        env.update(parse_env(args.env))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        import contextvars

        readers = [threading.Thread(target=contextvars.copy_context().run, args=(_pump, fd, stream), daemon=True)
                   for fd, stream in ((out_r, sys.stdout), (err_r, sys.stderr))]
        for t in readers:
            t.start()
        try:
            code = c.exec(args.command, env=env, workdir=args.workdir, user=args.user, stdout=out_w, stderr=err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
            for t in readers:
                t.join(10)
        if code:
            raise errors.ContainerError(f"exec in {container_name(c)} exited with code {code}", code, c)
        return None

    def _v_logs(self, args, root, words):
        from .outputcap import SAVED

        try:
            c = self._handle(args.container, root)
            paths = c.log_paths()
        except errors.ContainerNotFound:
            paths = SAVED.paths(args.container)  # a capped cell's full output, its container gone
            if paths is None:
                raise
            c = None
        tail = None if args.tail == "all" else int(args.tail)
        files = []
        for path, stream in zip(paths, (sys.stdout, sys.stderr)):
            try:
                f = open(path, "rb")  # noqa: SIM115
            except FileNotFoundError:
                continue
            data = f.read()
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-tail:]) if tail else b""
            stream.write(data.decode(errors="replace"))
            stream.flush()
            files.append((f, stream))
        try:
            while args.follow and c is not None:
                moved = False
                for f, stream in files:
                    data = f.read()
                    if data:
                        stream.write(data.decode(errors="replace"))
                        stream.flush()
                        moved = True
                if not moved:
                    try:
                        if c.status != "running":
                            break
                    except errors.JupyboxError:
                        break
                    time.sleep(0.2)
        except KeyboardInterrupt:
            pass  # stop following; the container goes on
        finally:
            for f, _ in files:
                f.close()
        return None

    def _v_pull(self, args, root, words):
        from ..registry import pull
        from .display import pull_progress

        store = self._engine(root).store
        progress = pull_progress(f"pull {args.reference}", args.quiet)
        try:
            img = pull(store, args.reference, platform=args.platform, progress=progress, authfile=args.authfile,
                       insecure_registries=args.insecure_registry)
        finally:
            if hasattr(progress, "close"):
                progress.close()
        print(f"Status: Downloaded image for {args.reference} ({img.manifest_digest})")
        return img

    def _v_push(self, args, root, words):
        from ..registry import push
        from .display import pull_progress

        store = self._engine(root).store
        progress = pull_progress(f"push {args.reference}", args.quiet)
        try:
            digest = push(store, args.reference, progress=progress, authfile=args.authfile,
                          insecure_registries=args.insecure_registry)
        finally:
            if hasattr(progress, "close"):
                progress.close()
        print(f"{args.reference}: digest: {digest}")
        return digest

    def _v_save(self, args, root, words):
        if not args.output:
            raise IPythonUsageError("%container save: use -o FILE (a notebook has no stdout to redirect)")
        return NotImplemented

    def _v_load(self, args, root, words):
        if not args.input:
            raise IPythonUsageError("%container load: use -i FILE (a notebook has no stdin)")
        return NotImplemented

    # -- %%dockerfile ---------------------------------------------------------------------------
    @cell_magic
    def dockerfile(self, line, cell):
        """Build the cell as a Dockerfile: %%dockerfile [jupybox build's options] [--context DIR] NAME[:TAG]

        The context is the notebook's directory by default; the steps are shown as they run;
        then `%%container NAME` uses the image. Needs the build engine's ``jupybox.dockerfile.build()``.
        """
        __tracebackhide__ = True  # noqa: F841
        try:
            args = _parse(dockerfile_parser(), shlex.split(line))
        except ValueError as e:
            raise IPythonUsageError(f"%%dockerfile: {e}") from None
        if args is None:
            return None
        try:
            from ..dockerfile import build  # type: ignore[attr-defined]
        except ImportError:
            raise one_line(errors.JupyboxError(
                "%%dockerfile needs the build engine's jupybox.dockerfile.build(), which this version does not have"
            )) from None
        from ..cli.build import build_options

        try:
            options = build_options(args)
            if any(o.dest == "-" for o in options["outputs"]):
                raise IPythonUsageError("%%dockerfile: -o dest=- needs a stdout to write to: give a file")
            options["tags"].insert(0, args.name)
            image = build(dockerfile=cell, context=args.context or os.getcwd(), root=self.root, on_step=_print_step,
                          **options)
        except errors.UsageError as e:
            raise IPythonUsageError(str(e)) from None
        except errors.JupyboxError as e:
            raise one_line(e) from None
        return image

    # -- %container self ---------------------------------------------------------------------
    def _self(self, words: list[str]):
        """Chart this kernel's own cgroup (its container's, in a jupybox kernel) until interrupted
        or for ``--for SECONDS``."""
        from ..cli.parser import Parser
        from .chart import ChartLimits

        p = Parser(prog="%container self", add_help=False)
        p.add_argument("--rate", type=float)
        p.add_argument("--for", dest="seconds", type=float, help="stop after this many seconds")
        args = _parse(p, words)
        if args is None:
            return None
        own = _OwnCgroup()
        first = own.stats()
        limits = ChartLimits.from_stats(first, ChartLimits())
        t0 = time.monotonic()
        session = ChartSession(own, image="self", limits=limits, chart=True, live=self._live(), summary=True,
                               rate=args.rate or self.chart_rate)
        try:
            while not session.recorder.wait_stopped(0.25):
                if args.seconds is not None and time.monotonic() - t0 >= args.seconds:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            series = session.stop()
        # the CPU seconds of this window, not of the cgroup's whole life
        used = (series.cpu_ns - first.cpu_usage_ns) if series is not None and series.cpu_ns else 0
        session.finish({"extra": {"cpu_usage_ns": max(0, used)}}, wall=time.monotonic() - t0,
                       status=("running (this kernel)", True))
        return None

    # -- %container monitor ------------------------------------------------------------------
    def _monitor(self, words: list[str], root):
        from ..cli.parser import Parser
        from .chart import ChartLimits

        p = Parser(prog="%container monitor", add_help=False)
        p.add_argument("--rate", type=float)
        p.add_argument("container")
        args = _parse(p, words)
        if args is None:
            return None
        c = self._handle(args.container, root)
        if c.status != "running":
            raise errors.StateError(f"container {container_name(c)} is not running")
        lim = c.limits
        limits = ChartLimits(memory=lim.memory, cpus=lim.cpus, pids=lim.pids)
        t0 = time.monotonic()
        session = ChartSession(c, image=c.image, limits=limits, chart=True, live=self._live(), summary=True,
                               rate=args.rate or self.chart_rate)
        stopped = False
        try:
            while not session.recorder.wait_stopped(0.25):
                pass
            stopped = True
        except KeyboardInterrupt:
            pass  # stop watching; the container goes on
        finally:
            session.stop()
        wall = time.monotonic() - t0
        result = None
        status = ("still running (monitoring stopped)", True)
        try:
            st = c.state()
            if st.status.value != "running":
                stopped = True
                result = {"exit_code": st.exit_code, "oom_killed": st.oom_killed, "extra": getattr(st, "extra", None) or {}}
                status = status_text(result)
        except errors.JupyboxError:
            if stopped:
                status = ("stopped and removed", True)
        session.finish(result, wall=wall, status=status)
        return None


class _OwnCgroup:
    """This kernel's own cgroup, looking like a container to the chart (``%container self``):
    inside a jupybox kernel it is the kernel's container; elsewhere whatever cgroup we are in."""

    def __init__(self):
        from .kernel_usage import own_cgroup

        self._cgroup = own_cgroup()
        self.name = os.environ.get("JUPYBOX_CONTAINER_NAME") or "this kernel"
        self.short_id = (os.environ.get("JUPYBOX_CONTAINER_ID") or "self")[:12]
        self.image = "self"
        self.status = "running"

    def stats(self):
        return self._cgroup.stats()


def _print_step(ev) -> None:
    """A build's ``on_step(StepEvent)``: docker's classic build log, live in the cell."""
    kind = getattr(ev, "kind", "")
    if kind == "start":
        print(f"Step {ev.step}/{ev.total} : {ev.instruction}", flush=True)
    elif kind == "output":
        print(f" {ev.line}", flush=True)
    elif kind == "end":
        if ev.cached:
            print(" ---> Using cache")
        print(f" ---> {(ev.image_id or '').split(':')[-1][:12]}" + (f" ({ev.duration:.1f} s)" if ev.duration else ""),
              flush=True)
    elif kind in ("info", "error"):
        print(ev.message, file=sys.stderr if kind == "error" else sys.stdout, flush=True)


def widgets_frontend(shell=None) -> bool:
    """Is an interactive front end (JupyterLab, Notebook, VS Code) running this cell?

    Batch runners (nbclient, papermill, ``nbconvert --execute``) send their execute requests with
    ``allow_stdin=False``: they cannot answer ``input()`` and render no widgets, so they get only
    the final PNG. A front end whose widget manager opened the ``jupyter.widget.control`` comm
    (possible once ipywidgets is imported) renders widgets whatever it says about stdin.
    """
    try:
        from ipywidgets import Widget
    except ImportError:
        return False
    if getattr(Widget, "_control_comm", None) is not None:
        return True
    kernel = getattr(shell, "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))


def load_ipython_extension(ip) -> None:
    """``%load_ext jupybox``: register the magics (and make them configurable with %config)."""
    if getattr(ip, "_jupybox_magics", None) is not None:
        return
    magics = JupyboxMagics(shell=ip)
    ip.register_magics(magics)
    ip._jupybox_magics = magics
    from .compose_magic import register as register_compose

    register_compose(ip)  # %%compose / %compose


def unload_ipython_extension(ip) -> None:
    magics = getattr(ip, "_jupybox_magics", None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("container", None)
    ip.magics_manager.magics["cell"].pop("dockerfile", None)
    from .compose_magic import unregister as unregister_compose

    unregister_compose(ip)
    try:
        ip.configurables.remove(magics)
    except ValueError:
        pass
    ip._jupybox_magics = None

