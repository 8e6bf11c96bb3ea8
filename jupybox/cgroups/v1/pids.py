"""cgroup v1 pids controller."""

from __future__ import annotations

import os

from ..limits import Limits
from .. import _fs

MAX = "pids.max"  # "max" = unlimited
CURRENT = "pids.current"


class Pids:
    name = "pids"

    def __init__(self, path: str):
        self.path = path
        self.max_file = os.path.join(path, MAX)
        self.current_file = os.path.join(path, CURRENT)

    def apply(self, limits: Limits) -> None:
        if limits.pids is not None:  # docker: 0 or -1 = unlimited
            _fs.write(self.max_file, "max" if limits.pids <= 0 else str(limits.pids))

    def read(self, out: dict) -> None:
        out["pids_current"] = _fs.parse_int(_fs.read_required(self.current_file))
        out["pids_limit"] = _fs.parse_max(_fs.read_required(self.max_file))
