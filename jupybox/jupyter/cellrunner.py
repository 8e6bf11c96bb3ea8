"""Running one ``%%container`` cell: the code in, the output streamed, values in and out, the chart.

How things travel (see the magic's docstring for the user's view):

* **Python cells** (no COMMAND): a directory under the store (``runtime.cellfiles``: 0700, named by
  the container's labels, so it goes with the container: ``rm``, ``--rm``, ``prune``) holds
  ``cell.py``, ``meta.json``, the runner (``inside/runner.py``) and the ``-i`` values
  (``transfer``); it is bind-mounted at ``/run/jupybox-cell`` and the container runs
  ``python3 /run/jupybox-cell/runner.py /run/jupybox-cell``. The runner talks back through a FIFO
  in that directory (``cellchannel``): the last expression's value and matplotlib figures
  (``richoutput``), the cell's traceback with the notebook cell's line numbers, the ``-o`` values.
* **COMMAND cells** (``sh``, ``bash``, ``python3``, ``Rscript``...): the cell is the program's
  stdin, like ``%%script``; ``-i`` values that are str/int/float/bool become environment variables.
* stdout and stderr are two pipes read by two threads that write into the kernel's
  ``sys.stdout``/``sys.stderr`` (captured when the cell starts, with the cell's context), so the
  output lands live in the right cell; ``--max-output`` caps what reaches it (``outputcap``).
* The container is started by the store's service (``jupybox.run``): the kernel never forks.
* **Fallback mode** (``mode.detect()``: no namespace can be made here, e.g. mybinder.org): the
  same cell runs as a plain process (``runtime.unisolated``), reading its directory where it is,
  under a notice that there is no isolation, on every such cell.

Interrupt: the kernel's SIGINT (KeyboardInterrupt in the main thread while we wait) sends SIGINT
to the container, SIGKILL after ``grace`` seconds, waits for it and removes it; then
KeyboardInterrupt is raised again, shown with the cell's own frames only. A SIGINT that arrives
while the container is being started is held until its handle exists (a second one, or the
first after ``HOLD_LIMIT`` seconds, is not), so that even then nothing is left behind
(``cellinterrupt``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import errors
from . import richoutput, transfer
from .cellinterrupt import HOLD_LIMIT, remove_quietly, sigint_deferred, stop_container
from .cellstatus import one_line, status_text
from .cellstreams import pump
from .chartsession import ChartSession, container_name
from .transfer import TransferError

__all__ = ["HOLD_LIMIT", "CellRun", "ChartSession", "TransferError", "container_name", "one_line", "sigint_deferred",
           "status_text"]

CELL_DIR = "/run/jupybox-cell"
CELL_LABEL = "io.jupybox.cell"  # what ps shows as a cell container's COMMAND: "%%container In[7]: ..."
RUNNER = Path(__file__).with_name("inside") / "runner.py"


class CellRun:
    """One run of a ``%%container`` cell. ``run()`` returns the Container (``--bg``), the last
    expression's value as the container displayed it, or None."""

    def __init__(self, *, image: str, command: list[str], cell: str | None, options: dict, user_ns: dict,
                 inputs=(), outputs=(), bg: bool = False, raise_error: bool = True, keep: bool = False,
                 chart: bool = True, live: bool = False, summary: bool = True, rate: float = 4.0,
                 grace: float = 2.0, python: str = "python3", root=None, stdout=None, stderr=None,
                 isolation=None, label: str | None = None, cell_name: str | None = None,
                 header: list[str] | None = None, chart_after: float = 0.0, max_output: int = 0, pin=None):
        self.image = image
        self.pin = pin  # image -> what to start (env.pins), called once the cell is known to be runnable
        self.command = list(command)
        self.cell = cell
        self.options = dict(options)
        self.user_ns = user_ns
        self.inputs = list(dict.fromkeys(inputs))
        self.outputs = list(dict.fromkeys(outputs))
        self.bg = bg
        self.raise_error = raise_error
        self.keep = keep
        self.chart = chart
        self.live = live
        self.summary = summary
        self.rate = rate
        self.grace = grace
        self.python = python
        self.root = root
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.label = label  # "In[7]: first line", for ps
        self.cell_name = cell_name  # "Cell In[7]", as IPython names the cell in tracebacks
        self.header = list(header or [])  # the notebook cell's lines above the body (the %%container line)
        self.chart_after = chart_after
        self.max_output = max_output
        # a Python cell (no COMMAND); a script for COMMAND (the cell is its stdin); or, with cell=None
        # (``%container run``), the command alone with /dev/null as stdin
        self.mode = "plain" if cell is None else "script" if self.command else "python"
        self.python_mode = self.mode == "python"
        self.files: Path | None = None  # the cell's directory (Python cells)
        self.input_sizes: dict[str, int] = {}
        self.channel = None
        self.container = None
        self.result: dict | None = None
        self.value = None  # the last expression, as displayed (a RichResult)
        self.series = None
        self.session = None
        self.wall = 0.0
        self.isolation = isolation  # a runtime.mode.Mode; None: detected when the cell runs
        self.fallback = None  # that Mode when it says there is no isolation here
        self.capped: list = []

    @property
    def tmp(self) -> str | None:  # the cell's directory while it exists (older name)
        return str(self.files) if self.files is not None and self.files.exists() else None

    @property
    def summary_line(self) -> str | None:
        s = getattr(self.session, "summary_obj", None)
        return s.text() if s is not None else None

    def __repr__(self) -> str:
        name = container_name(self.container) if self.container is not None else "not started"
        return f"<CellRun {name}: {self.summary_line or status_text(self.result or {})[0]}>"

    # -- preparing ---------------------------------------------------------------------------
    def _check(self) -> None:
        if self.outputs and not self.python_mode:
            raise errors.UsageError("-o needs a Python cell (no COMMAND): the values come back with pickle")
        if self.outputs and self.bg:
            raise errors.UsageError("-o needs the cell to finish: it cannot be used with --bg")
        if self.fallback is not None and self.bg:
            raise errors.UsageError("--bg needs isolation: without it a cell runs as a plain process, in the "
                                    f"foreground only ({self.fallback.reason})")
        if self.fallback is not None:
            from ..runtime import unisolated

            # what a plain process cannot honour (an image other than the host's, a volume...) is
            # the real reason such a cell cannot run: said before the image is looked up
            unisolated.prepare(self.image, self.command or [self.python], **self.options)

    def _detect(self) -> None:
        if self.isolation is None:
            from ..paths import Layout
            from ..runtime import mode

            self.isolation = mode.detect(str(Layout(self.root).ensure().tmp))  # tried once per process
        self.fallback = None if self.isolation.isolated else self.isolation

    def _prepare(self) -> tuple[list[str], int | None]:
        """Write the cell's files; return the command and the stdin fd (or None)."""
        opts = self.options
        env = list(opts.get("env") or [])
        if not any(e.split("=", 1)[0] == "PYTHONUNBUFFERED" for e in env):
            env.append("PYTHONUNBUFFERED=1")  # print() reaches the cell as it happens
        labels = dict(opts.get("labels") or {})
        if self.label:
            labels[CELL_LABEL] = self.label[:200]
        stdin = None
        if self.python_mode:
            command = self._write_files(opts, labels)
        elif self.mode == "plain":
            command = self.command
        else:
            if self.inputs:
                env += transfer.env_inputs(self.inputs, self.user_ns)
            # the cell is the program's stdin, like %%script: an unlinked temporary file
            f = tempfile.TemporaryFile(prefix="jupybox-cell-")
            f.write(self.cell.encode())
            f.flush()
            f.seek(0)
            stdin = os.dup(f.fileno())
            f.close()
            command = self.command
        opts["env"] = env
        if labels:
            opts["labels"] = labels
        if not self.bg:
            opts["remove"] = not self.keep
        return command, stdin

    def _write_files(self, opts: dict, labels: dict) -> list[str]:
        from ..paths import Layout
        from ..runtime import cellfiles

        self.files = cellfiles.make(Layout(self.root).ensure())
        d = self.files / "cell"
        d.mkdir()
        # a --user other than root must be able to read the cell (the store's 0700 keeps others out)
        os.chmod(d, 0o777 if opts.get("user") else 0o755)
        inside = str(d) if self.fallback is not None else CELL_DIR  # without isolation: where it is
        display = not self.bg
        meta = {"inputs": self.inputs, "outputs": self.outputs, "display": display, "channel": display,
                "filename": self.cell_name, "offset": len(self.header), "header": self.header,
                "lib": (os.path.dirname(transfer.library_dir()) if self.fallback is not None else transfer.INSIDE_LIB)
                if self.inputs or self.outputs else None}
        (d / "cell.py").write_text(self.cell, encoding="utf-8")
        (d / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        shutil.copyfile(RUNNER, d / "runner.py")
        if self.inputs:
            self.input_sizes = transfer.write_inputs(str(d / "in.pkl"), self.inputs, self.user_ns)
        for name in os.listdir(d):
            os.chmod(d / name, 0o644)
        if display:
            self.channel = self._open_channel(str(d))
        if self.fallback is None:
            volumes = list(opts.get("volumes") or []) + [f"{d}:{CELL_DIR}"]
            if self.inputs or self.outputs:
                volumes.append(f"{transfer.library_dir()}:{transfer.INSIDE_LIB}/cloudpickle:ro")
            opts["volumes"] = volumes
            labels[cellfiles.LABEL] = self.files.name  # the directory goes with the container
        return [self.python, f"{inside}/runner.py", inside]

    def _open_channel(self, directory: str):
        from .cellchannel import CellChannel

        return CellChannel(directory, on_display=richoutput.show)

    def cleanup(self) -> None:
        """The cell's directory, when no container owns it (fallback mode, a start that failed)."""
        if self.channel is not None:
            self.channel.finish()
        if self.files is not None:
            shutil.rmtree(self.files, ignore_errors=True)
            self.files = None

    # -- running -----------------------------------------------------------------------------
    def _starter(self, command):
        """The one place that says how the cell's process starts: ``start(stdin, stdout, stderr)``.

        In a container through the store's service; in fallback mode as a plain process, checked
        first (what cannot be honoured is an error) and announced by the notice."""
        if self.fallback is None:
            import jupybox

            _say_unenforced_limits_once(self.image, command, self.root, self.options)
            return lambda stdin, stdout, stderr: jupybox.run(self.image, command, root=self.root, stdin=stdin,
                                                             stdout=stdout, stderr=stderr, **self.options)
        from ..runtime import unisolated

        plan = unisolated.prepare(self.image, command, **self.options)
        also = ["--keep (there is no container to keep)"] if self.keep else []
        show_notice(self.fallback.reason, plan.describe(also))
        return plan.start

    def run(self):
        self._detect()
        self._check()
        if self.pin is not None:
            self.image = self.pin(self.image)
        if self.bg:
            from .cellbg import start_bg

            return start_bg(self)
        stdin = None
        try:
            command, stdin = self._prepare()
            start = self._starter(command)
        except BaseException:
            if stdin is not None:
                os.close(stdin)
            self.cleanup()
            raise
        return self._run_fg(start, stdin)

    def _session(self):
        if not (self.chart or self.summary):
            return None
        try:
            from ..api import launcher

            if self.fallback is None:
                launcher(self.root)  # connected (the service spawned) before the clock starts
            return ChartSession.for_options(None, self.image, self.options, chart=self.chart, live=self.live,
                                            summary=self.summary, rate=self.rate, after=self.chart_after)
        except Exception as e:  # noqa: BLE001 - no chart is no reason to lose the cell
            print(f"jupybox: no chart: {type(e).__name__}: {e}", file=self.stderr)
            return None

    def _streams(self):
        from .outputcap import SAVED, Capped

        if not self.max_output:
            return self.stdout, self.stderr
        kept = not self.options.get("remove") and self.fallback is None
        spill_dir: list[str] = []

        def spill(which):
            def open_log():
                if kept:
                    return None  # the container's own log files have it all
                if not spill_dir:
                    spill_dir.append(SAVED.make(self.root, self._name()))
                return open(os.path.join(spill_dir[0], f"{which}.log"), "wb")  # noqa: SIM115
            return open_log

        self.capped = [Capped(self.stdout, self.max_output, spill("stdout"), self._name),
                       Capped(self.stderr, self.max_output, spill("stderr"), self._name)]
        return tuple(self.capped)

    def _name(self) -> str:
        return container_name(self.container) if self.container is not None else "cell"

    def _run_fg(self, start, stdin):
        import contextvars

        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        display = self.session = self._session()  # armed: it samples from the moment the start returns
        t0 = time.monotonic()
        if display is not None:
            display.start_clock(t0)
        # a SIGINT while the container starts is held until it runs with its readers and chart
        # (then it is handled like any other interrupt: nothing is left behind)
        with sigint_deferred() as interrupted_early:
            try:
                c = start(stdin, out_w, err_w)
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                if display is not None:
                    display.stop()
                self.cleanup()
                raise
            finally:
                for fd in (out_w, err_w) + ((stdin,) if stdin is not None else ()):
                    os.close(fd)
            self.container = c
            if display is not None:
                display.attach(c)
            ctx = contextvars.copy_context()
            tees = (None, None)
            if not self.options.get("remove") and self.fallback is None:
                rec = c._record  # noqa: SLF001 - a kept container's log files, for %container logs
                tees = (rec.stdout_log, rec.stderr_log)
            streams = self._streams()
            readers = [threading.Thread(target=ctx.copy().run, args=(pump, fd, stream, tee), daemon=True,
                                        name=f"jupybox-{which}")
                       for fd, stream, tee, which in ((out_r, streams[0], tees[0], "stdout"),
                                                      (err_r, streams[1], tees[1], "stderr"))]
            for t in readers:
                t.start()
        interrupted = False
        try:
            if interrupted_early():
                raise KeyboardInterrupt
            self._wait(c)
        except KeyboardInterrupt:
            interrupted = True
            stop_container(c, self.grace)
        finally:
            self._finish(c, display, readers, t0, interrupted)
        if interrupted:
            err = self.channel.error if self.channel is not None else None
            raise richoutput.with_traceback(KeyboardInterrupt(), err["traceback"] if err and err.get("interrupt")
                                            else ["KeyboardInterrupt"])
        self._raise_for_status(c)
        values = self._collect_outputs()
        self.user_ns.update(values)
        self.value = richoutput.result(self.channel.result if self.channel is not None else None)
        return self.value

    def _finish(self, c, display, readers, t0, interrupted) -> None:
        self.wall = time.monotonic() - t0
        for t in readers:
            t.join(30)
        if self.channel is not None:
            self.channel.finish()
        if display is not None:
            self.series = display.stop()
        try:
            self.result = c.result()
        except errors.JupyboxError:
            self.result = {"exit_code": None, "oom_killed": False, "extra": {}}
        try:
            if display is not None:
                display.finish(self.result, wall=self.wall, status=status_text(self.result, interrupted))
        finally:
            if interrupted and not self.keep and self.fallback is None:
                remove_quietly(c)
            if self.fallback is not None:
                self.cleanup()

    def _wait(self, c) -> int:
        while True:
            try:
                return c.wait(timeout=0.25)
            except TimeoutError:
                continue

    def _collect_outputs(self) -> dict:
        if not self.outputs or (self.result or {}).get("exit_code") != 0:
            return {}
        return transfer.read_outputs(self.outputs, *(self.channel.outputs or (None, None)))

    def _raise_for_status(self, c) -> None:
        from .cellerrors import raise_for_status

        raise_for_status(self, c)

    def options_limit(self, key: str):
        from ..units import parse_size

        if key == "memory":
            try:
                return parse_size(self.options.get("memory"))
            except errors.JupyboxError:
                return None
        return self.options.get(key)


_LIMITS_SAID = False


def _say_unenforced_limits_once(image, command, root, options) -> None:
    """Rootless without a delegated cgroup: which limits are not enforced, once per kernel."""
    global _LIMITS_SAID
    if _LIMITS_SAID or os.geteuid() == 0:
        return
    from .. import api
    from ..runtime.options import make_spec

    try:
        notice = api.engine(root).limits_notice(make_spec(image, command, **options))
    except errors.JupyboxError:
        return  # the run itself will say what is wrong
    if notice:
        _LIMITS_SAID = True
        print(f"jupybox: {notice} (said once per kernel)", file=sys.stderr)


def show_notice(reason: str, limits: str = "") -> None:
    """The unmissable notice above a cell that runs without isolation (HTML banner, text line)."""
    from IPython.display import display

    from .display import NoIsolationNotice

    display(NoIsolationNotice(reason, limits))
