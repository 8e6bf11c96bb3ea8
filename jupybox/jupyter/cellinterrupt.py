"""How a ``%%container`` cell is interrupted: the kernel's SIGINT held while a container starts
(so that an interrupted start leaves nothing, or hands the container over), then SIGINT to the
container, SIGKILL after a grace period, and its removal waited for."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

from .. import errors
from .chartsession import container_name

HOLD_LIMIT = 1.5  # seconds an interrupt may wait for a start under way before it cuts it short


@contextlib.contextmanager
def sigint_deferred(limit: float | None = HOLD_LIMIT):
    """Hold a SIGINT that arrives inside the block; yields a function telling whether one came.

    A second SIGINT, or the first one still held ``limit`` seconds later (a start that hangs),
    raises KeyboardInterrupt at once: an interrupt always returns control."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit: list[int] = []
    timers: list[threading.Timer] = []

    def handler(signum, frame):
        hit.append(signum)
        if len(hit) > 1:
            raise KeyboardInterrupt
        if limit is not None:
            import _thread

            timers.append(threading.Timer(limit, _thread.interrupt_main))
            timers[-1].daemon = True
            timers[-1].start()

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:
        yield lambda: False
        return
    def interrupted() -> bool:
        return bool(hit)

    def settled() -> None:
        """The work that could hang is done: a held interrupt no longer needs its deadline (which
        would raise in the middle of what follows, e.g. between a hand-over and its message)."""
        for t in timers:
            t.cancel()

    interrupted.settled = settled
    try:
        yield interrupted
    finally:
        for t in timers:
            t.cancel()
        signal.signal(signal.SIGINT, old)


def stop_container(c, grace: float) -> None:
    """SIGINT, SIGKILL after the grace period, wait: the container is gone when this returns."""
    try:
        try:
            c.kill(signal.SIGINT)
        except errors.JupyboxError:
            pass
        deadline = time.monotonic() + grace
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


def remove_quietly(c, timeout: float = 10.0) -> None:
    """The container is gone when this returns: --rm's removal (which the service finishes just
    after it reports the exit) is waited for, else the container is removed here."""
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
