"""Kubernetes quantities and names: bytes <-> ``256Mi``, CPUs <-> ``500m``, DNS-1123 names.

Parsing is the client's own (``kubernetes.utils.parse_quantity``); writing picks the shortest
exact form, as ``kubectl`` shows quantities.
"""

from __future__ import annotations

import re

BINARY = (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))
_LABEL = re.compile(r"[^a-z0-9-]+")


def memory(n: int) -> str:
    for suffix, size in BINARY:
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def cpu(cores: float) -> str:
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def parse(value, what: str) -> float:
    """A quantity (``"256Mi"``, ``"0.5"``, ``500m``, a number) as a float; ValueError names ``what``."""
    from kubernetes.utils import parse_quantity

    try:
        return float(parse_quantity(value))
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid quantity {value!r} for {what}: {e}") from None


def dns_label(name: str, limit: int = 63) -> str:
    """``name`` as a DNS-1123 label (lower case, ``a-z0-9-``, no dash at either end)."""
    out = _LABEL.sub("-", name.lower()).strip("-")[:limit].rstrip("-")
    return out or "x"
