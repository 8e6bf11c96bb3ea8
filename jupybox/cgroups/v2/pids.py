"""cgroup v2 pids controller."""

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

    def available(self) -> bool:
        return os.path.exists(self.max_file)

    def apply(self, limits: Limits) -> None:
        if limits.pids is not None:  # docker: 0 or -1 = unlimited
            _fs.write(self.max_file, "max" if limits.pids <= 0 else str(limits.pids))

    def read(self, out: dict) -> bool:
        """False when the controller is not enabled here (the caller counts cgroup.procs)."""
        current = _fs.read_opt(self.current_file)
        if current is None:
            return False
        out["pids_current"] = _fs.parse_int(current)
        out["pids_limit"] = _fs.parse_max(_fs.read_required(self.max_file))
        return True
