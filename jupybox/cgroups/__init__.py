"""jupybox's cgroup layer: limits, attach, stats, kill, remove on cgroup v1, hybrid and v2.

    drv = open_driver()                 # detects the layout from /proc/self/mountinfo
    cg = drv.create(container_id)       # <mount>/jupybox/<id> (v1) or /sys/fs/cgroup/jupybox/<id> (v2)
    cg.set_limits(spec.limits); cg.attach(pid); cg.stats(); cg.remove(); drv.remove_parent_if_empty()
"""

from .base import Cgroup, CgroupDriver, CgroupStats
from .detect import detect_layout
from .factory import open_driver, open_user_driver

__all__ = ["open_driver", "open_user_driver", "CgroupDriver", "Cgroup", "CgroupStats", "detect_layout"]
