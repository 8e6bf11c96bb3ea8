"""Fallback mode: a container spec run as a plain process on the host, *without isolation*.

Where no namespace can be made (mybinder.org, hardened hosts; ``mode.detect()`` says
``fallback``), the ``%%container`` magic still runs cells, and ``jupybox run --no-isolation``
commands, as an ordinary child process. Nothing is isolated: the process sees the host's
files, network, processes and users, as the user who started it. The callers say so loudly; this
module only refuses what it cannot honour and says what it does not enforce:

* only the built-in ``host`` image (the host's own system) can run: any other image needs a
  root filesystem of its own;
* ``-v``/``--tmpfs``, ``--network`` other than ``host`` (or left out), ``-p``/``-P``, ``--dns``,
  ``--add-host``, ``--network-alias``, ``--user``, ``--hostname``, ``--read-only``,
  ``--privileged``, ``--cap-add``/``--cap-drop`` are errors (:class:`errors.UsageError`);
* ``--name`` (shown, nothing is recorded), ``--rm``, ``--init``/``--no-init``, labels and ``-t``
  change nothing; ``-i`` (the CLI) hands the process our stdin;
* ``--cpus``, ``--cpu-shares`` and ``--memory-swap`` are *not enforced* (no cgroup): the caller
  gets them in :attr:`Plan.not_enforced` and shows them.

Limits are rlimits, set before the command runs: the command is exec'ed through util-linux
``prlimit`` (``prlimit --data=BYTES --nproc=N -- CMD``), or, where it is missing, through a tiny
``python -I -S -c`` shim that calls ``setrlimit`` and execs (so the limits never lag behind the
start, as a ``Process.rlimit`` applied after the spawn would). A limit is never set above the one
this process already has (a user cannot raise a hard limit; the machine's lower limit wins).

* ``-m``/``--memory`` is ``RLIMIT_DATA``: a cap on *each process's* private writable memory
  (heap, anonymous mmaps, thread stacks), not on the sum of the processes like a cgroup. An
  allocation beyond it fails (``MemoryError`` in Python, NULL from malloc): there is no OOM kill.
* ``--pids-limit`` is ``RLIMIT_NPROC``, which counts every task (process or thread) of the *user*,
  not of the cell: it is set to the user's task count at the start plus the limit, so the cell
  may make about that many more, shared with whatever else the same user starts meanwhile. The
  kernel ignores ``RLIMIT_NPROC`` for root, so as root the pids limit is reported not enforced.

The process gets its own session and process group (``start_new_session``): a kill reaches the
whole group, and also every descendant seen by the sampler that left it. As in a container, when
the main process exits, whatever it left running (in its group, or seen by the sampler) is
killed. The environment is the host image's (its ``PATH``) plus ``HOME`` and ``-e``/``--env-file``,
not the caller's; the working directory is ``-w`` or the image's (``/``).

Monitoring is psutil over the process tree: :meth:`Unisolated.stats` returns the same
:class:`~jupybox.cgroups.base.CgroupStats` as a container's cgroup (CPU from ``cpu_times`` of the
tree, memory = the sum of RSS, its peak across samples, tasks, the limits as set), so the live
chart and the summary work unchanged.

The process is started with :class:`subprocess.Popen` (no ``os.fork``, no ``preexec_fn``: the
notebook kernel is threaded and large).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from .. import errors
from .spec import ContainerSpec

MIN_MEMORY = 6 * 1024 * 1024  # the runtime's minimum -m, kept the same here

_SHIM = ("import os,resource,sys\n"
         "a=sys.argv[1:]\n"
         "while a[0]!='--':\n"
         " k,v=a[0].split('=');n=int(v);resource.setrlimit(getattr(resource,'RLIMIT_'+k.upper()),(n,n));a=a[1:]\n"
         "os.execvp(a[1],a[1:])\n")


@dataclass
class Plan:
    """A checked spec, ready to start: what runs, with which rlimits, and what is not enforced."""

    spec: ContainerSpec
    argv: list[str]
    path: str  # the resolved executable
    env: dict[str, str]
    cwd: str
    rlimits: dict[str, int] = field(default_factory=dict)  # "data"/"nproc" -> value
    memory: int | None = None  # the -m set as RLIMIT_DATA (per process)
    pids: int | None = None  # the --pids-limit enforced (through RLIMIT_NPROC)
    not_enforced: list[str] = field(default_factory=list)  # e.g. "--cpus 0.5 (no cgroup)"

    def start(self, stdin=None, stdout=None, stderr=None) -> "Unisolated":
        return Unisolated.start(self, stdin, stdout, stderr)

    def describe(self, also=()) -> str:
        """One line: what limits hold and which do not (``also``: more of those, from the caller)."""
        from ..units import human_size

        held = []
        if self.memory is not None:
            held.append(f"-m {human_size(self.memory)} per process (RLIMIT_DATA)")
        if self.pids is not None:
            held.append(f"--pids-limit {self.pids} (RLIMIT_NPROC)")
        out = "limits: " + (", ".join(held) if held else "none")
        loose = list(self.not_enforced) + list(also)
        if loose:
            out += "; not enforced: " + ", ".join(loose)
        return out


def _refuse(what: str, needs: str, hint: str = "") -> errors.UsageError:
    return errors.UsageError(f"{what} needs {needs}: without isolation it cannot be honoured"
                             + (f"; {hint}" if hint else ""))


_NETWORK_HINT = "leave --network out (or use --network host): the process uses the host's network"


def check(spec: ContainerSpec) -> list[str]:
    """Raise UsageError for what a plain process cannot honour; return what it will not enforce."""
    from ..image.host import is_host_reference

    if not is_host_reference(spec.image):
        raise errors.UsageError(f"image {spec.image} needs isolation (a root filesystem of its own): on the "
                                f"host only the host image can run, without isolation")
    if spec.mounts:
        kinds = sorted({"--tmpfs" if m.type == "tmpfs" else "-v" for m in spec.mounts})
        raise _refuse("/".join(kinds), "a mount namespace", "the process sees the host's own files")
    if spec.network not in ("host", "", None):
        raise _refuse(f"--network {spec.network}", "a network namespace", _NETWORK_HINT)
    for flag, value, needs in (("-p", spec.ports, "a network of its own"),
                               ("-P", spec.publish_all, "a network of its own"),
                               ("--network-alias", spec.network_aliases, "a network of its own"),
                               ("--dns", spec.dns, "an /etc/resolv.conf of its own"),
                               ("--add-host", spec.add_hosts, "an /etc/hosts of its own")):
        if value:
            raise _refuse(flag, needs, _NETWORK_HINT)
    if spec.user:
        raise _refuse(f"--user {spec.user}", "a container", f"the process runs as this user (uid {os.geteuid()})")
    if spec.hostname:
        raise _refuse(f"--hostname {spec.hostname}", "a UTS namespace")
    if spec.readonly_rootfs:
        raise _refuse("--read-only", "a root filesystem of its own")
    if spec.privileged or spec.cap_add or spec.cap_drop:
        flag = "--privileged" if spec.privileged else "--cap-add" if spec.cap_add else "--cap-drop"
        raise _refuse(flag, "a container", "the process has this user's own privileges")
    lim = spec.limits
    if lim.memory is not None and 0 <= lim.memory < MIN_MEMORY:
        raise errors.UsageError("minimum memory limit allowed is 6MB")
    if lim.pids is not None and lim.pids == 0:
        raise errors.UsageError("invalid pids limit 0: use -1 for unlimited")
    notes = []
    if lim.cpus:
        notes.append(f"--cpus {lim.cpus:g} (no cgroup)")
    if lim.cpu_shares:
        notes.append(f"--cpu-shares {lim.cpu_shares} (no cgroup)")
    if lim.memory_swap is not None:
        notes.append("--memory-swap (no cgroup)")
    if lim.pids is not None and os.geteuid() == 0:
        notes.append(f"--pids-limit {lim.pids} (RLIMIT_NPROC does not apply to root)")
    return notes


def prepare(image: str, command=None, **options) -> Plan:
    """``jupybox.run``'s arguments -> a checked :class:`Plan` (raises UsageError, CommandNotFound...)."""
    from .options import make_spec

    opts = dict(options)
    net = opts.get("network")
    if net not in (None, "", "host"):
        raise _refuse(f"--network {net}", "a network namespace", _NETWORK_HINT)
    opts["network"] = "host"  # what a plain process has, whatever the default network is
    return plan(make_spec(image, command, **opts))


def plan(spec: ContainerSpec) -> Plan:
    from ..image.host import host_config

    notes = check(spec)
    cfg = host_config()["config"]
    if spec.entrypoint is not None:
        argv = list(spec.entrypoint) + list(spec.command)
    else:
        argv = list(cfg.get("Entrypoint") or []) + (list(spec.command) or list(cfg.get("Cmd") or []))
    if not argv:
        raise errors.UsageError("no command specified")
    env: dict[str, str] = {}
    for item in cfg.get("Env") or []:
        k, _, v = item.partition("=")
        env[k] = v
    env["HOME"] = _home()
    env.update(spec.env)
    cwd = spec.workdir or cfg.get("WorkingDir") or "/"
    if not os.path.isdir(cwd):
        raise errors.UsageError(f"working directory {cwd} does not exist on the host (without isolation "
                                f"the process runs in the host's own directories)")
    path = _executable(argv[0], env)
    rlimits: dict[str, int] = {}
    memory = spec.limits.memory if spec.limits.memory not in (None, -1) else None
    if memory is not None:
        rlimits["data"] = memory
    pids = None
    if spec.limits.pids is not None and os.geteuid() != 0:
        pids = spec.limits.pids
        rlimits["nproc"] = _user_tasks(os.getuid()) + pids
    for name, value in rlimits.items():
        rlimits[name] = _within_current(name, value)
    memory = rlimits.get("data")  # what holds, if the machine's own limit is lower
    return Plan(spec, argv, path, env, cwd, rlimits, memory, pids, notes)


def run(image: str, command=None, *, stdin=None, stdout=None, stderr=None, **options) -> "Unisolated":
    """Like ``jupybox.run`` (attached), without isolation: check, then start; returns at once."""
    return prepare(image, command, **options).start(stdin, stdout, stderr)


def _home() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return os.environ.get("HOME") or "/"


def _executable(name: str, env: dict) -> str:
    """docker's lookup (a name with a slash is used as is, else each PATH entry is tried; the
    container init does the same in C), errors as the runtime's: 127 not found, 126 not executable."""
    import stat

    if "/" in name:
        candidates = [name]
    else:
        candidates = [os.path.join(d or ".", name) for d in env.get("PATH", "/usr/bin:/bin").split(":")]
    denied = None
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            denied = denied or f"{path}: is a directory"
        elif not os.access(path, os.X_OK):
            denied = denied or f"{path}: permission denied"
        else:
            return path
    if denied:
        raise errors.CommandNotExecutable(f"exec: {denied}")
    if "/" in name:
        raise errors.CommandNotFound(f"exec: {name}: no such file or directory")
    raise errors.CommandNotFound(f'exec: "{name}": executable file not found in $PATH')


def _within_current(name: str, value: int) -> int:
    import resource

    from ..cgroups.processtree import within_current

    return within_current(getattr(resource, f"RLIMIT_{name.upper()}"), value)


def _user_tasks(uid: int) -> int:
    """Tasks (processes and threads) of real uid ``uid``: what RLIMIT_NPROC counts."""
    import psutil

    n = 0
    for p in psutil.process_iter(["uids", "num_threads"]):
        try:
            if p.info["uids"] is not None and p.info["uids"].real == uid:
                n += p.info["num_threads"] or 1
        except (psutil.Error, AttributeError):
            continue
    return n


def _limited_argv(plan: Plan) -> tuple[str, list[str]]:
    """(executable, argv): the command itself, or through prlimit (or the shim) with the rlimits.
    Without rlimits argv[0] stays the user's word, as in a container."""
    if not plan.rlimits:
        return plan.path, list(plan.argv)
    prlimit = shutil.which("prlimit")
    if prlimit:
        argv = [prlimit] + [f"--{k}={v}" for k, v in plan.rlimits.items()]
    else:
        argv = [sys.executable, "-I", "-S", "-c", _SHIM] + [f"{k}={v}" for k, v in plan.rlimits.items()]
    argv += ["--", plan.path] + plan.argv[1:]
    return argv[0], argv


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


class Unisolated:
    """A running plain process with the surface of :class:`~jupybox.runtime.container.Container`
    that the cell runner, the chart and the CLI use: wait, kill, stats, result, remove."""

    isolated = False

    def __init__(self, plan: Plan, proc: subprocess.Popen):
        self.plan = plan
        self.proc = proc
        self.pid = proc.pid
        self.id = f"unisolated-{proc.pid}"
        self.short_id = self.id[:12]
        self.name = f"{plan.spec.name or f'process {proc.pid}'} (no isolation)"
        self.image = plan.spec.image
        self.exit_code: int | None = None
        self.rusage = None
        self._lock = threading.Lock()
        self._seen: dict[int, object] = {}  # pid -> psutil.Process, every descendant ever sampled
        self._peak = 0
        self._cpu_ns = 0
        self._done = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name=f"jupybox-unisolated-{proc.pid}", daemon=True)
        self._reaper.start()

    @classmethod
    def start(cls, plan: Plan, stdin=None, stdout=None, stderr=None) -> "Unisolated":
        exe, argv = _limited_argv(plan)
        try:
            proc = subprocess.Popen(argv, executable=exe, stdin=_stdio(stdin), stdout=_stdio(stdout),
                                    stderr=_stdio(stderr), env=plan.env, cwd=plan.cwd, close_fds=True,
                                    start_new_session=True)
        except OSError as e:
            raise errors.RuntimeFailure(f"starting {plan.argv[0]} without isolation: {e.strerror or e}") from None
        return cls(plan, proc)

    # -- what Container offers ---------------------------------------------------------------
    @property
    def status(self) -> str:
        return "exited" if self._done.is_set() else "running"

    @property
    def oom_killed(self) -> bool:
        return False  # rlimits make allocations fail; nothing is OOM-killed at a limit

    @property
    def limits(self):
        from .spec import Limits

        return Limits(memory=self.plan.memory, pids=self.plan.pids)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (128+N for a signal); TimeoutError after ``timeout`` seconds."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.name} is still running")
        return self.exit_code

    def result(self) -> dict:
        self.wait()
        extra = {"cpu_usage_ns": self._cpu_ns, "memory_peak": self._peak or None,
                 "memory_limit": self.plan.memory, "isolated": False}
        return {"exit_code": self.exit_code, "oom_killed": False, "extra": extra}

    def kill(self, sig: int | str = signal.SIGKILL) -> None:
        """``sig`` to the process group and to every descendant seen outside it."""
        if isinstance(sig, str):
            from .engine import signal_number

            sig = signal_number(sig)
        if self._done.is_set():
            raise errors.StateError(f"{self.name} is not running")
        self._signal_all(sig)

    def remove(self, force: bool = False) -> None:
        """Nothing is kept of a plain process; ``force`` kills it if it still runs."""
        if not self._done.is_set():
            if not force:
                raise errors.Conflict(f"{self.name} is running: stop it first (or force)")
            self._signal_all(signal.SIGKILL)
            self._done.wait()

    def stats(self):
        """One sample over the process tree, as a cgroup would give it; StateError once exited."""
        from ..cgroups.base import CgroupStats
        from ..cgroups.processtree import sample

        if self._done.is_set():
            raise errors.StateError(f"{self.name} is not running")
        got = sample(self.pid)
        if got is None:
            raise errors.StateError(f"{self.name} is not running")
        procs, cpu, rss, tasks = got
        with self._lock:
            for p in procs[1:]:
                self._seen.setdefault(p.pid, p)
            # a process that exits moves its time to its parent only when reaped: never go back
            self._cpu_ns = max(self._cpu_ns, int(cpu * 1e9))
            self._peak = max(self._peak, rss)
            cpu_ns, peak = self._cpu_ns, self._peak
        if self._done.is_set():
            raise errors.StateError(f"{self.name} is not running")
        return CgroupStats(cpu_usage_ns=cpu_ns, memory_current=rss, memory_peak=peak,
                           memory_limit=self.plan.memory, pids_current=tasks, pids_limit=self.plan.pids)

    # -- internals ---------------------------------------------------------------------------
    def _signal_all(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        with self._lock:
            seen = list(self._seen.values())
        for p in seen:
            try:
                p.send_signal(sig)  # psutil checks that the pid was not reused
            except Exception:  # noqa: BLE001 - gone, or reused
                pass

    def _reap(self) -> None:
        """Wait for the exit, kill what the process left behind (while its zombie still holds
        the process group's id), then reap it with its resource usage."""
        pid = self.pid
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        self._signal_all(signal.SIGKILL)
        status, ru = 255 << 8, None
        while True:
            try:
                _, status, ru = os.wait4(pid, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries already
                continue
        self.proc.returncode = _exit_code(status)  # Popen must not wait for it again
        self.rusage = ru
        with self._lock:
            if ru is not None:  # the process and its reaped descendants
                self._cpu_ns = max(self._cpu_ns, int((ru.ru_utime + ru.ru_stime) * 1e9))
                # (not ru_maxrss: it includes the spawning kernel's RSS, inherited through vfork)
        self.exit_code = _exit_code(status)
        self._done.set()


def _stdio(obj):
    if obj is None:
        return subprocess.DEVNULL
    return obj
