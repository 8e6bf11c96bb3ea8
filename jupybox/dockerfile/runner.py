"""How a RUN step runs: one interface, two ways to start the container.

* :class:`InProcessRunner` (the CLI): ``Engine.create`` + ``Engine.start`` with this process as the
  container's monitor; it waits for the exit itself, so Ctrl-C (SIGINT/SIGTERM/SIGHUP) kills the
  container, records its exit and then raises KeyboardInterrupt in the build.
* :class:`DaemonRunner` (a notebook kernel, or any threaded process): ``jupybox.run`` through the
  launcher daemon, which forks the container; the caller never forks. An interrupt while waiting
  kills the container through the daemon.

Both give the container the image's Env (plus the step's ARGs), WorkingDir and User, no
entrypoint, ``--network none`` or ``host``, the step's mounts (``volumes``: ``SRC:DST[:ro]`` binds,
``tmpfs``: ``DST:OPTIONS``), and the step's output on one pipe whose lines are
handed to ``on_output`` by a reader thread (started after the fork). The caller takes the
layer from :attr:`RunResult.upper` and then calls :meth:`Runner.remove`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import errors
from ..runtime.fdio import chunks


@dataclass
class RunResult:
    exit_code: int
    oom_killed: bool
    upper: Path
    handle: object  # what remove() needs


class _Reader(threading.Thread):
    def __init__(self, fd: int, on_output: Callable[[str], None] | None):
        super().__init__(name="jupybox-build-output", daemon=True)
        self.fd = fd
        self.on_output = on_output
        self.lines: list[str] = []

    def run(self) -> None:
        pending = b""
        try:
            try:
                for chunk in chunks(self.fd):
                    pending += chunk
                    while b"\n" in pending:
                        line, _, pending = pending.partition(b"\n")
                        self._line(line)
            except OSError:
                pass  # the container's end of the pipe went away: what came is what there is
            if pending:
                self._line(pending)
        finally:
            os.close(self.fd)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        self.lines.append(text)
        if self.on_output is not None:
            try:
                self.on_output(text)
            except Exception:  # noqa: BLE001 - a broken display must not hang the build
                pass


class Runner:
    kind = "?"

    def __init__(self, root):
        self.root = os.fspath(root)

    def run(self, image_id: str, argv: list[str], *, env: dict[str, str], network: str = "none",
            volumes: list[str] | None = None, tmpfs: list[str] | None = None, on_output=None) -> RunResult:
        raise NotImplementedError

    def remove(self, result: RunResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _spec_opts(self, env, network, volumes, tmpfs=None) -> dict:
        return {"env": dict(env), "network": network, "entrypoint": [], "volumes": list(volumes or []),
                "tmpfs": list(tmpfs or []), "init": True}


class InProcessRunner(Runner):
    kind = "in-process"

    def __init__(self, root):
        super().__init__(root)
        from ..runtime.engine import Engine

        self.engine = Engine(self.root)

    def run(self, image_id, argv, *, env, network="none", volumes=None, tmpfs=None, on_output=None) -> RunResult:
        from ..runtime.options import make_spec

        eng = self.engine
        spec = make_spec(image_id, argv, **self._spec_opts(env, network, volumes, tmpfs))
        rec = eng.create(spec)
        interrupted: list[int] = []
        current: dict = {"running": None}

        def on_signal(signum, _frame):
            interrupted.append(signum)
            running = current["running"]
            if running is not None:
                try:
                    os.kill(running.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        # installed before the start: an interrupt at any moment from here on kills the container
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, on_signal)
        state = None
        try:
            r, w = os.pipe()
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                running = eng.start(rec, (devnull, w, w))
            except BaseException:
                for fd in (r, w, devnull):
                    os.close(fd)
                try:
                    eng.remove(rec, force=True)
                except errors.JupyboxError:
                    pass
                raise
            current["running"] = running
            if interrupted:
                on_signal(interrupted[0], None)
            os.close(w)
            os.close(devnull)
            reader = _Reader(r, on_output)
            reader.start()
            status = 137 << 8
            try:
                while True:
                    try:
                        status = os.waitpid(running.pid, 0)[1]
                        break
                    except InterruptedError:
                        continue
                    except ChildProcessError:
                        break
            finally:
                state = eng.finish(running, status)
                reader.join()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        result = RunResult(state.exit_code if state.exit_code is not None else -1, bool(state.oom_killed),
                           rec.upper, rec)
        if interrupted:
            self.remove(result)
            raise KeyboardInterrupt
        return result

    def remove(self, result: RunResult) -> None:
        try:
            self.engine.remove(result.handle, force=True)
        except errors.ContainerNotFound:
            pass


class DaemonRunner(Runner):
    kind = "daemon"

    def run(self, image_id, argv, *, env, network="none", volumes=None, tmpfs=None, on_output=None) -> RunResult:
        from .. import api

        r, w = os.pipe()
        try:
            c = api.run(image_id, argv, root=self.root, stdout=w, stderr=w,
                        **self._spec_opts(env, network, volumes, tmpfs))
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        reader = _Reader(r, on_output)
        reader.start()
        try:
            code = c.wait()
        except BaseException:
            try:
                c.kill()
                c.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            reader.join(timeout=5)
            try:
                c.remove(force=True)
            except errors.JupyboxError:
                pass
            raise
        reader.join()
        rec = api.engine(self.root).records.get(c.id)
        oom = False
        try:
            oom = bool(c.result().get("oom_killed"))
        except Exception:  # noqa: BLE001
            pass
        return RunResult(code, oom, rec.upper, c)

    def remove(self, result: RunResult) -> None:
        try:
            result.handle.remove(force=True)
        except errors.ContainerNotFound:
            pass


def default_runner_kind() -> str:
    """``daemon`` inside a Jupyter kernel or any threaded process (never fork those), else
    ``in-process``."""
    if "ipykernel" in sys.modules or threading.active_count() > 1:
        return "daemon"
    return "in-process"


def make_runner(kind: str | None, root) -> Runner:
    kind = kind or default_runner_kind()
    if kind in ("in-process", "inprocess", "cli"):
        return InProcessRunner(root)
    if kind == "daemon":
        return DaemonRunner(root)
    raise errors.UsageError(f"unknown runner {kind!r} (in-process or daemon)")
