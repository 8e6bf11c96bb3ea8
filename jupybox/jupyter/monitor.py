"""Live charts of what runs already: ``%container self`` (this kernel's own cgroup, its
container's in a boxed kernel) and ``%container monitor NAME`` (a detached container), until it
stops or the cell is interrupted; the same chart and summary as a ``%%container`` cell."""

from __future__ import annotations

import os
import time

from .. import errors
from ..api import container
from .chartsession import ChartSession, container_name
from .cellstatus import status_text
from .magicargs import parse


class OwnCgroup:
    """This kernel's own cgroup, looking like a container to the chart (``%container self``):
    inside a jupybox kernel it is the kernel's container; elsewhere whatever cgroup we are in."""

    def __init__(self):
        from .kernel_usage import own_cgroup

        self._cgroup = own_cgroup()
        self.name = os.environ.get("JUPYBOX_CONTAINER_NAME") or "this kernel"
        self.short_id = (os.environ.get("JUPYBOX_CONTAINER_ID") or "self")[:12]
        self.image = "self"
        self.status = "running"

    def stats(self):
        return self._cgroup.stats()


def chart_self(magics, words: list[str]):
    """Chart this kernel's own cgroup (its container's, in a jupybox kernel) until interrupted
    or for ``--for SECONDS``."""
    from ..cli.parser import Parser
    from .chart import ChartLimits

    p = Parser(prog="%container self", add_help=False)
    p.add_argument("--rate", type=float)
    p.add_argument("--for", dest="seconds", type=float, help="stop after this many seconds")
    args = parse(p, words)
    if args is None:
        return None
    own = OwnCgroup()
    first = own.stats()
    limits = ChartLimits.from_stats(first, ChartLimits())
    t0 = time.monotonic()
    session = ChartSession(own, image="self", limits=limits, chart=True, live=magics._live(), summary=True,
                           rate=args.rate or magics.chart_rate)
    try:
        while not session.recorder.wait_stopped(0.25):
            if args.seconds is not None and time.monotonic() - t0 >= args.seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        series = session.stop()
    # the CPU seconds of this window, not of the cgroup's whole life
    used = (series.cpu_ns - first.cpu_usage_ns) if series is not None and series.cpu_ns else 0
    session.finish({"extra": {"cpu_usage_ns": max(0, used)}}, wall=time.monotonic() - t0,
                   status=("running (this kernel)", True))
    return None


def monitor(magics, words: list[str], root):
    from ..cli.parser import Parser
    from .chart import ChartLimits

    p = Parser(prog="%container monitor", add_help=False)
    p.add_argument("--rate", type=float)
    p.add_argument("container")
    args = parse(p, words)
    if args is None:
        return None
    c = container(args.container, root=root)
    if c.status != "running":
        raise errors.StateError(f"container {container_name(c)} is not running")
    lim = c.limits
    limits = ChartLimits(memory=lim.memory, cpus=lim.cpus, pids=lim.pids)
    t0 = time.monotonic()
    session = ChartSession(c, image=c.image, limits=limits, chart=True, live=magics._live(), summary=True,
                           rate=args.rate or magics.chart_rate)
    stopped = False
    try:
        while not session.recorder.wait_stopped(0.25):
            pass
        stopped = True
    except KeyboardInterrupt:
        pass  # stop watching; the container goes on
    finally:
        session.stop()
    wall = time.monotonic() - t0
    result = None
    status = ("still running (monitoring stopped)", True)
    try:
        st = c.state()
        if st.status.value != "running":
            stopped = True
            result = {"exit_code": st.exit_code, "oom_killed": st.oom_killed, "extra": getattr(st, "extra", None) or {}}
            status = status_text(result)
    except errors.JupyboxError:
        if stopped:
            status = ("stopped and removed", True)
    session.finish(result, wall=wall, status=status)
    return None
