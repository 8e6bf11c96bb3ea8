#!/usr/bin/env python3
"""Image builds: ``jupybox build`` against buildah and Docker's classic builder, interleaved.

    python benchmarks/bench_build.py                 # 10 interleaved runs per case
    python benchmarks/bench_build.py --runs 20 --only cold,cached

Scenarios (each one runs its cases interleaved, A,B,C, B,C,A, ..., so noise hits all alike):

    cold      a 9-step Dockerfile on busybox (ARG, ENV, WORKDIR, COPY x2, RUN x2, USER, CMD),
              built with --no-cache every time (every step executes, every layer is written)
    cached    the same Dockerfile, built before: a fully cached rebuild
    copy100   ``FROM busybox`` + ``COPY . /data/`` of a 100 MB context (100 files of 1 MiB),
              --no-cache; ``read-once`` is ``cat`` of the context to /dev/null (page cache warm)

Cases: ``jupybox`` (the console script, as a user runs it: ``jupybox build -q``), ``buildah``
(``buildah bud --isolation chroot --pull=never --layers``, private --root/--runroot, overlay),
``docker`` (Debian's docker.io 20.10, a private dockerd started here, DOCKER_BUILDKIT=0). All three
start from the same busybox-static image (imported into jupybox, pulled into buildah from
jupybox's OCI layout, ``docker load``-ed from ``jupybox save``). Missing tools are skipped.

Targets (issue 4): cold <= 1.0x docker; cached <= 1.0x docker and <= 0.3x buildah; a COPY of a
100 MB context costs no more than reading it once (the build reads each file once: checked by
tests/dockerfile/test_cache.py; here its time is shown next to a plain read and the anchors).
Writes benchmarks/results/latest.json under "build-*". Needs root. Leaves nothing behind.
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

from harness import Case, format_table, run_interleaved, write_results  # noqa: E402

DOCKERFILE = """\
FROM busybox
ARG VERSION=1
ENV APP=/srv/app MODE=bench
WORKDIR /srv/app
COPY app.sh ./
COPY conf/ /etc/app/
RUN echo "version $VERSION" > version && chmod 755 app.sh && mkdir -p data && ls -l > listing
RUN adduser -D -u 1234 appuser 2>/dev/null || echo "appuser:x:1234:1234::/home/appuser:/bin/sh" >> /etc/passwd
USER 1234
CMD ["./app.sh"]
"""


def sh(argv, env=None, timeout=600, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[-600:]}")
    return r


class Dockerd:
    def __init__(self, base: Path):
        self.base = base
        self.proc = None
        self.cli = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{base / 'docker.sock'}", DOCKER_BUILDKIT="0")

    def start(self) -> bool:
        dockerd = shutil.which("dockerd")
        if not dockerd or not self.cli:
            return False
        self.log = open(self.base / "dockerd.log", "wb")
        self.proc = subprocess.Popen(
            [dockerd, "--data-root", self.base / "data", "--exec-root", self.base / "exec", "--pidfile",
             self.base / "pid", "-H", f"unix://{self.base / 'docker.sock'}", "--storage-driver", "overlay2",
             "--iptables=false", "--ip6tables=false", "--bridge=none"], stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while self("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                return False
            time.sleep(0.2)
        return True

    def __call__(self, *args, check=True, timeout=600):
        return sh([self.cli, *args], env=self.env, check=check, timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self("rm", "-f", *self("ps", "-aq", check=False).stdout.split(), check=False)
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
            self.proc = None
        for d in ("data", "exec"):
            subprocess.run(["umount", "-R", "-l", str(self.base / d)], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="timed builds per case (default 10)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", default="cold,cached,copy100", help="scenarios, comma-separated")
    ap.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/latest.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_build: needs root", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    from jupybox.testing import busybox_tarball, cache_dir, import_image

    base_dir = Path(os.environ.get("JUPYBOX_BENCH_DIR") or "/var/tmp")
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-build-", dir=base_dir))
    root = work / "jbx-root"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # a normal install has .pyc
    jupybox_cli = shutil.which("jupybox", path=str(Path(sys.executable).parent)) or "jupybox"
    bh_args = ["buildah", "--root", work / "buildah-root", "--runroot", work / "buildah-run",
               "--storage-driver", "overlay"]
    docker = Dockerd(work)
    have_buildah = shutil.which("buildah") is not None
    entries: dict = {}
    try:
        import_image(root, busybox_tarball(cache_dir()), "busybox:latest")
        if have_buildah:
            img = sh(bh_args + ["pull", "-q", f"oci:{root / 'images'}:latest"]).stdout.split()[-1]
            sh(bh_args + ["tag", img, "docker.io/library/busybox:latest"])
        have_docker = docker.start()
        if have_docker:
            sh([jupybox_cli, "--root", root, "save", "-o", work / "busybox.tar", "busybox:latest"], env=env)
            docker("load", "-i", work / "busybox.tar")
        else:
            print("  (docker skipped: dockerd not available)")
        if not have_buildah:
            print("  (buildah skipped: not installed)")

        ctx = work / "ctx"
        (ctx / "conf").mkdir(parents=True)
        (ctx / "app.sh").write_text("#!/bin/sh\ncat version\n")
        for i in range(5):
            (ctx / "conf" / f"c{i}.conf").write_text(f"key{i}=value\n" * 20)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        big = work / "big"
        if "copy100" in only:
            big.mkdir()
            for i in range(100):
                (big / f"f{i:03}.bin").write_bytes(os.urandom(1 << 20))
            (big / "Dockerfile").write_text("FROM busybox\nCOPY . /data/\n")

        def jbx(context, *extra):
            return lambda: sh([jupybox_cli, "--root", root, "build", "-q", *extra, context], env=env) and None

        def bh(context, *extra):
            return lambda: sh(bh_args + ["bud", "-q", "--isolation", "chroot", "--pull=never", "--layers", *extra,
                                         context]) and None

        def dk(context, *extra):
            return lambda: docker("build", "-q", *extra, context) and None

        def cases(context, *extra) -> list[Case]:
            out = [Case("jupybox", jbx(context, *extra), note="jupybox build -q")]
            if have_docker:
                out.append(Case("docker", dk(context, *extra), note="docker 20.10 classic builder"))
            if have_buildah:
                out.append(Case("buildah", bh(context, *extra), note="buildah bud --isolation chroot --layers"))
            return out

        scenarios = []
        if "cold" in only:
            scenarios.append(("build-cold", "cold build, --no-cache (9 steps, busybox)", cases(ctx, "--no-cache")))
        if "cached" in only:
            cs = cases(ctx)
            for c in cs:  # prime the caches
                c.run()
            scenarios.append(("build-cached", "fully cached rebuild (9 steps)", cs))
        if "copy100" in only:
            cs = cases(big, "--no-cache")
            cs.insert(1, Case("read-once", lambda: sh(["sh", "-c", f"cat {big}/*.bin > /dev/null"]) and None,
                              note="cat of the 100 MB context"))
            scenarios.append(("build-copy100", "COPY of a 100 MB context, --no-cache", cs))

        verdicts = []
        for name, desc, cs in scenarios:
            print(f"\n== {name}: {desc}  [runs={args.runs}, +{args.warmup} warm-up, interleaved]", flush=True)
            results = run_interleaved(cs, args.runs, warmup=args.warmup)
            ref = "docker" if "docker" in results and results["docker"].times else "jupybox"
            print(format_table(results, ref))
            entries[name] = {r.name: r.to_dict(results.get(ref)) for r in results.values()}
            j = results["jupybox"].median
            for other, target in (("docker", 1.0), ("buildah", 0.3 if name == "build-cached" else None),
                                  ("read-once", None)):
                r = results.get(other)
                if r is None or not r.times:
                    continue
                ratio = j / r.median
                if target is not None and (other == "docker" or name == "build-cached"):
                    ok = "OK" if ratio <= target else "OVER"
                    verdicts.append(f"{name}: jupybox/{other} = {ratio:.2f}x (target <= {target}x) {ok}")
                else:
                    verdicts.append(f"{name}: jupybox/{other} = {ratio:.2f}x")
        print("\n" + "\n".join(verdicts))
        if not args.no_save and entries:
            write_results(HERE / "results" / "latest.json", entries,
                          {"when": dt.datetime.now().isoformat(timespec="seconds"), "runs": args.runs})
    finally:
        docker.stop()
        if have_buildah:
            sh(bh_args + ["rm", "-a"], check=False)
            sh(bh_args + ["rmi", "-a", "-f"], check=False)
        remove_workdir(work)
    return 0


def remove_workdir(work: Path) -> None:
    """Unmount what is mounted below ``work``, kill what runs from it, remove it."""
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(str(work))]
    for mp in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    from jupybox.testing.leaks import kill_processes_under

    kill_processes_under(work)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
