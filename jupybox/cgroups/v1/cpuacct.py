"""cgroup v1 cpuacct controller: total CPU time of the cgroup."""

from __future__ import annotations

import os

from .. import _fs

USAGE = "cpuacct.usage"  # nanoseconds


class CpuAcct:
    name = "cpuacct"

    def __init__(self, path: str):
        self.path = path
        self.usage_file = os.path.join(path, USAGE)

    def read(self, out: dict) -> None:
        out["cpu_usage_ns"] = _fs.parse_int(_fs.read_required(self.usage_file))
