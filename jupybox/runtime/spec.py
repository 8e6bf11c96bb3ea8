"""What to run: the container's spec as a plain data object.

The CLI, the notebook magics, the builder's RUN steps and the kernel provisioner
all fill a :class:`ContainerSpec`; only the runtime executes it. It is plain
data (JSON round-trips through :meth:`ContainerSpec.to_dict`) so that it can be
sent to the store's service and stored in the container's record.

Its classes are plain data objects (:mod:`jupybox.plain`, not dataclasses: a cheaper import);
:class:`Limits` is the cgroup layer's, re-exported here.
"""

from __future__ import annotations

from ..cgroups.limits import Limits  # noqa: F401 - re-exported: part of a spec
from ..plain import REQUIRED, _Plain


class Mount(_Plain):
    """A bind mount (``-v /src:/dst:ro``), a named volume (``-v name:/dst``) or a tmpfs."""

    FIELDS = (
        ("destination", REQUIRED),
        ("source", ""),  # host path for bind, volume name for volume
        ("type", "bind"),  # bind | volume | tmpfs
        ("readonly", False),
        ("options", list),  # e.g. tmpfs "size=64m"
    )
    destination: str
    source: str
    type: str
    readonly: bool
    options: list[str]


class ContainerSpec(_Plain):
    FIELDS = (
        ("image", REQUIRED),
        ("command", list),  # CMD (replaces the image's Cmd when given)
        ("entrypoint", None),  # None = the image's; [] = none
        ("env", dict),  # merged over the image's Env
        ("workdir", None),
        ("user", None),  # USER[:GROUP], names or ids
        ("hostname", None),
        ("name", None),
        ("mounts", list),  # [Mount]
        ("limits", Limits),
        ("network", "none"),  # none | host | bridge | a user network's name
        ("ports", list),  # -p: {host_ip, host_port, container_port, protocol}
        ("publish_all", False),  # -P: the image's ExposedPorts on host ports the kernel picks
        ("network_aliases", list),  # other names on a user network
        ("dns", list),  # nameservers for /etc/resolv.conf
        ("add_hosts", list),  # HOST:IP lines for /etc/hosts
        ("readonly_rootfs", False),
        ("init", True),  # a small PID 1 that reaps zombies and forwards signals
        ("privileged", False),
        ("cap_add", list),
        ("cap_drop", list),
        ("remove", False),  # --rm
        ("interactive", False),  # -i: keep stdin open
        ("tty", False),
        ("labels", dict),
        ("restart", "no"),  # no | on-failure[:N] | always | unless-stopped (docker's --restart)
        ("healthcheck", None),  # {test, interval, timeout, retries, start_period, start_interval} in seconds
        ("stop_signal", None),  # None: the image's StopSignal, else SIGTERM
        ("stop_timeout", None),  # seconds `stop` waits before SIGKILL (None: 10)
        ("devices", list),  # --device: {path_on_host, path_in_container, permissions}
        ("shm_size", None),  # bytes of /dev/shm (None: docker's 64m)
        ("ulimits", list),  # --ulimit: {name, soft, hard} (-1: unlimited)
        ("security_opt", list),  # normalized --security-opt (seccomp=<a profile's JSON>)
    )
    image: str
    command: list[str]
    entrypoint: list[str] | None
    env: dict[str, str]
    workdir: str | None
    user: str | None
    hostname: str | None
    name: str | None
    mounts: list[Mount]
    limits: Limits
    network: str
    ports: list[dict]
    publish_all: bool
    network_aliases: list[str]
    dns: list[str]
    add_hosts: list[str]
    readonly_rootfs: bool
    init: bool
    privileged: bool
    cap_add: list[str]
    cap_drop: list[str]
    remove: bool
    interactive: bool
    tty: bool
    labels: dict[str, str]
    restart: str
    healthcheck: dict | None
    stop_signal: str | None
    stop_timeout: int | None
    devices: list[dict]
    shm_size: int | None
    ulimits: list[dict]
    security_opt: list[str]

    @classmethod
    def from_dict(cls, d: dict) -> "ContainerSpec":
        d = dict(d)
        d["limits"] = Limits(**d.get("limits", {}))
        d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
        known = {n for n, _ in cls.FIELDS}
        return cls(**{k: v for k, v in d.items() if k in known})
