"""What a cell shows around a container's run: the live widget (in an interactive front end), then
the static PNG of the whole run and the one-line summary. Also used by ``%container monitor`` and
``%container self``.

Two promises:

* **The recorder is ready before the command starts.** A session is made before the container:
  the sampling thread runs, the figure is drawn once (matplotlib imported), and ``attach(c)``
  right after the start takes the first sample at once. The first cell after a kernel start
  charts its start like any other.
* **A quick cell gets no chart.** The chart appears once the run is older than ``after`` seconds
  (``JupyboxMagics.chart_after``, 1 s by default); a cell that ends before shows only the summary.
  In a front end with widgets an empty placeholder holds the chart's place at the top of the
  cell's outputs, so the chart does not land in the middle of the text.
"""

from __future__ import annotations

import threading
import time

from .. import errors


def container_name(c) -> str:
    try:
        return c.name
    except errors.JupyboxError:
        return c.short_id


class ChartSession:
    def __init__(self, container=None, *, image: str, limits, chart: bool = True, live: bool = False,
                 summary: bool = True, rate: float = 4.0, t0: float | None = None, after: float = 0.0,
                 name: str | None = None):
        from .chart import Recorder

        self.c = container
        self.image = image
        self.limits = limits
        self.chart = chart
        self.summary = summary
        self.after = max(0.0, after)
        self.name = name
        self.live = None
        self.handle = None
        self.shown = False
        self._lock = threading.Lock()
        self._t0 = t0 if t0 is not None else time.monotonic()
        if chart and live:
            try:
                from IPython.display import display

                from .chart import LiveChart

                self.live = LiveChart(self.title(), self.limits)
                self.handle = display({}, raw=True, display_id=True)  # the chart's place, empty for now
            except ImportError:
                self.live = None
        on_sample = self._on_sample if self.live is not None else None
        self.recorder = Recorder(container, rate=rate, on_sample=on_sample, t0=t0).start() if chart else None
        if self.live is not None:
            self.live._full_draw()  # matplotlib's first draw (imports, fonts) before the container starts

    @classmethod
    def for_options(cls, container, image: str, options: dict, **kw) -> "ChartSession":
        from ..runtime.options import make_spec
        from .chart import ChartLimits

        if container is not None and getattr(container, "isolated", True) is False:
            lim = container.limits  # a plain process: only what it enforces
            return cls(container, image=image, limits=ChartLimits(memory=lim.memory, pids=lim.pids), **kw)
        try:
            lim = make_spec(image, None, **options).limits
            limits = ChartLimits(memory=lim.memory, cpus=lim.cpus, pids=lim.pids)
        except errors.JupyboxError:
            limits = ChartLimits()
        return cls(container, image=image, limits=limits, **kw)

    def start_clock(self, t0: float) -> None:
        """The run's second 0 (just before the start request)."""
        self._t0 = t0
        if self.recorder is not None:
            self.recorder._t0 = t0

    def attach(self, container) -> None:
        """The container has started: sample it from now on."""
        self.c = container
        if self.live is not None:
            self.live.title = self.title()
            self.live.fig.suptitle(self.live.title, fontsize=9, x=0.11, ha="left")
            self.live._bg = None
        if self.recorder is not None:
            self.recorder.attach(container)

    def _due(self) -> bool:
        return time.monotonic() - self._t0 >= self.after

    def _on_sample(self, series) -> None:
        """In the recorder's thread: show the widget once the run is old enough, then draw."""
        if not self.shown:
            if not self._due():
                return
            with self._lock:
                if self.live.closed:
                    return
                widget = self.live.make_widget()
                self.handle.update(widget)
                self.shown = True
        self.live.draw(series)

    def title(self) -> str:
        lim = []
        if self.limits.memory:
            from ..units import human_size

            lim.append(f"-m {human_size(self.limits.memory)}")
        if self.limits.cpus:
            lim.append(f"--cpus {self.limits.cpus:g}")
        if self.limits.pids:
            lim.append(f"--pids-limit {self.limits.pids}")
        who = self.name or (container_name(self.c) if self.c is not None else "starting")
        return f"{who} · {self.image}" + (f" · {' '.join(lim)}" if lim else "")

    def stop(self):
        if self.recorder is not None:
            self.recorder.stop()
            return self.recorder.series
        return None

    def finish(self, result: dict | None, *, wall: float, status: tuple[str, bool] | None = None) -> None:
        """Replace the widget by the PNG (or show the PNG, if the run was long enough to chart)
        and show the summary. ``result`` is ``Container.result()``'s dict; ``status`` overrides its
        text (e.g. still running)."""
        from IPython.display import display

        from .cellstatus import status_text
        from .chart import ChartImage, ChartLimits, render_png, run_peak
        from .display import Summary

        result = result or {}
        extra = result.get("extra") or {}
        text, ok = status if status is not None else status_text(result)
        series = self.recorder.series if self.recorder else None
        limits = self.limits
        if self.recorder is not None and self.recorder.first is not None:
            limits = ChartLimits.from_stats(self.recorder.first, self.limits)
        cpu_ns = extra.get("cpu_usage_ns") or (series.cpu_ns if series else None)
        name = container_name(self.c) if self.c is not None else (self.name or "cell")
        memory_limit = extra.get("memory_limit") or limits.memory
        summary = Summary(
            name, status=text, ok=ok, wall=wall,
            cpu_seconds=cpu_ns / 1e9 if cpu_ns is not None else None,
            memory_peak=run_peak(extra, series, bool(result.get("oom_killed")), memory_limit),
            memory_limit=memory_limit,
            pids_peak=series.pids_peak if series else None, cpus=limits.cpus, image=self.image)
        self.summary_obj = summary
        image = None
        if self.recorder is not None and (self.shown or wall >= self.after):
            oom = bool(result.get("oom_killed"))
            if oom and series.oom_at is None and series.t:
                series.oom_at = series.t[-1]
            png = render_png(series, limits, self.title(), end=wall, oom=oom)
            image = ChartImage(png, f"[chart of {summary.name}: {len(series)} samples]",
                               alt=f"CPU, memory and pids of {summary.name} over {wall:.1f} s: {summary.text()}")
        self.image_obj = image
        if self.live is not None:
            with self._lock:
                self.live.close()
            if image is not None:
                self.handle.update(image)  # in the chart's place (a quick cell's stays empty)
        elif image is not None:
            display(image)
        if self.summary:
            display(summary)
