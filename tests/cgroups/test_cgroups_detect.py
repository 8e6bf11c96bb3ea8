"""detect.py: layout detection and v1 mount discovery from mountinfo text."""

from __future__ import annotations

import os

import pytest

from jupybox.cgroups import detect_layout
from jupybox.cgroups.detect import cgroup2_mount, parse_mountinfo, v1_mounts
from jupybox.errors import CgroupError

HYBRID = """\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# Debian/Ubuntu-style v1: combined cpu,cpuacct hierarchy, shared:N optional fields, no unified
V1 = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:15 - cgroup cgroup rw,pids
"""

V2 = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
26 18 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def test_layouts():
    assert detect_layout("/sys/fs/cgroup", HYBRID) == "hybrid"
    assert detect_layout("/sys/fs/cgroup", V1) == "v1"
    assert detect_layout("/sys/fs/cgroup/", V2) == "v2"


def test_v2_root_is_the_cgroup2_mount_and_a_later_overmount_wins():
    # a tmpfs mounted over a cgroup2 root (later line) hides it: not v2 any more
    over = V2 + "40 26 0:40 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n41 40 0:41 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert detect_layout("/sys/fs/cgroup", over) == "v1"
    assert cgroup2_mount("/sys/fs/cgroup", V2) == "/sys/fs/cgroup"
    assert cgroup2_mount("/sys/fs/cgroup", HYBRID) == "/sys/fs/cgroup/unified"
    assert cgroup2_mount("/sys/fs/cgroup", V1) is None


def test_no_cgroups_is_an_error():
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        detect_layout("/sys/fs/cgroup", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")


def test_v1_mounts_from_super_options():
    m = v1_mounts("/sys/fs/cgroup", V1)
    assert m["cpu"] == m["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert m["memory"] == "/sys/fs/cgroup/memory"
    assert "systemd" not in m and "name=systemd" not in m  # named hierarchies are not controllers
    h = v1_mounts("/sys/fs/cgroup", HYBRID)
    assert h["cpu"] == "/sys/fs/cgroup/cpu" and h["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert "freezer" in h and "unified" not in h.values()


def test_parse_mountinfo_unescapes_and_handles_optional_fields():
    (e,) = parse_mountinfo("50 25 0:30 /a\\040b /mnt/my\\040cg rw shared:3 master:1 - cgroup cg rw,memory\n")
    assert e.mount_point == "/mnt/my cg" and e.root == "/a b"
    assert e.fstype == "cgroup" and e.controllers == ("memory",)


def test_this_machine_matches_what_is_mounted():
    layout = detect_layout()
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        assert layout == "v2"
    elif os.path.ismount("/sys/fs/cgroup/unified"):
        assert layout == "hybrid"
    else:
        assert layout == "v1"
