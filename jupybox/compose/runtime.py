"""What compose needs from jupybox, over its public API: containers, networks, volumes, images.

Everything compose makes carries the labels ``com.docker.compose.project`` (and ``.service``,
``.network``, ``.volume``), which is how ``ps``, ``down`` and the next ``up`` find them.

Containers are made with ``jupybox.create`` and started with ``Container.start()`` (detached:
the store's service keeps them running after this process exits); networks and volumes as
``jupybox network create`` and ``jupybox volume create`` make them.

Two runtime features are the store's service's (issue 16): restart policies and healthchecks.
Options the runtime does not take yet (``jupybox.make_spec`` names them as unknown) are left out
with one warning each, and a ``service_healthy`` condition then fails with the container's
missing healthcheck, as docker compose says it.
"""

from __future__ import annotations

import os
import signal
import socket
import time

from .. import errors
from . import convert
from .errors import ComposeError, RuntimeComposeError


class Runtime:
    def __init__(self, root=None, warn=None):
        import jupybox
        from .. import api

        self.root = root
        self.api = api  # jupybox.run, create, container, containers, image, engine
        self.accepts = convert.options_accepted(jupybox.make_spec)
        self._warn = warn or (lambda msg: None)
        self._warned: set[str] = set()

    # -- the store ---------------------------------------------------------------------------
    @property
    def engine(self):
        return self.api.engine(self.root)

    def networks(self):
        from ..network import networks

        return networks(self.engine.layout)

    def volumes(self):
        from ..runtime.volumes import Volumes

        return Volumes(self.engine.layout)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self._warn(message)

    def warm(self) -> None:
        """Spawn the store's service now, so that it boots while networks and containers are made
        (it takes ~0.2 s; the first start would otherwise wait for it)."""
        self.api.launcher(self.root)

    # -- containers --------------------------------------------------------------------------
    def containers(self, project: str, services=None, oneoff: bool | None = False) -> list:
        """The project's containers (all states), by service then number."""
        out = []
        for c in self.api.containers(all=True, root=self.root):
            try:
                lab = c.config["spec"].get("labels") or {}
            except errors.ContainerNotFound:
                continue
            if lab.get(convert.PROJECT) != project:
                continue
            if services and lab.get(convert.SERVICE) not in services:
                continue
            if oneoff is not None and (lab.get(convert.ONEOFF) == "True") != oneoff:
                continue
            out.append(c)
        out.sort(key=lambda c: (label(c, convert.SERVICE), int(label(c, convert.NUMBER) or 0), c.name))
        return out

    def create(self, image: str, command, options: dict, connect: list):
        """Create a container and connect it to its other networks; nothing is left on failure."""
        options = dict(options)
        options["ports"] = resolve_ports(options.get("ports") or [])
        c = self.api.create(image, command, root=self.root, **options)
        try:
            for network, aliases in connect:
                rec = self.engine.records.get(c.id)
                self.networks().connect(self.engine, rec, network, aliases)
        except BaseException:
            self.remove(c)
            raise
        return c

    def start(self, c, settle: float = 5.0) -> None:
        """Start a created or stopped container.

        Right after a stop, the store's service may still be removing the previous run's cgroup
        (``jupybox.create(...); c.start(); c.stop(); c.start()`` fails the same way): the start is
        retried while that cgroup is in the way, for ``settle`` seconds at most."""
        deadline = time.monotonic() + settle
        while True:
            try:
                c.start()
                return
            except errors.RuntimeFailure as e:  # a CgroupError, or its message from a monitor
                if not ("cgroup" in str(e) and "already exists" in str(e)) or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def stop(self, c, grace: float = 10.0, stop_signal: str | None = None) -> None:
        """Stop with the service's grace period (and signal, where the runtime cannot take it)."""
        if c.status != "running":
            return
        spec_signal = (c.config.get("spec") or {}).get("stop_signal")
        if stop_signal and not spec_signal and _signal(stop_signal) != signal.SIGTERM:
            c.kill(_signal(stop_signal))
            try:
                c.wait(timeout=grace)
                return
            except TimeoutError:
                pass
        c.stop(timeout=grace)

    def remove(self, c, volumes: bool = False) -> None:
        """Remove a container (killed if it runs); with ``volumes``, its anonymous volumes too."""
        anonymous = []
        if volumes:
            try:
                anonymous = [m["Name"] for m in c.inspect().get("Mounts", []) if m.get("Type") == "volume"
                             and _anonymous(m["Name"])]
            except errors.ContainerNotFound:
                pass
        try:
            c.remove(force=True)
        except errors.ContainerNotFound:
            pass
        for name in anonymous:
            try:
                self.volumes().remove(name)
            except errors.JupyboxError:
                pass

    @staticmethod
    def health(c) -> str | None:
        """docker's State.Health.Status: starting, healthy, unhealthy; None without a healthcheck."""
        state = c.inspect().get("State") or {}
        return (state.get("Health") or {}).get("Status")

    # -- networks ----------------------------------------------------------------------------
    def network(self, name: str) -> dict | None:
        return self.networks().load(name)

    def ensure_network(self, project, key: str) -> str:
        cfg = project.networks[key] or {}
        name = cfg["name"]
        nets = self.networks()
        net = nets.load(name)
        if cfg.get("external"):
            if net is None:
                raise ComposeError(f"network {name} declared as external, but could not be found", *project.where(
                    ("networks", key)), f"networks.{key}")
            return name
        if net is not None:
            owner = (net.get("labels") or {}).get(convert.PROJECT)
            if owner != project.name:
                self.warn_once(f"net:{name}", f"a network with name {name} exists but was not created by compose "
                                              f"for project {project.name}: it is used as it is")
            return name
        subnet = gateway = None
        configs = ((cfg.get("ipam") or {}).get("config") or [])
        if configs:
            subnet, gateway = configs[0].get("subnet"), configs[0].get("gateway")
        labels = dict(cfg.get("labels") or {})
        labels.update({convert.PROJECT: project.name, convert.NETWORK: key, convert.VERSION: "jupybox"})
        try:
            nets.create(name, subnet=subnet, gateway=gateway, labels=labels)
        except errors.Conflict:
            pass  # made meanwhile by another up
        return name

    def project_networks(self, project: str) -> list[str]:
        """The networks compose made for ``project`` (by their label)."""
        return sorted(n["name"] for n in self.networks().load_all().values()
                      if (n.get("labels") or {}).get(convert.PROJECT) == project)

    def remove_network(self, name: str) -> bool:
        try:
            self.networks().remove(name)
            return True
        except errors.NotFound:
            return False

    # -- volumes -----------------------------------------------------------------------------
    def volume(self, name: str) -> dict | None:
        try:
            return self.volumes().get(name).inspect()
        except errors.JupyboxError:
            return None

    def ensure_volume(self, project, key: str) -> str:
        cfg = project.volumes[key] or {}
        name = cfg["name"]
        found = self.volume(name)
        if cfg.get("external"):
            if found is None:
                raise ComposeError(f"external volume {name!r} not found", *project.where(("volumes", key)),
                                   f"volumes.{key}")
            return name
        if found is not None:
            if (found.get("Labels") or {}).get(convert.PROJECT) != project.name:
                self.warn_once(f"vol:{name}", f"volume {name!r} already exists but was not created by compose for "
                                              f"project {project.name}: it is used as it is")
            return name
        labels = dict(cfg.get("labels") or {})
        labels.update({convert.PROJECT: project.name, convert.VOLUME: key, convert.VERSION: "jupybox"})
        self.volumes().ensure(name, labels)
        return name

    def remove_volume(self, name: str) -> bool:
        try:
            self.volumes().remove(name)
            return True
        except errors.VolumeNotFound:
            return False

    # -- images ------------------------------------------------------------------------------
    def has_image(self, ref: str) -> bool:
        try:
            self.api.image(ref, root=self.root)
            return True
        except errors.ImageNotFound:
            return False

    def image(self, ref: str):
        return self.api.image(ref, root=self.root)

    def build(self, ref: str, build: dict, out=None, err=None, quiet: bool = False):
        from ..dockerfile import build as build_image

        dockerfile = build.get("dockerfile_inline") or os.path.join(build["context"], build.get("dockerfile") or
                                                                    "Dockerfile")
        args = {k: v for k, v in (build.get("args") or {}).items() if v is not None}
        return build_image(build["context"], dockerfile, tags=[ref], build_args=args, target=build.get("target"),
                           labels=dict(build.get("labels") or {}), network=build.get("network") or "none",
                           progress="quiet" if quiet else "plain", root=self.root, out=out, err=err,
                           no_cache=bool(build.get("no_cache")))

    def pull(self, ref: str, err=None):
        """Pull ``ref``; with ``err`` a terminal, its progress bars go there."""
        from ..registry import default_progress, pull

        return pull(self.engine.store, ref, progress=default_progress(err) if err is not None else None)

    def push(self, ref: str, err=None):
        from ..registry import default_progress, push

        return push(self.engine.store, ref, progress=default_progress(err) if err is not None else None)

    # -- ports -------------------------------------------------------------------------------
    @staticmethod
    def port_taken(port: dict) -> str | None:
        """The reason a fixed host port cannot be published here (it is bound), else None."""
        kind = socket.SOCK_STREAM if port["protocol"] == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
        try:
            s.bind((port["host_ip"] or "0.0.0.0", int(port["host_port"])))
        except OSError as e:
            return e.strerror
        finally:
            s.close()
        return None


def label(c, key: str) -> str:
    try:
        return (c.config["spec"].get("labels") or {}).get(key, "")
    except errors.ContainerNotFound:
        return ""


def _anonymous(name: str) -> bool:
    return len(name) == 64 and all(ch in "0123456789abcdef" for ch in name)


def _signal(value) -> int:
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    return int(getattr(signal, text if text.startswith("SIG") else "SIG" + text))


def resolve_ports(ports: list) -> list:
    """Port dicts with an int host port (``-p`` strings pass as they are)."""
    return [_pick_port(p) if isinstance(p, dict) else p for p in ports]


def _pick_port(port: dict) -> dict:
    """A published range for one container port: the first free port of the range."""
    host = str(port.get("host_port") or "")
    port = dict(port)
    if "-" not in host:
        port["host_port"] = int(host) if host else 0
        return port
    lo, hi = (int(x) for x in host.split("-"))
    for candidate in range(lo, hi + 1):
        if Runtime.port_taken(dict(port, host_port=candidate)) is None:
            port["host_port"] = candidate
            return port
    raise RuntimeComposeError(f"no free port in the range {host} for container port {port['container_port']}")


def wait_until(check, timeout: float | None, interval: float = 0.1):
    """Poll ``check()`` until it returns something true (returned) or the timeout passes (None)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(interval)
