"""A full disk (or quota) is one line for the user, never a traceback."""

from __future__ import annotations

import errno
from contextlib import contextmanager
from typing import Iterator

from ..errors import NoSpace

NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
__all__ = ["NO_SPACE_ERRNOS", "NoSpace", "is_no_space", "reported_as"]


def is_no_space(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in NO_SPACE_ERRNOS


@contextmanager
def reported_as(what: str) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT raised inside into ``NoSpace("WHAT: no space left on device")``."""
    try:
        yield
    except OSError as e:
        if not is_no_space(e):
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise NoSpace(f"{what}: no space left on device{where}") from None
