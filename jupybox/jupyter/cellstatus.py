"""How a cell's end is said: the summary's status words, and errors shown in one line."""

from __future__ import annotations

import signal

from .. import errors


def one_line(exc: BaseException) -> BaseException:
    """Make IPython show a JupyboxError as one line (``ImageNotFound: No such image: x``), not a traceback.

    The exception keeps its type: ``except jupybox.ContainerError`` works as usual.
    """
    if isinstance(exc, errors.JupyboxError) and not hasattr(exc, "_render_traceback_"):  # the cell's traceback stays
        line = f"{type(exc).__name__}: {exc}"
        exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return exc


def status_text(result: dict, interrupted: bool = False) -> tuple[str, bool]:
    code = result.get("exit_code")
    if result.get("oom_killed"):
        return f"OOM-killed (exit {code})", False
    if interrupted:
        return f"interrupted (exit {code})", False
    if code == 0:
        return "exited 0", True
    if code is not None and code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"killed by {name} (exit {code})", False
    return f"exited {code}", False
