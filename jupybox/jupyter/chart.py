"""The live cgroup chart under a ``%%container`` cell, and the static PNG that replaces it.

    rec = Recorder(container, rate=4.0, on_sample=live.draw)    # a thread reading Container.stats()
    live = LiveChart(title, limits)                              # ipywidgets: a JPEG frame + a status line
    png = render_png(rec.series, limits, title, ...)             # matplotlib, the whole run, once

Numbers come from the container's own cgroup (``Container.stats()``, the same call that
``jupybox stats`` prints), never from psutil of the host.

Cost: a frame is drawn by blitting (the axes, grid and limit lines are drawn once into a
background; each frame restores it and draws only the three lines), then JPEG-encoded: ~2 ms of
CPU. The axes grow by doubling, so full redraws are logarithmic in the run's length. At 4 Hz,
sampling plus drawing stay under 1% of one core (``benchmarks/bench_chart.py`` measures it). The
final PNG is one full matplotlib render when the cell ends.
"""

from __future__ import annotations

import contextvars
import html
import io
import threading
import time
from dataclasses import dataclass, field

from ..units import human_size

MiB = 1024 * 1024
MAX_POINTS = 600  # per line and frame; longer runs are decimated for drawing (all samples are kept)

# colours shared by the live frames and the static PNG
CPU_COLOR = "#1f77b4"
MEM_COLOR = "#2ca02c"
PIDS_COLOR = "#9467bd"
LIMIT_COLOR = "#d62728"
_STATUS_CSS = "font-family:monospace;font-size:12px"


@dataclass
class ChartLimits:
    memory: int | None = None  # bytes
    cpus: float | None = None  # the --cpus quota, in cores
    pids: int | None = None

    @classmethod
    def from_stats(cls, st, fallback=None) -> "ChartLimits":
        """The limits the cgroup really has (the spec's as a fallback)."""
        memory = getattr(st, "memory_limit", None) or (fallback.memory if fallback else None)
        cpus = getattr(st, "cpu_quota", None) or (fallback.cpus if fallback else None)
        pids = getattr(st, "pids_limit", None) or (fallback.pids if fallback else None)
        return cls(memory=memory or None, cpus=cpus or None, pids=pids or None)


@dataclass
class Series:
    """All samples of one run: t (s since the start), CPU % of one core, memory bytes, pids."""

    t: list = field(default_factory=list)
    cpu: list = field(default_factory=list)
    mem: list = field(default_factory=list)
    pids: list = field(default_factory=list)
    mem_peak: int = 0
    cpu_ns: int = 0
    pids_peak: int = 0
    oom_at: float | None = None  # seconds; when an OOM kill was seen (or the run ended by one)
    oom_kills: int = 0

    def __len__(self) -> int:
        return len(self.t)


def run_peak(extra: dict, series: Series | None, oom_killed: bool, limit: int | None) -> int | None:
    """A run's peak memory: the kernel's (v1's max_usage_in_bytes, v2's memory.peak), else what the
    chart's samples of memory.current saw (cgroup v2 before Linux 5.19 has no peak file); an OOM kill
    under a limit means the limit was reached. None when nothing was measured."""
    peak = extra.get("memory_peak") or (series.mem_peak if series is not None else 0) or None
    if oom_killed and limit and extra.get("memory_peak") is None:
        peak = max(peak or 0, limit)
    return peak


def _decimate(xs: list, n: int = MAX_POINTS) -> list:
    if len(xs) <= n:
        return xs
    step = -(-len(xs) // n)
    out = xs[::step]
    if out[-1] is not xs[-1]:
        out.append(xs[-1])
    return out


class Recorder:
    """Samples ``container.stats()`` at ``rate`` Hz in a daemon thread until it stops or ``stop()``.

    ``on_sample(series)`` runs in that thread after each sample (the live chart draws there, so a
    slow frame delays the next sample instead of piling up). Exceptions from it are kept in
    ``self.error`` and end the drawing, never the sampling.
    """

    def __init__(self, container=None, rate: float = 4.0, on_sample=None, t0: float | None = None):
        self.container = container  # None: armed, sampling from the moment attach() names it
        self.interval = 1.0 / max(0.1, float(rate))
        self.on_sample = on_sample
        self.series = Series()
        self.first = None  # the first CgroupStats
        self._prev = None
        self._t0 = t0  # time.monotonic() at the start (CgroupStats.timestamp's clock); default: the first sample
        self._stop = threading.Event()
        self._attached = threading.Event()
        if container is not None:
            self._attached.set()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def start(self) -> "Recorder":
        ctx = contextvars.copy_context()  # outputs of this thread belong to the starting cell
        self._thread = threading.Thread(target=ctx.run, args=(self._loop,), name="jupybox-chart", daemon=True)
        self._thread.start()
        return self

    def attach(self, container) -> None:
        """The container to sample (started a moment ago): the first sample is taken at once."""
        self.container = container
        self._attached.set()

    def sample_once(self) -> bool:
        """Take one sample; False when the container is no longer running."""
        from ..errors import JupyboxError

        if self.container is None:
            return False
        try:
            st = self.container.stats()
        except (JupyboxError, OSError, ValueError):
            return False
        self._add(st)
        return True

    def _add(self, st) -> None:
        s = self.series
        if self._t0 is None:
            self._t0 = st.timestamp
        if self.first is None:
            self.first = st
        t = max(0.0, st.timestamp - self._t0)
        prev = self._prev
        if prev is not None and st.timestamp > prev.timestamp:
            cpu = (st.cpu_usage_ns - prev.cpu_usage_ns) / 1e9 / (st.timestamp - prev.timestamp) * 100.0
        else:
            cpu = (st.cpu_usage_ns / 1e9 / t * 100.0) if t > 0.02 else 0.0  # the average since the start
        with self.lock:
            s.t.append(t)
            s.cpu.append(max(0.0, cpu))
            s.mem.append(st.memory_current)
            s.pids.append(st.pids_current)
            s.mem_peak = max(s.mem_peak, st.memory_peak or 0, st.memory_current or 0)
            s.cpu_ns = st.cpu_usage_ns
            s.pids_peak = max(s.pids_peak, st.pids_current or 0)
            if st.oom_kills and st.oom_kills > s.oom_kills:
                s.oom_kills = st.oom_kills
                if s.oom_at is None:
                    s.oom_at = t
        self._prev = st

    def _loop(self) -> None:
        self._attached.wait()
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self.sample_once():
                break
            if self.on_sample is not None and self.error is None:
                try:
                    self.on_sample(self.series)
                except Exception as e:  # noqa: BLE001 - a broken frame must not kill the sampling
                    self.error = e
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # we fell behind (a slow frame): do not try to catch up
                next_at = time.monotonic()
                delay = 0
            if self._stop.wait(delay):
                break

    def elapsed(self) -> float:
        return 0.0 if self._t0 is None else time.monotonic() - self._t0

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self._attached.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until the sampler ends by itself (the container stopped)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()


# -- the figure ----------------------------------------------------------------------------------
def _figure(width: float, height: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 1.2, 0.8], "hspace": 0.12})
    fig.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.1)
    return fig, axes


def _style_axes(axes, limits: ChartLimits) -> list:
    """Labels, grids and the limit lines; returns the artists drawn for the limits."""
    cpu_ax, mem_ax, pids_ax = axes
    cpu_ax.set_ylabel("CPU %", fontsize=8)
    mem_ax.set_ylabel("memory MiB", fontsize=8)
    pids_ax.set_ylabel("pids", fontsize=8)
    pids_ax.set_xlabel("seconds", fontsize=8)
    for ax in axes:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.tick_params(labelsize=7)
        ax.set_xlim(0, 10)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    artists = []
    if limits.cpus:
        artists.append(cpu_ax.axhline(limits.cpus * 100, color=LIMIT_COLOR, linestyle="--", linewidth=1))
        artists.append(cpu_ax.text(0.995, limits.cpus * 100, f"--cpus {limits.cpus:g}", color=LIMIT_COLOR,
                                   fontsize=7, ha="right", va="bottom", transform=cpu_ax.get_yaxis_transform()))
    if limits.memory:
        artists.append(mem_ax.axhline(limits.memory / MiB, color=LIMIT_COLOR, linestyle="--", linewidth=1))
        artists.append(mem_ax.text(0.995, limits.memory / MiB, f"limit {human_size(limits.memory)}",
                                   color=LIMIT_COLOR, fontsize=7, ha="right", va="bottom",
                                   transform=mem_ax.get_yaxis_transform()))
    if limits.pids and limits.pids <= 4096:
        artists.append(pids_ax.axhline(limits.pids, color=LIMIT_COLOR, linestyle="--", linewidth=1))
    return artists


def _initial_tops(limits: ChartLimits) -> list[float]:
    cpu_top = limits.cpus * 125 if limits.cpus else 110.0
    mem_top = limits.memory / MiB * 1.12 if limits.memory else 64.0
    pids_top = max(8.0, limits.pids * 1.15) if limits.pids and limits.pids <= 64 else 8.0
    return [cpu_top, mem_top, pids_top]


def _grown(top: float, value: float) -> float:
    while value > top * 0.98:
        top *= 2
    return top


class LiveChart:
    """The widget: a status line (elapsed, CPU, memory, pids; 1 Hz) over an ipywidgets.Image showing
    JPEG frames redrawn by blitting (see the module's note)."""

    def __init__(self, title: str, limits: ChartLimits, width: float = 7.0, height: float = 4.4, dpi: int = 85):
        self.title = title
        self.limits = limits
        self.fig, self.axes = _figure(width, height, dpi)
        self.fig.suptitle(title, fontsize=9, x=0.11, ha="left")
        _style_axes(self.axes, limits)
        self.lines = [
            self.axes[0].plot([], [], color=CPU_COLOR, linewidth=1.3, animated=True)[0],
            self.axes[1].plot([], [], color=MEM_COLOR, linewidth=1.3, animated=True)[0],
            self.axes[2].plot([], [], color=PIDS_COLOR, linewidth=1.3, drawstyle="steps-post", animated=True)[0],
        ]
        self.oom_marker = self.axes[1].plot([], [], "x", color=LIMIT_COLOR, markersize=9, markeredgewidth=2,
                                            animated=True)[0]

        self.tops = _initial_tops(limits)
        self.xmax = 10.0
        self._bg = None
        self.frames = 0
        self.full_draws = 0
        self._px = int(width * dpi)
        self.image = self.status = self.widget = None
        self._status_at = 0.0
        self.closed = False

    def make_widget(self):
        """The widgets (made when the chart is first shown: a quick cell makes none)."""
        import ipywidgets as w

        self.image = w.Image(format="jpeg", layout=w.Layout(width=f"{self._px}px", max_width="100%"))
        self.image.add_class("jupybox-live-chart")
        # the live numbers, as text: drawing them into the frame would cost more than the frame
        # (glyph rendering); sent at most once a second
        self.status = w.HTML(f"<span style='{_STATUS_CSS}'>starting…</span>")
        self.widget = w.VBox([self.status, self.image])
        return self.widget

    def _full_draw(self) -> None:
        for ax, top in zip(self.axes, self.tops):
            ax.set_ylim(0, top)
            ax.set_xlim(0, self.xmax)
        self.fig.canvas.draw()
        self._bg = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self.full_draws += 1

    def render(self, s: Series) -> bytes:
        """One frame as JPEG bytes (no widget involved: the benchmark calls this)."""
        n = len(s.t)
        t = s.t[:n]
        cpu = s.cpu[:n]
        mem = s.mem[:n]
        pids = s.pids[:n]
        grow = False
        if t and t[-1] > self.xmax * 0.98:
            while t[-1] > self.xmax * 0.98:
                self.xmax *= 2
            grow = True
        peaks = [max(cpu, default=0), max(mem, default=0) / MiB, max(pids, default=0)]
        for i, v in enumerate(peaks):
            top = _grown(self.tops[i], v)
            if top != self.tops[i]:
                self.tops[i] = top
                grow = True
        if self._bg is None or grow:
            self._full_draw()
        canvas = self.fig.canvas
        canvas.restore_region(self._bg)
        td = _decimate(t)
        self.lines[0].set_data(td, _decimate(cpu))
        self.lines[1].set_data(td, [m / MiB for m in _decimate(mem)])
        self.lines[2].set_data(td, _decimate(pids))
        for ax, line in zip(self.axes, self.lines):
            ax.draw_artist(line)
        if s.oom_at is not None and mem:
            self.oom_marker.set_data([s.oom_at], [max(mem) / MiB])
            self.axes[1].draw_artist(self.oom_marker)
        from PIL import Image as PILImage

        w, h = canvas.get_width_height()
        img = PILImage.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        self.frames += 1
        return buf.getvalue()

    def status_text(self, s: Series) -> str:
        if not s.t:
            return "starting…"
        lim = f"/{human_size(self.limits.memory)}" if self.limits.memory else ""
        txt = f"● running {s.t[-1]:.1f} s · CPU {s.cpu[-1]:.0f}% · memory {human_size(s.mem[-1])}{lim} · pids {s.pids[-1]}"
        return txt + (" · OOM kill!" if s.oom_at is not None else "")

    def draw(self, s: Series) -> None:
        if self.closed or self.widget is None:
            return
        self.image.value = self.render(s)
        now = time.monotonic()
        if now - self._status_at >= 1.0 or s.oom_at is not None:
            self._status_at = now
            self.status.value = f"<span style='{_STATUS_CSS}'>{html.escape(self.status_text(s))}</span>"

    def close(self) -> None:
        """Drop the widgets (and the last frame, so no notebook stores it as widget state)."""
        from .widgets import close_all

        self.closed = True
        if self.widget is None:
            return
        try:
            self.image.value = b""
        except Exception:  # noqa: BLE001
            pass
        close_all(self.widget)


class ChartImage:
    """The static PNG of a whole run: image/png for notebooks, a line of text for terminals."""

    def __init__(self, png: bytes, text: str, width: int | None = None, height: int | None = None,
                 alt: str | None = None):
        self.png = png
        self.text = text
        self.width = width
        self.height = height
        self.alt = alt  # what the chart shows, for screen readers (nbconvert writes it as the alt text)

    def _repr_mimebundle_(self, include=None, exclude=None):
        import base64

        meta = {"width": self.width, "height": self.height} if self.width else {}
        if self.alt:
            meta["alt"] = self.alt
        return ({"image/png": base64.b64encode(self.png).decode("ascii"), "text/plain": self.text},
                {"image/png": meta} if meta else {})

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def render_png(s: Series, limits: ChartLimits, title: str, *, end: float | None = None, oom: bool = False,
               dpi: int = 85, width: float = 7.0, height: float = 4.4) -> bytes:
    """The whole run as one PNG (matplotlib, Agg, no pyplot: no global state, no double display)."""
    fig, axes = _figure(width, height, dpi)
    fig.suptitle(title, fontsize=9, x=0.11, ha="left")
    _style_axes(axes, limits)
    t = list(s.t)
    cpu, mem, pids = list(s.cpu), [m / MiB for m in s.mem], list(s.pids)
    xmax = max(end or 0.0, t[-1] if t else 0.0, 0.5)
    tops = _initial_tops(limits)
    tops = [_grown(tops[0], max(cpu, default=0)), _grown(tops[1], max(mem, default=0)),
            _grown(tops[2], max(pids, default=0))]
    if not limits.memory:
        tops[1] = max(max(mem, default=0) * 1.15, 1.0)
    for ax, top in zip(axes, tops):
        ax.set_xlim(0, xmax * 1.02)
        ax.set_ylim(0, top)
    n = 2000
    td = _decimate(t, n)
    axes[0].plot(td, _decimate(cpu, n), color=CPU_COLOR, linewidth=1.2)
    axes[1].plot(td, _decimate(mem, n), color=MEM_COLOR, linewidth=1.2)
    axes[2].plot(td, _decimate(pids, n), color=PIDS_COLOR, linewidth=1.2, drawstyle="steps-post")
    if oom or s.oom_at is not None:
        at = s.oom_at if s.oom_at is not None else (t[-1] if t else xmax)
        y = (limits.memory / MiB) if limits.memory else (max(mem, default=0))
        axes[1].plot([at], [y], "x", color=LIMIT_COLOR, markersize=10, markeredgewidth=2.2)
        axes[1].annotate("OOM kill", (at, y), xytext=(-6, -14), textcoords="offset points", ha="right",
                         color=LIMIT_COLOR, fontsize=8, fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
