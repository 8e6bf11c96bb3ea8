"""Parsing and printing of sizes and durations the way docker does (``-m 256m``, ``--memory-swap
1g``, ``--health-interval 1m30s``, ``Up 3 minutes``)."""

from __future__ import annotations

import re
import time

from .errors import InvalidSize

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int | None, what: str = "size") -> int | None:
    """'256m' -> 268435456; ints pass through; None stays None; '-1' means unlimited (-1)."""
    if text is None or isinstance(text, int):
        return text
    text = str(text)
    if text.strip() == "-1":
        return -1
    m = _SIZE.match(text)
    if not m:
        raise InvalidSize(f"invalid {what}: {text!r} (expected a number with an optional unit b, k, m, g, t)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    return int(value)


def human_size(n: int | None) -> str:
    """docker-style: 1.5MiB, 256MiB, 2GiB."""
    if n is None or n < 0:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{n}B"
            return f"{n:.3g}{unit}" if n < 100 else f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}"


def human_size_si(n: int) -> str:
    """`docker images` style sizes: 1.2MB, 80.6MB (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n}"


def human_duration(seconds: float) -> str:
    """docker's units.HumanDuration: ``Up 3 minutes``, ``Created About an hour ago``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)")
_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
       "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}


def parse_duration(text, days: bool = False) -> int:
    """Go's time.ParseDuration (``1m30s``, ``500ms``, a sign, a bare ``0``) -> nanoseconds; with
    ``days``, also the ``d`` and ``w`` units (compose-go's str2duration). ValueError otherwise."""
    s = str(text).strip()
    sign = 1
    if s[:1] in ("+", "-"):  # (not `in "+-"`: the empty string is in every string)
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    if s == "0":
        return 0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or (not days and m.group(2) in ("d", "w")):
            raise ValueError(f"time: invalid duration {str(text)!r}")
        total += float(m.group(1)) * _NS[m.group(2)]
        pos = m.end()
    if not s:
        raise ValueError(f"time: invalid duration {str(text)!r}")
    return sign * int(round(total))


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"
