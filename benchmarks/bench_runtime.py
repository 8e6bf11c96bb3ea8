"""Runtime benchmarks: jupybox against its anchors, interleaved in the same run.

    anchors          every anchor alone (crun, crun-limits, runc, podman, unshare, fork-exec)
    anchors-idle     the same with a 250 ms idle pause before each iteration
    api-launch       jupybox.run(IMAGE, ["/bin/true"], memory="64m", cpus=1, remove=True).wait()
                     in-process, vs crun with the same limits (and plain crun)
    api-launch-idle  the same with a 250 ms idle pause before each iteration
    cli-run          `jupybox run --rm IMAGE true` as a subprocess vs podman run --rm, crun, runc,
                     and the CLI's own interpreter start-up (`python -c pass`)
    fork-rss         api-launch from a parent process holding 50 MB vs one holding 4 GiB
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from anchors import Anchors  # noqa: E402
from harness import IDLE_PAUSE, Case, Worker, run_command  # noqa: E402

from jupybox.testing import import_image  # noqa: E402
from jupybox.testing.leaks import children, cleanup_path, kill_processes_under  # noqa: E402

IMAGE = "busybox:latest"
API_OPTIONS = {"memory": "64m", "cpus": 1, "remove": True, "network": "none"}  # like the anchors
SMALL_HOLD = 50 * 1024**2
BIG_HOLD = 4 * 1024**3


class JupyboxUnavailable(RuntimeError):
    pass


class Context:
    """What the benchmarks share: the anchors and a jupybox store with busybox imported (lazily)."""

    def __init__(self, workdir: Path, cache: Path):
        self.workdir = workdir
        self.cache = cache
        self.anchors = Anchors(workdir / "anchors", cache)
        self.root = workdir / "jbx-root"
        self._image_error: str | None = None
        self._image_ready = False
        self._workers: list[Worker] = []

    # -- jupybox ---------------------------------------------------------------------------------
    def jupybox_image(self) -> str:
        """Import busybox into the bench store once; raises JupyboxUnavailable if the API is missing."""
        if self._image_ready:
            return IMAGE
        if self._image_error:
            raise JupyboxUnavailable(self._image_error)
        try:
            import_image(self.root, self.anchors.tarball, IMAGE)
        except ImportError as e:
            self._image_error = f"jupybox API not available: {e}"
            raise JupyboxUnavailable(self._image_error) from None
        self._image_ready = True
        return IMAGE

    def jupybox_cli(self) -> list[str]:
        exe = Path(sys.executable).parent / "jupybox"
        return [str(exe)] if exe.exists() else [sys.executable, "-m", "jupybox"]

    def worker(self, *args: str) -> Worker:
        w = Worker([sys.executable, str(HERE / "worker.py"), *args])
        self._workers.append(w)
        return w

    def close(self) -> list[str]:
        notes = []
        for w in self._workers:
            w.close()
        self._workers.clear()
        self.anchors.close_worker()
        notes += close_launchers()
        if self._image_ready:
            from jupybox.service import stop

            stop(self.root)  # the store's service (and the sandboxes it made ahead)
        killed = kill_processes_under(self.root)
        notes += [f"process {p}: {c}" for p, c in killed.items()]
        cleanup_path(self.root)
        notes += self.anchors.close()
        cleanup_path(self.workdir)
        return notes


def close_launchers(timeout: float = 5.0) -> list[str]:
    """Close this process's clients of the services, wait for our descendants to exit, kill stragglers."""
    api = sys.modules.get("jupybox.api")
    if api is not None:
        try:
            api.shutdown()  # our connections; the services themselves are stopped by Context.close
        except Exception as e:  # noqa: BLE001
            print(f"closing the jupybox connections failed: {e}", file=sys.stderr)
    deadline = time.monotonic() + timeout
    while True:
        left = children()
        for pid in left:  # reap our own exited children
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        left = children()
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    notes = []
    for pid, cmd in left.items():
        notes.append(f"process {pid}: {cmd}")
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass
    return notes


# -- jupybox cases ------------------------------------------------------------------------------
def api_case(ctx: Context, name: str = "jupybox-api") -> Case:
    import_state: dict = {}

    def setup() -> None:
        image = ctx.jupybox_image()
        import jupybox

        if not hasattr(jupybox, "run"):
            raise JupyboxUnavailable("jupybox.run does not exist yet")
        import_state["run"] = jupybox.run
        import_state["image"] = image

    def run() -> None:
        c = import_state["run"](import_state["image"], ["/bin/true"], root=str(ctx.root), **API_OPTIONS)
        rc = c.wait()
        if rc != 0:
            raise RuntimeError(f"container exited {rc}")

    return Case(name, run, note="in-process, memory 64m cpus 1", setup=setup)


def cli_case(ctx: Context, name: str = "jupybox-cli") -> Case:
    """`jupybox run --rm` as a shell user types it: the CLI asks the store's service, which starts
    and watches the container (the CLI forks nothing)."""
    state: dict = {}

    def setup() -> None:
        image = ctx.jupybox_image()
        state["argv"] = ctx.jupybox_cli() + ["run", "--rm", "--network", "none", image, "true"]
        state["env"] = dict(os.environ, JUPYBOX_ROOT=str(ctx.root))

    def run() -> None:
        run_command(state["argv"], env=state["env"])

    return Case(name, run, note="jupybox run --rm, through the store's service", setup=setup)


def python_startup_case() -> Case:
    argv = [sys.executable, "-c", "pass"]
    return Case("python-startup", lambda: run_command(argv), note="the CLI's interpreter, -c pass")


def held_api_case(ctx: Context, hold: int, name: str) -> Case:
    state: dict = {}

    def setup() -> None:
        image = ctx.jupybox_image()
        state["w"] = ctx.worker("--api", "--hold", str(hold))
        state["image"] = image

    def run() -> float:
        reply = state["w"].call(op="api", image=state["image"], root=str(ctx.root), command=["/bin/true"],
                                options=API_OPTIONS)
        return reply["t"]

    def teardown() -> None:
        if "w" in state:
            state["w"].close()

    return Case(name, run, note=f"parent holds {hold // 1024**2} MiB", setup=setup, teardown=teardown)


# -- the benchmark table --------------------------------------------------------------------------
@dataclass
class Benchmark:
    name: str
    description: str
    cases: Callable[[Context], list[Case]]
    reference: str
    idle: float = 0.0
    anchors_only: bool = False
    default_runs: int | None = None


BENCHMARKS = [
    Benchmark("anchors", "every anchor, back to back", lambda ctx: ctx.anchors.all_cases(), "crun",
              anchors_only=True),
    Benchmark("anchors-idle", "every anchor, 250 ms idle pause before each iteration",
              lambda ctx: ctx.anchors.all_cases(), "crun", idle=IDLE_PAUSE, anchors_only=True),
    Benchmark("api-launch", "jupybox.run(...).wait() in-process vs crun with the same limits, back to back",
              lambda ctx: [api_case(ctx), ctx.anchors.crun_case(limits=True), ctx.anchors.crun_case(limits=False)],
              "crun-limits"),
    Benchmark("api-launch-idle", "the same with a 250 ms idle pause before each iteration",
              lambda ctx: [api_case(ctx), ctx.anchors.crun_case(limits=True), ctx.anchors.crun_case(limits=False)],
              "crun-limits", idle=IDLE_PAUSE),
    Benchmark("cli-run", "`jupybox run --rm IMAGE true` vs podman run --rm, crun, runc",
              lambda ctx: [cli_case(ctx), ctx.anchors.podman_case(), ctx.anchors.crun_case(limits=False),
                           ctx.anchors.runc_case(), python_startup_case()],
              "podman"),
    # 50 ms apart: the two workers share the store's service, and back to back the sandbox it
    # makes ahead for one is made while the other starts its container, which made both medians
    # bimodal noise rather than a measure of the parent's size
    Benchmark("fork-rss", "api-launch from a parent holding 50 MiB vs 4 GiB",
              lambda ctx: [held_api_case(ctx, SMALL_HOLD, "hold-50MiB"), held_api_case(ctx, BIG_HOLD, "hold-4GiB")],
              "hold-50MiB", idle=0.05, default_runs=20),
]


def select(only: list[str] | None) -> list[Benchmark]:
    """Names or prefixes: 'anchors' selects anchors and anchors-idle; 'api-launch' both api variants."""
    if not only:
        return list(BENCHMARKS)
    chosen = []
    for b in BENCHMARKS:
        if any(b.name == o or b.name.startswith(o + "-") for o in only):
            chosen.append(b)
    unknown = [o for o in only if not any(b.name == o or b.name.startswith(o + "-") for b in BENCHMARKS)]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {[b.name for b in BENCHMARKS]}")
    return chosen


def host_info() -> dict:
    info = {"kernel": os.uname().release, "cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        from jupybox.cgroups.detect import detect_layout

        info["cgroups"] = detect_layout()
    except Exception:  # noqa: BLE001
        pass
    for tool in ("crun", "runc", "podman"):
        try:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10).stdout
            info[tool] = out.splitlines()[0] if out else "?"
        except (OSError, subprocess.TimeoutExpired):
            info[tool] = None
    return info
