"""Reading a pipe to its end: what the launch's error pipe, a detached start's report, and every
thread that relays a container's output (CLI tee, cell output, build log, kernel stderr) do."""

from __future__ import annotations

import os
from collections.abc import Iterator

CHUNK = 65536


def chunks(fd: int, size: int = CHUNK) -> Iterator[bytes]:
    """What ``fd`` delivers, chunk by chunk, until EOF (os.read retries EINTR itself, PEP 475);
    other OSErrors propagate to the caller."""
    while True:
        data = os.read(fd, size)
        if not data:
            return
        yield data


def read_all(fd: int) -> bytes:
    """Everything until EOF (the fd is left open)."""
    return b"".join(chunks(fd))
