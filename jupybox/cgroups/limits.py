"""A container's resource limits, as the cgroup layer applies them (v1 and v2 alike)."""

from __future__ import annotations

from ..plain import _Plain


class Limits(_Plain):
    """Resource limits; None means unlimited / the kernel default."""

    FIELDS = (
        ("memory", None),  # bytes
        ("memory_swap", None),  # bytes of memory+swap; -1 unlimited; None = same as memory (no swap)
        ("cpus", None),  # e.g. 0.5 -> quota 50000 / period 100000
        ("cpu_shares", None),  # v1 cpu.shares scale (2..262144, default 1024)
        ("pids", None),
    )
    memory: int | None
    memory_swap: int | None
    cpus: float | None
    cpu_shares: int | None
    pids: int | None

    def any(self) -> bool:
        return any(getattr(self, n) is not None for n, _ in self.FIELDS)
