"""The runtime: create, start, exec, remove and prune containers; their state and stats.

It turns a :class:`~jupybox.runtime.spec.ContainerSpec` into a record on disk (``create``), a
cgroup and a plan for the container's init (``start``), and records the exit (``record_exit``,
``cleanup``). The process that calls :meth:`Engine.start` becomes the container's *monitor*: that
is the store's service (``jupybox.service``), and only it. Everything else (the CLI, the API, the
builder) asks the service; it reads containers' records and stats here directly.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .. import errors
from ..cgroups import open_driver
from ..linux import caps as lcaps
from ..linux import seccomp as lseccomp
from ..linux import syscalls as sc
from ..linux import userns
from ..paths import Layout
from . import sandbox
from . import sandbox as sandbox_mod
from .records import Record, Records, random_name
from .options import check_user
from .spec import ContainerSpec, Mount
from .state import State, Status, monitor_alive, now_iso, pid_alive, proc_start_time, process_running

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_VIEW_TTL = 2.0  # seconds a resolved host image (its binds and masks) is reused
EXIT_RESERVE = 16384  # bytes kept for a running container's exit state (5 health probes' output included)


class Prepared:
    """What can be made before a container's spec is known: its id, its directory with the default
    /etc files, its cgroup with a process already attached, its namespaces with PID 1 waiting, and
    (speculatively, like the last container) its root filesystem.

    All of it is made by the sandbox's helper process, in parallel with the caller, which only
    forks (see :meth:`Engine.prepare`)."""

    def __init__(self, engine: "Engine", cid: str, network: str, template: dict | None = None):
        self.cid = cid
        self.network = network
        self._engine = engine
        self.rootfs_key = None
        self.staged = engine.layout.containers / cid
        self.name = random_name()  # claimed now, used if the container gets no --name
        self.generation = engine.layout.generation()  # what it is made for (see Layout.generation)
        self.cgroup = engine.cgroups.open(cid)
        self.sandbox = None
        engine.records.stage(cid, os.getpid(), self.name)
        try:
            engine._write_etc_files(self.staged, cid[:12], network, image_is_host=False)
            engine.cgroups.create(cid)
            self.sandbox = sandbox.Sandbox(self.cgroup.attach_self_paths(), new_net=network != "host",
                                           idmap=engine.idmap)
        except BaseException:
            self.discard()
            raise
        self.armed = None  # (spec dict, config, plan) of the container PID 1 is armed for
        self.go = False  # create() took the armed config: start() only says "go"
        if template is not None and template["spec"]["network"] == network:
            # speculation: the next container will look like the last one (a re-run cell); its
            # root filesystem is assembled by PID 1 as soon as it exists, while nobody waits
            try:
                self.sandbox.prepare_rootfs(engine.rootfs_plan(template, self.staged, self.cgroup))
                self.rootfs_key = Engine.rootfs_key(template)
            except errors.JupyboxError:
                return
            self._arm(template["spec"])

    def current(self) -> bool:
        """Made for the store as it is now: no image, volume or network has changed since."""
        return self._engine.layout.generation() == self.generation

    def _arm(self, spec_dict: dict) -> None:
        """Further speculation, for a spec that repeats exactly (the same cell run again): its
        config and plan are made now, and PID 1 resolves the user ahead of time and then waits
        for a "go" with the stdio. Not for specs whose config has side effects (volumes, ports,
        bridge networks)."""
        spec = ContainerSpec.from_dict(spec_dict)
        if spec.network not in ("none", "host") or spec.ports or spec.publish_all or \
                any(m.type == "volume" for m in spec.mounts):
            return
        try:
            config = self._engine.container_config(spec)
        except errors.JupyboxError:
            return
        if Engine.rootfs_key(config) != self.rootfs_key:
            return
        named = dict(config, hostname=config["hostname"] or self.cid[:12])
        plan = self._engine.plan_for(named, self.staged, self.cgroup, rootfs_ready=True)
        try:
            self.sandbox.arm(plan)
        except errors.JupyboxError:
            return
        self.armed = (spec_dict, config, plan)

    def armed_config(self, spec: ContainerSpec) -> dict | None:
        """The config made ahead for ``spec``, if it is the armed one and its image is unchanged."""
        if self.armed is None or spec.to_dict() != self.armed[0]:
            return None
        config = self.armed[1]
        image, rootfs = self._engine._image(spec.image)
        if rootfs != config["rootfs"] or image.id != config["image"]["id"]:
            return None
        if not all(os.path.exists(m["source"]) for m in config["mounts"] if m["type"] == "bind"):
            return None  # gone since: the general path says so
        return config

    def ready(self) -> bool:
        """Wait for the helper; False if what it made is unusable (then discard it)."""
        try:
            self.sandbox.ready()
            return True
        except errors.JupyboxError:
            return False

    def fits(self, spec: ContainerSpec) -> bool:
        return (spec.network == "host") == (self.network == "host")

    def fits_config(self, config: dict) -> bool:
        """Usable for this container: the same store, the same network and, if its root is made,
        the same root."""
        if not self.current() or (config["spec"]["network"] == "host") != (self.network == "host"):
            return False
        return self.rootfs_key is None or self.rootfs_key == Engine.rootfs_key(config)

    def discard(self) -> None:
        if self.sandbox is not None:
            self.sandbox.discard()
        self.cgroup.remove()
        self._engine.cgroups.remove_parent_if_empty()
        self._engine.records.unclaim(self.name, self.cid)
        userns.rmtree(self.staged)


@dataclass
class Running:
    """A started container, as seen by its monitor."""

    record: Record
    pid: int
    cgroup: object
    sandbox: sandbox.Sandbox
    network: object  # its network.Attachment, or None
    state: State  # as written at its start


def exit_code_of(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


class Engine:
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
        """What of the spec's limits this machine cannot enforce, in one line (or None)."""
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

    def container_config(self, spec: ContainerSpec) -> dict:
        """What :meth:`create` records for ``spec``, checked (UsageError, ImageNotFound, ...). Makes
        no container; may unpack the image's layers and make a named volume."""
        image, rootfs = self._image(spec.image)
        cfg = image.config.get("config") or {}
        if spec.entrypoint is not None:
            entrypoint = list(spec.entrypoint)
            cmd = list(spec.command)  # docker: --entrypoint resets the image's Cmd
        else:
            entrypoint = list(cfg.get("Entrypoint") or [])
            cmd = list(spec.command) if spec.command else list(cfg.get("Cmd") or [])
        argv = entrypoint + cmd
        if not argv:
            raise errors.UsageError("no command specified: the image has no Cmd or Entrypoint and none was given")
        ports = []
        if self.rootless and (spec.network not in ("none", "host") or spec.ports or spec.publish_all):
            raise errors.UsageError(
                f"--network {spec.network}" + (" with published ports" if spec.ports or spec.publish_all else "")
                + " needs root (a veth into the host's network and NAT rules): not root, use --network host or none")
        if spec.network not in ("none", "host") or spec.ports or spec.publish_all or spec.dns or spec.add_hosts:
            from ..network import check_spec

            ports = check_spec(self.layout, spec, cfg)

        env: dict[str, str] = {}
        for item in cfg.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        env.setdefault("PATH", DEFAULT_PATH)
        env.update(spec.env)
        try:
            caps = lcaps.resolve_caps(spec.cap_add, spec.cap_drop, spec.privileged)
        except ValueError as e:
            raise errors.UsageError(str(e)) from None
        mounts = [self._check_mount(m) for m in spec.mounts]
        limits = spec.limits
        if limits.memory is not None and 0 <= limits.memory < 6 * 1024 * 1024:
            raise errors.UsageError("minimum memory limit allowed is 6MB")
        if limits.pids is not None and limits.pids == 0:
            raise errors.UsageError("invalid pids limit 0: use -1 for unlimited")
        if limits.cpus is not None and limits.cpus < 0:
            raise errors.UsageError(f"invalid cpus {limits.cpus}: must be positive")

        if rootfs is None:  # after the checks above: this may unpack layers
            rootfs = self._image_rootfs_of(spec.image, image)
        config = {
            "spec": spec.to_dict(),
            "image": {"id": image.id, "ref": spec.image, "is_host": getattr(image, "is_host", False)},
            "argv": argv,
            "env": env,
            "cwd": spec.workdir or cfg.get("WorkingDir") or "/",
            "user": spec.user if spec.user is not None else check_user(cfg.get("User") or "", "user in the image"),
            "caps": sorted(caps),
            "mounts": mounts,
            "rootfs": rootfs,
            "stop_signal": spec.stop_signal or cfg.get("StopSignal") or "SIGTERM",
            "healthcheck": _healthcheck(spec.healthcheck, cfg.get("Healthcheck")),
            "hostname": spec.hostname,
        }
        if ports:
            config["ports"] = ports
        return config

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

    def _hide_service(self, config: dict) -> list[dict]:
        """Where a bind shows the store (the host image's directories, or a user's -v), its run/
        (the service's socket) is covered by an empty read-only tmpfs: nothing in a container may
        reach a control socket of jupybox. (A bind of run/ itself, or of what is in it, is refused
        when the container is created.)"""
        run = os.path.realpath(self.layout.run)
        hidden = []
        for m in config["rootfs"]["mounts"] + config["mounts"]:
            if m["type"] != "bind" or not m.get("is_dir", True):
                continue
            src = m["source"]
            if run.startswith(src.rstrip("/") + "/"):
                dest = os.path.join(m["destination"], os.path.relpath(run, src))
                hidden.append({"type": "tmpfs", "destination": dest, "readonly": True, "options": ["size=0", "mode=000"]})
        return hidden

    def _check_mount(self, m: Mount) -> dict:
        if not m.destination.startswith("/"):
            raise errors.UsageError(f"invalid mount config: mount path must be absolute: {m.destination}")
        if m.type == "bind" and os.path.exists(m.source):
            src, run = os.path.realpath(m.source), os.path.realpath(self.layout.run)
            if src == run or src.startswith(run + "/"):
                raise errors.UsageError(f"invalid mount config: {m.source} is the jupybox service's directory: it is "
                                        "never mounted into a container")
        d = {"type": m.type, "destination": m.destination, "readonly": m.readonly, "options": list(m.options)}
        if m.type == "bind":
            if not os.path.exists(m.source):
                raise errors.UsageError(f'invalid mount config for type "bind": bind source path does not exist: {m.source}')
            d["source"] = os.path.realpath(m.source)
            d["is_dir"] = os.path.isdir(d["source"])
        elif m.type == "volume":
            from .volumes import Volumes

            vol = Volumes(self.layout).ensure(m.source or None)
            d["source"] = str(vol.data)
            d["volume"] = vol.name
            d["is_dir"] = True
            d["type"] = "bind"
        elif m.type != "tmpfs":
            raise errors.UsageError(f"unknown mount type {m.type!r}")
        return d

    def _image_rootfs(self, image) -> dict:
        """Lower dirs, extra read-only binds and masks for an image (the host image is special)."""
        if getattr(image, "is_host", False):
            from ..image.host import host_root

            from .hostroot import skeleton

            hr = host_root(self.layout.root)
            skel = skeleton(self.layout, hr)
            binds = [
                {"type": "bind", "source": os.path.realpath(src), "destination": dst, "readonly": True,
                 "is_dir": os.path.isdir(src)}
                for src, dst in hr.binds
            ]
            masks = [
                {"type": "bind", "source": "/dev/null", "destination": p, "readonly": True, "is_dir": False}
                for p in hr.masks
            ]
            hidden = [{"type": "tmpfs", "destination": d, "readonly": True, "options": ["size=0"]} for d in hr.hidden_dirs]
            return {"lowers": [skel], "mounts": binds + masks + hidden}
        lowers = self.store.layer_dirs(image)
        # the same layer twice (a step that changed nothing the tar shows, e.g. chown to the same
        # owner) would be refused by overlayfs (ELOOP): the topmost copy alone means the same
        lowers = [d for i, d in enumerate(lowers) if d not in lowers[i + 1:]]
        if not lowers:
            empty = self.layout.root / "empty"
            empty.mkdir(exist_ok=True)
            lowers = [str(empty)]
        return {"lowers": lowers, "mounts": []}

    def _write_etc_files(self, cdir, hostname: str, network: str, image_is_host: bool) -> None:
        """/etc/hosts, /etc/hostname, /etc/resolv.conf for the container (bind-mounted at start)."""
        hosts = f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        resolv = ""
        if network == "host":
            try:
                with open("/etc/resolv.conf") as f:
                    resolv = f.read()
            except OSError:
                pass
        files = {"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}
        upper_etc = None
        if not image_is_host:
            # mount points made in the write layer now, with plain file operations: made through
            # the overlay at start they would cost a copy-up of /etc (~0.7 ms each)
            upper_etc = cdir / "upper" / "etc"
            upper_etc.mkdir(exist_ok=True)
        for name, text in files.items():
            with open(cdir / name, "w") as f:
                f.write(text)
            if upper_etc is not None:
                open(upper_etc / name, "w").close()

    # -- start -------------------------------------------------------------------------------
    @staticmethod
    def rootfs_key(config: dict) -> str:
        """What the root filesystem of a container depends on: equal keys, interchangeable roots."""
        spec = config["spec"]
        return json.dumps([config["rootfs"], config["mounts"], spec["network"], spec["readonly_rootfs"],
                           spec["privileged"]], sort_keys=True)

    def rootfs_plan(self, config: dict, cdir: Path, cgroup) -> dict:
        """The mounts of a container whose directory is ``cdir`` (see ``rootfs.setup``)."""
        spec = config["spec"]
        root = str(self.layout.root)
        # relative to the store (PID 1 changes into it to mount): a store path with ',' or ':' would
        # be read as overlayfs's option separators
        lowers = [_under(d, root) for d in config["rootfs"]["lowers"]]
        overlay = (f"lowerdir={':'.join(reversed(lowers))},upperdir={_under(str(cdir / 'upper'), root)},"
                   f"workdir={_under(str(cdir / 'work'), root)}")
        if self.rootless and self.overlay == "overlay":
            overlay += ",userxattr"  # inside a user namespace: user.overlay.* xattrs (kernel >= 5.11)
        etc = [
            {"type": "bind", "source": str(cdir / name), "destination": f"/etc/{name}", "readonly": False, "is_dir": False}
            for name in ("hosts", "hostname", "resolv.conf")
        ]
        return {
            "rootfs": str(cdir / "rootfs"),
            "store": root,
            "overlay": overlay,
            "mounts": config["rootfs"]["mounts"] + etc + config["mounts"] + self._hide_service(config),
            "network": spec["network"],
            "readonly_rootfs": spec["readonly_rootfs"],
            "privileged": spec["privileged"],
            "cgroup_mounts": cgroup.mounts_for_container() if cgroup is not None else [],
            "userns": self._userns_kind(),
            "fuse_overlayfs": self.rootless and self.overlay == "fuse-overlayfs",
        }

    def _userns_kind(self) -> str | None:
        if self.idmap is None:
            return None
        return "full" if self.idmap.full else "single"

    def _rlimits(self, limits) -> list:
        from ..cgroups.processtree import ProcessTreeDriver, rlimits_for

        if not self.rootless or not isinstance(self.cgroups, ProcessTreeDriver):
            return []
        return sorted(rlimits_for(limits).items())

    def plan(self, rec: Record, cgroup, rootfs_ready: bool = False) -> dict:
        """Everything PID 1 and the main process need; without the mounts when they are made."""
        return self.plan_for(rec.config, rec.dir, cgroup, rootfs_ready)

    def plan_for(self, cfg: dict, cdir: Path, cgroup, rootfs_ready: bool = False) -> dict:
        spec = cfg["spec"]
        caps = frozenset(cfg["caps"])
        plan = {
            "rootfs_ready": rootfs_ready,
            "network": spec["network"],
            "privileged": spec["privileged"],
            "hostname": cfg["hostname"],
            "init": spec["init"],
            "argv": cfg["argv"],
            "env": cfg["env"],
            "cwd": cfg["cwd"],
            "user": cfg["user"],
            "caps": caps,
            "seccomp": None if spec["privileged"] else lseccomp.filter_for(caps),
            "userns": self._userns_kind(),
            "rlimits": self._rlimits(ContainerSpec.from_dict(spec).limits),
        }
        if not rootfs_ready:
            plan.update(self.rootfs_plan(cfg, cdir, cgroup))
        return plan

    def prepare(self, network: str = "none", template: dict | None = None) -> Prepared:
        """Make a container's cgroup, namespaces and directory before its spec is known.

        The first write to a v1 cgroup.procs after an idle moment waits for an RCU grace period
        (8-16 ms here) and a fork of PID 1 costs ~2 ms: made ahead, off the critical path, by the
        launcher daemon after each start and by the CLI while it resolves the image."""
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
        (the launcher daemon tells its client first, then :meth:`save_exit`)."""
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

    def cleanup(self, running: Running) -> None:
        """After PID 1 is reaped: the cgroup goes, and with --rm the container."""
        if running.network is not None:
            from .. import network

            network.release(self.layout, running.record.id, running.network,
                            forget=running.record.config["spec"].get("remove"))
        if running.sandbox is not None:
            running.sandbox.close()
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

    def _staged_alive(self, cid: str) -> bool:
        try:
            return process_running(int((self.layout.containers / cid / "staged-by").read_text()))
        except (OSError, ValueError):
            return False

    def _remove_cgroup(self, cid: str) -> None:
        try:
            cg = self.cgroups.open(cid)
            if cg.exists():
                cg.remove()
        finally:
            self.cgroups.remove_parent_if_empty()

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
            "seccomp": None if priv else lseccomp.filter_for(caps),
            "userns": self._userns_kind(),
            "rlimits": self._rlimits(ContainerSpec.from_dict(spec).limits),
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

    def prune(self, busy: set[str] = frozenset()) -> dict:
        """Remove stopped containers and whatever a crash left: half-made directories and their
        cgroups, tmp files, dangling names. ``busy``: containers the caller (the store's service) is
        starting or ending: not touched, whatever their files say."""
        removed = []
        for rec in self.records.all():
            if rec.id in busy or not rec.dir.exists():
                continue
            state = rec.state()
            if state.status is Status.RUNNING:
                continue
            self.remove(rec)
            removed.append(rec.id)
        result = {"containers": removed}
        result.update(self.collect_garbage(busy))
        # what a load, pull or build killed midway left (never what one in progress holds)
        result["images"] = self.store.remove_crash_leftovers()
        return result

    def collect_garbage(self, busy: set[str] = frozenset()) -> dict:
        """What a crash left: directories without config.json whose owner is gone (a sandbox made
        ahead, a container being created or removed), with their cgroups and the processes in
        them; tmp/rm-*; dangling names; networks' endpoints of containers that are gone."""
        cgroups_removed = []
        for d in list(self.layout.containers.iterdir()) if self.layout.containers.exists() else []:
            if d.name in busy or (d / "config.json").exists() or self._staged_alive(d.name):
                continue
            try:
                cg = self.cgroups.open(d.name)
                if cg.exists():
                    cg.remove()
                    cgroups_removed.append(d.name)
            except errors.JupyboxError:
                continue
            userns.rmtree(d)
        for d in list(self.layout.tmp.iterdir()) if self.layout.tmp.exists() else []:
            if d.name.startswith("rm-"):
                userns.rmtree(d)
        # the state files' temp files of processes that are gone (a writer killed, or a service)
        for d in list(self.layout.containers.iterdir()) if self.layout.containers.exists() else []:
            try:
                entries = os.listdir(d)
            except OSError:
                continue
            for name in entries:
                parts = name.split(".")
                if name.startswith(".") and name.endswith(".tmp") and len(parts) >= 4 and parts[-2].isdigit() \
                        and not process_running(int(parts[-2])):
                    try:
                        os.unlink(d / name)
                    except OSError:
                        pass
        # the emptied directories kept for the next containers are not in use either
        for d in list(self.layout.spare.iterdir()) if self.layout.spare.exists() else []:
            # taken with a rename first, as a container being staged takes one: whoever renames it
            # owns it (removing it in place would empty a directory a new container just took)
            trash = self.layout.tmp / f"rm-spare-{d.name}"
            try:
                os.rename(d, trash)
            except OSError:
                continue
            userns.rmtree(trash)
        names = self.records.names
        if names.exists():
            for link in names.iterdir():
                try:
                    target = os.readlink(link)
                except OSError:
                    continue
                if not (self.layout.containers / target).exists():
                    link.unlink(missing_ok=True)
        try:
            self.cgroups.remove_parent_if_empty()
        except errors.JupyboxError:
            pass
        records = self.records.all()
        from . import cellfiles

        named = set()
        for r in records:
            try:
                named.add((r.config["spec"].get("labels") or {}).get(cellfiles.LABEL))
            except (errors.JupyboxError, OSError):
                continue
        result = {"cgroups": cgroups_removed, "cells": cellfiles.collect(self.layout, named)}
        from .. import network

        try:  # also the bridges and tables of stores that are gone (network.ownership)
            result["network"] = network.networks(self.layout).prune({r.id for r in records})
        except errors.JupyboxError as e:
            result["network"] = {"error": str(e)}
        return result

    def reset(self) -> dict:
        """Everything this store made on the host, then the store itself (``system reset``): the
        caller has stopped its service. Its containers' processes and cgroups, its bridges and
        nftables table, its cgroup parent when empty."""
        removed = {"containers": [], "cgroups": []}
        for d in list(self.layout.containers.iterdir()) if self.layout.containers.exists() else []:
            try:
                cg = self.cgroups.open(d.name)
                if cg.exists():
                    cg.remove()  # kills what is left in it first
                    removed["cgroups"].append(d.name)
            except errors.JupyboxError:
                pass
            removed["containers"].append(d.name)
        from .. import network

        try:
            removed["network"] = network.networks(self.layout).remove_kernel_objects()
        except errors.JupyboxError as e:
            removed["network"] = {"error": str(e)}
        try:
            self.cgroups.remove_parent_if_empty()
        except errors.JupyboxError:
            pass
        userns.rmtree(self.layout.root)
        return removed


def _healthcheck(given: dict | None, image: dict | None) -> dict | None:
    """The container's healthcheck: the one given, else the image's (HEALTHCHECK, durations in
    nanoseconds there), with docker's defaults; None when there is none or it is NONE."""
    from .options import parse_healthcheck

    if given is None and image and image.get("Test"):
        given = {"test": image["Test"]}
        for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod"),
                           ("start_interval", "StartInterval")):
            if image.get(field):
                given[key] = image[field] / 1e9
        if image.get("Retries"):
            given["retries"] = int(image["Retries"])
        try:
            given = parse_healthcheck(given)
        except errors.UsageError:
            return None  # an image's malformed HEALTHCHECK: docker ignores it too
    if not given or given["test"][0] == "NONE":
        return None
    return given


_start_time = 0


def _own_start() -> int:
    global _start_time
    if not _start_time:
        _start_time = proc_start_time(os.getpid())
    return _start_time


def _under(path: str, root: str) -> str:
    """``path`` relative to ``root`` when it lies under it (it always does but for odd setups)."""
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel


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
