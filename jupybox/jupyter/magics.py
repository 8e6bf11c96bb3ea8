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

import shlex

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope
from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode

from .. import errors
from . import cell_identity
from .cellrunner import CellRun, TransferError, one_line
from .dockerfile_magic import dockerfile_parser
from .magicargs import names, parse

__all__ = ["JupyboxMagics", "TransferError", "load_ipython_extension", "unload_ipython_extension", "cell_parser",
           "dockerfile_parser"]

CELL_HELP = """\
usage: %%container [run options] [--bg] [-i VAR[,VAR]] [-o VAR[,VAR]] [--no-raise-error] [--keep]
                   [--no-chart] [--max-output N] [IMAGE [COMMAND ...]]

Without COMMAND the cell is Python, run by the image's python3 (for the default image `host`,
the kernel's own interpreter, a read-only view of the host). With COMMAND (sh, bash, python3,
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
plain process on the host, with rlimits for -m and --pids-limit, under a NO ISOLATION notice;
only the host image works there, and options that need a container (-v, --user, --network ...)
are errors.

Run options (the same as `jupybox run`):
"""

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


def _add_pin_options(parser) -> None:
    from ..env.pins import add_pin_options  # --locked

    add_pin_options(parser)


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
        args = parse(parser, head)
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
            user_ns=self._user_ns(local_ns), inputs=names(args.input, "-i"), outputs=names(args.output, "-o"),
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

    def _engine(self, root):
        from ..api import engine

        return engine(root)

    def _verb(self, line: str):
        """``%container VERB``: jupybox.jupyter.verbs."""
        from .verbs import Verbs

        return Verbs(self)(line)


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
    from .dockerfile_magic import register as register_dockerfile

    register_compose(ip)  # %%compose / %compose
    register_dockerfile(ip)  # %%dockerfile


def unload_ipython_extension(ip) -> None:
    magics = getattr(ip, "_jupybox_magics", None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("container", None)
    from .compose_magic import unregister as unregister_compose
    from .dockerfile_magic import unregister as unregister_dockerfile

    unregister_compose(ip)
    unregister_dockerfile(ip)
    try:
        ip.configurables.remove(magics)
    except ValueError:
        pass
    ip._jupybox_magics = None

