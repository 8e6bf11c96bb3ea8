"""PID 1 of a container (``--init``, the default): reap zombies, forward signals, exit like the child.

This is the already-running launcher process itself, not a new program: exec'ing a Python
init would cost an interpreter start (tens of milliseconds), while staying in the forked
process costs nothing. Like tini: signals that PID 1 receives are forwarded to the main
process (a PID 1 without a handler would silently ignore them), orphans that the kernel
re-parents to us are reaped, and when the main process exits we exit with its status
(128+N when it was killed by signal N). Our exit takes the whole PID namespace with it.
"""

from __future__ import annotations

import os
import signal

FORWARDED = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGCONT,
    signal.SIGALRM,
    signal.SIGPIPE,
)


_pending: list[int] = []  # signals that came before the main process existed


def install_forwarding(get_child) -> None:
    """Before the main process exists: a signal that arrives meanwhile is kept for it."""

    def forward(signum, _frame):
        pid = get_child()
        if not pid:
            _pending.append(signum)
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)


def forward_pending(child: int) -> None:
    """Once the main process exists: what it missed, in order (as tini delivers it)."""
    while _pending:
        try:
            os.kill(child, _pending.pop(0))
        except ProcessLookupError:
            return


def reap_until(child: int) -> int:
    """Wait for every process; return the exit code of ``child`` (docker's convention)."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
