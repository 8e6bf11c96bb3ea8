"""A cell's output pipes into the kernel's streams, as the bytes arrive."""

from __future__ import annotations

import codecs
import os

from ..runtime.fdio import chunks


def pump(fd: int, stream, tee: str | os.PathLike | None = None) -> None:
    """Copy a pipe into a text stream as bytes arrive (incremental UTF-8 decoding).

    An ipykernel stream publishes by itself within 0.2 s and merges what came meanwhile into one
    output; flushing it at every chunk would split a saved notebook's output into fragments.
    Other streams (a terminal) are flushed at every chunk. ``tee``: a log file that gets the bytes
    too (a kept container's ``stdout.log``, so that ``%container logs`` shows them later).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    target = getattr(stream, "stream", stream)  # under a Capped, the kernel's stream
    autoflush = getattr(target, "pub_thread", None) is None
    log = None
    if tee is not None:
        try:
            log = open(tee, "ab")  # noqa: SIM115
        except OSError:
            log = None
    try:
        for data in chunks(fd):
            if log is not None:
                log.write(data)
                log.flush()
            text = decoder.decode(data)
            if text:
                try:
                    stream.write(text)
                    if autoflush:
                        stream.flush()
                except (ValueError, OSError):
                    pass
        text = decoder.decode(b"", final=True)
        if text:
            stream.write(text)
        if hasattr(stream, "end"):  # a Capped stream: its marker and tail
            stream.end()
        stream.flush()
    finally:
        os.close(fd)
        if log is not None:
            log.close()
