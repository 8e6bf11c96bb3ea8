#!/usr/bin/env python3
"""``jupybox build --binder``: a rebuild after a one-line change of requirements.txt.

    python benchmarks/bench_env.py              # 5 interleaved runs per case
    python benchmarks/bench_env.py --runs 8 --no-docker

A repository with Binder files (requirements.txt, runtime.txt, postBuild) on a Debian bookworm
base with python3-pip; packages come from a PEP 503 index this script serves on 127.0.0.1 (the
wheels of ipykernel and its dependencies, tabulate and six, fetched once from PyPI into the test
cache). Each timed build follows a one-line change of requirements.txt (six added, then removed),
so the kernel's layer is cached and the requirements step runs again:

    jupybox-warm        the pip cache mount holds every wheel already
    jupybox-cold-pip    the same rebuild with the pip cache emptied first (untimed): every wheel
                        of the requirements downloaded again
    jupybox-cold        --no-cache: nothing cached at all, the kernel's layer included
    docker-warm         docker 20.10's BuildKit on the Dockerfile `--binder --print` generates,
                        same cache mount, a private dockerd (skipped when it cannot run)

repo2docker (``jupyter-repo2docker --no-run``) is the anchor the issue names: it is tried once, and
its outcome printed (it needs Docker Hub's buildpack-deps image and conda-forge, which a machine
that reaches only PyPI and Debian's archive cannot fetch). Needs root. Leaves nothing behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
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

from bench_build import Dockerd, remove_workdir, sh  # noqa: E402
from harness import Case, format_table, run_interleaved, write_results  # noqa: E402



def requirements(n: int) -> str:
    """The n-th edit: six added or removed, and a line that makes every version new (a version the
    step cache has seen would make the rebuild a cache hit, not a rebuild)."""
    return "tabulate==0.9.0\n" + ("six==1.16.0\n" if n % 2 else "") + f"# edit {n}\n"


def try_repo2docker(repo: Path, docker: Dockerd) -> str:
    exe = shutil.which("jupyter-repo2docker") or shutil.which("repo2docker") or "/var/tmp/r2d-venv/bin/repo2docker"
    if not os.path.exists(exe):
        return "not installed (pip install jupyter-repo2docker)"
    t0 = time.monotonic()
    p = subprocess.run([exe, "--no-run", "--user-id", "1000", "--user-name", "jovyan", "--image-name", "r2d-bench",
                        str(repo)], env=docker.env,
                       capture_output=True, text=True, timeout=900)
    took = time.monotonic() - t0
    if p.returncode == 0:
        return f"built in {took:.1f} s"
    tail = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()][-3:]
    return f"failed after {took:.1f} s (exit {p.returncode}): {' | '.join(tail)[-400:]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_env: needs root", file=sys.stderr)
        return 2

    from jupybox.dockerfile.cachemounts import CacheMounts
    from jupybox.testing import cache_dir, import_image
    from jupybox.testing.pipindex import ENV_INDEX, PackageIndex, pip_wheels
    from jupybox.testing.rootfs import debian_tarball

    work = Path(tempfile.mkdtemp(prefix="jbx-bench-env-", dir=os.environ.get("JUPYBOX_BENCH_DIR") or "/var/tmp"))
    jupybox_cli = shutil.which("jupybox", path=str(Path(sys.executable).parent)) or "jupybox"
    docker = Dockerd(work)
    docker.env["DOCKER_BUILDKIT"] = "1"
    entries: dict = {}
    try:
        tar = debian_tarball(cache_dir(), include=("python3", "python3-pip"))
        if tar is None:
            print("bench_env: mmdebstrap is not installed", file=sys.stderr)
            return 2
        roots = {name: work / f"jbx-root-{name}" for name in ("warm", "cold-pip", "cold")}
        for r in roots.values():
            import_image(r, tar, "debian-pip:latest")
        root = roots["warm"]
        wheels = pip_wheels(cache_dir(), "env-index", ENV_INDEX["env-index"])
        repos = {}
        for name in ("warm", "cold-pip", "cold", "docker"):
            repo = work / f"repo-{name}"
            repo.mkdir()
            (repo / "requirements.txt").write_text(requirements(0))
            (repo / "runtime.txt").write_text("python-3.11\n")
            (repo / "postBuild").write_text("#!/bin/sh\npython3 -c 'import tabulate' > /dev/null\n")
            repos[name] = repo
        with PackageIndex(wheels) as index:
            flags = ["--base", "debian-pip", "--index-url", index.url, "--trusted-host", "127.0.0.1"]
            downloads: dict[str, list[int]] = {}
            flips: dict[str, int] = {}

            def rebuild(name: str, case: str, argv_of, before=None, env=None) -> Case:
                repo = repos[name]

                def run():
                    flips[name] = flips.get(name, 0) + 1
                    (repo / "requirements.txt").write_text(requirements(flips[name]))
                    if before is not None:
                        before()
                    n0 = sum(index.downloads.values())
                    t0 = time.perf_counter()
                    sh(argv_of(repo), env=env)
                    took = time.perf_counter() - t0
                    downloads.setdefault(case, []).append(sum(index.downloads.values()) - n0)
                    return took
                return Case(case, run)

            def empty_pip_cache():
                CacheMounts(roots["cold-pip"], roots["cold-pip"] / "tmp").prune()

            def build(name):
                return [jupybox_cli, "--root", roots[name], "build", "--binder", "-q", *flags]

            cases = [rebuild("warm", "jupybox-warm", lambda r: build("warm") + ["-t", "env", r]),
                     rebuild("cold-pip", "jupybox-cold-pip", lambda r: build("cold-pip") + ["-t", "env", r],
                             before=empty_pip_cache),
                     rebuild("cold", "jupybox-cold", lambda r: build("cold") + ["--no-cache", "-t", "env", r])]
            if not args.no_docker and docker.start():
                sh([jupybox_cli, "--root", root, "save", "-o", work / "debian-pip.tar", "debian-pip:latest"])
                docker("load", "-i", work / "debian-pip.tar")

                def docker_argv(repo):
                    text = sh([jupybox_cli, "--root", root, "build", "--binder", "--print", "--base", "debian-pip",
                               repo]).stdout
                    (repo / "Dockerfile.jupybox").write_text(text)
                    return [docker.cli, "build", "-q", "--network", "host", "-f", repo / "Dockerfile.jupybox",
                            "--build-arg", f"PIP_INDEX_URL={index.url}", "--build-arg", "PIP_TRUSTED_HOST=127.0.0.1",
                            repo]
                cases.append(rebuild("docker", "docker-warm", docker_argv, env=docker.env))
            else:
                print("  (docker skipped)")
            print(f"== binder rebuild after a one-line change of requirements.txt  [runs={args.runs}, "
                  f"+{args.warmup} warm-up, interleaved]", flush=True)
            results = run_interleaved(cases, args.runs, warmup=args.warmup)
            print(format_table(results, "jupybox-cold"))
            for name, counts in downloads.items():
                print(f"  {name}: files downloaded per build {counts}")
            entries["env-binder-rebuild"] = {r.name: r.to_dict(results.get("jupybox-cold"))
                                             for r in results.values()}
            for name, r in entries["env-binder-rebuild"].items():
                r["downloads"] = downloads.get(name, [])
            if docker.proc is not None:
                print(f"  repo2docker --no-run: {try_repo2docker(repos['warm'], docker)}")
        if not args.no_save:
            write_results(HERE / "results" / "latest.json", entries,
                          {"when": dt.datetime.now().isoformat(timespec="seconds"), "runs": args.runs})
    finally:
        docker.stop()
        from jupybox.testing.leaks import stop_services

        for r in roots.values() if "roots" in locals() else ():
            stop_services(r)
        remove_workdir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
