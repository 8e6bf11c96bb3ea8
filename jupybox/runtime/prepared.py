"""What is made before a container's spec is known (a sandbox made ahead by the store's service),
and what a started container is to its monitor."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import errors

from ..linux import userns
from . import sandbox
from .configure import ConfigureMixin
from .records import Record, random_name
from .spec import ContainerSpec
from .state import State

if TYPE_CHECKING:
    from .engine import Engine


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
                self.rootfs_key = ConfigureMixin.rootfs_key(template)
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
        if ConfigureMixin.rootfs_key(config) != self.rootfs_key:
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
        return self.rootfs_key is None or self.rootfs_key == ConfigureMixin.rootfs_key(config)

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
