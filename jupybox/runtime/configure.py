"""A container's configuration, from its spec and its image: the config written in its record
(``container_config``: mounts checked, /etc files, capabilities, seccomp, healthcheck) and the
plan its PID 1 follows (``plan``, ``rootfs_plan``: overlay, binds, masks, rlimits, user namespace).

A part of :class:`~jupybox.runtime.engine.Engine`, kept in a file of its own (as docker-py's API
client is made of mixins): the engine's state is shared, the concerns are not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import errors
from ..linux import caps as lcaps
from ..linux import seccomp as lseccomp
from . import devices as ldevices
from . import security_opt, ulimits
from .options import check_user
from .records import Record
from .spec import ContainerSpec, Mount

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ConfigureMixin:
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
        # --device, --ulimit, --security-opt checked again here: a spec may come from the wire
        devices = ldevices.resolve(spec.devices)
        ulimits.check(spec.ulimits)
        security_opt.parse(spec.security_opt)

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
        if devices:
            config["devices"] = devices
        return config

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
            # covered by the container's own /dev/null: a bind of the host's would be made nodev
            # like every other bind of a container (its reads would fail instead of being empty)
            masks = [{"type": "mask", "destination": p, "readonly": True, "is_dir": False} for p in hr.masks]
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
                           spec["privileged"], config.get("devices"), spec.get("shm_size")], sort_keys=True)

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
        # the host image shows the host's /etc, read-only: a file it lacks (a minimal Debian has no
        # /etc/hosts) has no mount point there, and cannot be given one
        host_etc = next((m["source"] for m in config["rootfs"]["mounts"]
                         if m.get("destination") == "/etc" and m.get("type") == "bind"), None)
        etc = [
            {"type": "bind", "source": str(cdir / name), "destination": f"/etc/{name}", "readonly": False, "is_dir": False}
            for name in ("hosts", "hostname", "resolv.conf")
            if host_etc is None or os.path.lexists(os.path.join(host_etc, name))
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
            "devices": ldevices.plan_records(config.get("devices") or []),
            "shm_size": spec.get("shm_size"),
        }

    def _userns_kind(self) -> str | None:
        if self.idmap is None:
            return None
        return "full" if self.idmap.full else "single"

    def _rlimits(self, spec: dict) -> list:
        """(resource, soft, hard): --ulimit, and where cgroups are missing, what stands in for them."""
        from ..cgroups.processtree import ProcessTreeDriver, rlimits_for

        standins = []
        if self.rootless and isinstance(self.cgroups, ProcessTreeDriver):
            standins = sorted(rlimits_for(ContainerSpec.from_dict(spec).limits).items())
        return ulimits.merged(spec.get("ulimits") or [], standins)

    def security_plan(self, cfg: dict, privileged: bool) -> dict:
        """seccomp, no_new_privs and rlimits of a container's processes (its command, and exec's)."""
        spec = cfg["spec"]
        caps = frozenset(cfg["caps"])
        no_new_privs, profile = security_opt.effective(spec.get("security_opt") or [])
        if privileged or profile == "unconfined":
            seccomp = None
        elif profile == "default":
            seccomp = lseccomp.filter_for(caps)
        else:
            from ..linux import seccomp_docker

            seccomp = seccomp_docker.filter_for(profile, caps)
        return {"seccomp": seccomp, "no_new_privs": no_new_privs, "rlimits": self._rlimits(spec)}

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
            "userns": self._userns_kind(),
            **self.security_plan(cfg, spec["privileged"]),
        }
        if not rootfs_ready:
            plan.update(self.rootfs_plan(cfg, cdir, cgroup))
        return plan


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


def _under(path: str, root: str) -> str:
    """``path`` relative to ``root`` when it lies under it (it always does but for odd setups)."""
    rel = os.path.relpath(path, root)
    return path if rel.startswith("..") else rel
