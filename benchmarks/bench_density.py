#!/usr/bin/env python3
"""Density: detached containers, jupybox against podman (runc, conmon) and, when it is installed,
Docker 20.10 on a private dockerd; the engines interleaved round by round.

    python benchmarks/bench_density.py [--count 50] [--rounds 3] [--only memory,run-d,concurrent,stop,rm]

    memory       N idle `run -d ... sleep` containers: the rise of the host's used memory
                 (MemTotal - MemAvailable) divided by N, and the summed PSS of the engine's own
                 host processes (jupybox: its service and the containers' PID 1s; podman: conmon;
                 docker: containerd-shim) divided by N, and the rise of the memory that processes
                 and the kernel hold (anon, shmem, unreclaimable slab, kernel stacks, page tables:
                 steadier than MemAvailable, which moves with the page cache) divided by N;
                 jupybox's service already running (as dockerd and containerd are for docker)
    memory-cold  the same, jupybox's service stopped before the batch: the rise includes the
                 service's own start (podman has no daemon: its numbers are the same scenario)
    run-d        one `run -d` from the shell, returned at the command's exec (docker's semantics)
    concurrent   N `run -d` started by `xargs -P 10`: the wall time of the whole batch
    stop         `stop` of N running containers in one command
    rm           `rm -f` of N running containers in one command

Every container runs `sh -c 'trap "exit 0" TERM; sleep 600 & wait'` with --network none (so that
stop is the same work for every engine: no engine's PID 1 ignores SIGTERM). Medians over the
rounds; ratios to podman. Results merge into benchmarks/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from anchors import PODMAN_IMAGE, Anchors  # noqa: E402
from bench_build import Dockerd  # noqa: E402
from harness import write_results  # noqa: E402

from jupybox.testing import cache_dir, import_image  # noqa: E402
from jupybox.testing.leaks import cleanup_path, kill_processes_under  # noqa: E402

IMAGE = "busybox:latest"
SLEEPER = ["sh", "-c", 'trap "exit 0" TERM; sleep 600 & wait']
SCENARIOS = ["memory", "memory-cold", "run-d", "concurrent", "stop", "rm"]


def sh(argv, env=None, timeout=600, input=None) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, input=input)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:6]))}... exited {r.returncode}: {r.stderr.strip()[-400:]}")
    return r


def meminfo() -> dict[str, int]:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info


def mem_used() -> int:
    info = meminfo()
    return info["MemTotal"] - info["MemAvailable"]


HELD = ("AnonPages", "Shmem", "SUnreclaim", "KernelStack", "PageTables")


def mem_held() -> dict[str, int]:
    """What processes and the kernel hold and cannot give back, by /proc/meminfo field: anonymous
    and shared memory, unreclaimable slab, kernel stacks, page tables (their sum is the metric;
    Percpu, the cgroups' and namespaces' per-CPU counters, is shown beside it). Unlike MemAvailable
    it does not move with the page cache (files written and deleted meanwhile, another process's reads)."""
    info = meminfo()
    return {k: info.get(k, 0) for k in (*HELD, "Percpu")}


def pss(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def processes(match) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and match(argv):
            out.append(int(entry))
    return out


class Engine:
    """One engine's verbs, as a shell user types them."""

    name = ""
    env: dict | None = None

    def cli(self) -> list[str]:
        raise NotImplementedError

    def run_d_argv(self) -> list[str]:
        raise NotImplementedError

    def run_d(self) -> str:
        return sh(self.run_d_argv(), env=self.env).stdout.strip().splitlines()[-1]

    def run_many(self, n: int, parallel: int = 10) -> list[str]:
        """n `run -d` through xargs -P (the shell's way of starting a batch at once)."""
        cmd = " ".join(map(_quote, self.run_d_argv()))
        r = sh(["xargs", "-P", str(parallel), "-I{}", "sh", "-c", cmd], env=self.env, input="\n".join(map(str, range(n))))
        return r.stdout.split()

    def stop(self, ids) -> None:
        sh(self.cli() + ["stop", *ids], env=self.env)

    def rm_f(self, ids) -> None:
        if ids:
            sh(self.cli() + ["rm", "-f", *ids], env=self.env)

    def all_ids(self) -> list[str]:
        return sh(self.cli() + ["ps", "-aq"], env=self.env).stdout.split()

    def host_processes(self) -> list[int]:
        raise NotImplementedError

    def settle(self) -> None:
        pass

    def daemon(self, up: bool) -> None:
        """Its daemon running (or not) before a measurement; engines without one: nothing."""


def _quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


class Jupybox(Engine):
    name = "jupybox"

    def __init__(self, root: Path):
        self.root = root
        exe = Path(sys.executable).parent / "jupybox"
        self._cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "jupybox"]
        self.env = dict(os.environ, JUPYBOX_ROOT=str(root))

    def cli(self) -> list[str]:
        return self._cli

    def run_d_argv(self) -> list[str]:
        return self._cli + ["run", "-d", "--network", "none", IMAGE, *SLEEPER]

    def service_pids(self) -> list[int]:
        """The store's service, found by its command line (the service the CLI started is named
        for the CLI's interpreter, which need not be this one: address.connect would miss it)."""
        root = str(self.root).encode()
        return processes(lambda argv: b"jupybox.service" in argv and root in argv)

    def host_processes(self) -> list[int]:
        pids = self.service_pids()
        # the containers' PID 1s: jupybox-init, exec'ed from a memfd (its argv[0] names it)
        pids += processes(lambda argv: argv[0] == b"jupybox-init")
        return pids

    def daemon(self, up: bool) -> None:
        if up:
            sh(self._cli + ["ps"], env=self.env)  # starts the service: it stays while containers run
            return
        sh(self._cli + ["system", "shutdown"], env=self.env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.service_pids():
                return
            time.sleep(0.1)
        raise RuntimeError("the jupybox service did not stop")


class Podman(Engine):
    name = "podman"

    def __init__(self, anchors: Anchors):
        self.anchors = anchors
        anchors.setup_podman()
        self.env = anchors.podman_env()

    def cli(self) -> list[str]:
        return self.anchors.podman_argv()

    def run_d_argv(self) -> list[str]:
        return self.cli() + ["run", "-d", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit",
                             "nproc=1024:1024", PODMAN_IMAGE, *SLEEPER]

    def host_processes(self) -> list[int]:
        runroot = str(self.anchors.podman_runroot).encode()
        return processes(lambda argv: argv[0].endswith(b"conmon") and any(runroot in a for a in argv))

    def settle(self) -> None:
        self.anchors.wait_podman_quiet()


class Docker(Engine):
    name = "docker"

    def __init__(self, base: Path, tarball: Path):
        self.d = Dockerd(base)
        if not self.d.start():
            raise RuntimeError("dockerd did not start")
        self.env = self.d.env
        sh([self.d.cli, "import", str(tarball), "jbx-bench-busybox:latest"], env=self.env)

    def cli(self) -> list[str]:
        return [self.d.cli]

    def run_d_argv(self) -> list[str]:
        return [self.d.cli, "run", "-d", "--network", "none", "jbx-bench-busybox:latest", *SLEEPER]

    def host_processes(self) -> list[int]:
        return processes(lambda argv: argv[0].endswith(b"containerd-shim-runc-v2") or argv[0].endswith(b"containerd-shim"))

    def close(self) -> None:
        self.d.stop()


# -- scenarios: each returns {metric: value} for one engine, one round ---------------------------
def scenario_memory(e: Engine, n: int, daemon_up: bool = True) -> dict:
    e.settle()
    time.sleep(1.0)
    e.daemon(daemon_up)
    before, before_held = mem_used(), mem_held()
    ids = e.run_many(n)
    try:
        time.sleep(3.0)  # idle: late allocations counted (a shim's, a service's) and jupybox's heap trim (2 s quiet) done
        rise = mem_used() - before
        after_held = mem_held()
        fields = {k: after_held[k] - before_held[k] for k in after_held}
        held = sum(fields[k] for k in HELD)
        own = pss(e.host_processes())
    finally:
        e.rm_f(ids)
        e.settle()
    how = "" if daemon_up else ", service started by the batch"
    return {f"memory per container{how} (MiB)": rise / n / 2**20,
            f"anon + kernel memory per container{how} (MiB)": held / n / 2**20,
            **{f"  {k} per container{how} (KiB)": v / n / 1024 for k, v in fields.items()},
            f"own processes' PSS per container{how} (MiB)": own / n / 2**20}


def scenario_memory_cold(e: Engine, n: int) -> dict:
    return scenario_memory(e, n, daemon_up=False)


def scenario_run_d(e: Engine, n: int) -> dict:
    times = []
    ids = []
    try:
        for _ in range(min(n, 20)):
            t0 = time.perf_counter()
            ids.append(e.run_d())
            times.append(time.perf_counter() - t0)
    finally:
        e.rm_f(ids)
        e.settle()
    return {"run -d (ms)": statistics.median(times) * 1000}


def scenario_concurrent(e: Engine, n: int) -> dict:
    t0 = time.perf_counter()
    ids = e.run_many(n)
    wall = time.perf_counter() - t0
    e.rm_f(ids)
    e.settle()
    return {f"{n} run -d, xargs -P 10 (s)": wall}


def scenario_stop(e: Engine, n: int) -> dict:
    ids = e.run_many(n)
    e.settle()
    t0 = time.perf_counter()
    e.stop(ids)
    wall = time.perf_counter() - t0
    e.rm_f(ids)
    e.settle()
    return {f"stop {n} (s)": wall}


def scenario_rm(e: Engine, n: int) -> dict:
    ids = e.run_many(n)
    e.settle()
    t0 = time.perf_counter()
    e.rm_f(ids)
    wall = time.perf_counter() - t0
    e.settle()
    return {f"rm -f {n} (s)": wall}


SCENARIO_FUNCS = {"memory": scenario_memory, "memory-cold": scenario_memory_cold, "run-d": scenario_run_d, "concurrent": scenario_concurrent,
                  "stop": scenario_stop, "rm": scenario_rm}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50, help="containers per batch (default 50)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, engines interleaved (default 3)")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_density: needs root", file=sys.stderr)
        return 2
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; known: {SCENARIOS}")

    base = Path(os.environ.get("JUPYBOX_BENCH_DIR") or "/var/tmp")
    work = Path(tempfile.mkdtemp(prefix="jbx-bench-density-", dir=base))
    anchors = Anchors(work / "anchors", cache_dir())
    root = work / "jbx-root"
    engines: list[Engine] = []
    docker = None
    results: dict = {}
    try:
        import_image(root, anchors.tarball, IMAGE)
        engines.append(Jupybox(root))
        engines.append(Podman(anchors))
        if not args.no_docker and shutil.which("dockerd"):
            try:
                docker = Docker(work / "docker", anchors.tarball)
                engines.append(docker)
            except RuntimeError as e:
                print(f"docker skipped: {e}", file=sys.stderr)
        for e in engines:  # warm: images, the service, podman's storage
            e.rm_f([e.run_d()])
            e.settle()
        for scenario in chosen:
            print(f"\n== {scenario} (N={args.count}, {args.rounds} rounds)", flush=True)
            per: dict[str, dict[str, list]] = {e.name: {} for e in engines}
            for r in range(args.rounds):
                order = engines[r % len(engines):] + engines[:r % len(engines)]
                for e in order:
                    for metric, value in SCENARIO_FUNCS[scenario](e, args.count).items():
                        per[e.name].setdefault(metric, []).append(value)
            medians = {name: {m: statistics.median(v) for m, v in metrics.items()} for name, metrics in per.items()}
            for metric in medians["jupybox"]:
                ref = medians["podman"].get(metric)
                cells = []
                for name in medians:
                    v = medians[name].get(metric)
                    ratio = f" ({v / ref:.2f}x)" if ref and name != "podman" else ""
                    cells.append(f"{name} {v:.2f}{ratio}")
                print(f"  {metric:44} " + "   ".join(cells))
            results[f"density-{scenario}"] = {"description": f"{scenario}, N={args.count}", "rounds": args.rounds,
                                              "medians": medians, "values": per}
    finally:
        for e in engines:
            try:
                e.rm_f(e.all_ids())
            except Exception as ex:  # noqa: BLE001
                print(f"cleanup of {e.name}: {ex}", file=sys.stderr)
        if docker is not None:
            docker.close()
        subprocess.run([sys.executable, "-m", "jupybox", "--root", str(root), "system", "reset", "-f"],
                       capture_output=True)
        kill_processes_under(root)
        anchors.close()
        cleanup_path(work)
    if results:
        meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_results(args.out, results, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
