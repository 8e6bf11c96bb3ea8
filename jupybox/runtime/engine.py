"""The runtime: create, start, exec, remove and prune containers; their state and stats.

It turns a :class:`~jupybox.runtime.spec.ContainerSpec` into a record on disk (``create``), a
cgroup and a plan for the container's init (``start``), and records the exit (``record_exit``,
``cleanup``). The process that calls :meth:`Engine.start` becomes the container's *monitor*: that
is the store's service (``jupybox.service``), and only it. Everything else (the CLI, the API, the
builder) asks the service; it reads containers' records and stats here directly.
"""

from __future__ import annotations

import os
import secrets
import signal
import time

from .. import errors
from ..cgroups import open_driver
from ..linux import seccomp as lseccomp
from ..linux import syscalls as sc
from ..paths import Layout
from . import sandbox as sandbox_mod
from .configure import ConfigureMixin
from .garbage import GarbageMixin
from .options import check_user
from .prepared import Prepared, Running, exit_code_of  # noqa: F401 - exit_code_of: re-exported
from .records import Record, Records
from .spec import ContainerSpec
from .state import State, Status, monitor_alive, now_iso, pid_alive, proc_start_time

HOST_VIEW_TTL = 2.0  # seconds a resolved host image (its binds and masks) is reused
EXIT_RESERVE = 16384  # bytes kept for a running container's exit state (5 health probes' output included)


class Engine(ConfigureMixin, GarbageMixin):
    def __init__(self, root: str | os.PathLike | None = None):
        self.layout = Layout(root).ensure()
        self.records = Records(self.layout)
        self._store = None
        self._cgroups = None
        self._images: dict[str, tuple] = {}  # ref -> (key, image, rootfs, deadline): see _image
        lseccomp.set_cache_dir(str(self.layout.cache))
        # not root: each container gets a user namespace of its own (see runtime.mode)
        self.idmap = None
        self.overlay = "overlay"
        if os.geteuid() != 0:
            from ..linux.userns import current_idmap
            from .mode import rootless_overlay

            self.idmap = current_idmap()
            self.overlay = rootless_overlay()

    @property
    def rootless(self) -> bool:
        return self.idmap is not None

    # -- collaborators, made on first use (the CLI's `ps` should not pay for libseccomp) --------
    @property
    def store(self):
        if self._store is None:
            from ..image.store import ImageStore

            self._store = ImageStore(self.layout)
            self._store.in_use = self.image_in_use
        return self._store

    @property
    def cgroups(self):
        if self._cgroups is None:
            # like docker's --cgroup-parent: the test suite uses its own, so that its leak checks
            # see only its own containers
            parent = os.environ.get("JUPYBOX_CGROUP_PARENT") or "jupybox"
            if self.rootless:
                from ..cgroups import open_user_driver

                self._cgroups = open_user_driver(parent)
                self._cgroups.lookup = self._tree_lookup  # the process-tree driver (no cgroups)
            else:
                self._cgroups = open_driver(parent=parent)
        return self._cgroups

    def _tree_lookup(self, cid: str):
        """For cgroup-less containers: PID 1's pid (0 when not running) and the limits."""
        try:
            rec = self.records.get(cid)
            state = rec.state()
        except (errors.JupyboxError, OSError):
            return 0, None
        limits = ContainerSpec.from_dict(rec.config["spec"]).limits
        return (state.pid if state.status is Status.RUNNING else 0), limits

    def limits_notice(self, spec: ContainerSpec) -> str | None:
        """What of the spec's limits the host cannot enforce, in one line (or None)."""
        if not self.rootless:
            return None
        from ..cgroups.processtree import ProcessTreeDriver, unenforced

        if not isinstance(self.cgroups, ProcessTreeDriver):
            return None
        missing = unenforced(spec.limits)
        if not missing:
            return None
        return f"no cgroups for this user ({self.cgroups.reason}): " + "; ".join(missing)

    # -- create ------------------------------------------------------------------------------
    def _image(self, ref: str) -> tuple:
        """(image, its root filesystem or None) for ``ref``, remembered: a kernel runs one image again
        and again, and resolving it (index.json, manifests, layer links) costs ~0.4 ms a start. An
        entry holds while the store is at the same generation (``Layout.generation``: every change
        of images or layers bumps it) and its layer dirs exist; for the host image, whose view
        follows the host's files, HOST_VIEW_TTL."""
        key = self.layout.generation()
        hit = self._images.get(ref)
        if hit is not None and hit[2] is not None:
            if hit[0] == "host" and time.monotonic() < hit[3]:
                return hit[1], hit[2]
            if key is not None and hit[0] == key and all(os.path.isdir(d) for d in hit[2]["lowers"]):
                return hit[1], hit[2]
        image = self.store.resolve(ref)
        self._images[ref] = ("host" if getattr(image, "is_host", False) else key, image, None, 0.0)
        return image, None

    def _image_rootfs_of(self, ref: str, image) -> dict:
        rootfs = self._image_rootfs(image)
        key = self._images.get(ref, (None,))[0]
        if len(self._images) > 64:
            self._images.clear()
        self._images[ref] = (key, image, rootfs, time.monotonic() + HOST_VIEW_TTL)
        return rootfs

    def create(self, spec: ContainerSpec, cid: str | None = None, prepared: "Prepared | None" = None) -> Record:
        config = prepared.armed_config(spec) if prepared is not None else None
        if config is None:
            config = self.container_config(spec)
        staged = staged_name = None
        if prepared is not None and prepared.fits_config(config) and prepared.ready():
            cid, staged, staged_name = prepared.cid, prepared.staged, prepared.name
            prepared.go = prepared.armed is not None and config is prepared.armed[1]
        else:
            prepared = None

        def prepare(rec, config):
            default = prepared is not None and config["hostname"] == rec.id[:12] and not config["image"]["is_host"]
            if not default:
                self._write_etc_files(rec.dir, config["hostname"], spec.network, config["image"]["is_host"])
            if spec.network in ("none", "host") and (spec.dns or spec.add_hosts):
                from ..network import extend_etc

                extend_etc(rec.dir, spec)

        return self.records.create(spec.name, config, cid, prepare=prepare, staged=staged, staged_name=staged_name)

    def prepare(self, network: str = "none", template: dict | None = None) -> Prepared:
        """Make a container's cgroup, namespaces and directory before its spec is known.

        The first write to a v1 cgroup.procs after an idle moment waits for an RCU grace period
        (8-16 ms on a 2-vCPU VM with hybrid cgroups) and a fork of PID 1 costs ~2 ms: made ahead,
        off the critical path, by the store's service (its pool, see ``jupybox.service.pool``)."""
        return Prepared(self, secrets.token_hex(32), network, template)

    def start(self, rec: Record, stdio: tuple[int, int, int] = (0, 1, 2), prepared: Prepared | None = None,
              linger: bool = False, attached: bool = False, by_policy: bool = False) -> Running:
        """Start the container with this process as its monitor (the store's service: it then
        watches it and records its exit). ``linger``: PID 1 reports the exit, then waits for
        ``running.sandbox.release()`` (see ``sandbox.Sandbox.send``). ``attached``: it dies with
        the client that asked for it (recorded for a service that re-adopts it after a crash).
        ``by_policy``: a restart by its restart policy (counted in ``restart_count``)."""
        state = rec.state()
        if not state.status.can_start():
            raise errors.StateError(f"container {rec.name} is {state.status.value}: it cannot be started")
        spec = ContainerSpec.from_dict(rec.config["spec"])
        sc.set_child_subreaper()
        rootfs_ready = go = False
        if prepared is not None and prepared.cid == rec.id and prepared.fits_config(rec.config):
            cg, sandbox = prepared.cgroup, prepared.sandbox
            rootfs_ready = prepared.rootfs_key is not None
            go = prepared.go
        else:
            if prepared is not None:
                prepared.discard()
            cg = None
            sandbox = None
        net = None
        try:
            if cg is None:
                cg = self.cgroups.create(rec.id)
            cg.set_limits(spec.limits)
            plan = None if go else self.plan(rec, cg, rootfs_ready)
            if sandbox is None:
                sandbox = sandbox_mod.Sandbox(cg.attach_self_paths(), new_net=spec.network != "host", idmap=self.idmap)
            if spec.network not in ("none", "host"):
                from .. import network

                # the namespace exists (PID 1 holds it): plug it in before the command runs
                net = network.attach(self.layout, rec, sandbox.ready())
            pid = sandbox.send(plan, stdio, linger)
            # written while the container starts (nothing in it waits for us): a failure below
            # writes the state again
            started = State(
                status=Status.RUNNING,
                pid=pid,
                pid_start=proc_start_time(pid),
                monitor_pid=os.getpid(),
                monitor_start=_own_start(),
                attached=attached,
                started_at=now_iso(),
                restart_count=state.restart_count + (1 if by_policy else 0),
                health={"Status": "starting", "FailingStreak": 0, "Log": []} if rec.config.get("healthcheck")
                else None,
            )
            rec.save_state(started, reserve=EXIT_RESERVE)  # its exit is written even on a full disk
            sandbox.started()
        except BaseException as e:
            if net is not None:
                network.release(self.layout, rec.id, net)
            if sandbox is not None:
                sandbox.discard()
            if cg is not None:
                cg.remove()
                self.cgroups.remove_parent_if_empty()
            if isinstance(e, errors.JupyboxError):
                state.error = str(e)
                state.exit_code = e.exit_code
            if state.status in (Status.CREATED, Status.EXITED):
                try:
                    rec.save_state(state)  # what it was, with the error: not the running state above
                except OSError:
                    pass  # a full disk: the error that matters is the one raised
            raise
        return Running(rec, pid, cg, sandbox, net, started)

    def record_exit(self, running: Running, exit_code: int) -> State:
        """Write down the exit of the container's command (state, OOM kill, peak memory)."""
        state = self.exit_state(running, exit_code)
        self.save_exit(running, state)
        if running.record.config["spec"].get("remove"):
            self.records.hide(running.record)
        return state

    def exit_state(self, running: Running, exit_code: int) -> State:
        """The container's state after its command exited, read from its cgroup; not written yet
        (the store's service tells its client first, then :meth:`save_exit`)."""
        state = State.from_dict(running.state.to_dict())
        if running.record.config.get("healthcheck"):
            try:  # the last probes stay readable after the exit, as docker keeps them
                state.health = running.record.state().health
            except (errors.JupyboxError, OSError):
                pass
        state.status = Status.EXITED
        state.exit_code = exit_code
        state.finished_at = now_iso()
        state.pid = 0
        state.monitor_pid = 0
        try:
            if not getattr(running.cgroup, "counts_after_exit", True):
                raise OSError  # a process tree is gone with its processes: nothing left to read
            stats = running.cgroup.exit_stats()
            state.oom_killed = stats.oom_kills > 0
            state.extra = {"memory_peak": stats.memory_peak, "memory_limit": stats.memory_limit,
                           "cpu_usage_ns": stats.cpu_usage_ns}
        except (errors.JupyboxError, OSError):
            pass
        if running.network is not None:
            running.network.exited = True  # its ports are free for the next run at once
        return state

    def save_exit(self, running: Running, state: State) -> None:
        """Write the exit down (room for it was reserved at the start). Raises OSError when it
        cannot be written (a disk full beyond the reserve): the caller keeps it and tries again."""
        try:
            # --rm too: until its cleanup, nobody may see it running (PID 1 may linger)
            running.record.save_state(state)
        except FileNotFoundError:
            pass  # removed meanwhile (rm -f right after the exit)

    def cleanup(self, running: Running, later: list | None = None) -> None:
        """After PID 1 is reaped: the cgroup goes, and with --rm the container. With ``later``, an
        --rm container is gone for every verb when this returns, and what only the kernel and the
        disk still hold (its cgroup, whose rmdir waits on the kernel: 2-14 ms for a v1 memory
        cgroup on a loaded VM, and its directory's files) is appended to ``later``, for the
        service to remove once it has told the client that waits (a crash meanwhile leaves
        tmp/rm-<id>, which garbage collection removes with the cgroup of that id)."""
        if running.network is not None:
            from .. import network

            network.release(self.layout, running.record.id, running.network,
                            forget=running.record.config["spec"].get("remove"))
        if running.sandbox is not None:
            running.sandbox.close()
        if later is not None and running.record.config["spec"].get("remove"):
            self.records.delete(running.record, later=later)
            later.insert(0, lambda: self._remove_cgroup(running.record.id))
            return
        try:
            running.cgroup.remove()
        finally:
            self.cgroups.remove_parent_if_empty()
            if running.record.config["spec"].get("remove"):
                self.records.delete(running.record)

    @staticmethod
    def log_stdio(rec: Record) -> tuple[int, int, int]:
        """/dev/null and the container's log files: the stdio of a detached container."""
        devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        out = os.open(rec.stdout_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        err = os.open(rec.stderr_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        return devnull, out, err

    # -- observe -----------------------------------------------------------------------------
    def reconcile(self, rec: Record) -> State:
        """The state as recorded, after a moment's wait when the container's PID 1 is gone and its
        monitor is recording the exit right now. Read-only: a container whose monitor died is the
        next service's to re-adopt (``jupybox.service.adopt``)."""
        state = rec.state()
        if state.status is not Status.RUNNING or pid_alive(state.pid, state.pid_start):
            return state
        deadline = time.monotonic() + 2.0
        while monitor_alive(state) and time.monotonic() < deadline:
            time.sleep(0.005)
            state = rec.state()
            if state.status is not Status.RUNNING:
                break
        return state

    def stats(self, rec: Record):
        state = self.reconcile(rec)
        if state.status is not Status.RUNNING:
            raise errors.StateError(f"container {rec.name} is not running")
        return self.cgroups.open(rec.id).stats()

    # -- act ---------------------------------------------------------------------------------
    def kill(self, rec: Record, sig: int = signal.SIGKILL) -> None:
        state = self.reconcile(rec)
        if not state.status.can_kill():
            raise errors.StateError(f"container {rec.name} is not running")
        try:
            fd = os.pidfd_open(state.pid)
        except ProcessLookupError:
            return
        try:
            if proc_start_time(state.pid) == state.pid_start:
                signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)

    def remove(self, rec: Record, force: bool = False) -> None:
        """Remove a container that is not running (a running one is its monitor's to end first:
        the store's service kills it and calls this after its exit)."""
        state = self.reconcile(rec)
        # (recorded as running, but its PID 1 is gone: an exit its monitor could not write down,
        # on a full disk; nothing runs any more)
        if state.status is Status.RUNNING and pid_alive(state.pid, state.pid_start):
            if not force:
                raise errors.Conflict(
                    f"cannot remove container {rec.name}: it is running: stop it first or use rm -f")
            raise errors.Conflict(f"cannot remove container {rec.name}: it is monitored by another jupybox "
                                  f"service (pid {state.monitor_pid})")
        try:
            self._remove_cgroup(rec.id)
        except errors.JupyboxError:
            pass
        if rec.config["spec"]["network"] not in ("none", "host"):
            from .. import network

            network.release(self.layout, rec.id, forget=True)
        self.records.delete(rec)

    def exec_plan(self, rec: Record, argv: list[str], *, env=None, workdir=None, user=None, privileged=None) -> dict:
        """What a process started in a running container needs: its security settings."""
        if not argv:
            raise errors.UsageError("no command specified")
        check_user(user)
        cfg = rec.config
        spec = cfg["spec"]
        merged = dict(cfg["env"])
        merged.update(env or {})
        caps = frozenset(cfg["caps"])
        priv = spec["privileged"] if privileged is None else privileged
        return {
            "argv": list(argv),
            "env": merged,
            "cwd": workdir or cfg["cwd"],
            "user": cfg["user"] if user is None else user,
            "caps": caps,
            "privileged": priv,
            "userns": self._userns_kind(),
            **self.security_plan(cfg, priv),
        }

    def exec_start(self, rec: Record, pid1: int, argv: list[str], *, env=None, workdir=None, user=None,
                   privileged=None, stdio=(0, 1, 2)) -> int:
        """Start a command in the running container whose PID 1 is ``pid1``, with its security
        settings; its host pid (the caller, a subreaper, waits for it)."""
        plan = self.exec_plan(rec, argv, env=env, workdir=workdir, user=user, privileged=privileged)
        cg = self.cgroups.open(rec.id)
        sc.set_child_subreaper()
        return sandbox_mod.exec_in(pid1, cg.attach_self_paths(), plan, stdio, idmap=self.idmap)

    # -- lists and garbage -------------------------------------------------------------------
    def image_in_use(self, image_id: str) -> bool:
        return any(r.config.get("image", {}).get("id") == image_id for r in self.records.all())

_start_time = 0


def _own_start() -> int:
    global _start_time
    if not _start_time:
        _start_time = proc_start_time(os.getpid())
    return _start_time


def signal_number(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signal.Signals, name))
    except AttributeError:
        raise errors.UsageError(f"invalid signal: {sig}") from None
