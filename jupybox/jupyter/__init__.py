"""Jupyter integration: the ``%%container``/``%container`` magics (``magics``), the live cgroup chart
(``chart``), rich displays (``display``), the cell runner (``cellrunner``) and the kernel provisioner."""


def last():
    """The last ``%%container`` cell's run in this kernel (as ``%container last``), or None.

    A ``CellRun``: ``.container``, ``.result`` (exit code, OOM flag, peak memory), ``.series`` (the
    chart's samples: ``t``, ``cpu``, ``mem``, ``pids``), ``.summary_line``, ``.wall``, ``.value``."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    magics = getattr(ip, "_jupybox_magics", None) if ip is not None else None
    return magics.last if magics is not None else None


def cell_identity(shell, line: str, cell: str) -> dict:
    """What names a cell: ``Cell In[7]`` in tracebacks (as IPython), its ``%%container`` line above
    the body (so line numbers are the notebook cell's), and the label ps shows for its container."""
    # the running cell's number: IPython 9 counts the next cell already while this one runs
    running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
    n = getattr(running, "execution_count", None) or getattr(shell, "execution_count", None)
    first = next((ln.strip() for ln in (cell or "").splitlines() if ln.strip()), "")
    where = f"In[{n}]" if n else "a cell"
    label = f"%%container {where}: {first}" if first else f"%%container {where}"
    return {"label": label if len(label) <= 80 else label[:79] + "…",
            "cell_name": f"Cell In[{n}]" if n else "<cell>",
            "header": [f"%%container {line}".rstrip() + "\n"]}
