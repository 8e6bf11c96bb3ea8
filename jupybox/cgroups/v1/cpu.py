"""cgroup v1 cpu controller (CFS bandwidth and shares)."""

from __future__ import annotations

import os

from ..limits import Limits
from .. import _fs
from ..base import CPU_PERIOD_US, cpu_quota_us

CFS_QUOTA = "cpu.cfs_quota_us"  # -1 = no quota
CFS_PERIOD = "cpu.cfs_period_us"
SHARES = "cpu.shares"
STAT = "cpu.stat"  # nr_periods, nr_throttled, throttled_time (ns)


class Cpu:
    name = "cpu"

    def __init__(self, path: str):
        self.path = path
        self.quota_file = os.path.join(path, CFS_QUOTA)
        self.period_file = os.path.join(path, CFS_PERIOD)
        self.shares_file = os.path.join(path, SHARES)
        self.stat_file = os.path.join(path, STAT)

    def apply(self, limits: Limits) -> None:
        if limits.cpus is not None:
            quota = cpu_quota_us(limits.cpus)
            _fs.write(self.period_file, str(CPU_PERIOD_US))
            _fs.write(self.quota_file, "-1" if quota is None else str(quota))
        if limits.cpu_shares is not None:
            _fs.write(self.shares_file, str(limits.cpu_shares))

    def read(self, out: dict) -> None:
        st = _fs.parse_kv(_fs.read_required(self.stat_file))
        out["nr_periods"] = st.get("nr_periods", 0)
        out["nr_throttled"] = st.get("nr_throttled", 0)
        out["throttled_ns"] = st.get("throttled_time", 0)
        quota = _fs.parse_int(_fs.read_required(self.quota_file))
        if quota > 0:
            out["cpu_quota"] = quota / _fs.parse_int(_fs.read_required(self.period_file))
        out["cpu_shares"] = _fs.parse_int(_fs.read_required(self.shares_file))
