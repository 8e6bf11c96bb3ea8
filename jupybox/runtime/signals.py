"""Passing signals on to a container: what a monitor in the foreground does (docker's attached run).

Kept apart from the engine so that the CLI's foreground ``run`` (a client of the store's service)
can use it without importing the runtime.
"""

from __future__ import annotations

import contextlib
import signal

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def forwarding_signals(send):
    """While the block runs, the signals a container's monitor passes on call ``send(signum)``
    (docker's attached run does the same); the previous handlers come back afterwards. Outside
    the main thread no handler can be set: nothing is forwarded."""
    previous = {}
    for sig in FORWARDED_SIGNALS:
        try:
            previous[sig] = signal.signal(sig, lambda signum, _frame: send(signum))
        except ValueError:  # not the main thread
            break
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
