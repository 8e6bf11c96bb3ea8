"""What ``kube generate`` describes: workloads (a Pod, or a Deployment of replicas) of containers,
each as a jupybox ContainerSpec (plain dict) plus the options the runtime may not take yet.

Sources:

- a container (by name or id): its spec as created, one workload of one container;
- a compose project by name: its containers, found by their ``com.docker.compose.*`` labels, one
  workload per service (replicas: how many containers the service has);
- compose files (``--compose-file``): the normalized project, one workload per service, each
  container's options made as ``compose up`` makes them (``compose.convert``), with ``restart``,
  ``healthcheck`` and ``stop_signal`` taken from the model even where the runtime lacks them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from .. import errors
from .errors import KubeError

EXTRAS = ("restart", "healthcheck", "stop_signal", "stop_timeout")


@dataclass
class Box:
    """One container: ``spec`` is ``ContainerSpec.to_dict()``; ``extras`` restart/healthcheck/stop_signal."""

    name: str
    spec: dict
    extras: dict = field(default_factory=dict)  # what the runtime may not take yet (see EXTRAS)


@dataclass
class Workload:
    name: str
    boxes: list[Box]
    replicas: int = 1
    origin: str = ""  # shown in warnings: "container web", "service db"


def _box(name: str, spec: dict) -> Box:
    return Box(name, spec, {k: spec[k] for k in EXTRAS if spec.get(k) not in (None, "", {})})


def from_names(names: list[str], root=None) -> list[Workload]:
    """Each name is a container (name or id) or, failing that, a compose project's name."""
    import jupybox

    from ..compose import convert

    out = []
    every = None
    for name in names:
        try:
            c = jupybox.container(name, root=root)
            out.append(Workload(c.name, [_box(c.name, c.config["spec"])], origin=f"container {c.name}"))
            continue
        except errors.ContainerNotFound:
            pass
        if every is None:
            every = jupybox.containers(all=True, root=root)
        services: dict[str, list] = {}
        for c in every:
            try:
                labels = c.config["spec"].get("labels") or {}
            except errors.ContainerNotFound:
                continue
            if labels.get(convert.PROJECT) == name and labels.get(convert.ONEOFF) != "True":
                services.setdefault(labels.get(convert.SERVICE, c.name), []).append(c)
        if not services:
            raise KubeError(f"no such container or compose project: {name}")
        for service, members in sorted(services.items()):
            members.sort(key=lambda c: int((c.config["spec"].get("labels") or {}).get(convert.NUMBER) or 0))
            out.append(Workload(service, [_box(service, members[0].config["spec"])], replicas=len(members),
                                origin=f"service {service} of {name}"))
    return out


def from_compose_files(files: list[str], project_name: str | None = None) -> list[Workload]:
    """Every enabled service of the project the compose files describe (nothing is started)."""
    from ..compose import convert, load
    from ..runtime.options import make_spec

    project = load(files, project_name=project_name)
    project = copy.copy(project)
    project.services = {n: _no_host_paths_made(s) for n, s in project.services.items()}
    out = []
    for name in project.select():
        svc = project.services[name]
        if svc.get("build") and not svc.get("image"):
            raise KubeError(f"service {name} is built from a Dockerfile: build it (jupybox compose build) and "
                            "name the image in the compose file, so that the manifest can name it")
        image, command, opts, _connect = convert.create_options(project, name, 1, lambda option, value: False)
        opts.pop("name", None)
        spec = make_spec(image, command, **opts).to_dict()
        extras = {"restart": convert.restart_policy(svc), "healthcheck": convert.healthcheck(svc),
                  "stop_signal": svc.get("stop_signal"),
                  "stop_timeout": convert.stop_grace_seconds(svc) if svc.get("stop_grace_period") else None}
        replicas = int((svc.get("deploy") or {}).get("replicas") or svc.get("scale") or 1)
        out.append(Workload(name, [Box(name, spec, {k: v for k, v in extras.items() if v})], replicas=replicas,
                            origin=f"service {name}"))
    return out


def _no_host_paths_made(svc: dict) -> dict:
    """A service whose bind mounts do not create their host directory (``compose up`` does)."""
    svc = copy.deepcopy(svc)
    for v in svc.get("volumes") or []:
        if v.get("type") == "bind":
            v.setdefault("bind", {})["create_host_path"] = False
    return svc
