"""``compose logs``: every container's output, each line prefixed with its container's name in
the service's colour (docker compose's palette), followed with ``-f`` until every container has
stopped; containers that appear meanwhile (a scale-up, a restart by another ``up``) are picked up.

A container's stdout and stderr are separate files here, so without ``-f`` each container's
stdout comes before its stderr (docker interleaves them by time stamp)."""

from __future__ import annotations

import os
import time

from . import convert
from .runtime import label

# docker compose's rainbow: cyan, yellow, green, magenta, blue, then their intense variants
COLORS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
POLL = 0.1
RESCAN = 1.0


def log_paths(c) -> tuple[str, str]:
    """stdout and stderr log files of a container (``inspect``'s LogPath is the stdout one)."""
    out = c.inspect()["LogPath"]
    return out, os.path.join(os.path.dirname(out), "stderr.log")


class _Tail:
    def __init__(self, path: str):
        self.path = path
        self.pos = 0
        self.partial = b""

    def lines(self, tail: int | None = None, final: bool = False) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
                self.pos = f.tell()
        except FileNotFoundError:
            data = b""
        data = self.partial + data
        parts = data.split(b"\n")
        self.partial = parts.pop()
        if final and self.partial:
            parts.append(self.partial)
            self.partial = b""
        if tail is not None:
            parts = parts[-tail:] if tail else []
        return parts


class LogPrinter:
    def __init__(self, write, color: bool = True, prefix: bool = True, timestamps: bool = False):
        self.write = write
        self.color = color
        self.prefix = prefix
        self.timestamps = timestamps
        self.colors: dict[str, str] = {}
        self.width = 0

    def _prefix(self, name: str, service: str) -> str:
        if not self.prefix:
            return ""
        code = self.colors.setdefault(service, COLORS[len(self.colors) % len(COLORS)])
        text = f"{name.ljust(self.width)} | "
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def line(self, name: str, service: str, data: bytes) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S ", time.gmtime()) if self.timestamps else ""
        self.write(self._prefix(name, service) + stamp + data.decode(errors="replace") + "\n")


def show(session, services=None, *, follow: bool = False, tail: int | None = None, color: bool = True,
         prefix: bool = True, timestamps: bool = False, write=None, stop=None) -> None:
    """Print the logs of the project's containers; ``stop()`` true ends a follow early."""
    import sys

    write = write or (lambda s: (sys.stdout.write(s), sys.stdout.flush()))
    printer = LogPrinter(write, color, prefix, timestamps)
    tails: dict[str, tuple] = {}  # container id -> (container, name, service, [tails])

    def scan() -> None:
        for c in session.containers(services, oneoff=None):
            if c.id not in tails:
                tails[c.id] = (c, c.name, label(c, convert.SERVICE), [_Tail(p) for p in log_paths(c)])
                printer.width = max(printer.width, len(c.name))

    def drain(final: bool, first: bool = False) -> bool:
        moved = False
        for c, name, service, streams in list(tails.values()):
            for t in streams:
                for data in t.lines(tail if first else None, final):
                    printer.line(name, service, data)
                    moved = True
        return moved

    scan()
    drain(final=not follow, first=True)
    if not follow:
        return
    last_scan = time.monotonic()
    while not (stop and stop()):
        if time.monotonic() - last_scan > RESCAN:
            scan()
            last_scan = time.monotonic()
        if drain(final=False):
            continue
        if all(c.status != "running" for c, *_ in tails.values()):
            drain(final=True)
            return
        time.sleep(POLL)
