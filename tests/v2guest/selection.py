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

# One boot of Debian's kernel as it is. (A second boot to see memory.swap.max disappear would need
# a kernel before 6.1: since 6.1 swap accounting cannot be switched off at boot.)
BOOTS = [Boot("v2", ["tests/cgroups", *CONTAINERS])]

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
