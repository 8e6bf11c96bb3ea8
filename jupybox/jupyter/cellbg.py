"""``%%container --bg``: start the cell detached and hand its Container to the user.

An interrupt while it starts either lets the start complete (the user gets the container, its
name printed) or leaves nothing: the cell's files are written, the container created, then
started, with the interrupt held meanwhile
(``sigint_deferred``; a second one, or a start that hangs, cuts it short); a held interrupt
removes what was made (the cell's files go with it: they are named by its labels) and raises
KeyboardInterrupt. Its output goes to its log files (``%container logs NAME``).
"""

from __future__ import annotations

import os

from .. import errors
from .chartsession import container_name


def _log_fds(c) -> tuple[int, int]:
    out_path, err_path = c.log_paths()
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    out = os.open(out_path, flags, 0o640)
    try:
        return out, os.open(err_path, flags, 0o640)
    except BaseException:
        os.close(out)
        raise


def _start(c, stdin) -> None:
    if stdin is None:
        c.start()  # /dev/null and its log files
        return
    out, err = _log_fds(c)  # the script on stdin, the output in its logs (as the service does)
    try:
        c.start(stdin=stdin, stdout=out, stderr=err)
    finally:
        os.close(out)
        os.close(err)


def _remove(c) -> None:
    try:
        c.remove(force=True)
    except errors.JupyboxError:
        pass


def start_bg(run):
    """Prepare, create and start the cell detached, the interrupt held throughout; its Container."""
    import jupybox

    from .cellinterrupt import sigint_deferred

    c = stdin = None
    handed = False
    try:
        with sigint_deferred() as interrupted:
            try:
                command, stdin = run._prepare()
                c = jupybox.create(run.image, command, root=run.root, **run.options)
                _start(c, stdin)
            finally:
                if stdin is not None:
                    os.close(stdin)
            interrupted.settled()
            if interrupted():
                raise KeyboardInterrupt
            # handed over inside the held block: an interrupt after it finds the name printed
            run.container = c
            print(container_name(c), file=run.stdout)
            handed = True
    except BaseException:
        if handed:  # an interrupt held until the block's end: the container is the user's now
            raise
        if c is not None:
            _remove(c)
        run.container = None
        run.cleanup()
        raise
    return c
