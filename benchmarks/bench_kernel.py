#!/usr/bin/env python3
"""Kernel start to first execute reply: a kernel in a jupybox container vs a plain ipykernel.

    python benchmarks/bench_kernel.py              # 15 interleaved runs per case
    python benchmarks/bench_kernel.py --runs 40 --debian

Both kernels are started the same way, with jupyter_client in this process:
``KernelManager(kernel_name=...).start_kernel()``, a client, ``execute("1+1")``, and the clock stops
when the execute_reply arrives (then the kernel is shut down, untimed). Cases, interleaved
(A,B,C, B,C,A, ...) so that machine noise hits them alike:

    ipykernel          the same argv with jupyter_client's LocalProvisioner (the reference)
    jupybox-host       the jupybox provisioner, image host, -m 2g --cpus 2
    jupybox-debian     (--debian) the mmdebstrap python3-ipykernel image, -m 2g (needs the cached
                       tarball or mmdebstrap; Debian's own Python and ipykernel 6)

Target (issue 6): jupybox-host <= 1.3x ipykernel. Prints medians, p90, and writes
benchmarks/results/latest.json under "kernel-start". Needs root. Leaves nothing behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Case, format_table, run_interleaved, write_results  # noqa: E402

ARGV = ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def first_reply(kernel_name: str, cwd: str) -> tuple[float, float]:
    """Seconds from start_kernel() to the first execute_reply, and to start_kernel()'s return."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name=kernel_name)
    t0 = time.perf_counter()
    km.start_kernel(cwd=cwd)
    started = time.perf_counter() - t0
    kc = km.client()
    try:
        kc.start_channels()
        msg_id = kc.execute("1+1", silent=False)
        while True:
            reply = kc.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        elapsed = time.perf_counter() - t0
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"execute failed: {reply['content']}")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    return elapsed, started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15, help="timed starts per case (default 15)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--debian", action="store_true", help="also a kernel in a Debian image")
    ap.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/latest.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_kernel: needs root", file=sys.stderr)
        return 2

    import jupybox
    from jupybox import api
    from jupybox.jupyter import kernelspec
    from jupybox.testing import cache_dir, debian_tarball, import_image

    work = Path(tempfile.mkdtemp(prefix="jupybox-bench-kernel-"))
    prefix = work / "prefix"
    root = work / "jbx-root"
    notebooks = work / "notebooks"
    notebooks.mkdir()
    os.environ["JUPYTER_PATH"] = str(prefix / "share" / "jupyter")
    spec_dir = prefix / "share" / "jupyter" / "kernels" / "bench-plain"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": ARGV, "display_name": "plain", "language": "python"}))
    kernelspec.install("bench-jupybox", prefix=str(prefix), image="host", memory="2g", cpus=min(2, os.cpu_count() or 1),
                       root=str(root))
    extra = {}
    cases_spec = [("ipykernel", "bench-plain", "LocalProvisioner"), ("jupybox-host", "bench-jupybox", "host, -m 2g")]
    if args.debian:
        tar = debian_tarball(cache_dir(), include=("python3", "python3-ipykernel"))
        if tar is None:
            print("bench_kernel: --debian needs mmdebstrap (or the cached tarball)", file=sys.stderr)
        else:
            ref = import_image(root, tar, "debian-ipykernel:bookworm").ref
            kernelspec.install("bench-debian", prefix=str(prefix), image=ref, memory="2g", root=str(root))
            cases_spec.append(("jupybox-debian", "bench-debian", "Debian bookworm, ipykernel 6"))

    starts: dict[str, list[float]] = {}

    def make(case_name: str, kernel: str):
        def run() -> float:
            elapsed, started = first_reply(kernel, str(notebooks))
            starts.setdefault(case_name, []).append(started)
            return elapsed

        return run

    cases = [Case(name, make(name, kernel), note=note) for name, kernel, note in cases_spec]
    try:
        print(f"kernel start -> first execute reply, {args.runs} interleaved runs per case "
              f"(+{args.warmup} warm-up)", flush=True)
        results = run_interleaved(cases, args.runs, warmup=args.warmup)
        print(format_table(results, "ipykernel"))
        import statistics

        for name, values in starts.items():
            values = values[args.warmup:]
            if values:
                extra[name] = round(statistics.median(values) * 1000, 1)
        print("  start_kernel() returned after (median ms): " + ", ".join(f"{k} {v}" for k, v in extra.items()))
        ref = results["ipykernel"]
        box = results["jupybox-host"]
        if ref.times and box.times:
            ratio = box.median / ref.median
            print(f"  jupybox-host / ipykernel = {ratio:.2f}x (target <= 1.3x): {'OK' if ratio <= 1.3 else 'OVER'}")
        if not args.no_save:
            entry = {r.name: r.to_dict(ref) for r in results.values()}
            entry["start_kernel_return_median_ms"] = extra
            write_results(HERE / "results" / "latest.json", {"kernel-start": entry},
                          {"when": dt.datetime.now().isoformat(timespec="seconds"), "runs": args.runs})
        left = jupybox.containers(all=True, root=root)
        if left:
            print(f"  WARNING: containers left: {left}", file=sys.stderr)
            return 1
        return 0
    finally:
        client = api._clients.pop(api._key(root), None)  # noqa: SLF001 - our own client of the service
        if client is not None:
            client.close()
            client.proc.wait(20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
