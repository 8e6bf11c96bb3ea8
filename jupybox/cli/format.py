"""Tables, durations and sizes printed the way docker prints them."""

from __future__ import annotations

import json

from ..units import human_duration as ago  # noqa: F401 - the verbs' name for it


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["   ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        lines.append("   ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def dumps(obj) -> str:
    return json.dumps(obj, indent=4)


def truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
