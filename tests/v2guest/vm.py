"""Boot the v2 test guest under qemu (software emulation, TCG: no KVM needed) and collect its results.

The guest's root is a tmpfs holding the host's own system, read-only over 9p (virtio): ``/usr``,
``/etc`` (with a writable layer: ``useradd`` writes there), the running Python's prefixes, this
checkout and the test cache (writable layer), each at its host path, so the venv and its editable
install work unchanged. ``/tmp``, ``/var`` and ``/home`` are a fresh ext4 scratch disk (overlayfs
needs a real upper filesystem; ext4 has the ``user.*`` xattrs rootless overlayfs uses). The
results come back through a writable 9p share of a host directory (``out``): ``results.jsonl``
(one line per test, written as each ends), ``result.json`` (kernel, timings, leftovers),
``console.log`` (the serial console).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupybox.image.host import host_binds, host_symlinks
from jupybox.testing import cache_dir

from tests.v2guest.initramfs import REPO, Kernel, find_kernel, initramfs, old_kernel

QEMU = "qemu-system-x86_64"
GUEST_RUN = REPO / "tests" / "v2guest" / "guest_run.py"
MEMORY_MB = 2048
CPUS = 2
SCRATCH_SIZE = "16G"  # sparse: only what the guest writes takes space
SCRATCH_DIRS = (("/tmp", "1777"), ("/var", "755"), ("/var/tmp", "1777"), ("/home", "755"))
DEFAULT_TIMEOUT = 1800.0  # from its start: beside the suite a boot runs on the CPU the suite leaves idle
# qemu runs at the lowest priority: beside the suite (conftest.py) a guest takes the CPU time the
# suite leaves idle instead of slowing the suite down (at the default priority two guests took
# ~1.5 of the 2 vCPUs for 5-7 minutes: the suite took 19:05 instead of 17:40)
NICE = ("nice", "-n", "19")


def unavailable() -> str | None:
    """Why the guest cannot boot here (a skip reason), or None."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        return "the v2 guest boots an x86_64 Debian kernel"
    if os.geteuid() != 0:
        return "needs root: the guest reads the host's system as root does (useradd reads /etc/shadow)"
    missing = [t for t in (QEMU, "cpio", "mkfs.ext4") if not shutil.which(t)]
    if missing:
        return f"needs {', '.join(missing)} (apt: qemu-system-x86 cpio e2fsprogs)"
    if not os.path.exists("/bin/busybox"):
        return "needs busybox-static"
    if find_kernel() is None:
        return "no kernel with modules in /boot and /lib/modules (apt: linux-image-amd64)"
    return None


def boot_unavailable(boot: "Boot") -> str | None:
    """Why this boot cannot run here (a skip reason), or None."""
    why = unavailable()
    if why is None and boot_kernel(boot) is None:
        why = ("Debian 11's kernel is not in the test cache (`make test-fixtures` fetches it: "
               "jupybox.testing.kernels)")
    return why


def boot_kernel(boot: "Boot") -> Kernel | None:
    """The kernel a boot runs: the host's Debian kernel package, or Debian 11's (``old``)."""
    return old_kernel() if boot.kernel == "old" else find_kernel()


@dataclass(frozen=True)
class Share:
    host: str
    guest: str
    writable_layer: bool = False  # an overlay whose upper layer is on the scratch disk


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def shares() -> list[Share]:
    """What of the host the guest sees: the host image's read-only system (jupybox.image.host:
    /usr, /etc, /opt, the Python prefixes), the checkout and the test cache."""
    wanted = [Share(src, dst, writable_layer=dst == "/etc") for src, dst in host_binds()]
    wanted.append(Share(str(REPO), str(REPO)))
    cache = str(cache_dir().resolve())
    wanted.append(Share(cache, cache, writable_layer=True))
    out: list[Share] = []
    for s in sorted(wanted, key=lambda s: s.guest):  # parents first; one under another is covered
        if not any(_under(s.guest, o.guest) for o in out):
            out.append(s)
    return out


@dataclass
class Boot:
    """One boot of the guest: its extra kernel parameters and the pytest node ids it runs."""

    name: str
    nodeids: list[str]
    kernel_args: str = ""
    kernel: str = "host"  # "host": /boot's linux-image-amd64; "old": Debian 11's 5.10 (boot_kernel)
    pytest_args: list[str] = field(default_factory=lambda: ["--timeout", "300"])


@dataclass
class Outcome:
    boot: Boot
    out: Path
    returncode: int | None  # qemu's; None = killed at the timeout
    wall: float
    results: dict  # nodeid -> record (guest_report.py)
    summary: dict  # result.json (empty if the job never finished)

    def console_tail(self, lines: int = 60) -> str:
        try:
            text = (self.out / "console.log").read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def problem(self) -> str | None:
        """What went wrong with the boot itself (not with a test), or None."""
        fatal = self.out / "fatal"
        if fatal.exists():
            return f"the guest's init failed: {fatal.read_text().strip()}"
        if self.returncode is None:
            return "the guest did not finish in time (qemu killed)"
        if not self.summary:
            return f"the guest's job did not finish (qemu exit {self.returncode})"
        return None


def matplotlib_config() -> str | None:
    """A matplotlib config directory with its font cache, made on the host (under the test cache,
    which the guest sees at the same path), or None without matplotlib. Without it matplotlib
    builds the cache in the guest, reading every font under emulation: ~10 s of the chart's test."""
    path = cache_dir().resolve() / "v2guest" / "matplotlib"
    path.mkdir(parents=True, exist_ok=True)
    # the font cache is matplotlib's own: it writes or refreshes it as it imports
    proc = subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], capture_output=True,
                          env=dict(os.environ, MPLCONFIGDIR=str(path)), timeout=300)
    return str(path) if proc.returncode == 0 else None


def _plan(boot: Boot, out: Path, job: Path) -> str:
    shared = shares()
    venv_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",  # the checkout is read-only; the host compiled what it could
        "JUPYBOX_TEST_CACHE": str(cache_dir().resolve()),
        "JUPYBOX_TEST_ARTIFACTS": "/out/artifacts",
    }
    mpl = matplotlib_config()
    if mpl:
        env["MPLCONFIGDIR"] = mpl
    lines = [
        "SHARES=" + shlex.quote(" ".join(f"s{i}:{s.guest}:{'overlay' if s.writable_layer else 'ro'}"
                                         for i, s in enumerate(shared))),
        "LINKS=" + shlex.quote(" ".join(f"{name}:{target}" for name, target in host_symlinks()
                                        if not any(_under(name, s.guest) for s in shared))),
        "SCRATCH=" + shlex.quote(" ".join(f"{p}:{m}" for p, m in SCRATCH_DIRS)),
        "JOB=" + shlex.quote(f"{sys.executable} {GUEST_RUN} {job}"),
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
    ]
    for s in shared + [Share(str(out), "/out")]:
        if any(c in s.guest + s.host for c in " :,\"'\\"):
            raise ValueError(f"cannot share {s.host!r}: ' ', ':', ',' and quotes are not allowed in paths")
    return "\n".join(lines) + "\n"


def accelerators() -> list[str]:
    """KVM where the CPU offers virtualization to this machine (vmx or svm: a runner with nested
    virtualization runs the guest ~10x faster), else software emulation. /dev/kvm alone is not
    enough: a 2-vCPU VM without those flags has one whose vCPUs fail at their first MSR."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and ({"vmx", "svm"} & set(flags)):
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


def qemu_argv(kernel: Kernel, initrd: Path, boot: Boot, out: Path, disk: Path) -> list[str]:
    append = f"console=ttyS0 rdinit=/init panic=-1 loglevel=4 {boot.kernel_args}".strip()
    argv = [
        QEMU, *accelerators(), "-m", str(MEMORY_MB), "-smp", str(CPUS),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", f"file:{out / 'console.log'}",
        "-kernel", kernel.image, "-initrd", str(initrd), "-append", append,
        "-drive", f"file={disk},format=raw,if=virtio,cache=unsafe",
    ]
    ro = "security_model=none,readonly=on,multidevs=remap"
    for i, s in enumerate(shares()):
        argv += ["-virtfs", f"local,path={s.host},mount_tag=s{i},{ro}"]
    argv += ["-virtfs", f"local,path={out},mount_tag=jbxout,security_model=none"]
    return argv


@dataclass
class Booting:
    """A guest on its way (``start``): its qemu process and what ``finish`` needs."""

    boot: Boot
    out: Path
    proc: subprocess.Popen
    disk: Path
    t0: float
    timeout: float


def start(boot: Boot, out: Path, timeout: float | None = None) -> Booting:
    """Make the guest's files and start qemu; ``finish`` waits for it. qemu's output goes to
    ``out/qemu.log`` (no pipe: a caller's process holds nothing of it but the child)."""
    if timeout is None:
        timeout = float(os.environ.get("JUPYBOX_V2GUEST_TIMEOUT", DEFAULT_TIMEOUT))
    kernel = boot_kernel(boot)
    if kernel is None:
        raise RuntimeError(f"no kernel for the {boot.name} boot: {boot_unavailable(boot)}")
    initrd = initramfs(kernel, cache_dir())
    out.mkdir(parents=True, exist_ok=True)
    job = {"nodeids": boot.nodeids, "pytest_args": boot.pytest_args, "results": "/out/results.jsonl",
           "summary": "/out/result.json"}
    (out / "job.json").write_text(json.dumps(job))
    (out / "plan.sh").write_text(_plan(boot, out, Path("/out/job.json")))
    disk = out / "scratch.img"
    with open(disk, "wb") as f:
        f.truncate(_size(SCRATCH_SIZE))
    # no journal: the disk is thrown away after the boot
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(disk)], check=True, capture_output=True)
    with open(out / "qemu.log", "wb") as log:
        proc = subprocess.Popen([*NICE, *qemu_argv(kernel, initrd, boot, out, disk)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
    return Booting(boot, out, proc, disk, time.monotonic(), timeout)


def finish(booting: Booting) -> Outcome:
    """Wait for the guest (killed at its timeout) and read what it wrote."""
    proc = booting.proc
    try:
        proc.wait(timeout=max(0.0, booting.timeout - (time.monotonic() - booting.t0)))
        returncode: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        returncode = None
    finally:
        booting.disk.unlink(missing_ok=True)
    wall = time.monotonic() - booting.t0
    out = booting.out
    return Outcome(booting.boot, out, returncode, wall, _results(out / "results.jsonl"), _json(out / "result.json"))


def run(boot: Boot, out: Path, timeout: float | None = None) -> Outcome:
    """Boot the guest once, run ``boot``'s tests in it, and read what it wrote to ``out``."""
    return finish(start(boot, out, timeout))


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _results(path: Path) -> dict:
    out = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # the last line of a guest that died mid-write
        out[rec["nodeid"]] = rec
    return out
