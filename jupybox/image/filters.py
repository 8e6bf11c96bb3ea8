"""``image prune --filter``: ``until=`` (docker's time formats) and ``label=`` / ``label!=``.

``until`` follows docker's ``GetTimestamp`` (api/types/time): a Go duration before now (``10m``,
``1h30m``, ``-1.5h``), a Unix timestamp (``1700000000``, ``1700000000.5``), or a date/time: ``2024-01-02``,
``2024-01-02T15``, ``2024-01-02T15:04``, ``2024-01-02T15:04:05[.999999999]`` in local time, each
also with a zone (``Z``, ``+01:00``) as in RFC 3339. An image created after ``until`` is kept.
``label=KEY`` / ``label=KEY=VALUE``: every one must match the image's labels; ``label!=...``: the
image is kept when all of them match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ..errors import UsageError

_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_ZONE = r"(?P<zone>Z|z|[+-]\d\d:\d\d)"
_DATE = r"(?P<y>\d{4})-(?P<mo>\d\d)-(?P<d>\d\d)"
_TIME = r"T(?P<h>\d\d)(?::(?P<mi>\d\d)(?::(?P<s>\d\d)(?:\.(?P<f>\d{1,9}))?)?)?"
_STAMP_RE = re.compile(rf"^{_DATE}(?:{_TIME})?{_ZONE}?$")
_UNIX_RE = re.compile(r"^\d+(?:\.\d{1,9})?$")


def go_duration(text: str) -> float | None:
    """Seconds of a Go duration (``1h30m``, ``-2.5s``, ``300ms``), or None if it is not one."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_RE.match(s, pos)
        if not m or m.group(1) in ("", "."):
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total if s else None


def parse_until(value: str, now: datetime | None = None) -> datetime:
    """docker's ``until`` value as an aware datetime."""
    now = now or datetime.now(timezone.utc).astimezone()
    if value != "0":
        d = go_duration(value)
        if d is not None:
            return now - timedelta(seconds=d)
    m = _STAMP_RE.match(value)
    if m is not None:
        try:
            frac = (m["f"] or "").ljust(6, "0")[:6]
            t = datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"] or 0), int(m["mi"] or 0),
                         int(m["s"] or 0), int(frac or 0))
        except ValueError as e:
            raise UsageError(f'invalid filter "until={value}": {e}') from None
        zone = m["zone"]
        if zone in (None, ""):
            tz = now.tzinfo  # docker parses a time without a zone in the daemon's local zone
        elif zone in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = -1 if zone[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        return t.replace(tzinfo=tz)
    if "-" not in value and _UNIX_RE.match(value):
        secs, _, nanos = value.partition(".")
        return datetime.fromtimestamp(int(secs), timezone.utc) + timedelta(microseconds=int((nanos or "0").ljust(9, "0")[:6]))
    raise UsageError(f'failed to parse value as time or duration: "{value}"')


def _kv_match(wanted: list[str], labels: dict) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


@dataclass
class PruneFilters:
    until: datetime | None = None
    labels: list[str] = field(default_factory=list)
    not_labels: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, items, now: datetime | None = None) -> "PruneFilters":
        """From ``--filter`` values (``until=24h``, ``label=k=v``, ``label!=k``)."""
        f = cls()
        untils = []
        for item in items:
            key, eq, value = item.partition("=")
            if key.endswith("!") and eq:
                key, neg = key[:-1], True
            else:
                neg = False
            if not eq:
                raise UsageError(f"bad format of filter (expected name=value): {item}")
            if key == "until" and not neg:
                untils.append(value)
            elif key == "label":
                (f.not_labels if neg else f.labels).append(value)
            else:
                raise UsageError(f"Invalid filter '{key}{'!' if neg else ''}'")
        if len(untils) > 1:
            raise UsageError("more than one until filter specified")
        if untils:
            f.until = parse_until(untils[0], now)
        return f

    def matches(self, image) -> bool:
        """True when the image may be pruned."""
        if self.until is not None:
            created = image.created_at
            if created is not None and created > self.until:
                return False
        labels = image.labels or {}
        if not _kv_match(self.labels, labels):
            return False
        if self.not_labels and _kv_match(self.not_labels, labels):
            return False
        return True
