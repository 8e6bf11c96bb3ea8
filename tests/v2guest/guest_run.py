"""The v2 guest's job (run by scripts/v2guest/init.sh, stage 2, as root on the guest's kernel):
pytest over the job's node ids in one process, then what is left in the kernel's cgroup tree.

    python tests/v2guest/guest_run.py /out/job.json

Writes ``job["summary"]`` (JSON): kernel release, the cgroup2 root's controllers, the uptime at
the start (the boot's cost), pytest's wall time and exit status, and every cgroup that exists after
the run and did not before (with the processes in it): the suite must leave nothing behind.
Then pytest's start and collection time (tests/v2guest/guest_report.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CGROUP_ROOT = "/sys/fs/cgroup"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cgroups() -> set[str]:
    found = set()
    for path, _dirs, _files in os.walk(CGROUP_ROOT):
        if path != CGROUP_ROOT:
            found.add(os.path.relpath(path, CGROUP_ROOT))
    return found


def read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return f"({e.strerror})"


def uptime() -> float:
    return float(read("/proc/uptime").split()[0])


def main(job_path: str) -> int:
    with open(job_path) as f:
        job = json.load(f)
    summary = {
        "kernel": os.uname().release,
        "cmdline": read("/proc/cmdline"),
        "controllers": read(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split(),
        "uptime_at_start": uptime(),
    }
    before = cgroups()
    collected = job["summary"] + ".collected"
    env = dict(os.environ, JBX_V2GUEST_RESULTS=job["results"], JBX_V2GUEST_COLLECTED=collected,
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    argv = [sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "tests.v2guest.guest_report",
            "-p", "no:cacheprovider", "-q", "-rfE", *job["pytest_args"], *job["nodeids"]]
    t0 = time.monotonic()
    started = uptime()
    summary["pytest_rc"] = subprocess.call(argv, cwd=REPO, env=env)
    summary["pytest_seconds"] = round(time.monotonic() - t0, 1)
    try:
        with open(collected) as f:
            c = json.load(f)
        summary["collection_seconds"] = round(c["uptime"] - started, 1)  # pytest's start included
        summary["collected"] = c["tests"]
    except (OSError, ValueError, KeyError):
        pass
    summary["left"] = {p: read(os.path.join(CGROUP_ROOT, p, "cgroup.procs")).split()
                       for p in sorted(cgroups() - before)}
    summary["uptime_at_end"] = uptime()
    tmp = job["summary"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(tmp, job["summary"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
