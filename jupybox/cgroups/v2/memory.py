"""cgroup v2 memory controller.

Swap: ``Limits.memory_swap`` is memory+swap (docker's meaning) while v2's
memory.swap.max is swap alone, so swap.max = memory_swap - memory. None means
NO swap (swap.max = 0; docker would allow as much swap as memory), -1 = "max".
memory.swap.max is absent without swap accounting: then memory_swap None,
== memory or -1 is accepted silently, any other value is a CgroupError.
"""

from __future__ import annotations

import os

from ...errors import CgroupError
from ..limits import Limits
from .. import _fs

MAX = "memory.max"
SWAP_MAX = "memory.swap.max"
CURRENT = "memory.current"
PEAK = "memory.peak"  # since 5.19: None before
EVENTS = "memory.events"  # "oom_kill N"


class Memory:
    name = "memory"

    def __init__(self, path: str):
        self.path = path
        self.max_file = os.path.join(path, MAX)
        self.swap_max_file = os.path.join(path, SWAP_MAX)
        self.current_file = os.path.join(path, CURRENT)
        self.peak_file = os.path.join(path, PEAK)
        self.events_file = os.path.join(path, EVENTS)

    def available(self) -> bool:
        return os.path.exists(self.max_file)

    def apply(self, limits: Limits) -> None:
        mem, swap = limits.memory, limits.memory_swap
        if mem is None:
            return
        if not os.path.exists(self.swap_max_file):
            if swap not in (None, -1, mem):
                raise CgroupError(
                    f"cannot limit swap: swap accounting is off on this kernel ({SWAP_MAX} missing); "
                    "leave memory_swap unset"
                )
            _fs.write(self.max_file, str(mem))
            return
        _fs.write(self.max_file, str(mem))
        _fs.write(self.swap_max_file, "0" if swap is None else "max" if swap == -1 else str(swap - mem))

    def oom_kills(self) -> int:
        text = _fs.read_opt(self.events_file)
        return 0 if text is None else _fs.parse_kv(text).get("oom_kill", 0)

    def read(self, out: dict) -> None:
        current = _fs.read_opt(self.current_file)
        if current is None:  # controller not enabled for this cgroup
            return
        out["memory_current"] = _fs.parse_int(current)
        peak = _fs.read_opt(self.peak_file)
        out["memory_peak"] = None if peak is None else _fs.parse_int(peak)
        limit = _fs.parse_max(_fs.read_required(self.max_file))
        out["memory_limit"] = limit
        swap_text = _fs.read_opt(self.swap_max_file)
        swap = None if swap_text is None else _fs.parse_max(swap_text)
        out["memory_swap_limit"] = None if limit is None or swap is None else limit + swap
        out["oom_kills"] = self.oom_kills()
