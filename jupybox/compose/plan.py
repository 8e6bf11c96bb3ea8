"""``up`` as a list of ordered steps, computed from the project and a snapshot of what exists.

    build    web                build the service's image (missing, or --build)
    pull     db                 pull a missing image (or every one: pull_policy always)
    network  web_default        create the project's network (or check an external one exists)
    volume   web_data           create a named volume
    create   db #1              create a container
    recreate web #1             its config hash changed: stop and remove the old one, create anew
    start    db #1              start it (also a kept container that is not running)
    wait     web <- db healthy  before starting web, wait for db's condition
    remove   web #3             a replica beyond the service's scale

The plan is plain data made without touching anything (``make``), so it can be shown, tested
and checked whole before the first step runs: a project that cannot start starts nothing.
Every container is created before the first one starts; then services start in waves
(``graph.levels``), a service's ``wait`` steps right before its ``start`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import convert, graph
from .validate import scale_of


@dataclass
class Existing:
    """A container of the project as the snapshot saw it."""

    id: str
    name: str
    service: str
    number: int
    config_hash: str
    running: bool


@dataclass
class Snapshot:
    containers: list[Existing] = field(default_factory=list)
    images: set = field(default_factory=set)  # refs present in the store
    networks: set = field(default_factory=set)  # real names that exist
    volumes: set = field(default_factory=set)


@dataclass
class Step:
    kind: str  # network volume build pull create recreate start wait remove
    target: str  # network/volume key, or service name
    number: int = 0  # container number (create/recreate/start/remove)
    detail: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == "wait":
            return f"wait {self.target} <- {self.detail['service']} {self.detail['condition']}"
        num = f" #{self.number}" if self.number else ""
        return f"{self.kind} {self.target}{num}"


def make(project, snapshot: Snapshot, services=None, *, build: bool = False, force_recreate: bool = False,
         no_recreate: bool = False, no_build: bool = False, pull: str | None = None, start: bool = True) -> list[Step]:
    chosen = project.select(services)
    steps: list[Step] = []
    fetched: set = set()
    for name in chosen:
        svc = project.services[name]
        ref = convert.image_of(project, name)
        present = ref in snapshot.images or ref in fetched
        policy = pull or svc.get("pull_policy") or "missing"
        if "build" in svc and not no_build and (build or not present or policy == "build"):
            steps.append(Step("build", name, detail={"image": ref}))
        elif (policy == "always" and ref not in fetched) or (not present and policy in ("missing", "if_not_present")):
            steps.append(Step("pull", name, detail={"image": ref}))
            fetched.add(ref)
        elif not present and policy == "never":
            steps.append(Step("pull", name, detail={"image": ref, "never": True}))
    nets = sorted({n for s in chosen for n in (project.services[s].get("networks") or {})})
    for key in nets:
        steps.append(Step("network", key, detail={"name": project.networks[key]["name"],
                                                   "exists": project.networks[key]["name"] in snapshot.networks}))
    vols = sorted({v["source"] for s in chosen for v in project.services[s].get("volumes") or []
                   if v.get("type") == "volume" and v.get("source")})
    for key in vols:
        steps.append(Step("volume", key, detail={"name": project.volumes[key]["name"],
                                                  "exists": project.volumes[key]["name"] in snapshot.volumes}))
    existing = {(e.service, e.number): e for e in snapshot.containers}
    creates: list[Step] = []
    later: list[Step] = []
    for wave in graph.levels({n: project.services[n] for n in chosen}):
        starts: list[Step] = []
        waits: list[Step] = []
        for name in wave:
            svc = project.services[name]
            want = convert.config_hash(project, name)
            for dep, cond in sorted((svc.get("depends_on") or {}).items()):
                if dep in chosen:
                    condition = (cond or {}).get("condition", "service_started")
                    waits.append(Step("wait", name, detail={"service": dep, "condition": condition}))
            scale = scale_of(svc)
            for number in range(1, scale + 1):
                old = existing.get((name, number))
                if old is None:
                    creates.append(Step("create", name, number))
                    starts.append(Step("start", name, number))
                elif (old.config_hash != want and not no_recreate) or force_recreate:
                    creates.append(Step("recreate", name, number, detail={"id": old.id}))
                    starts.append(Step("start", name, number))
                else:  # up to date: started if it is not running, else said to be running
                    starts.append(Step("start", name, number, detail={"id": old.id}))
            for e in sorted(snapshot.containers, key=lambda e: e.number):
                if e.service == name and e.number > scale:
                    creates.append(Step("remove", name, e.number, detail={"id": e.id}))
        later += waits + starts
    # every container is made before the first starts: a service that cannot be created (a
    # missing image, a name in use) stops the whole up with nothing running
    return steps + creates + (later if start else [])


def orphans(project, snapshot: Snapshot) -> list[Existing]:
    """Containers of the project whose service is no longer in it (nor disabled by a profile)."""
    known = set(project.services) | set(project.disabled)
    return [e for e in snapshot.containers if e.service not in known]
