"""jupybox's cgroup layer: limits, attach, stats, kill, remove on cgroup v1, hybrid and v2.

    drv = open_driver()                 # detects the layout from /proc/self/mountinfo
    cg = drv.create(container_id)       # <mount>/jupybox/<id> (v1) or /sys/fs/cgroup/jupybox/<id> (v2)
    cg.set_limits(spec.limits); cg.attach(pid); cg.stats(); cg.remove(); drv.remove_parent_if_empty()
"""

from .._lazy import lazy_exports

__all__ = ["open_driver", "open_user_driver", "CgroupDriver", "Cgroup", "CgroupStats", "detect_layout", "Limits"]

# imported on first use: a spec (which holds Limits) must not pay for the drivers
__getattr__, __dir__ = lazy_exports(__name__, {
    "Cgroup": "base", "CgroupDriver": "base", "CgroupStats": "base", "detect_layout": "detect",
    "open_driver": "factory", "open_user_driver": "factory", "Limits": "limits",
}, globals())
