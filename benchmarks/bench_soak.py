#!/usr/bin/env python3
"""Soak: a notebook's tight loop of runs through the API, for a long time, against crun in a loop.

    python benchmarks/bench_soak.py [--runs 10000] [--every 500] [--crun-runs 1000]

Each run is ``jupybox.run(busybox, ["sh", "-c", "echo i"], memory="64m", remove=True).wait()`` with
its output in its log (the loop issue 23 reported). Every ``--every`` runs it prints the runs/s of
that stretch, its p50/p99 latency, and the store's service's RSS, descriptors and threads (they
must stay flat: a leak shows as a slope). crun runs the same command in a loop from a process in
a private mount namespace (crun refuses hybrid cgroups otherwise), as the other benchmarks do;
the two loops alternate in stretches so that the machine's noise hits both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from anchors import Anchors  # noqa: E402
from harness import percentile, write_results  # noqa: E402

from jupybox.testing import cache_dir, import_image  # noqa: E402
from jupybox.testing.leaks import cleanup_path, kill_processes_under  # noqa: E402


def service_status(pid: int) -> dict:
    out = {"fds": len(os.listdir(f"/proc/{pid}/fd"))}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "VmRSS":
                out["rss_mib"] = int(value.split()[0]) / 1024
            elif key == "Threads":
                out["threads"] = int(value)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--crun-runs", type=int, default=1000, help="crun's loop, in stretches beside jupybox's")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_soak: needs root", file=sys.stderr)
        return 2
    import jupybox

    base = Path(os.environ.get("JUPYBOX_BENCH_DIR") or "/var/tmp")
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-soak-", dir=base))
    anchors = Anchors(work / "anchors", cache_dir())
    root = work / "jbx-root"
    stretches = []
    crun_times: list[float] = []
    try:
        import_image(root, anchors.tarball, "bb:1")
        crun = anchors.crun_case(limits=True)
        crun_per_stretch = max(1, args.crun_runs * args.every // max(args.runs, 1))
        for i in range(20):  # warm
            jupybox.run("bb:1", ["sh", "-c", f"echo {i}"], root=str(root), memory="64m", remove=True,
                        network="none").wait()
        pid = jupybox.launcher(str(root)).service_pid
        print(f"service pid {pid}: {service_status(pid)}")
        print(f"{'runs':>6} {'runs/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8} {'fds':>4} {'threads':>7}")
        done = 0
        while done < args.runs:
            n = min(args.every, args.runs - done)
            times = []
            t_stretch = time.perf_counter()
            for i in range(done, done + n):
                t0 = time.perf_counter()
                code = jupybox.run("bb:1", ["sh", "-c", f"echo {i}"], root=str(root), memory="64m", remove=True,
                                   network="none").wait()
                times.append(time.perf_counter() - t0)
                if code != 0:
                    raise RuntimeError(f"run {i} exited {code}")
            wall = time.perf_counter() - t_stretch
            done += n
            if jupybox.launcher(str(root)).service_pid != pid:
                raise RuntimeError("the service was replaced during the soak")
            st = service_status(pid)
            row = {"runs": done, "runs_per_s": n / wall, "p50_ms": statistics.median(times) * 1000,
                   "p99_ms": percentile(times, 99) * 1000, **st}
            stretches.append(row)
            print(f"{done:>6} {row['runs_per_s']:>7.1f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} "
                  f"{st['rss_mib']:>8.1f} {st['fds']:>4} {st['threads']:>7}", flush=True)
            for _ in range(crun_per_stretch):  # crun's stretch, right after
                crun_times.append(crun.run())
        if crun_times:
            print(f"crun-limits loop: {len(crun_times)} runs, {len(crun_times) / sum(crun_times):.1f} runs/s, "
                  f"p50 {statistics.median(crun_times) * 1000:.2f} ms, p99 {percentile(crun_times, 99) * 1000:.2f} ms")
        all_rps = sum(s["runs"] - (stretches[i - 1]["runs"] if i else 0) for i, s in enumerate(stretches))
        print(f"jupybox: {all_rps} runs; RSS {stretches[0]['rss_mib']:.1f} -> {stretches[-1]['rss_mib']:.1f} MiB, "
              f"fds {stretches[0]['fds']} -> {stretches[-1]['fds']}")
    finally:
        jupybox.shutdown()
        import subprocess

        subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), "system", "reset", "-f"],
                       capture_output=True)
        kill_processes_under(root)
        anchors.close()
        cleanup_path(work)
    if stretches:
        crun_summary = {"runs": len(crun_times), "runs_per_s": len(crun_times) / sum(crun_times),
                        "p50_ms": statistics.median(crun_times) * 1000,
                        "p99_ms": percentile(crun_times, 99) * 1000} if crun_times else None
        write_results(args.out, {"soak": {"description": "API tight loop with output, every stretch",
                                          "stretches": stretches, "crun_limits": crun_summary}},
                      {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
