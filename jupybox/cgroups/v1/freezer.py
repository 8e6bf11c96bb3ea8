"""cgroup v1 freezer: freeze a cgroup so that a fork loop cannot outrun kill()."""

from __future__ import annotations

import os
import time

from .. import _fs

STATE = "freezer.state"  # THAWED | FREEZING | FROZEN
FROZEN = "FROZEN"
THAWED = "THAWED"


class Freezer:
    name = "freezer"

    def __init__(self, path: str):
        self.path = path
        self.state_file = os.path.join(path, STATE)

    def freeze(self, timeout: float = 1.0) -> bool:
        """Ask for FROZEN and wait for it; False if it could not (then the caller just kills in a loop)."""
        try:
            _fs.write_raw(self.state_file, FROZEN)
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        while True:
            try:
                if _fs.read(self.state_file).strip() == FROZEN:
                    return True
            except OSError:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def thaw(self) -> None:
        try:
            _fs.write_raw(self.state_file, THAWED)
        except OSError:
            pass
