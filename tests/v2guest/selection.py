"""What runs in the v2 guest: pytest node ids (files, functions) of the suite, per boot.

Focused on what cgroup v2 changes: the cgroup layer itself (all of tests/cgroups: the real-kernel
tests run there, the fixture-based ones are cheap), and the container-level tests whose result
depends on the cgroup driver: limits and exit codes, stats, the live chart's sampler, the magics'
limit, peak and OOM kill. Under software emulation Python runs ~10x slower than on the host: every entry
here costs CI time (the wall times are in the run's summary).
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.v2guest.initramfs import REPO
from tests.v2guest.vm import Boot

CONTAINERS = [
    "tests/runtime/test_limits.py::test_memory_limit_oom_kill_exit_137",  # OOM -> 137, OOMKilled
    "tests/runtime/test_limits.py::test_memory_limit_not_hit",
    "tests/runtime/test_limits.py::test_pids_limit_holds_a_fork_bomb",
    "tests/runtime/test_limits.py::test_cpu_quota_throttles",
    "tests/runtime/test_api.py::test_stats_kill_exec",  # stats() from the v2 files
    "tests/runtime/test_api.py::test_oom_result",
    "tests/jupyter/test_chart.py::test_recorder_reads_the_containers_cgroup",  # the live chart's sampler
    # %%container -m through the magics: the limit, the peak and the OOM kill in the result and the summary
    # (in-process IPython: an nbclient kernel under emulation cost ~90 s for nothing v2 adds)
    "tests/jupyter/test_magics.py::test_the_limit_the_peak_and_the_oom_kill_reach_the_result_and_the_summary",
]

# What differs on an older kernel (Debian 11's 5.10, booted with swap accounting off): no
# memory.peak (5.19), no cgroup.kill (5.14), no mount_setattr (5.12: the nodev fallback), no
# CLOSE_RANGE_CLOEXEC (5.11), no overlayfs in a user namespace (5.11: rootless through
# fuse-overlayfs), no memory.swap.max (swapaccount=0, a no-op since 6.1). The fixture-based tests
# are left to the first boot.
_DELEGATED = "tests/cgroups/test_cgroups_v2_delegated.py::"
_DEVICES = "tests/security/test_device_files.py::"
OLD_KERNEL = [
    "tests/cgroups/test_cgroups_v2_kernel.py",
    # rootless: the delegated subtree, the root filesystem through fuse-overlayfs
    _DELEGATED + "test_the_user_driver_is_the_delegation",
    _DELEGATED + "test_memory_limit_is_an_oom_kill",
    _DELEGATED + "test_pids_limit_holds_a_fork_bomb",
    # the chart's sampler is left to the first boot: without memory.peak it reads what it reads
    # there (memory.current), and its peak stands in for the kernel's (the magics' test checks it)
    *(c for c in CONTAINERS if not c.startswith("tests/jupyter/test_chart.py")),
    # every mount nodev without mount_setattr: binds, volumes, tmpfs; an image's layers; rootless
    _DEVICES + "test_a_device_node_made_anywhere_cannot_be_opened",
    _DEVICES + "test_a_device_node_carried_by_an_image_cannot_be_opened",
    _DEVICES + "test_rootless_binds_the_host_nodes_and_refuses_mknod",
]

# Debian's kernel as it is (the host's linux-image-amd64: 6.1), then Debian 11's.
BOOTS = [
    Boot("v2", ["tests/cgroups", *CONTAINERS]),
    Boot("v2-5.10", OLD_KERNEL, kernel_args="swapaccount=0", kernel="old"),
]

# Tests that fail in the guest for a reason outside the cgroup layer, reported to their owners;
# strict: the day one passes, the entry must go.
KNOWN_FAILURES: dict[str, str] = {}  # node id -> why it cannot pass on v2 (an xfail, strict)


def _covers(entry: str, nodeid: str) -> bool:
    return nodeid == entry or nodeid.startswith((entry.rstrip("/") + "/", entry + "::", entry + "["))


def expand(boots: list[Boot]) -> dict[str, list[str]]:
    """Boot name -> the test node ids its entries stand for, collected on the host in one pytest
    process (the guest runs the same files).

    Byte code is written: the rewritten test modules' .pyc files in __pycache__ are then read by the
    guest's pytest, which would otherwise rewrite and compile them again under emulation.
    RuntimeError with pytest's output when an entry is not found."""
    entries = list(dict.fromkeys(e for b in boots for e in b.nodeids))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          *entries], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    found = [line for line in out.stdout.splitlines() if "::" in line and not line.startswith(" ")]
    if out.returncode != 0 or not found:
        raise RuntimeError(f"collecting the guest's tests failed (pytest exit {out.returncode}):\n"
                           f"{out.stdout[-3000:]}{out.stderr[-2000:]}")
    return {b.name: [n for n in found if any(_covers(e, n) for e in b.nodeids)] for b in boots}
