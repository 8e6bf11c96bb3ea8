"""The service's event loop: descriptors (epoll, through ``selectors``: no ``select()``, whose 1024
descriptor limit a service with hundreds of containers would pass), timers, and chores.

Chores are the work nobody waits for (releasing a container's PID 1, removing a cgroup, making the
next sandbox): one runs in each round of the loop, after the descriptors that were ready, unless a
*hold* is on (a loop of requests must not starve them, nor wait behind more than one). A hold starts when
an exit is reported: on 2 CPUs the client needs one to take the exit in, and a chore run then
(a sandbox's fork, a cgroup's rmdir) would delay it.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self._timers: list = []
        self._seq = itertools.count()
        self._chores: list = []
        self.hold_until = 0.0
        self.on_error = None  # called (in an except block) when a callback raises: the loop goes on

    # -- descriptors -----------------------------------------------------------------------------
    def add_reader(self, fd: int, callback) -> None:
        self.selector.register(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd: int) -> None:
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def watching(self) -> int:
        return len(self.selector.get_map())

    # -- time --------------------------------------------------------------------------------------
    def call_later(self, delay: float, callback) -> Timer:
        t = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        return t

    def hold(self, seconds: float) -> None:
        """No chores for this long (holds do not chain: a loop of exits still gets its chores)."""
        now = time.monotonic()
        if now >= self.hold_until:
            self.hold_until = now + seconds

    def chore(self, callback) -> None:
        self._chores.append(callback)

    def has_chores(self) -> bool:
        return bool(self._chores)

    # -- one round -------------------------------------------------------------------------------
    def run_once(self, idle_timeout: float | None) -> None:
        """Wait for a descriptor, a timer or (after ``idle_timeout``) nothing; then run what is due,
        and one chore."""
        now = time.monotonic()
        timeout = idle_timeout
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        if self._timers:
            due = max(0.0, self._timers[0][0] - now)
            timeout = due if timeout is None else min(timeout, due)
        if self._chores:
            wait = max(0.0, self.hold_until - now)
            timeout = wait if timeout is None else min(timeout, wait)
        events = self.selector.select(timeout)
        fdmap = self.selector.get_map()
        for key, _mask in events:
            # an earlier callback of this round may have closed this one's descriptor
            if fdmap.get(key.fd) is key:
                self._call(key.data)
        now = time.monotonic()
        while self._timers and (self._timers[0][2].cancelled or self._timers[0][0] <= now):
            _when, _seq, t = heapq.heappop(self._timers)
            if not t.cancelled:
                self._call(t.callback)
        # one chore a round, after what came in: a request never waits behind more than one
        if self._chores and time.monotonic() >= self.hold_until:
            self._call(self._chores.pop(0))

    def _call(self, callback) -> None:
        """A callback's failure is logged, not the end of the service (its other containers)."""
        try:
            callback()
        except Exception:  # noqa: BLE001
            if self.on_error is None:
                raise
            self.on_error()

    def close(self) -> None:
        self.selector.close()
