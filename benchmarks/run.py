#!/usr/bin/env python3
"""Run the benchmarks: jupybox and its anchors interleaved in the same run.

    python benchmarks/run.py                    # everything
    python benchmarks/run.py --only anchors     # the anchors alone (back to back and idle)
    python benchmarks/run.py --only api-launch,cli-run --runs 50
    python benchmarks/run.py --list

Prints medians, p90 and ratios to each benchmark's reference case, and merges the numbers into
benchmarks/results/latest.json (gitignored). Needs root. Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_runtime import BENCHMARKS, Context, host_info, select  # noqa: E402
from harness import format_table, run_interleaved, write_results  # noqa: E402

from jupybox.testing import cache_dir  # noqa: E402
from jupybox.testing.leaks import assert_no_leaks, snapshot  # noqa: E402

DEFAULT_RUNS = 30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", help="benchmark names or prefixes, comma-separated (repeatable)")
    ap.add_argument("--runs", type=int, help=f"timed iterations per case (default {DEFAULT_RUNS})")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations per case first (default 2)")
    ap.add_argument("--idle", action="store_true", help="add a 250 ms idle pause to every benchmark")
    ap.add_argument("--fixed-order", action="store_true",
                    help="A,B,C,A,B,C (default: rotate the start each round: A,B,C, B,C,A, ...)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)

    only = [o.strip() for item in (args.only or []) for o in item.split(",") if o.strip()]
    chosen = select(only)
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:16} {b.description}")
        return 0
    if os.geteuid() != 0:
        print("benchmarks need root (namespaces, mounts, cgroups)", file=sys.stderr)
        return 2

    # SIGTERM/SIGHUP -> KeyboardInterrupt so the cleanup below always runs
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    cache = cache_dir()
    # Mounts live in the work dir: keep "jupybox" out of its path, so that leak checks of tests
    # running at the same time (they look for mounts with "jupybox" in them) do not see them.
    base = Path(os.environ.get("JUPYBOX_BENCH_DIR") or "/var/tmp")
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="jbx-bench-", dir=base))
    before = snapshot(roots=[workdir], keyword="jbx-bench")
    ctx = Context(workdir, cache)
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": host_info()}
    entries: dict = {}
    status = 0
    print(f"host: {meta['host']}")
    try:
        for b in chosen:
            runs = args.runs or b.default_runs or DEFAULT_RUNS
            idle = b.idle or (0.25 if args.idle else 0.0)
            print(f"\n== {b.name}: {b.description}  [runs={runs}{', idle 250 ms' if idle else ''}]")
            t0 = time.monotonic()
            results = run_interleaved(b.cases(ctx), runs, warmup=args.warmup, idle=idle, rotate=not args.fixed_order)
            print(format_table(results, b.reference))
            print(f"  ({time.monotonic() - t0:.1f} s)")
            ref = results.get(b.reference)
            ref = ref if ref is not None and ref.times else None
            entries[b.name] = {
                "description": b.description,
                "date": meta["date"],
                "runs": runs,
                "idle_pause_s": idle,
                "order": "fixed" if args.fixed_order else "rotating",
                "reference": b.reference,
                "cases": {name: r.to_dict(ref) for name, r in results.items()},
            }
            if all(r.error and not r.times for r in results.values()):
                status = 1
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        status = 130
    finally:
        notes = ctx.close()
        if notes:
            print("cleaned up left-overs: " + "; ".join(notes), file=sys.stderr)
        try:
            assert_no_leaks(before, [workdir], check_fds=False, check_cgroups=False)
        except AssertionError as e:
            print(f"WARNING: {e}", file=sys.stderr)
    if entries:
        write_results(args.out, entries, meta)
        print(f"\nresults: {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
