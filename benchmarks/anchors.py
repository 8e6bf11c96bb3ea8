"""The anchors of /work/shared/ANCHORS.md, runnable on this machine, each as a harness Case.

    crun          crun run of /bin/true, OCI bundle from `crun spec`, busybox rootfs. crun 1.8
                  refuses hybrid cgroups, so it runs from a helper process living in a private mount
                  namespace with /sys/fs/cgroup/unified hidden under a tmpfs (the ANCHORS.md trick,
                  set up once: the per-run unshare+sh wrapper is not timed).
    crun-limits   the same with linux.resources memory 64 MiB + cpu quota 100000/100000
    runc          runc run of the same bundle (hybrid cgroups are fine for runc)
    podman        podman run --rm --network none, runc, cgroupfs, file events, rlimits lowered,
                  on an image `podman import`ed from the busybox tarball into a private storage
                  root (--root/--runroot/--tmpdir and CONTAINERS_CONF under the bench work dir)
    unshare       unshare --fork --pid --mount --uts --ipc --net --root=R /bin/true (the floor)
    bwrap         bwrap --unshare-all (only when bubblewrap is installed)
    fork-exec     plain fork+exec of the host's /bin/true (the floor of the measuring method)

Everything lives in one work dir; :meth:`Anchors.close` removes containers, unmounts anything
under it and deletes it, and removes the host dirs podman creates as a side effect
(/var/lib/containers/cache, /run/containers) when they did not exist before.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harness import Case, Worker, run_command  # noqa: E402

from jupybox.testing import busybox_rootfs, busybox_tarball  # noqa: E402
from jupybox.testing.leaks import cgroups, cleanup_path  # noqa: E402

MEMORY_LIMIT = 64 * 1024 * 1024
CPU_QUOTA, CPU_PERIOD = 100000, 100000
ID_PREFIX = "jbx-bench"
PODMAN_IMAGE = "localhost/jbx-bench-busybox:latest"
PODMAN_SIDE_EFFECTS = ("/var/lib/containers/cache", "/var/lib/containers", "/run/containers/networks", "/run/containers")

# Enter a private mount namespace, hide the cgroup2 mount of a hybrid layout, exec the rest.
# crun still makes a directory per container in the hiding tmpfs; the worker empties it
# after each (timed) run, or the 1 MiB tmpfs fills up after ~300 containers (ENOSPC).
NS_WRAPPER = [
    "unshare", "-m", "--propagation", "private", "sh", "-c",
    'if [ -d /sys/fs/cgroup/unified ]; then '
    'mount -t tmpfs -o size=1m none /sys/fs/cgroup/unified || exit 1; export JBX_MASKED_DIR=/sys/fs/cgroup/unified; '
    'fi; exec "$@"',
    "sh",
]


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


class Anchors:
    def __init__(self, workdir: Path, cache: Path):
        self.workdir = Path(workdir)
        self.cache = Path(cache)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tarball = busybox_tarball(self.cache)
        self.rootfs = busybox_rootfs(self.workdir / "rootfs")
        self._ids = itertools.count()
        self._ns_worker: Worker | None = None
        self._podman_ready = False
        self._preexisting = {p: os.path.exists(p) for p in PODMAN_SIDE_EFFECTS}
        self.bundles = {
            "plain": self._bundle("bundle-plain", limits=False),
            "limits": self._bundle("bundle-limits", limits=True),
        }

    # -- OCI bundles -------------------------------------------------------------------------
    def _bundle(self, name: str, limits: bool) -> Path:
        d = self.workdir / name
        d.mkdir(exist_ok=True)
        if not (d / "config.json").exists():
            generator = "crun" if have("crun") else "runc"
            run_command([generator, "spec"], cwd=str(d))
        spec = json.loads((d / "config.json").read_text())
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["process"]["args"] = ["/bin/true"]
        spec["process"]["terminal"] = False
        resources = spec["linux"].setdefault("resources", {})
        if limits:
            resources["memory"] = {"limit": MEMORY_LIMIT}
            resources["cpu"] = {"quota": CPU_QUOTA, "period": CPU_PERIOD}
        (d / "config.json").write_text(json.dumps(spec, indent=1))
        return d

    def _next_id(self) -> str:
        return f"{ID_PREFIX}-{os.getpid()}-{next(self._ids)}"

    # -- crun, from a helper in a private mount namespace --------------------------------------
    def ns_worker(self) -> Worker:
        if self._ns_worker is None:
            self._ns_worker = Worker(NS_WRAPPER + [sys.executable, str(HERE / "worker.py")])
        return self._ns_worker

    def crun_case(self, limits: bool, name: str | None = None) -> Case:
        bundle = self.bundles["limits" if limits else "plain"]
        state = self.workdir / "crun-state"

        def run() -> float:
            argv = ["crun", "--root", str(state), "run", "--bundle", str(bundle), self._next_id()]
            return self.ns_worker().call(op="exec", argv=argv)["t"]

        note = "memory 64m + cpu 100000/100000" if limits else ""
        return Case(name or ("crun-limits" if limits else "crun"), run, note=note, setup=self._need("crun"))

    def runc_case(self, limits: bool = False, name: str | None = None) -> Case:
        bundle = self.bundles["limits" if limits else "plain"]
        state = self.workdir / "runc-state"

        def run() -> None:
            run_command(["runc", "--root", str(state), "run", "--bundle", str(bundle), self._next_id()])

        return Case(name or ("runc-limits" if limits else "runc"), run, setup=self._need("runc"))

    # -- podman --------------------------------------------------------------------------------
    @property
    def podman_dir(self) -> Path:
        return self.workdir / "podman"

    @property
    def podman_runroot(self) -> Path:
        # podman refuses a runroot longer than 50 characters: a short one on /run (tmpfs), removed in close()
        return Path(f"/run/jbx-bench-{os.getpid()}")

    def podman_argv(self) -> list[str]:
        p = self.podman_dir
        return [
            "podman", "--root", str(p / "root"), "--runroot", str(self.podman_runroot), "--tmpdir", str(p / "tmp"),
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--runtime", "runc",
        ]

    def podman_env(self) -> dict:
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.podman_dir / "containers.conf")
        return env

    def setup_podman(self) -> None:
        if self._podman_ready:
            return
        if not have("podman"):
            raise RuntimeError("podman is not installed")
        p = self.podman_dir
        p.mkdir(exist_ok=True)
        # file locks instead of /dev/shm/libpod_lock; network config inside the work dir
        (p / "containers.conf").write_text(
            "[engine]\nlock_type = \"file\"\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n"
            f"[network]\nnetwork_config_dir = \"{p / 'networks'}\"\n"
        )
        run_command(self.podman_argv() + ["import", "-q", str(self.tarball), PODMAN_IMAGE], env=self.podman_env())
        self._podman_ready = True

    def podman_case(self, name: str = "podman") -> Case:
        argv = self.podman_argv() + [
            "run", "--rm", "--network", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            PODMAN_IMAGE, "/bin/true",
        ]

        def run() -> float:
            t0 = time.perf_counter()
            run_command(argv, env=self.podman_env())
            t = time.perf_counter() - t0
            # conmon runs `podman container cleanup --rm` after the container exits: let it finish
            # (untimed) so that it does not slow down the next case.
            self.wait_podman_quiet()
            return t

        return Case(name, run, note="--rm --network none, runc", setup=self.setup_podman)

    def podman_processes(self) -> list[int]:
        """conmon / podman cleanup processes working on this private storage."""
        key = str(self.podman_runroot).encode()
        found = []
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():
                try:
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        if key in f.read():
                            found.append(int(d))
                except OSError:
                    pass
        return found

    def wait_podman_quiet(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.podman_processes() and time.monotonic() < deadline:
            time.sleep(0.005)

    # -- floors ----------------------------------------------------------------------------------
    def unshare_case(self) -> Case:
        argv = ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", f"--root={self.rootfs}", "/bin/true"]
        return Case("unshare", lambda: run_command(argv), note="5 namespaces + chroot, no cgroup")

    def bwrap_case(self) -> Case | None:
        if not have("bwrap"):
            return None
        argv = ["bwrap", "--unshare-all", "--ro-bind", str(self.rootfs), "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"]
        return Case("bwrap", lambda: run_command(argv), note="--unshare-all, no cgroup")

    def fork_exec_case(self) -> Case:
        return Case("fork-exec", lambda: run_command(["/bin/true"]), note="host /bin/true")

    def all_cases(self) -> list[Case]:
        cases = [
            self.crun_case(limits=False),
            self.crun_case(limits=True),
            self.runc_case(),
            self.podman_case(),
            self.unshare_case(),
            self.bwrap_case(),
            self.fork_exec_case(),
        ]
        return [c for c in cases if c is not None]

    @staticmethod
    def _need(binary: str):
        def check() -> None:
            if not have(binary):
                raise RuntimeError(f"{binary} is not installed")

        return check

    # -- cleanup ---------------------------------------------------------------------------------
    def close_worker(self) -> None:
        if self._ns_worker is not None:
            self._ns_worker.close()
            self._ns_worker = None

    def close(self) -> list[str]:
        """Stop everything; returns a list of what had to be cleaned up forcibly."""
        notes: list[str] = []
        self.close_worker()
        for runtime in ("crun", "runc"):
            state = self.workdir / f"{runtime}-state"
            if state.exists() and have(runtime):
                out = subprocess.run([runtime, "--root", str(state), "list", "-q"], capture_output=True, text=True)
                for cid in out.stdout.split():
                    notes.append(f"{runtime} container {cid}")
                    wrap = NS_WRAPPER if runtime == "crun" else []
                    subprocess.run(wrap + [runtime, "--root", str(state), "delete", "-f", cid], capture_output=True)
        if self._podman_ready:
            self.wait_podman_quiet()
            env = self.podman_env()
            out = subprocess.run(self.podman_argv() + ["ps", "-aq"], capture_output=True, text=True, env=env)
            if out.stdout.strip():
                notes.append(f"podman containers {out.stdout.split()}")
                subprocess.run(self.podman_argv() + ["rm", "-af"], capture_output=True, env=env)
            subprocess.run(self.podman_argv() + ["rmi", "-af"], capture_output=True, env=env)
            self._podman_ready = False
        for cg in sorted(cgroups(ID_PREFIX), key=len, reverse=True):
            notes.append(f"cgroup {cg}")
            try:
                os.rmdir(cg)
            except OSError:
                pass
        if self.podman_dir.exists():
            self.wait_podman_quiet()
            for pid in self.podman_processes():
                notes.append(f"podman process {pid}")
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        cleanup_path(self.workdir)
        cleanup_path(self.podman_runroot)
        for path in PODMAN_SIDE_EFFECTS:
            if not self._preexisting[path] and os.path.exists(path):
                shutil.rmtree(path, ignore_errors=True)
        return notes
