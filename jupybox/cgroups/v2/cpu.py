"""cgroup v2 cpu controller (cpu.max bandwidth, cpu.weight) and cpu.stat (always present)."""

from __future__ import annotations

import math
import os

from ..limits import Limits
from .. import _fs
from ..base import CPU_PERIOD_US, cpu_quota_us

MAX = "cpu.max"  # "QUOTA PERIOD" or "max PERIOD"
WEIGHT = "cpu.weight"  # 1..10000, default 100
STAT = "cpu.stat"  # usage_usec, nr_periods, nr_throttled, throttled_usec
DEFAULT_WEIGHT = 100


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) -> v2 cpu.weight (1..10000), runc's formula."""
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """The smallest shares value that maps back to ``weight`` (so the round trip is stable)."""
    return 2 + math.ceil((weight - 1) * 262142 / 9999)


class Cpu:
    name = "cpu"

    def __init__(self, path: str):
        self.path = path
        self.max_file = os.path.join(path, MAX)
        self.weight_file = os.path.join(path, WEIGHT)
        self.stat_file = os.path.join(path, STAT)

    def available(self) -> bool:
        return os.path.exists(self.max_file)

    def apply(self, limits: Limits) -> None:
        if limits.cpus is not None:
            quota = cpu_quota_us(limits.cpus)
            _fs.write(self.max_file, f"{'max' if quota is None else quota} {CPU_PERIOD_US}")
        if limits.cpu_shares is not None:
            _fs.write(self.weight_file, str(shares_to_weight(limits.cpu_shares)))

    def read(self, out: dict) -> None:
        st = _fs.parse_kv(_fs.read_required(self.stat_file))
        out["cpu_usage_ns"] = st.get("usage_usec", 0) * 1000
        out["nr_periods"] = st.get("nr_periods", 0)
        out["nr_throttled"] = st.get("nr_throttled", 0)
        out["throttled_ns"] = st.get("throttled_usec", 0) * 1000
        bw = _fs.read_opt(self.max_file)
        if bw is not None:
            quota, _, period = bw.strip().partition(" ")
            if quota != "max":
                out["cpu_quota"] = int(quota) / int(period or CPU_PERIOD_US)
        weight = _fs.read_opt(self.weight_file)
        if weight is not None and int(weight) != DEFAULT_WEIGHT:
            out["cpu_shares"] = weight_to_shares(int(weight))
