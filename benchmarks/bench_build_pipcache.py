#!/usr/bin/env python3
"""``RUN --mount=type=cache,target=/root/.cache/pip``: what the pip cache saves on a rebuild.

    python benchmarks/bench_build_pipcache.py              # 6 interleaved runs per case
    python benchmarks/bench_build_pipcache.py --runs 10

The build installs numpy, requests (and its four dependencies) and docopt (an sdist: pip builds
its wheel, with setuptools and wheel from the same index) into a Debian bookworm image with
python3-pip, from a PEP 503 index this script serves on 127.0.0.1 (the wheels are downloaded
once from PyPI into the test cache). Every timed build follows a change of an earlier layer
(``COPY stamp``), so the ``pip install`` step always runs again, as after a source change:

    jupybox-cache     RUN --mount=type=cache,target=/root/.cache/pip pip install ...
    jupybox-nocache   RUN pip install --no-cache-dir ...
    docker-cache      the same Dockerfiles with docker 20.10's BuildKit (DOCKER_BUILDKIT=1),
    docker-nocache    a private dockerd; skipped when it cannot run them

Besides the times (medians, interleaved runs, ratios), the index counts the files each build
downloads: with the cache mount the rebuild downloads nothing and builds no wheel. Needs root
(the builds use --network host to reach the loopback index). Leaves nothing behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_build import Dockerd, remove_workdir, sh  # noqa: E402
from harness import Case, format_table, run_interleaved, write_results  # noqa: E402

from jupybox.testing.pipindex import PackageIndex  # noqa: E402 - the loopback PEP 503 index

WHEELS = ["numpy==1.26.4", "requests==2.31.0", "setuptools==68.2.2", "wheel==0.41.2"]
SDISTS = ["docopt==0.6.2"]
INSTALL = "numpy requests docopt"
# pip keeps downloads in its HTTP cache from TLS or trusted hosts only: the loopback index is trusted,
# as pypi.org (TLS) is for everyone
PIP = ("pip install --break-system-packages --disable-pip-version-check --progress-bar off "
       "--trusted-host 127.0.0.1 --index-url http://127.0.0.1:{port}/simple/")
DOCKERFILES = {
    "cache": "FROM debian-pip\nCOPY stamp /stamp\n"
             "RUN --mount=type=cache,target=/root/.cache/pip {pip} {pkgs} && python3 -c 'import numpy, docopt'\n",
    "nocache": "FROM debian-pip\nCOPY stamp /stamp\n"
               "RUN {pip} --no-cache-dir {pkgs} && python3 -c 'import numpy, docopt'\n",
}


def fetch_packages(cache: Path) -> Path:
    """Wheels and sdists for Debian bookworm's CPython 3.11, downloaded once (pip, from PyPI)."""
    dest = cache / "pip-bench-index"
    if not (dest / ".done").exists():
        dest.mkdir(parents=True, exist_ok=True)
        sh([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--platform",
            "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp", "-d", dest, *WHEELS])
        sh([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary=:all:", "--no-deps", "-d", dest,
            *SDISTS])
        (dest / ".done").write_text("")
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6, help="timed builds per case (default 6)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-docker", action="store_true", help="jupybox only")
    ap.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/latest.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_build_pipcache: needs root", file=sys.stderr)
        return 2

    from jupybox.testing import cache_dir, import_image
    from jupybox.testing.rootfs import debian_tarball

    base_dir = Path(os.environ.get("JUPYBOX_BENCH_DIR") or "/var/tmp")
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-pip-", dir=base_dir))
    root = work / "jbx-root"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    jupybox_cli = shutil.which("jupybox", path=str(Path(sys.executable).parent)) or "jupybox"
    docker = Dockerd(work)
    docker.env["DOCKER_BUILDKIT"] = "1"
    entries: dict = {}
    try:
        tar = debian_tarball(cache_dir(), include=("python3", "python3-pip"))
        if tar is None:
            print("bench_build_pipcache: mmdebstrap is not installed", file=sys.stderr)
            return 2
        import_image(root, tar, "debian-pip:latest")
        with PackageIndex(fetch_packages(cache_dir())) as index:
            contexts = {}
            for kind, text in DOCKERFILES.items():
                ctx = work / f"ctx-{kind}"
                ctx.mkdir()
                (ctx / "Dockerfile").write_text(text.format(pip=PIP.format(port=index.port), pkgs=INSTALL))
                (ctx / "stamp").write_text("0")
                contexts[kind] = ctx
            downloads: dict[str, list[int]] = {}

            def build(name: str, ctx: Path, argv: list, run_env=None) -> Case:
                def run():
                    (ctx / "stamp").write_text(os.urandom(8).hex())  # an earlier layer changes
                    before = sum(index.downloads.values())
                    sh(argv, env=run_env)
                    downloads.setdefault(name, []).append(sum(index.downloads.values()) - before)
                return Case(name, run, note=" ".join(str(a) for a in argv[1:3]))

            cases = [build(f"jupybox-{k}", c, [jupybox_cli, "--root", root, "build", "-q", "--network", "host", c])
                     for k, c in contexts.items()]
            if not args.no_docker and docker.start():
                sh([jupybox_cli, "--root", root, "save", "-o", work / "debian-pip.tar", "debian-pip:latest"], env=env)
                docker("load", "-i", work / "debian-pip.tar")
                probe = docker("build", "-q", "--network", "host", contexts["cache"], check=False)
                if probe.returncode == 0:
                    cases += [build(f"docker-{k}", c, [docker.cli, "build", "-q", "--network", "host", c], docker.env)
                              for k, c in contexts.items()]
                else:
                    print(f"  (docker skipped: its BuildKit refused the build: {probe.stderr.strip()[-300:]})")
            else:
                print("  (docker skipped)")
            print(f"== pip install after an earlier layer changed  [runs={args.runs}, +{args.warmup} warm-up, "
                  f"interleaved]", flush=True)
            results = run_interleaved(cases, args.runs, warmup=args.warmup)
            print(format_table(results, "jupybox-nocache"))
            for name, counts in downloads.items():
                print(f"  {name}: files downloaded per build {counts}")
            entries["build-pipcache"] = {r.name: r.to_dict(results.get("jupybox-nocache")) for r in results.values()}
            for name in entries["build-pipcache"]:
                entries["build-pipcache"][name]["downloads"] = downloads.get(name, [])
        if not args.no_save:
            write_results(HERE / "results" / "latest.json", entries,
                          {"when": dt.datetime.now().isoformat(timespec="seconds"), "runs": args.runs})
    finally:
        docker.stop()
        remove_workdir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
