"""What to run: the container's spec as a plain data object.

The CLI, the notebook magics, the builder's RUN steps and the kernel provisioner
all fill a :class:`ContainerSpec`; only the runtime executes it. It is plain
data (JSON round-trips through :meth:`ContainerSpec.to_dict`) so that it can be
sent to the launcher process and stored in the container's state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class Limits:
    """Resource limits; None means unlimited / the kernel default."""

    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes of memory+swap; -1 unlimited; None = same as memory (no swap)
    cpus: float | None = None  # e.g. 0.5 -> quota 50000 / period 100000
    cpu_shares: int | None = None  # v1 cpu.shares scale (2..262144, default 1024)
    pids: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))


@dataclass
class Mount:
    """A bind mount (``-v /src:/dst:ro``), a named volume (``-v name:/dst``) or a tmpfs."""

    destination: str
    source: str = ""  # host path for bind, volume name for volume
    type: str = "bind"  # bind | volume | tmpfs
    readonly: bool = False
    options: list[str] = field(default_factory=list)  # e.g. tmpfs "size=64m"


@dataclass
class ContainerSpec:
    image: str
    command: list[str] = field(default_factory=list)  # CMD (replaces the image's Cmd when given)
    entrypoint: list[str] | None = None  # None = the image's; [] = none
    env: dict[str, str] = field(default_factory=dict)  # merged over the image's Env
    workdir: str | None = None
    user: str | None = None  # USER[:GROUP], names or ids
    hostname: str | None = None
    name: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    network: str = "none"  # none | host | bridge | a user network's name
    ports: list[dict] = field(default_factory=list)  # -p: {host_ip, host_port, container_port, protocol}
    publish_all: bool = False  # -P: the image's ExposedPorts on host ports the kernel picks
    network_aliases: list[str] = field(default_factory=list)  # other names on a user network
    dns: list[str] = field(default_factory=list)  # nameservers for /etc/resolv.conf
    add_hosts: list[str] = field(default_factory=list)  # HOST:IP lines for /etc/hosts
    readonly_rootfs: bool = False
    init: bool = True  # a small PID 1 that reaps zombies and forwards signals
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    remove: bool = False  # --rm
    interactive: bool = False  # -i: keep stdin open
    tty: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ContainerSpec":
        d = dict(d)
        d["limits"] = Limits(**d.get("limits", {}))
        d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
