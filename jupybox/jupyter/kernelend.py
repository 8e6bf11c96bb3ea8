"""How a boxed kernel's failure or death is told: at its start, and when it dies while it runs.

A start that fails raises :class:`KernelStartError` with the end of the kernel's stderr (kept by
:class:`StderrTail`, which also copies it to the server's stderr as a local kernel's would be).

A kernel that dies while it runs (the OOM killer at its memory limit, a crash): jupyter_client's
restarter polls ``KernelManager.is_alive()``, that is the provisioner's ``poll()``; when that
finds the container exited, the provisioner logs the reason (:func:`death_reason`: the limit, the
peak) in the server's log, and the restarter restarts the kernel on the same provisioner, which
hands the reason to the next kernel in ``JUPYBOX_PREVIOUS_KERNEL`` (the restarter's own message
says only that the kernel "appears to have died"). In the next kernel, the extension
(:mod:`jupybox.jupyter.kernel_usage`) prints it on stderr in the first cell that runs
(:func:`tell_once`): the notebook says why, where the user looks next.
"""

from __future__ import annotations

import os
import sys
import threading

from .. import errors
from ..runtime.fdio import chunks

STDERR_TAIL = 16384  # bytes of the kernel's stderr kept for error messages

try:  # jupyter_server turns a tornado HTTPError's log_message into the message JupyterLab shows
    from tornado.web import HTTPError as _HTTPError
except ImportError:  # pragma: no cover - jupyter_client without tornado
    _HTTPError = None


class KernelStartError(errors.RuntimeFailure, *((_HTTPError,) if _HTTPError else ())):
    """The kernel's container could not start, or the kernel died before it was ready.

    Also a ``tornado.web.HTTPError`` (500) when tornado is installed: for any other exception
    jupyter_server answers the browser with a bare "Unhandled error", and the user would not learn
    that the image has no ipykernel.
    """

    def __init__(self, message: str):
        self.message = message
        if _HTTPError is not None:
            _HTTPError.__init__(self, 500, message, reason="Kernel failed to start")
        else:  # pragma: no cover
            Exception.__init__(self, message)

    def __str__(self) -> str:
        return self.message


class StderrTail(threading.Thread):
    """Copies the kernel's stderr to the server's (as a local kernel's would be) and keeps the end."""

    def __init__(self, fd: int, dest: int | None):
        super().__init__(name="jupybox-kernel-stderr", daemon=True)
        self.fd = fd
        self.dest = dest
        self.buf = bytearray()
        self.lock = threading.Lock()

    def run(self) -> None:
        try:
            for chunk in chunks(self.fd):
                if self.dest is not None:
                    view = memoryview(chunk)
                    while view:
                        try:
                            view = view[os.write(self.dest, view):]
                        except OSError:
                            break
                with self.lock:
                    self.buf += chunk
                    del self.buf[:-STDERR_TAIL]
        except OSError:
            pass  # the kernel's end of the pipe went away
        finally:
            os.close(self.fd)

    def text(self) -> str:
        with self.lock:
            return bytes(self.buf).decode(errors="replace")


def tail_lines(text: str, lines: int = 12, chars: int = 2000) -> str:
    kept = [ln.rstrip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    out = "\n".join(kept)
    return out[-chars:]


def fd_of(obj, default: int | None) -> int | None:
    if isinstance(obj, int) and obj >= 0:
        return obj
    try:
        return obj.fileno()
    except Exception:  # noqa: BLE001 - None, subprocess.PIPE, objects without a real fd
        return default


def server_stderr() -> int | None:
    for stream in (sys.__stderr__, sys.stderr):
        fd = fd_of(stream, None)
        if fd is not None:
            return fd
    return 2


# -- a kernel that died while it ran ---------------------------------------------------------------
def death_reason(label: str, result: dict, memory=None) -> str | None:
    """Why a kernel's container ended on its own, in one line; None for a plain exit 0.

    ``result`` is the container's exit (``Container.result()``: exit_code, oom_killed, extra with
    memory_limit and memory_peak); ``memory`` the kernelspec's limit, should the exit lack it."""
    from ..units import human_size, parse_size
    from .cellstatus import status_text

    code = result.get("exit_code")
    if result.get("oom_killed"):
        extra = result.get("extra") or {}
        limit = extra.get("memory_limit")
        if not limit and memory:
            try:
                limit = parse_size(memory)
            except errors.JupyboxError:
                limit = None
        peak = extra.get("memory_peak")
        return (f"jupybox: {label} was killed by the OOM killer: memory limit {human_size(limit)}"
                + (f", peak {human_size(peak)}" if peak else "") + f" (exit {code}); the kernel restarted "
                "without its variables. More memory: the kernelspec's limit (`jupybox kernel install -m SIZE`)")
    if code in (0, None):
        return None
    status, _ = status_text(result)
    return f"jupybox: {label} died: its container {status}; the kernel restarted without its variables"


def tell_once(ipython, reason: str) -> None:
    """In the next kernel: ``reason`` on stderr in the first cell that runs (its output shows it),
    once; also at once on stderr, which a front end without a running cell logs (JupyterLab's
    log console)."""
    print(reason, file=sys.stderr, flush=True)

    def pre_run_cell(*_args) -> None:
        ipython.events.unregister("pre_run_cell", pre_run_cell)
        print(reason, file=sys.stderr, flush=True)

    ipython.events.register("pre_run_cell", pre_run_cell)
