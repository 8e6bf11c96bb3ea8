"""How a failed cell is reported: one error, in terms of the cell.

* an exception in the cell: ``ContainerError`` (``except jupybox.ContainerError`` works; its
  ``exit_code`` is 1), shown as the container's traceback, which is IPython's: the user's frames,
  ``Cell In[7], line 5``, the source lines;
* an OOM kill: ``ContainerOOMError`` with the limit and the peak, and, when the kill came while the
  ``-i`` values were being loaded, which one and how big (``while loading -i arr (200MB) under a
  320MiB limit``): then the cell's code never ran;
* an ``-i`` value that cannot be unpickled inside: ``TransferError`` naming it;
* any other exit: ``ContainerError`` in one line.

With ``--no-raise-error`` nothing is raised; the cell's traceback is printed to its stderr.
"""

from __future__ import annotations

from .. import errors
from .cellstatus import one_line
from .chart import run_peak
from .chartsession import container_name
from .richoutput import with_traceback
from .transfer import TransferError


def raise_for_status(run, c) -> None:
    res = run.result or {}
    code = res.get("exit_code")
    channel = run.channel
    err = channel.error if channel is not None else None
    if not run.raise_error:
        if err is not None and not err.get("interrupt"):
            print("\n".join(map(str, err["traceback"])), file=run.stderr)
        return
    if channel is not None and channel.input_error is not None and not res.get("oom_killed"):
        raise one_line(TransferError(str(channel.input_error.get("message"))))
    if res.get("oom_killed"):
        raise one_line(oom_error(run, c, res))
    if code not in (0, None):
        e = errors.ContainerError(f"container {container_name(c)} exited with code {code}", code, c)
        if err is not None and not err.get("interrupt"):
            e.remote_type = str(err.get("ename"))  # type: ignore[attr-defined]
            raise with_traceback(e, err["traceback"])
        raise one_line(e)


def oom_error(run, c, res: dict) -> errors.ContainerOOMError:
    from ..units import human_size

    extra = res.get("extra") or {}
    code = res.get("exit_code")
    limit = extra.get("memory_limit") or run.options_limit("memory")
    peak = run_peak(extra, run.series, True, limit)
    loading = run.channel.loading() if run.channel is not None else None
    if loading is not None:
        size = run.input_sizes.get(loading)
        what = f"-i {loading}" + (f" ({human_size(size)})" if size else "")
        return errors.ContainerOOMError(
            f"container {container_name(c)} was killed by the OOM killer while loading {what} under a "
            f"{human_size(limit)} limit, before the cell's code ran: peak {human_size(peak)} (exit {code}); "
            f"raise -m or pass less", code if code is not None else 137, c, limit, peak)
    return errors.ContainerOOMError(
        f"container {container_name(c)} was killed by the OOM killer: memory limit {human_size(limit)}, "
        f"peak {human_size(peak)} (exit {code})", code if code is not None else 137, c, limit, peak)
