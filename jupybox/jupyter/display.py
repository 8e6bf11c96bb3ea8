"""Rich displays for the notebook: HTML tables, a collapsible JSON view, progress bars, summaries.

Every object here has a text form too (``__repr__``/``_repr_pretty_``), so the same call works in
a terminal IPython, in a notebook, in nbconvert's HTML and on GitHub (which shows text/html and
image/png but runs no widgets). Nothing here touches the runtime: the magics pass rows in.
"""

from __future__ import annotations

import html
import json
import sys
import threading
import time

from ..units import human_size

__all__ = ["Table", "ObjectList", "JSONView", "Summary", "NoIsolationNotice", "html_table", "text_table",
           "in_kernel", "WidgetProgress", "pull_progress"]

_TABLE_CSS = (
    "<style>"
    "table.jupybox{border-collapse:collapse;font-family:var(--jp-code-font-family,monospace);font-size:12px}"
    "table.jupybox th{text-align:left;border-bottom:1px solid #999;padding:2px 10px 2px 0}"
    "table.jupybox td{text-align:left;padding:2px 10px 2px 0;vertical-align:top;white-space:nowrap}"
    # a clipped column (a command, an image reference) ends in an ellipsis; its title has it all
    "table.jupybox div.jbx-clip{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}"
    "table.jupybox{max-width:100%}"
    "details.jupybox-json summary{cursor:pointer}"
    "details.jupybox-json{font-family:var(--jp-code-font-family,monospace);font-size:12px;margin-left:1em}"
    "</style>"
)


def in_kernel(shell=None) -> bool:
    """Is this a Jupyter kernel (a front end may render widgets), not a terminal IPython?"""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


# -- tables --------------------------------------------------------------------------------------
def _cell(row: dict, key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def text_table(rows: list[dict], columns: list[tuple]) -> str:
    """``columns`` are (key, HEADER) pairs, or (key, HEADER, WIDTH) for a column clipped to WIDTH
    characters; docker's column layout (three spaces between)."""
    headers = [c[1] for c in columns]
    body = [[_clip(_cell(r, c[0]), c[2] if len(c) > 2 else None) for c in columns] for r in rows]
    widths = [len(h) for h in headers]
    for row in body:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["   ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    lines += ["   ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in body]
    return "\n".join(lines)


def _clip(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: max(1, width - 1)] + "…"


def _html_cell(text: str, width: int | None) -> str:
    if width is None:
        return f"<td>{html.escape(text)}</td>"
    # clipped by the browser (a table cell ignores max-width: a block inside it does not), the
    # whole text in the tooltip
    return (f'<td title="{html.escape(text, quote=True)}"><div class="jbx-clip" style="max-width:{width}ch">'
            f"{html.escape(text)}</div></td>")


def html_table(rows: list[dict], columns: list[tuple], empty: str = "(none)") -> str:
    head = "".join(f"<th>{html.escape(c[1])}</th>" for c in columns)
    if not rows:
        body = f'<tr><td colspan="{len(columns)}"><i>{html.escape(empty)}</i></td></tr>'
    else:
        body = "".join(
            "<tr>" + "".join(_html_cell(_cell(r, c[0]), c[2] if len(c) > 2 else None) for c in columns) + "</tr>"
            for r in rows)
    return f'{_TABLE_CSS}<table class="jupybox"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Table(list):
    """A list of row dicts that displays as an HTML table (text/plain: docker's table)."""

    def __init__(self, rows, columns: list[tuple], empty: str = "(none)"):
        super().__init__(rows)
        self.columns = columns
        self.empty = empty

    def _repr_html_(self) -> str:
        return html_table(list(self), self.columns, self.empty)

    def __repr__(self) -> str:
        return text_table(list(self), self.columns)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


class ObjectList(list):
    """A list of Python objects (containers, images, volumes) shown through a table of their rows.

    ``%container ps`` returns one: ``cs = %container ps -a`` then ``cs[0].logs()``.
    """

    def __init__(self, items, rows: list[dict], columns: list[tuple], empty: str = "(none)"):
        super().__init__(items)
        self.table = Table(rows, columns, empty)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

    def __repr__(self) -> str:
        return repr(self.table)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self.table))


# -- JSON ----------------------------------------------------------------------------------------
def _json_html(value, key=None, depth: int = 0, open_depth: int = 1) -> str:
    label = f"<b>{html.escape(str(key))}</b>: " if key is not None else ""
    if isinstance(value, dict) and value:
        inner = "".join(_json_html(v, k, depth + 1, open_depth) for k, v in value.items())
        summary = f"{label}{{…}} <span style='color:#888'>{len(value)} keys</span>"
        return (f"<details class='jupybox-json'{' open' if depth < open_depth else ''}>"
                f"<summary>{summary}</summary>{inner}</details>")
    if isinstance(value, list) and value:
        inner = "".join(_json_html(v, i, depth + 1, open_depth) for i, v in enumerate(value))
        summary = f"{label}[…] <span style='color:#888'>{len(value)} items</span>"
        return (f"<details class='jupybox-json'{' open' if depth < open_depth else ''}>"
                f"<summary>{summary}</summary>{inner}</details>")
    text = html.escape(json.dumps(value))
    color = "#a31515" if isinstance(value, str) else "#098658" if isinstance(value, (int, float)) else "#0000ff"
    return f"<div style='margin-left:1em;font-family:monospace;font-size:12px'>{label}<span style='color:{color}'>{text}</span></div>"


class JSONView(list):
    """``inspect``'s result: the list of dicts, shown as a collapsible tree (text: indented JSON)."""

    def __init__(self, items, open_depth: int = 2):
        super().__init__(items)
        self.open_depth = open_depth

    def _repr_html_(self) -> str:
        return _TABLE_CSS + _json_html(list(self), None, 0, self.open_depth)

    def __repr__(self) -> str:
        return json.dumps(list(self), indent=4, default=str)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))


# -- the one-line summary of a cell -------------------------------------------------------------
class _TextRepr:
    """Printed, repr'd and pretty-printed (IPython's text/plain) as its ``text()``."""

    def text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text())


class Summary(_TextRepr):
    """``exited 0 · wall 3.2 s · CPU 1.6 s · peak memory 120MiB / 256MiB (47%) · pids 5``."""

    def __init__(self, name: str, *, status: str, ok: bool, wall: float, cpu_seconds: float | None,
                 memory_peak: int | None, memory_limit: int | None, pids_peak: int | None = None,
                 cpus: float | None = None, image: str | None = None):
        self.name = name
        self.status = status
        self.ok = ok
        self.wall = wall
        self.cpu_seconds = cpu_seconds
        self.memory_peak = memory_peak
        self.memory_limit = memory_limit
        self.pids_peak = pids_peak
        self.cpus = cpus
        self.image = image

    def parts(self) -> list[str]:
        out = [self.status, f"wall {self.wall:.1f} s"]
        if self.cpu_seconds is not None:
            cpu = f"CPU {self.cpu_seconds:.2f} s"
            if self.wall > 0:
                cpu += f" ({self.cpu_seconds / self.wall * 100:.0f}% of a core"
                cpu += f", quota {self.cpus:g})" if self.cpus else ")"
            out.append(cpu)
        if self.memory_peak is not None:
            mem = f"peak memory {human_size(self.memory_peak)}"
            if self.memory_limit:
                mem += f" / {human_size(self.memory_limit)} ({self.memory_peak / self.memory_limit * 100:.0f}%)"
            out.append(mem)
        if self.pids_peak:
            out.append(f"pids {self.pids_peak}")
        return out

    def text(self) -> str:
        return f"{self.name}: " + " · ".join(self.parts())

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.ok else "#cf222e"
        parts = self.parts()
        return (f"<div style='font-family:var(--jp-code-font-family,monospace);font-size:12px'>"
                f"<b>{html.escape(self.name)}</b>: <span style='color:{color};font-weight:bold'>"
                f"{html.escape(parts[0])}</span> · {html.escape(' · '.join(parts[1:]))}</div>")


# -- the notice above a cell run without isolation (fallback mode) -----------------------------------
class NoIsolationNotice(_TextRepr):
    """Shown above every ``%%container`` cell that runs as a plain process because no container can
    run here: a red banner in HTML, a ``NO ISOLATION: ...`` line in text (terminals, nbconvert)."""

    def __init__(self, reason: str, limits: str = ""):
        self.reason = reason
        self.limits = limits

    def _who(self) -> str:
        import os
        import pwd

        try:
            return pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            return f"uid {os.geteuid()}"

    def lines(self) -> list[str]:
        return [f"{self.reason}.",
                f"This cell runs as a plain process on the host, not in a container, as {self._who()}: it can "
                f"read and change everything that user can (files, network, other processes).",
                ] + ([self.limits[0].upper() + self.limits[1:] + "."] if self.limits else [])

    def text(self) -> str:
        return "NO ISOLATION: " + " ".join(self.lines())

    def _repr_html_(self) -> str:
        first, *rest = self.lines()
        body = "".join(f"<div>{html.escape(line)}</div>" for line in rest)
        return ("<div class='jupybox-no-isolation' style='border:2px solid #cf222e;border-left:8px solid #cf222e;"
                "background:#fff4e5;color:#24292f;padding:6px 10px;margin:4px 0;"
                "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px'>"
                "<div style='color:#cf222e;font-weight:bold;font-size:14px'>&#9888; NO ISOLATION: "
                f"{html.escape(first)}</div>{body}</div>")


# -- progress (pull, push, build) ------------------------------------------------------------------
class WidgetProgress:
    """A registry ``progress(event)`` callback drawing one ipywidgets bar per blob.

    When done, the widget is replaced by a text line (``close()``), so saved notebooks keep no
    widget. Calls may come from worker threads (pull serializes them).
    """

    def __init__(self, title: str):
        import ipywidgets as w
        from IPython.display import display

        self._w = w
        self.title = title
        self.header = w.HTML(f"<b>{html.escape(title)}</b>")
        self.box = w.VBox([self.header])
        self.bars: dict[str, object] = {}
        self.blobs: dict[str, list] = {}  # digest -> [done, size, status]
        self.digest = None
        self._lock = threading.Lock()
        self._last = 0.0
        self.handle = display(self.box, display_id=True)

    def __call__(self, ev: dict) -> None:
        from ..registry.progress import short_digest

        kind = ev.get("kind")
        d = ev.get("digest", "")
        with self._lock:
            if kind == "blob-start":
                size = ev.get("size") or 0
                self.blobs[d] = [0, size, ev.get("action", "")]
                bar = self._w.IntProgress(value=0, min=0, max=max(size, 1), description=short_digest(d),
                                          layout=self._w.Layout(width="420px"))
                label = self._w.Label(f"{ev.get('action', '')} 0 B / {human_size(size)}")
                self.bars[d] = (bar, label)
                self.box.children = tuple(self.box.children) + (self._w.HBox([bar, label]),)
            elif kind in ("blob-progress", "blob-done") and d in self.bars:
                done = ev.get("done") or 0
                self.blobs[d][0] = done
                if kind == "blob-done":
                    self.blobs[d][2] = ev.get("status", "done")
                now = time.monotonic()
                if kind == "blob-done" or now - self._last > 0.1:
                    self._last = now
                    bar, label = self.bars[d]
                    bar.value = min(done, bar.max)
                    label.value = (ev.get("status", "done") if kind == "blob-done"
                                   else f"{human_size(done)} / {human_size(self.blobs[d][1])}")
            elif kind == "done":
                self.digest = ev.get("digest")

    def text(self) -> str:
        total = sum(b[1] for b in self.blobs.values())
        return f"{self.title}: {len(self.blobs)} blob(s), {human_size(total)}" + (
            f", digest {self.digest}" if self.digest else "")

    def close(self) -> None:
        from IPython.display import HTML

        from .widgets import close_all

        self.handle.update(HTML(f"<span style='font-family:monospace;font-size:12px'>{html.escape(self.text())}</span>"))
        close_all(self.box)  # the bars, labels, their layouts and styles


def pull_progress(title: str, quiet: bool = False):
    """The progress callback for a pull/push from a magic: widgets in a kernel, text in a terminal."""
    if quiet:
        return None
    if in_kernel():
        try:
            return WidgetProgress(title)
        except ImportError:
            pass
    from ..registry.progress import LineProgress

    return LineProgress(sys.stderr)
