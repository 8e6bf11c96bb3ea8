#!/usr/bin/env python3
"""Compose benchmark: ``compose up -d`` of a 3-service project, images present, against
docker-compose 1.29.2 on a private dockerd, interleaved in one run.

    python benchmarks/bench_compose.py [--runs 15] [--warmup 2] [--out FILE]

Everything runs inside a network namespace made for the run (the project's bridge, dockerd's and
jupybox's, exist only there): the script re-runs itself in it with ``nsenter --net``. The project
(``PROJECT``): a web service publishing a port, a cache with a named volume, a worker depending on
both; each case creates the project's network, its volume and three containers, started in
dependency order. Each iteration times ``up -d`` only; the ``down -v`` after it is not timed.

    docker-compose   docker-compose -p bench up -d       (Debian's 1.29.2, jupybox.testing.dockerd)
    jupybox          jupybox compose -p bench up -d      (the CLI, as a user runs it)

The issue's target: jupybox <= 0.5x docker-compose (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from harness import Case, format_table, run_interleaved, write_results  # noqa: E402

TARGET = 0.5
PROJECT = """\
services:
  web:
    image: busybox:latest
    command: httpd -f -p 8080
    ports: ["18090:8080"]
    depends_on: [cache]
    stop_signal: SIGKILL
  cache:
    image: busybox:latest
    command: sleep 3600
    volumes: [data:/data]
    stop_signal: SIGKILL
  worker:
    image: busybox:latest
    command: sleep 3600
    depends_on: [web, cache]
    stop_signal: SIGKILL
volumes:
  data:
"""


def _run(argv, env, cwd) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited {proc.returncode}: {proc.stderr.decode()[-400:]}")
    return elapsed


def make_cases(work: Path, docker_env: dict, jbx_root: Path) -> list[Case]:
    project = work / "project"
    project.mkdir()
    (project / "compose.yaml").write_text(PROJECT)
    jbx_env = dict(os.environ, JUPYBOX_ROOT=str(jbx_root))
    py = sys.executable
    jbx = [str(Path(py).parent / "jupybox")] if (Path(py).parent / "jupybox").exists() else [py, "-m", "jupybox"]

    def docker_compose() -> float:
        t = _run(["docker-compose", "-p", "bench", "up", "-d"], docker_env, project)
        _run(["docker-compose", "-p", "bench", "down", "-v"], docker_env, project)
        return t

    def jupybox() -> float:
        t = _run(jbx + ["compose", "-p", "bench", "up", "-d"], jbx_env, project)
        _run(jbx + ["compose", "-p", "bench", "down", "-v"], jbx_env, project)
        return t

    return [Case("docker-compose", docker_compose, note="docker-compose 1.29.2 up -d, private dockerd 20.10"),
            Case("jupybox", jupybox, note="jupybox compose up -d")]


def inside(args) -> int:
    """In the benchmark's network namespace: a private dockerd, a jupybox store, the cases."""
    from jupybox.testing import busybox_tarball, cache_dir, import_image
    from jupybox.testing.dockerd import private_dockerd
    from jupybox.testing.leaks import kill_processes_under

    # jupybox imports from bytecode, as an installed jupybox does (Debian's docker-compose has its
    # .pyc files), even where this environment sets PYTHONDONTWRITEBYTECODE
    import compileall

    compileall.compile_dir(str(HERE.parent / "jupybox"), quiet=1)
    tarball = busybox_tarball(cache_dir())
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-compose-"))
    root = work / "root"
    try:
        import_image(root, tarball, "busybox:latest")
        with private_dockerd(work / "dockerd", text=True) as docker:
            loaded = docker("import", str(tarball), "busybox:latest")
            if loaded.returncode != 0:
                raise RuntimeError(f"docker import: {loaded.stderr}")
            env = dict(os.environ, DOCKER_HOST=f"unix://{work / 'dockerd' / 'docker.sock'}")
            results = run_interleaved(make_cases(work, env, root), args.runs, warmup=args.warmup)
    finally:
        kill_processes_under(root)
        shutil.rmtree(work, ignore_errors=True)
    print("compose: up -d of a 3-service project, images present (interleaved, private network namespace)")
    print(format_table(results, "docker-compose"))
    dc, jb = results["docker-compose"], results["jupybox"]
    ratio = jb.median / dc.median if dc.times and jb.times else None
    if ratio is not None:
        verdict = "within" if ratio <= TARGET else "OVER"
        print(f"  jupybox / docker-compose = {ratio:.2f}x (median), {verdict} the {TARGET}x target")
    entry = {"compose": {
        "description": "compose up -d, 3 services, images present; docker-compose 1.29.2 on a private dockerd",
        "runs": args.runs, "reference": "docker-compose",
        "cases": {name: r.to_dict(results.get("docker-compose")) for name, r in results.items()},
        "ratio": round(ratio, 3) if ratio is not None else None, "target": TARGET,
    }}
    write_results(args.out, entry, {"compose_benchmark": True})
    print(json.dumps({"ratio": entry["compose"]["ratio"]}))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inside:
        return inside(args)
    if os.geteuid() != 0:
        print("the compose benchmark needs root (network namespaces, dockerd, bridges)", file=sys.stderr)
        return 2
    missing = [t for t in ("nsenter", "ip", "dockerd", "docker-compose") if not shutil.which(t)]
    if missing:
        print(f"the compose benchmark needs {', '.join(missing)} (util-linux, iproute2, docker.io, docker-compose)",
              file=sys.stderr)
        return 2
    ns = f"jbxbench-compose-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "ip", "link", "set", "lo", "up"], check=True)
        again = [sys.executable, __file__, "--inside", "--runs", str(args.runs), "--warmup", str(args.warmup),
                 "--out", str(args.out)]
        return subprocess.run(["nsenter", f"--net=/run/netns/{ns}", *again]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
