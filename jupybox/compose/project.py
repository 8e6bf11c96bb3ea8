"""A loaded compose project: its name, its files, its services (enabled by the active profiles),
networks and volumes, and where each key came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import graph
from .errors import ComposeError


@dataclass
class Project:
    name: str
    workdir: str
    files: list[str]  # as shown in messages
    environment: dict  # the interpolation environment (os.environ under .env, plus COMPOSE_PROJECT_NAME)
    services: dict  # enabled services: name -> typed service mapping (see normalize.typed_service)
    disabled: dict  # services whose profiles are not active
    networks: dict
    volumes: dict
    extensions: dict = field(default_factory=dict)  # top-level x-* keys
    profiles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    where: Callable = field(default=lambda path: (None, None), repr=False)  # path -> (file, line)

    @classmethod
    def named(cls, name: str, workdir: str = "") -> "Project":
        """A project known only by its name (``-p NAME`` without a file): ps, logs, stop, down
        find its containers and networks by their labels."""
        return cls(name=name, workdir=workdir, files=[], environment={}, services={}, disabled={}, networks={},
                   volumes={})

    def service(self, name: str) -> dict:
        if name not in self.services:
            if name in self.disabled:
                raise ComposeError(f"service {name!r} is disabled: its profiles "
                                   f"{', '.join(self.disabled[name].get('profiles') or [])} are not active")
            raise ComposeError(f"no such service: {name}")
        return self.services[name]

    def select(self, names=None, with_dependencies: bool = True) -> list[str]:
        """The services a verb acts on, in start order: ``names`` (all when empty) and, unless told
        otherwise, what they depend on."""
        if not names:
            return graph.start_order(self.services)
        for n in names:
            self.service(n)
        chosen = graph.with_dependencies(self.services, list(names)) if with_dependencies else list(names)
        return [n for n in graph.start_order(self.services) if n in chosen]

    def config(self) -> dict:
        """The normalized model, as ``jupybox compose config`` prints it (compose v2's layout).

        A literal ``$`` is written ``$$``, as compose does: the output is itself a compose file
        that reads back to the same model."""
        out: dict = {"name": self.name, "services": {n: self.services[n] for n in sorted(self.services)}}
        if self.networks:
            out["networks"] = {n: self.networks[n] for n in sorted(self.networks)}
        if self.volumes:
            out["volumes"] = {n: self.volumes[n] for n in sorted(self.volumes)}
        out.update(self.extensions)
        return _escape_dollars(out)


def _escape_dollars(value):
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _escape_dollars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_dollars(v) for v in value]
    return value
