"""How a RUN step runs: the store's service starts its container (``ServiceRunner``), as it does
every container; the builder never forks (it may run in a notebook kernel).

The runner gives the container the image's Env (plus the step's ARGs), WorkingDir and User, no
entrypoint, ``--network none`` or ``host``, the step's mounts (``volumes``: ``SRC:DST[:ro]`` binds,
``tmpfs``: ``DST:OPTIONS``), and the step's output on one pipe whose lines are handed to
``on_output`` by a reader thread. The caller takes the
layer from :attr:`RunResult.upper` and then calls :meth:`Runner.remove`.
"""

from __future__ import annotations

import os
import signal
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


class ServiceRunner(Runner):
    """A RUN step's container, started by the store's service (``jupybox.run``), attached: it dies
    with this process. An interrupt (Ctrl-C; SIGTERM or SIGHUP in the CLI, turned into one) kills
    it, waits for its exit and removes it before KeyboardInterrupt goes on."""

    kind = "service"

    def run(self, image_id, argv, *, env, network="none", volumes=None, tmpfs=None, on_output=None) -> RunResult:
        from .. import api

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, _interrupt)
        try:
            return self._run(api, image_id, argv, self._spec_opts(env, network, volumes, tmpfs), on_output)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, api, image_id, argv, options: dict, on_output) -> RunResult:
        c = api.create(image_id, argv, root=self.root, **options)
        r, w = os.pipe()
        try:
            c.start(stdout=w, stderr=w, attach=True)
        except BaseException:
            os.close(r)
            try:
                c.remove(force=True)  # a step that could not start leaves nothing
            except errors.JupyboxError:
                pass
            raise
        finally:
            os.close(w)
        reader = _Reader(r, on_output)
        try:
            # (the reader shows the step's first output before start() returns: an interrupt
            # may come while it starts, so that is inside the try too)
            reader.start()
            code = c.wait()
        except BaseException:
            try:
                c.kill()
                c.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            if reader.is_alive():
                reader.join(timeout=5)
            elif reader.ident is None:
                os.close(r)  # (never started: its end of the pipe is ours to close)
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


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def make_runner(kind: str | None, root) -> Runner:
    """The runner of RUN steps (one kind today: the store's service; the name stays for callers
    that ask for the old kinds, which both meant "start the step's container")."""
    if kind not in (None, "service", "daemon", "in-process", "inprocess", "cli"):
        raise errors.UsageError(f"unknown runner {kind!r}")
    return ServiceRunner(root)
