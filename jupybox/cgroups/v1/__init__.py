"""cgroup v1: one module per controller, file names as constants."""

from .manager import V1Cgroup, V1Driver

__all__ = ["V1Cgroup", "V1Driver"]
