"""cgroup v2: one module per controller, file names as constants."""

from .manager import V2Cgroup, V2Driver, delegated_base

__all__ = ["V2Cgroup", "V2Driver", "delegated_base"]
