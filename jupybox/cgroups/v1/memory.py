"""cgroup v1 memory controller.

Swap policy (differs from docker on purpose): ``Limits.memory_swap`` is memory+swap.
None means NO swap (memsw = memory), which is what a notebook wants: a clean OOM
instead of thrashing. Docker's default for ``-m`` alone is memory+swap = 2x memory.
-1 means unlimited swap.

memory.memsw.* exist only with swap accounting (CONFIG_MEMCG_SWAP and swapaccount=1).
Without them swap cannot be limited: memory_swap None, == memory or -1 is accepted
silently (-1 is what the kernel does anyway); any other value is a CgroupError.

Order: the kernel requires memsw >= limit at every moment, so when the new
memory+swap is above the current memsw we write memsw first, otherwise the
limit first (runc does the same).
"""

from __future__ import annotations

import os

from ...errors import CgroupError
from ..limits import Limits
from .. import _fs
from ..base import swap_total

LIMIT = "memory.limit_in_bytes"
MEMSW_LIMIT = "memory.memsw.limit_in_bytes"
USAGE = "memory.usage_in_bytes"
MAX_USAGE = "memory.max_usage_in_bytes"
OOM_CONTROL = "memory.oom_control"  # "oom_kill N" line since 4.13
FAILCNT = "memory.failcnt"  # times the limit was hit (not kills)

UNLIMITED = "-1"


class Memory:
    name = "memory"

    def __init__(self, path: str):
        self.path = path
        self.limit_file = os.path.join(path, LIMIT)
        self.memsw_file = os.path.join(path, MEMSW_LIMIT)
        self.usage_file = os.path.join(path, USAGE)
        self.max_usage_file = os.path.join(path, MAX_USAGE)
        self.oom_control_file = os.path.join(path, OOM_CONTROL)
        self.failcnt_file = os.path.join(path, FAILCNT)

    def apply(self, limits: Limits) -> None:
        total = swap_total(limits)
        if total is None:  # memory not limited: nothing to write (validate_limits refused a lone swap)
            return
        mem = str(limits.memory)
        memsw = UNLIMITED if total == -1 else str(total)
        if not os.path.exists(self.memsw_file):
            if limits.memory_swap not in (None, -1, limits.memory):
                raise CgroupError(
                    "cannot limit swap: swap accounting is off on this kernel "
                    f"({MEMSW_LIMIT} missing, boot with swapaccount=1); leave memory_swap unset"
                )
            _fs.write(self.limit_file, mem)
            return
        current = _fs.parse_int(_fs.read_required(self.memsw_file))
        if total == -1 or total >= current:
            _fs.write(self.memsw_file, memsw)
            _fs.write(self.limit_file, mem)
        else:
            _fs.write(self.limit_file, mem)
            _fs.write(self.memsw_file, memsw)

    def oom_kills(self) -> int:
        return _fs.parse_kv(_fs.read_required(self.oom_control_file)).get("oom_kill", 0)

    def failcnt(self) -> int:
        return _fs.parse_int(_fs.read_required(self.failcnt_file))

    def read_exit(self, out: dict) -> None:
        out["memory_peak"] = _fs.parse_int(_fs.read_required(self.max_usage_file))
        out["memory_limit"] = _fs.parse_max(_fs.read_required(self.limit_file))
        out["oom_kills"] = self.oom_kills()

    def read(self, out: dict) -> None:
        out["memory_current"] = _fs.parse_int(_fs.read_required(self.usage_file))
        self.read_exit(out)
        memsw = _fs.read_opt(self.memsw_file)
        out["memory_swap_limit"] = None if memsw is None else _fs.parse_max(memsw)
