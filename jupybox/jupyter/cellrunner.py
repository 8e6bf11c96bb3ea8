"""Running one ``%%container`` cell: the code in, the output streamed, values in and out, the chart.

How things travel (see the magic's docstring for the user's view):

* **Python cells** (no COMMAND): a private temporary directory on the host (0700 parent) holds
  ``cell.py``, a small ``runner.py`` and ``in.pkl``; it is bind-mounted read-write at
  ``/run/jupybox-cell`` and the container runs ``python3 -u /run/jupybox-cell/runner.py``. The
  runner unpickles the ``-i`` values into a fresh ``__main__``, executes the cell, and pickles the
  ``-o`` values (each on its own, so a failure names the variable) into ``out.pkl``.
* **COMMAND cells** (``sh``, ``bash``, ``python3``, ``Rscript``...): the cell is the program's
  stdin, like ``%%script``; ``-i`` values that are str/int/float/bool become environment variables.
* stdout and stderr are two pipes read by two threads that write into the kernel's
  ``sys.stdout``/``sys.stderr`` (captured when the cell starts, with the cell's context), so the
  output lands live in the right cell.
* The container is started by the launcher daemon (``jupybox.run``): the kernel never forks.
* **Fallback mode** (``mode.detect()``: no namespace can be made here, e.g. mybinder.org): the
  same cell runs as a plain process (``runtime.unisolated``: rlimits, psutil stats for the same
  chart), its files read from the host directory itself, and a notice that there is no isolation
  is displayed above its output, on every such cell.

Interrupt: the kernel's SIGINT (KeyboardInterrupt in the main thread while we wait) sends SIGINT
to the container, SIGKILL after ``grace`` seconds, waits for it and removes it; then
KeyboardInterrupt is raised again. A SIGINT that arrives while the container is being started is
held until its handle exists, so that even then nothing is left behind.
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time

from .. import errors
from ..runtime.fdio import chunks

CELL_DIR = "/run/jupybox-cell"
PICKLE_PROTOCOL = 4  # readable by any Python >= 3.4 inside an image

RUNNER = r'''# jupybox %%container runner: executes cell.py as __main__ with the -i values, pickles the -o values.
import os, pickle, sys, traceback, types


def _main():
    for stream in (sys.stdout, sys.stderr):
        try:  # like a terminal: whole lines, as soon as they are complete
            stream.reconfigure(line_buffering=True, write_through=False)
        except Exception:
            pass
    d = sys.argv[1]
    outputs = [n for n in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if n]
    cell = os.path.join(d, "cell.py")
    mod = types.ModuleType("__main__")
    mod.__file__ = cell
    mod.__builtins__ = __builtins__
    sys.modules["__main__"] = mod  # classes defined in the cell pickle as __main__.X
    ns = mod.__dict__
    inp = os.path.join(d, "in.pkl")
    if os.path.exists(inp):
        with open(inp, "rb") as f:
            values = pickle.load(f)
        for name, data in values.items():
            try:
                ns[name] = pickle.loads(data)
            except Exception as e:
                sys.stderr.write("jupybox: -i %s: cannot be unpickled in the container: %s: %s\n"
                                 % (name, type(e).__name__, e))
                sys.exit(1)
    with open(cell, "rb") as f:
        code = compile(f.read(), cell, "exec")
    sys.argv = [cell]
    status = 0
    try:
        exec(code, ns)
    except SystemExit as e:
        status = e.code
    except KeyboardInterrupt:
        raise
    except BaseException:
        et, ev, tb = sys.exc_info()
        traceback.print_exception(et, ev, tb.tb_next)
        sys.stderr.flush()
        sys.exit(1)
    if outputs and status in (None, 0):
        values, errs = {}, {}
        for name in outputs:
            if name not in ns:
                errs[name] = "the cell did not define it"
                continue
            try:
                values[name] = pickle.dumps(ns[name], protocol=@PROTOCOL@)
            except Exception as e:
                errs[name] = "%s: %s" % (type(e).__name__, e)
        tmp = os.path.join(d, "out.pkl.tmp")
        with open(tmp, "wb") as f:
            pickle.dump({"values": values, "errors": errs}, f, protocol=@PROTOCOL@)
        os.rename(tmp, os.path.join(d, "out.pkl"))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status)


_main()
'''.replace("@PROTOCOL@", str(PICKLE_PROTOCOL))


class TransferError(errors.JupyboxError, pickle.PicklingError):
    """A ``-i``/``-o`` value that cannot travel (unpicklable, undefined); the message names it."""


def one_line(exc: BaseException) -> BaseException:
    """Make IPython show a JupyboxError as one line (``ImageNotFound: No such image: x``), not a traceback.

    The exception keeps its type: ``except jupybox.ContainerError`` works as usual.
    """
    if isinstance(exc, errors.JupyboxError):
        line = f"{type(exc).__name__}: {exc}"
        exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return exc


@contextlib.contextmanager
def sigint_deferred():
    """Hold a SIGINT that arrives inside the block; yields a function telling whether one came."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit: list[int] = []

    def handler(signum, frame):
        hit.append(signum)

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield lambda: False
        return
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, old)


def _pump(fd: int, stream, tee: str | os.PathLike | None = None) -> None:
    """Copy a pipe into a text stream as bytes arrive (incremental UTF-8 decoding).

    An ipykernel stream publishes by itself within 0.2 s and merges what came meanwhile into one
    output; flushing it at every chunk would split a saved notebook's output into fragments.
    Other streams (a terminal) are flushed at every chunk. ``tee``: a log file that gets the bytes
    too (a kept container's ``stdout.log``, so that ``%container logs`` shows them later).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    autoflush = getattr(stream, "pub_thread", None) is None
    log = None
    if tee is not None:
        try:
            log = open(tee, "ab")  # noqa: SIM115
        except OSError:
            log = None
    try:
        for data in chunks(fd):
            if log is not None:
                log.write(data)
                log.flush()
            text = decoder.decode(data)
            if text:
                try:
                    stream.write(text)
                    if autoflush:
                        stream.flush()
                except (ValueError, OSError):
                    pass
        text = decoder.decode(b"", final=True)
        if text:
            stream.write(text)
            stream.flush()
    finally:
        os.close(fd)
        if log is not None:
            log.close()


def status_text(result: dict, interrupted: bool = False) -> tuple[str, bool]:
    code = result.get("exit_code")
    if result.get("oom_killed"):
        return f"OOM-killed (exit {code})", False
    if interrupted:
        return f"interrupted (exit {code})", False
    if code == 0:
        return "exited 0", True
    if code is not None and code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"killed by {name} (exit {code})", False
    return f"exited {code}", False


def pickle_inputs(names: list[str], user_ns: dict) -> dict[str, bytes]:
    out = {}
    for name in names:
        if name not in user_ns:
            raise TransferError(f"-i {name}: no variable named {name!r} in the notebook")
        try:
            out[name] = pickle.dumps(user_ns[name], protocol=PICKLE_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - any pickling failure is reported the same way
            raise TransferError(f"-i {name}: cannot pickle {type(user_ns[name]).__name__} value "
                                f"({type(e).__name__}: {e}); values travel into the container with pickle") from None
    return out


def env_inputs(names: list[str], user_ns: dict) -> list[str]:
    """-i for a COMMAND cell: simple values become environment variables."""
    out = []
    for name in names:
        if name not in user_ns:
            raise TransferError(f"-i {name}: no variable named {name!r} in the notebook")
        v = user_ns[name]
        if not isinstance(v, (str, int, float, bool)):
            raise TransferError(f"-i {name}: a COMMAND cell gets -i values as environment variables "
                                f"(str, int, float or bool), not {type(v).__name__}; "
                                f"run the cell as Python (no COMMAND) to pass any picklable value")
        out.append(f"{name}={v}")
    return out


class CellRun:
    """One run of a ``%%container`` cell. ``run()`` returns the Container (``--bg``) or None."""

    def __init__(self, *, image: str, command: list[str], cell: str | None, options: dict, user_ns: dict,
                 inputs=(), outputs=(), bg: bool = False, raise_error: bool = True, keep: bool = False,
                 chart: bool = True, live: bool = False, summary: bool = True, rate: float = 4.0,
                 grace: float = 2.0, python: str = "python3", root=None, stdout=None, stderr=None,
                 isolation=None):
        self.image = image
        self.command = list(command)
        self.cell = cell
        self.options = dict(options)
        self.user_ns = user_ns
        self.inputs = list(inputs)
        self.outputs = list(outputs)
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
        # a Python cell (no COMMAND); a script for COMMAND (the cell is its stdin); or, with cell=None
        # (``%container run``), the command alone with /dev/null as stdin
        self.mode = "plain" if cell is None else "script" if self.command else "python"
        self.python_mode = self.mode == "python"
        self.tmp: str | None = None
        self.container = None
        self.result: dict | None = None
        self.series = None
        self.wall = 0.0
        self.isolation = isolation  # a runtime.mode.Mode; None: detected when the cell runs
        self.fallback = None  # that Mode when it says there is no isolation here

    # -- preparing ---------------------------------------------------------------------------
    def _check(self) -> None:
        if self.outputs and not self.python_mode:
            raise errors.UsageError("-o needs a Python cell (no COMMAND): the values come back with pickle")
        if self.outputs and self.bg:
            raise errors.UsageError("-o needs the cell to finish: it cannot be used with --bg")
        if self.fallback is not None and self.bg:
            raise errors.UsageError("--bg needs isolation: without it a cell runs as a plain process, in the "
                                    f"foreground only ({self.fallback.reason})")

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
        if self.python_mode:
            payload = pickle_inputs(self.inputs, self.user_ns) if self.inputs else None
            self.tmp = tempfile.mkdtemp(prefix="jupybox-cell-")
            d = os.path.join(self.tmp, "cell")
            os.mkdir(d)
            # a --user other than root must be able to read the cell and write out.pkl
            os.chmod(d, 0o777 if opts.get("user") else 0o755)
            # without isolation the process reads the directory where it is; else it is mounted
            cell_dir = d if self.fallback is not None else CELL_DIR
            with open(os.path.join(d, "cell.py"), "w", encoding="utf-8") as f:
                f.write(self.cell)
            with open(os.path.join(d, "runner.py"), "w", encoding="utf-8") as f:
                f.write(RUNNER)
            if payload is not None:
                with open(os.path.join(d, "in.pkl"), "wb") as f:
                    pickle.dump(payload, f, protocol=PICKLE_PROTOCOL)
            for name in os.listdir(d):
                os.chmod(os.path.join(d, name), 0o644)
            if self.fallback is None:
                opts["volumes"] = list(opts.get("volumes") or []) + [f"{d}:{CELL_DIR}"]
            command = [self.python, f"{cell_dir}/runner.py", cell_dir, ",".join(self.outputs)]
            stdin = None
        elif self.mode == "plain":
            command = self.command
            stdin = None
        else:
            if self.inputs:
                env += env_inputs(self.inputs, self.user_ns)
            # the cell is the program's stdin, like %%script: an unlinked temporary file
            f = tempfile.TemporaryFile(prefix="jupybox-cell-")
            f.write(self.cell.encode())
            f.flush()
            f.seek(0)
            stdin = os.dup(f.fileno())
            f.close()
            command = self.command
        opts["env"] = env
        if not self.bg:
            opts["remove"] = not self.keep
        return command, stdin

    def cleanup(self) -> None:
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    # -- running -----------------------------------------------------------------------------
    def _starter(self, command):
        """The one place that says how the cell's process starts: ``start(stdin, stdout, stderr)``.

        In a container through the launcher daemon; in fallback mode as a plain process, checked
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
        stdin = None
        try:
            command, stdin = self._prepare()
            start = self._starter(command) if not self.bg else None
        except BaseException:
            if stdin is not None:
                os.close(stdin)
            self.cleanup()
            raise
        if self.bg:
            return self._run_bg(command, stdin)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        t0 = time.monotonic()
        # a SIGINT while the container starts is held until it runs with its readers and chart
        # (then it is handled like any other interrupt: nothing is left behind)
        with sigint_deferred() as interrupted_early:
            try:
                c = start(stdin, out_w, err_w)
            except BaseException:
                os.close(out_r)
                os.close(err_r)
                self.cleanup()
                raise
            finally:
                for fd in (out_w, err_w) + ((stdin,) if stdin is not None else ()):
                    os.close(fd)
            self.container = c
            ctx = contextvars.copy_context()
            tees = (None, None)
            if not self.options.get("remove") and self.fallback is None:
                rec = c._record  # noqa: SLF001 - a kept container's log files, for %container logs
                tees = (rec.stdout_log, rec.stderr_log)
            readers = [threading.Thread(target=ctx.copy().run, args=(_pump, fd, stream, tee), daemon=True,
                                        name=f"jupybox-{which}")
                       for fd, stream, tee, which in ((out_r, self.stdout, tees[0], "stdout"),
                                                      (err_r, self.stderr, tees[1], "stderr"))]
            for t in readers:
                t.start()
            display = None
            if self.chart or self.summary:
                try:
                    display = ChartSession.for_options(c, self.image, self.options, chart=self.chart,
                                                       live=self.live, summary=self.summary, rate=self.rate, t0=t0)
                except Exception as e:  # noqa: BLE001 - no chart is no reason to lose the container
                    print(f"jupybox: no chart: {type(e).__name__}: {e}", file=self.stderr)
        interrupted = False
        try:
            if interrupted_early():
                raise KeyboardInterrupt
            self._wait(c)
        except KeyboardInterrupt:
            interrupted = True
            self._interrupt(c)
        finally:
            self.wall = time.monotonic() - t0
            for t in readers:
                t.join(30)
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
                try:
                    if interrupted and not self.keep and self.fallback is None:
                        _remove_quietly(c)
                    values = self._collect_outputs() if not interrupted else {}
                finally:
                    self.cleanup()
        if interrupted:
            raise KeyboardInterrupt
        self._raise_for_status(c)
        self.user_ns.update(values)
        return None

    def _wait(self, c) -> int:
        while True:
            try:
                return c.wait(timeout=0.25)
            except TimeoutError:
                continue

    def _interrupt(self, c) -> None:
        """SIGINT, SIGKILL after the grace period, wait: the container is gone when this returns."""
        try:
            try:
                c.kill(signal.SIGINT)
            except errors.JupyboxError:
                pass
            deadline = time.monotonic() + self.grace
            while True:
                try:
                    c.wait(timeout=max(0.0, min(0.25, deadline - time.monotonic())))
                    return
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        break
        except KeyboardInterrupt:
            pass  # a second interrupt: no more grace
        while True:
            try:
                try:
                    c.kill(signal.SIGKILL)
                except errors.JupyboxError:
                    pass
                c.wait(timeout=30)
                return
            except TimeoutError:
                raise errors.RuntimeFailure(f"container {container_name(c)} did not die after SIGKILL") from None
            except KeyboardInterrupt:
                continue  # we are already killing it

    def _collect_outputs(self) -> dict:
        if not self.outputs or not self.tmp or (self.result or {}).get("exit_code") != 0:
            return {}
        path = os.path.join(self.tmp, "cell", "out.pkl")
        try:
            with open(path, "rb") as f:
                data = pickle.load(f)
        except FileNotFoundError:
            raise TransferError(f"-o {','.join(self.outputs)}: the cell ended without returning its values") from None
        values = {}
        for name in self.outputs:
            if name in data["errors"]:
                raise TransferError(f"-o {name}: {data['errors'][name]}"
                                    + ("" if "did not define" in data["errors"][name] else
                                       "; values travel out of the container with pickle"))
            try:
                values[name] = pickle.loads(data["values"][name])
            except Exception as e:  # noqa: BLE001
                raise TransferError(f"-o {name}: cannot be unpickled in the notebook: {type(e).__name__}: {e}") from None
        return values

    def _raise_for_status(self, c) -> None:
        res = self.result or {}
        code = res.get("exit_code")
        if not self.raise_error:
            return
        from ..units import human_size

        extra = res.get("extra") or {}
        if res.get("oom_killed"):
            limit = extra.get("memory_limit") or self.options_limit("memory")
            peak = extra.get("memory_peak") or (self.series.mem_peak if self.series else None)
            raise errors.ContainerOOMError(
                f"container {container_name(c)} was killed by the OOM killer: memory limit {human_size(limit)}, "
                f"peak {human_size(peak)} (exit {code})", code if code is not None else 137, c, limit, peak)
        if code not in (0, None):
            raise errors.ContainerError(f"container {container_name(c)} exited with code {code}", code, c)

    def options_limit(self, key: str):
        from ..units import parse_size

        if key == "memory":
            try:
                return parse_size(self.options.get("memory"))
            except errors.JupyboxError:
                return None
        return self.options.get(key)

    def _run_bg(self, command, stdin):
        import jupybox

        try:
            c = jupybox.run(self.image, command, root=self.root, stdin=stdin, detach=True, **self.options)
        except BaseException:
            self.cleanup()
            raise
        finally:
            if stdin is not None:
                os.close(stdin)
        self.container = c
        print(container_name(c), file=self.stdout)
        if self.tmp:
            tmp, self.tmp = self.tmp, None

            def reap():  # the cell's files live as long as the container
                try:
                    c.wait()
                except Exception:  # noqa: BLE001
                    pass
                shutil.rmtree(tmp, ignore_errors=True)

            threading.Thread(target=reap, name="jupybox-bg-reaper", daemon=True).start()
        return c


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


def _remove_quietly(c, timeout: float = 10.0) -> None:
    """The container is gone when this returns: --rm's removal (which the launcher daemon finishes
    just after it reports the exit) is waited for, else the container is removed here."""
    rec = c._record  # noqa: SLF001
    deadline = time.monotonic() + timeout
    while rec.dir.exists() and time.monotonic() < deadline:
        try:
            if not rec.config["spec"].get("remove"):
                break
        except errors.JupyboxError:
            return
        time.sleep(0.01)
    try:
        c.remove(force=True)
    except errors.JupyboxError:
        pass  # removed meanwhile


def container_name(c) -> str:
    try:
        return c.name
    except errors.JupyboxError:
        return c.short_id


class ChartSession:
    """What a cell shows around a container's run: the live widget (when asked), then the static
    PNG of the whole run and the one-line summary. Also used by ``%container monitor``."""

    def __init__(self, container, *, image: str, limits, chart: bool = True, live: bool = False,
                 summary: bool = True, rate: float = 4.0, t0: float | None = None):
        from .chart import Recorder

        self.c = container
        self.image = image
        self.limits = limits
        self.chart = chart
        self.summary = summary
        self.live = None
        self.handle = None
        on_sample = None
        if chart and live:
            try:
                from IPython.display import display

                from .chart import LiveChart

                self.live = LiveChart(self.title(), self.limits)
                self.handle = display(self.live.widget, display_id=True)
                on_sample = self.live.draw
            except ImportError:
                self.live = None
        self.recorder = Recorder(container, rate=rate, on_sample=on_sample, t0=t0).start() if chart else None

    @classmethod
    def for_options(cls, container, image: str, options: dict, **kw) -> "ChartSession":
        from ..runtime.options import make_spec
        from .chart import ChartLimits

        if getattr(container, "isolated", True) is False:  # a plain process: only what it enforces
            lim = container.limits
            return cls(container, image=image, limits=ChartLimits(memory=lim.memory, pids=lim.pids), **kw)
        try:
            lim = make_spec(image, None, **options).limits
            limits = ChartLimits(memory=lim.memory, cpus=lim.cpus, pids=lim.pids)
        except errors.JupyboxError:
            limits = ChartLimits()
        return cls(container, image=image, limits=limits, **kw)

    def title(self) -> str:
        lim = []
        if self.limits.memory:
            from ..units import human_size

            lim.append(f"-m {human_size(self.limits.memory)}")
        if self.limits.cpus:
            lim.append(f"--cpus {self.limits.cpus:g}")
        if self.limits.pids:
            lim.append(f"--pids-limit {self.limits.pids}")
        return f"{container_name(self.c)} · {self.image}" + (f" · {' '.join(lim)}" if lim else "")

    def stop(self):
        if self.recorder is not None:
            self.recorder.stop()
            return self.recorder.series
        return None

    def finish(self, result: dict | None, *, wall: float, status: tuple[str, bool] | None = None) -> None:
        """Replace the widget by the PNG (or show the PNG) and show the summary.

        ``result`` is ``Container.result()``'s dict; ``status`` overrides its text (e.g. still running).
        """
        from IPython.display import display

        from .chart import ChartImage, ChartLimits, render_png
        from .display import Summary

        result = result or {}
        extra = result.get("extra") or {}
        text, ok = status if status is not None else status_text(result)
        series = self.recorder.series if self.recorder else None
        limits = self.limits
        if self.recorder is not None and self.recorder.first is not None:
            limits = ChartLimits.from_stats(self.recorder.first, self.limits)
        cpu_ns = extra.get("cpu_usage_ns") or (series.cpu_ns if series else None)
        summary = Summary(
            container_name(self.c), status=text, ok=ok, wall=wall,
            cpu_seconds=cpu_ns / 1e9 if cpu_ns is not None else None,
            memory_peak=extra.get("memory_peak") or (series.mem_peak if series else None),
            memory_limit=extra.get("memory_limit") or limits.memory,
            pids_peak=series.pids_peak if series else None, cpus=limits.cpus, image=self.image)
        self.summary_obj = summary
        image = None
        if self.recorder is not None:
            oom = bool(result.get("oom_killed"))
            if oom and series.oom_at is None and series.t:
                series.oom_at = series.t[-1]
            png = render_png(series, limits, self.title(), end=wall, oom=oom)
            image = ChartImage(png, f"[chart of {summary.name}: {len(series)} samples]")
        self.image_obj = image
        if self.handle is not None:
            self.handle.update(image if image is not None else summary)
            self.live.close()
            if image is not None and self.summary:
                display(summary)
        else:
            if image is not None:
                display(image)
            if self.summary:
                display(summary)
