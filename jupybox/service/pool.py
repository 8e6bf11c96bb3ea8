"""Sandboxes made ahead of time (``Engine.prepare``): a container's directory, cgroup, namespaces
and waiting PID 1, and — speculating that the next container looks like the last one (a re-run
cell) — its root filesystem and even its whole plan.

The pool adapts to the request rate: one sandbox while requests come now and then; up to
``MAX_SIZE`` when they come back to back (a loop in a notebook), so a run never waits for the
sandbox the previous run's replacement is still making; back to one after ``SHRINK_AFTER``
seconds without a run (each idle sandbox holds a network namespace and a cgroup).

Sandboxes are made by a thread of the service (``Preparer``) with an engine of its own: most of
the work is the kernel's (a directory's inodes, which ext4 hands out slowly under churn, cgroup
directories, the init's spawn), during which the thread does not hold the GIL, so the loop goes on
serving requests. That thread lives as long as the service: a sandbox's helper dies with the thread
that spawned it (its parent-death signal).

A sandbox is used only when it is provably current: it carries the store's generation it was made
for (``Layout.generation``), and any change of images, volumes or networks since throws it away.
``JUPYBOX_SPECULATE=0`` turns the pool off (every run takes the slow path: what the differential
tests compare against).
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time

from .. import errors

MAX_SIZE = 3
BURST = 0.25  # seconds: runs closer than this to the last one are a burst
SHRINK_AFTER = 30.0
RETRY = 5.0  # seconds before another try when a sandbox could not be made


class Preparer(threading.Thread):
    """Makes sandboxes (and throws away unused ones) off the loop's thread."""

    def __init__(self, root: str, log):
        super().__init__(name="jupybox-preparer", daemon=True)
        from ..runtime.engine import Engine

        self.engine = Engine(root)
        self.log = log
        self.orders: queue.SimpleQueue = queue.SimpleQueue()
        self.made: collections.deque = collections.deque()
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def run(self) -> None:
        while True:
            order = self.orders.get()
            if order is None:
                return
            kind, arg = order
            if kind == "discard":
                try:
                    arg.discard()
                except (errors.JupyboxError, OSError) as e:
                    self.log(f"discarding a sandbox: {e}")
                continue
            network, template = arg
            try:
                self.made.append(self.engine.prepare(network, template))
            except (errors.JupyboxError, OSError) as e:
                self.made.append(e)
            try:
                os.write(self.wake_w, b"x")
            except OSError:
                pass

    def stop(self) -> None:
        self.orders.put(None)
        self.join(timeout=30)
        os.close(self.wake_r)
        os.close(self.wake_w)


class Pool:
    def __init__(self, service):
        self.service = service
        self.engine = service.engine
        self.loop = service.loop
        self.enabled = os.environ.get("JUPYBOX_SPECULATE", "1") != "0"
        self.sandboxes: list = []  # Engine.prepare()s, oldest first
        self.ordered = 0  # asked of the preparer, not made yet
        self.target = 1 if self.enabled else 0
        self.template: dict | None = None  # the config of the last container
        self.last_take = 0.0
        self.retry_at = 0.0  # the last one could not be made (no cgroup, a full disk): not before then
        self._settling: dict[int, object] = {}
        self.preparer = None
        if self.enabled:
            self.preparer = Preparer(str(self.engine.layout.root), service.log)
            self.preparer.start()
            self.loop.add_reader(self.preparer.wake_r, self._made)

    def ids(self) -> set[str]:
        return {pw.cid for pw in self.sandboxes}

    # -- taking ----------------------------------------------------------------------------------
    def take(self, spec):
        """A sandbox for this spec, or None (the run makes its own). The caller then sets the
        template (the container it made) and calls :meth:`fill` for the next ones."""
        if not self.enabled:
            return None
        now = time.monotonic()
        burst = now - self.last_take < BURST
        self.last_take = now
        if burst:
            self.target = min(MAX_SIZE, self.target + 1)
        while self.sandboxes:
            pw = self.sandboxes.pop(0)
            if not pw.current():
                self.discard(pw)  # made for the store as it was
                continue
            if not pw.fits(spec):
                self.sandboxes.insert(0, pw)
                break
            self._unsettle(pw)
            return pw
        return None

    def discard(self, pw) -> None:
        self._unsettle(pw)
        if self.preparer is not None and self.preparer.is_alive():
            self.preparer.orders.put(("discard", pw))
        else:
            pw.discard()

    # -- making -----------------------------------------------------------------------------------
    def fill(self) -> None:
        """Order the sandboxes that are missing (the preparer makes them while we serve)."""
        if not self.enabled or time.monotonic() < self.retry_at or not self.service.accepting:
            return
        template = self.template
        network = template["spec"]["network"] if template else "none"
        while len(self.sandboxes) + self.ordered < self.target:
            self.ordered += 1
            self.preparer.orders.put(("make", (network, template)))

    def _made(self) -> None:
        try:
            os.read(self.preparer.wake_r, 4096)
        except BlockingIOError:
            pass
        while self.preparer.made:
            pw = self.preparer.made.popleft()
            self.ordered -= 1
            if isinstance(pw, BaseException):
                self.retry_at = time.monotonic() + RETRY
                self.service.log(f"no sandbox made ahead: {pw}")
                continue
            if not self.service.accepting:
                self.discard(pw)
                continue
            self.sandboxes.append(pw)
            fd = pw.sandbox.helper_fd()
            self._settling[fd] = pw
            self.loop.add_reader(fd, lambda fd=fd: self._settle(fd))

    def _settle(self, fd: int) -> None:
        """Reap the sandbox's helper as soon as it reports, so no zombie waits for a request."""
        pw = self._settling.pop(fd, None)
        self.loop.remove_reader(fd)
        if pw is not None and pw in self.sandboxes and not pw.ready():
            self.sandboxes.remove(pw)
            self.discard(pw)

    def _unsettle(self, pw) -> None:
        for fd, other in list(self._settling.items()):
            if other is pw:
                self.loop.remove_reader(fd)
                del self._settling[fd]

    def shrink(self) -> None:
        """Without a run for a while: one sandbox is enough."""
        if self.enabled and time.monotonic() - self.last_take > SHRINK_AFTER:
            self.target = 1
            while len(self.sandboxes) > 1:
                self.discard(self.sandboxes.pop())

    def drop_all(self) -> None:
        while self.sandboxes:
            self.discard(self.sandboxes.pop())

    def close(self) -> None:
        self.drop_all()
        if self.preparer is not None:
            self.loop.remove_reader(self.preparer.wake_r)
            self.preparer.stop()
            while self.preparer.made:  # made after the last look
                pw = self.preparer.made.popleft()
                if not isinstance(pw, BaseException):
                    pw.discard()
