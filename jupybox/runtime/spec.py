"""What to run: the container's spec as a plain data object.

The CLI, the notebook magics, the builder's RUN steps and the kernel provisioner
all fill a :class:`ContainerSpec`; only the runtime executes it. It is plain
data (JSON round-trips through :meth:`ContainerSpec.to_dict`) so that it can be
sent to the launcher process and stored in the container's state.

The three classes are not dataclasses on purpose: ``import dataclasses`` pulls in ``inspect``
and costs ~10 ms of every ``jupybox run`` (measured here: 22.8 ms for ``python -c 'import
dataclasses'`` against 9.9 ms for ``python -c pass``), and all they need of it is keyword
construction with defaults, equality, repr and ``to_dict`` (:class:`_Plain`).
"""

from __future__ import annotations

REQUIRED = object()


def _plain(value):
    """Deep copy into dicts and lists (what dataclasses.asdict gives)."""
    if isinstance(value, _Plain):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Plain:
    """Fields in ``FIELDS`` as (name, default); a class as default is a factory (list, dict...)."""

    FIELDS: tuple[tuple[str, object], ...] = ()

    def __init__(self, *args, **kw):
        cls = type(self).__name__
        if len(args) > len(self.FIELDS):
            raise TypeError(f"{cls}() takes at most {len(self.FIELDS)} positional arguments")
        for (name, _), value in zip(self.FIELDS, args):
            if name in kw:
                raise TypeError(f"{cls}() got multiple values for argument {name!r}")
            kw[name] = value
        for name, default in self.FIELDS:
            if name in kw:
                value = kw.pop(name)
            elif default is REQUIRED:
                raise TypeError(f"{cls}() missing required argument: {name!r}")
            else:
                value = default() if isinstance(default, type) else default
            setattr(self, name, value)
        if kw:
            raise TypeError(f"{cls}() got an unexpected keyword argument {next(iter(kw))!r}")

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n, _ in self.FIELDS)

    __hash__ = None  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n, _ in self.FIELDS)})"

    def to_dict(self) -> dict:
        return {n: _plain(getattr(self, n)) for n, _ in self.FIELDS}


class Limits(_Plain):
    """Resource limits; None means unlimited / the kernel default."""

    FIELDS = (
        ("memory", None),  # bytes
        ("memory_swap", None),  # bytes of memory+swap; -1 unlimited; None = same as memory (no swap)
        ("cpus", None),  # e.g. 0.5 -> quota 50000 / period 100000
        ("cpu_shares", None),  # v1 cpu.shares scale (2..262144, default 1024)
        ("pids", None),
    )
    memory: int | None
    memory_swap: int | None
    cpus: float | None
    cpu_shares: int | None
    pids: int | None

    def any(self) -> bool:
        return any(getattr(self, n) is not None for n, _ in self.FIELDS)


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

    @classmethod
    def from_dict(cls, d: dict) -> "ContainerSpec":
        d = dict(d)
        d["limits"] = Limits(**d.get("limits", {}))
        d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
        known = {n for n, _ in cls.FIELDS}
        return cls(**{k: v for k, v in d.items() if k in known})
