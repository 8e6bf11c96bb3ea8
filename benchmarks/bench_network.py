#!/usr/bin/env python3
"""Networking benchmark: a bridge-networked launch against a `--network none` one, interleaved.

    python benchmarks/bench_network.py [--runs 40] [--warmup 3] [--out FILE]

Everything runs inside a network namespace made for the run (`ip netns add jbxbench-<pid>`), so
the bridge, its addresses and its NAT table exist only there; it is deleted at the end.

    api-none / api-bridge   jupybox.run(busybox, ["/bin/true"], network=..., remove=True).wait()
                            in a worker process (one per case; both through the store's service,
                            whose sandboxes made ahead serve either network: a bridge is plugged in
                            after the namespace exists)
    cli-none / cli-bridge   `jupybox run --rm [--network bridge] busybox true` as a subprocess

Prints the medians and the bridge - none difference for each pair; the issue's budget is 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Case, Worker, format_table, run_interleaved, write_results  # noqa: E402

from jupybox.testing import busybox_tarball, cache_dir, import_image  # noqa: E402
from jupybox.testing.leaks import kill_processes_under  # noqa: E402

IMAGE = "busybox:latest"
BUDGET_MS = 5.0


def netns_argv(ns: str) -> list[str]:
    # nsenter keeps this mount namespace (ip netns exec would remount /sys without the cgroups)
    return ["nsenter", f"--net=/run/netns/{ns}"]


def make_cases(ns: str, root: Path, workers: list[Worker]) -> list[Case]:
    py = sys.executable
    cli = [str(Path(py).parent / "jupybox")] if (Path(py).parent / "jupybox").exists() else [py, "-m", "jupybox"]
    env = dict(os.environ, JUPYBOX_ROOT=str(root))
    exec_worker = Worker(netns_argv(ns) + [py, str(HERE / "worker.py")], env=env)
    workers.append(exec_worker)
    cases = []
    for mode in ("none", "bridge"):
        w = Worker(netns_argv(ns) + [py, str(HERE / "worker.py"), "--api"], env=env)
        workers.append(w)

        def api(w=w, mode=mode) -> float:
            return w.call(op="api", image=IMAGE, root=str(root), command=["/bin/true"],
                          options={"network": mode, "remove": True})["t"]

        def run_cli(mode=mode) -> float:
            argv = cli + ["run", "--rm", "--network", mode, IMAGE, "true"]
            return exec_worker.call(op="exec", argv=argv, env=env)["t"]

        cases.append(Case(f"api-{mode}", api, note="jupybox.run(...).wait(), worker in the namespace"))
        cases.append(Case(f"cli-{mode}", run_cli, note=f"jupybox run --rm --network {mode}"))
    return [cases[0], cases[2], cases[1], cases[3]]  # api-none, api-bridge, cli-none, cli-bridge


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the network benchmark needs root (network namespaces, bridges, nftables)", file=sys.stderr)
        return 2
    if not shutil.which("nsenter") or not shutil.which("ip"):
        print("nsenter and ip (util-linux, iproute2) are needed to make the benchmark's namespace", file=sys.stderr)
        return 2

    # both cases import what they use from bytecode, as an installed jupybox does (even when this
    # environment sets PYTHONDONTWRITEBYTECODE)
    import compileall

    compileall.compile_dir(str(HERE.parent / "jupybox"), quiet=1)
    ns = f"jbxbench-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-net-"))
    root = work / "root"
    workers: list[Worker] = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(netns_argv(ns) + ["ip", "link", "set", "lo", "up"], check=True)
        import_image(root, busybox_tarball(cache_dir()), IMAGE)
        cases = make_cases(ns, root, workers)
        results = run_interleaved(cases, args.runs, warmup=args.warmup)
    finally:
        for w in workers:
            w.close()
        kill_processes_under(root)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(work, ignore_errors=True)

    print("network: bridge launch vs --network none (interleaved, in a private network namespace)")
    print(format_table(results, "api-none"))
    summary = {}
    for kind in ("api", "cli"):
        a, b = results[f"{kind}-none"], results[f"{kind}-bridge"]
        if a.times and b.times:
            diff = (b.median - a.median) * 1000
            summary[kind] = round(diff, 3)
            verdict = "within" if diff <= BUDGET_MS else "OVER"
            print(f"  {kind}: bridge - none = {diff:+.2f} ms (median), {verdict} the {BUDGET_MS:.0f} ms budget")
    entry = {
        "network": {
            "description": "bridge launch vs --network none, interleaved, in a private network namespace",
            "runs": args.runs,
            "reference": "api-none",
            "cases": {name: r.to_dict(results.get("api-none")) for name, r in results.items()},
            "bridge_minus_none_ms": summary,
            "budget_ms": BUDGET_MS,
        }
    }
    write_results(args.out, entry, {"network_benchmark": True})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
