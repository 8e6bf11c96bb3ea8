"""The verbs that change a project: up, down, start, stop, restart, run, exec, build, pull, push.

Shared by ``jupybox compose`` and ``%%compose``. Progress is reported as events
``(object, name, status)`` (``("Container", "web-web-1", "Started")``), which the CLI prints as
docker compose does and the notebook shows in its live table.

Before anything is made, ``up`` refuses what cannot work, with file:line: keys jupybox cannot
honour, a published host port already bound on this host, a missing image whose
``pull_policy`` is ``never``. Then it runs the plan (``plan.py``): networks, volumes, images,
every container created, then started wave by wave, each service after its dependencies'
conditions (``service_started``, ``service_healthy``, ``service_completed_successfully``).
"""

from __future__ import annotations

import secrets
import sys

from .. import errors
from . import convert, graph, plan, support
from .errors import ComposeError, RuntimeComposeError
from .runtime import Runtime, label, resolve_ports, wait_until


class Session:
    """A project, the runtime it runs on, and where its progress goes."""

    def __init__(self, project, root=None, on_event=None, err=None):
        self.project = project
        self.err = err or sys.stderr
        self.on_event = on_event or self._print
        self.rt = Runtime(root, warn=self.warn)

    def _print(self, kind: str, name: str, status: str) -> None:
        print(f" {kind} {name}  {status}", file=self.err, flush=True)

    def event(self, kind: str, name: str, status: str) -> None:
        self.on_event(kind, name, status)

    def warn(self, message: str) -> None:
        print(f"WARN: {message}", file=self.err, flush=True)

    def containers(self, services=None, oneoff: bool | None = False) -> list:
        return self.rt.containers(self.project.name, services, oneoff)

    def snapshot(self) -> plan.Snapshot:
        snap = plan.Snapshot()
        for c in self.containers():
            snap.containers.append(plan.Existing(
                id=c.id, name=c.name, service=label(c, convert.SERVICE), number=int(label(c, convert.NUMBER) or 0),
                config_hash=label(c, convert.CONFIG_HASH), running=c.status == "running"))
        for s in self.project.services:
            ref = convert.image_of(self.project, s)
            if self.rt.has_image(ref):
                snap.images.add(ref)
        for key, net in self.project.networks.items():
            if self.rt.network(net["name"]) is not None:
                snap.networks.add(net["name"])
        for key, vol in self.project.volumes.items():
            if self.rt.volume(vol["name"]) is not None:
                snap.volumes.add(vol["name"])
        return snap


# -- up ---------------------------------------------------------------------------------------
def up(session: Session, services=None, *, build: bool = False, wait: bool = False, wait_timeout: float | None = None,
       force_recreate: bool = False, no_recreate: bool = False, no_build: bool = False, no_start: bool = False,
       remove_orphans: bool = False, pull: str | None = None) -> list:
    """Bring the services up (detached); return their containers."""
    project, rt = session.project, session.rt
    chosen = project.select(services)
    support.check(project, chosen)
    snap = session.snapshot()
    steps = plan.make(project, snap, services, build=build, force_recreate=force_recreate, no_recreate=no_recreate,
                      no_build=no_build, pull=pull, start=not no_start)
    _preflight(session, steps, snap)
    if any(s.kind == "start" for s in steps):
        rt.warm()
    for orphan in plan.orphans(project, snap):
        if remove_orphans:
            c = session.rt.api.container(orphan.id, root=rt.root)
            rt.remove(c)
            session.event("Container", orphan.name, "Removed")
        else:
            session.warn(f"Found orphan container ({orphan.name}) for this project. If you removed or renamed this "
                         "service in your compose file, you can run this command with the --remove-orphans flag "
                         "to clean it up.")
    made: dict = {(e.service, e.number): e.id for e in snap.containers}
    for step in steps:
        _run_step(session, step, made)
    out = [session.rt.api.container(made[(s, n)], root=rt.root) for (s, n) in sorted(made) if s in chosen]
    if wait and not no_start:
        wait_healthy(session, out, wait_timeout)
    return out


def _preflight(session: Session, steps: list, snap: plan.Snapshot) -> None:
    project, rt = session.project, session.rt
    for step in steps:
        if step.kind == "pull" and step.detail.get("never"):
            raise ComposeError(f"image {step.detail['image']} is not present and pull_policy is never",
                               *project.where(("services", step.target, "pull_policy")), f"services.{step.target}")
        if step.kind != "create":  # a recreated or kept container holds its own ports
            continue
        for i, p in enumerate(project.services[step.target].get("ports") or []):
            published = str(p.get("published") or "")
            if not published.isdigit():
                continue
            port = {"host_ip": "" if p.get("host_ip") in (None, "0.0.0.0") else p["host_ip"],
                    "host_port": int(published), "protocol": p.get("protocol", "tcp")}
            why = rt.port_taken(port)
            if why:
                path = ("services", step.target, "ports", i)
                raise ComposeError(f"Bind for {port['host_ip'] or '0.0.0.0'}:{published} failed: port is already "
                                   f"allocated ({why})", *project.where(path), f"services.{step.target}.ports[{i}]")


_UNSUPPORTED_NOTE = {
    "restart": "restart policies need the runtime's support (not in this jupybox yet): restart ignored",
    "healthcheck": "healthchecks need the runtime's support (not in this jupybox yet): healthcheck ignored",
    "stop_signal": None,  # done here instead: stop sends it
}


def _run_step(session: Session, step: plan.Step, made: dict) -> None:
    project, rt = session.project, session.rt
    api = rt.api
    if step.kind == "network":
        rt.ensure_network(project, step.target)
        if not step.detail["exists"]:
            session.event("Network", step.detail["name"], "Created")
    elif step.kind == "volume":
        rt.ensure_volume(project, step.target)
        if not step.detail["exists"]:
            session.event("Volume", step.detail["name"], "Created")
    elif step.kind == "build":
        session.event("Service", step.target, "Building")
        try:
            rt.build(step.detail["image"], project.services[step.target]["build"], out=session.err, err=session.err)
        except errors.BuildError as e:
            raise RuntimeComposeError(f"failed to build service {step.target}: {e}") from None
        session.event("Service", step.target, "Built")
    elif step.kind == "pull":
        session.event("Image", step.detail["image"], "Pulling")
        rt.pull(step.detail["image"], err=session.err)
        session.event("Image", step.detail["image"], "Pulled")
    elif step.kind in ("create", "recreate"):
        if step.kind == "recreate":
            old = api.container(step.detail["id"], root=rt.root)
            svc = project.services[step.target]
            rt.stop(old, convert.stop_grace_seconds(svc), svc.get("stop_signal"))
            rt.remove(old)
            session.event("Container", old.name, "Recreate")
        made[(step.target, step.number)] = create(session, step.target, step.number).id
        session.event("Container", convert.container_name(project, step.target, step.number),
                      "Recreated" if step.kind == "recreate" else "Created")
    elif step.kind == "remove":
        c = api.container(step.detail["id"], root=rt.root)
        svc = project.services[step.target]
        rt.stop(c, convert.stop_grace_seconds(svc), svc.get("stop_signal"))
        rt.remove(c)
        made.pop((step.target, step.number), None)
        session.event("Container", c.name, "Removed")
    elif step.kind == "wait":
        deps = [api.container(cid, root=rt.root) for (s, n), cid in sorted(made.items()) if s == step.detail["service"]]
        wait_condition(session, step.detail["service"], step.detail["condition"], deps)
    elif step.kind == "start":
        c = api.container(made[(step.target, step.number)], root=rt.root)
        if c.status != "running":
            session.event("Container", c.name, "Starting")
            try:
                rt.start(c)
            except errors.JupyboxError as e:
                raise RuntimeComposeError(f"container {c.name}: {e}") from None
            session.event("Container", c.name, "Started")
        else:
            session.event("Container", c.name, "Running")


def create(session: Session, service: str, number: int):
    """Container ``number`` of ``service``."""
    project, rt = session.project, session.rt
    image, command, opts, connect = convert.create_options(project, service, number, rt.accepts)
    svc = project.services[service]
    for option, value in (("restart", convert.restart_policy(svc)), ("healthcheck", convert.healthcheck(svc))):
        if value is not None and option not in opts and _UNSUPPORTED_NOTE.get(option):
            session.rt.warn_once(option, _UNSUPPORTED_NOTE[option])
    try:
        return rt.create(image, command, opts, connect)
    except errors.JupyboxError as e:
        raise RuntimeComposeError(f"service {service}: {e}") from None


def wait_condition(session: Session, service: str, condition: str, containers: list) -> None:
    """Block until ``service``'s containers meet ``condition`` (docker compose's messages)."""
    rt = session.rt
    for c in containers:
        if condition == "service_completed_successfully":
            session.event("Container", c.name, "Waiting")
            code = c.wait()
            if code != 0:
                raise RuntimeComposeError(f'service "{service}" didn\'t complete successfully: exit {code}')
            session.event("Container", c.name, "Exited")
        elif condition == "service_healthy":
            session.event("Container", c.name, "Waiting")

            def healthy():
                h = rt.health(c)
                if h is None:
                    raise RuntimeComposeError(f"dependency failed to start: container {c.name} has no healthcheck "
                                              "configured")
                if h == "unhealthy":
                    raise RuntimeComposeError(f"dependency failed to start: container {c.name} is unhealthy")
                if c.status != "running":
                    raise RuntimeComposeError(f"dependency failed to start: container {c.name} exited "
                                              f"({c.exit_code})")
                return h == "healthy"

            wait_until(healthy, None, 0.1)
            session.event("Container", c.name, "Healthy")


def wait_healthy(session: Session, containers: list, timeout: float | None) -> None:
    """``up --wait``: every container running, and healthy when it has a healthcheck."""
    rt = session.rt

    def ready(c):
        if c.status != "running":
            raise RuntimeComposeError(f"container {c.name} exited ({c.exit_code})")
        h = rt.health(c)
        if h == "unhealthy":
            raise RuntimeComposeError(f"container {c.name} is unhealthy")
        return h in (None, "healthy")

    for c in containers:
        session.event("Container", c.name, "Waiting")
        if not wait_until(lambda: ready(c), timeout, 0.1):
            raise RuntimeComposeError(f"container {c.name} is not ready after {timeout} s")
        session.event("Container", c.name, "Healthy" if rt.health(c) else "Running")


# -- down, start, stop, restart -----------------------------------------------------------------
def _by_stop_order(session: Session, containers: list) -> list:
    order = {n: i for i, n in enumerate(graph.stop_order(session.project.services))}
    return sorted(containers, key=lambda c: (order.get(label(c, convert.SERVICE), -1), c.name))


def _grace(session: Session, c, timeout: float | None) -> tuple[float, str | None]:
    svc = session.project.services.get(label(c, convert.SERVICE)) or {}
    return (timeout if timeout is not None else convert.stop_grace_seconds(svc)), svc.get("stop_signal")


def stop(session: Session, services=None, timeout: float | None = None) -> None:
    for c in _by_stop_order(session, session.containers(services)):
        if c.status == "running":
            session.event("Container", c.name, "Stopping")
            session.rt.stop(c, *_grace(session, c, timeout))
            session.event("Container", c.name, "Stopped")


def start(session: Session, services=None) -> None:
    found = {label(c, convert.SERVICE): [] for c in session.containers(services)}
    for c in session.containers(services):
        found[label(c, convert.SERVICE)].append(c)
    if not found:
        raise RuntimeComposeError("no containers to start")
    for name in graph.start_order(session.project.services):
        for c in found.get(name, []):
            if c.status != "running":
                session.event("Container", c.name, "Starting")
                session.rt.start(c)
                session.event("Container", c.name, "Started")


def restart(session: Session, services=None, timeout: float | None = None) -> None:
    stop(session, services, timeout)
    start(session, services)


def down(session: Session, *, volumes: bool = False, rmi: str | None = None, remove_orphans: bool = False,
         timeout: float | None = None) -> None:
    project, rt = session.project, session.rt
    known = set(project.services) | set(project.disabled)
    everything = session.containers(oneoff=None)
    mine = [c for c in everything if label(c, convert.SERVICE) in known or label(c, convert.ONEOFF) == "True"
            or not project.files]  # a project known by name only: all its containers
    orphans = [c for c in everything if c not in mine]
    if orphans and not remove_orphans:
        session.warn(f"Found orphan containers ({', '.join(c.name for c in orphans)}) for this project: "
                     "--remove-orphans removes them")
    images = set()
    for c in _by_stop_order(session, mine + (orphans if remove_orphans else [])):
        images.add((label(c, convert.SERVICE), c.image))
        if c.status == "running":
            session.event("Container", c.name, "Stopping")
            rt.stop(c, *_grace(session, c, timeout))
            session.event("Container", c.name, "Stopped")
        rt.remove(c, volumes=volumes)
        session.event("Container", c.name, "Removed")
    for name in rt.project_networks(project.name):  # by label: what up made, whatever the file says now
        try:
            rt.remove_network(name)
            session.event("Network", name, "Removed")
        except errors.Conflict as e:
            session.warn(str(e))
    if volumes:
        for key in sorted(project.volumes):
            cfg = project.volumes[key]
            vol = rt.volume(cfg["name"])
            if cfg.get("external") or vol is None or (vol.get("Labels") or {}).get(convert.PROJECT) != project.name:
                continue
            try:
                rt.remove_volume(cfg["name"])
                session.event("Volume", cfg["name"], "Removed")
            except errors.Conflict as e:
                session.warn(str(e))
    if rmi:
        _remove_images(session, rmi)


def _remove_images(session: Session, rmi: str) -> None:
    project, rt = session.project, session.rt
    refs = set()
    for name, svc in project.services.items():
        if rmi == "all" or not svc.get("image"):
            refs.add(convert.image_of(project, name))
    for ref in sorted(refs):
        try:
            rt.engine.store.remove(ref)
            session.event("Image", ref, "Removed")
        except errors.ImageNotFound:
            continue
        except errors.JupyboxError as e:
            session.warn(f"image {ref}: {e}")


# -- run, exec ----------------------------------------------------------------------------------
def run(session: Session, service: str, command=None, *, remove: bool = False, detach: bool = False, name=None,
        env=None, entrypoint=None, user=None, workdir=None, no_deps: bool = False, service_ports: bool = False,
        publish=None, stdin=0, stdout=1, stderr=2) -> int:
    """A one-off container of ``service`` (``compose run``), its dependencies brought up first;
    attached (our stdio, its exit code), or detached."""
    project, rt = session.project, session.rt
    project.service(service)
    support.check(project, project.select([service]))
    deps = [d for d in project.select([service]) if d != service]
    if deps and not no_deps:
        up(session, deps)
    for net in project.services[service].get("networks") or {}:
        rt.ensure_network(project, net)
    for v in project.services[service].get("volumes") or []:
        if v.get("type") == "volume" and v.get("source"):
            rt.ensure_volume(project, v["source"])
    image, cmd, opts, connect = convert.create_options(project, service, 1, rt.accepts)
    opts.pop("restart", None)  # as docker compose: a one-off container is not restarted
    opts.update(name=name or f"{project.name}-{service}-run-{secrets.token_hex(6)}", remove=remove and not detach,
                labels=convert.labels(project, service, 0, oneoff=True))
    if command:
        cmd = list(command)
    if entrypoint is not None:
        opts["entrypoint"] = entrypoint
    if env:
        opts["env"] = dict(opts.get("env") or {}, **env)
    if user:
        opts["user"] = user
    if workdir:
        opts["workdir"] = workdir
    if not service_ports:
        opts["ports"] = list(publish or [])
    opts["ports"] = resolve_ports(opts.get("ports") or [])
    if detach:
        c = rt.create(image, cmd, opts, connect)
        rt.start(c)
        return 0
    opts["interactive"] = stdin is not None
    try:
        c = rt.api.run(image, cmd, root=rt.root, stdin=stdin, stdout=stdout, stderr=stderr, **opts)
    except errors.JupyboxError as e:
        raise RuntimeComposeError(f"service {service}: {e}") from None
    for network, aliases in connect:  # joined while it runs (an attached start cannot wait for it)
        try:
            rt.networks().connect(rt.engine, rt.engine.records.get(c.id), network, aliases)
        except errors.JupyboxError:
            break
    return c.wait()


def exec_(session: Session, service: str, command, *, index: int = 1, env=None, user=None, workdir=None,
          stdin=0, stdout=1, stderr=2) -> int:
    found = [c for c in session.containers([service]) if int(label(c, convert.NUMBER) or 0) == index]
    if not found or found[0].status != "running":
        raise RuntimeComposeError(f"service {service!r} is not running")
    return found[0].exec(command, env=env, user=user, workdir=workdir, stdin=stdin, stdout=stdout, stderr=stderr)


# -- images --------------------------------------------------------------------------------------
def build(session: Session, services=None, quiet: bool = False) -> None:
    project = session.project
    for name in project.select(services, with_dependencies=False):
        svc = project.services[name]
        if "build" not in svc:
            continue
        ref = convert.image_of(project, name)
        session.event("Service", name, "Building")
        try:
            session.rt.build(ref, svc["build"], out=session.err, err=session.err, quiet=quiet)
        except errors.BuildError as e:
            raise RuntimeComposeError(f"failed to build service {name}: {e}") from None
        session.event("Service", name, "Built")


def _images(session: Session, services):
    """(service, image) of the selected services that name an image."""
    project = session.project
    for name in project.select(services, with_dependencies=False):
        if project.services[name].get("image"):
            yield name, project.services[name]["image"]


def pull(session: Session, services=None, ignore_failures: bool = False) -> None:
    for _name, image in _images(session, services):
        session.event("Image", image, "Pulling")
        try:
            session.rt.pull(image, err=session.err)
        except errors.JupyboxError as e:
            if not ignore_failures:
                raise RuntimeComposeError(f"pull {image}: {e}") from None
            session.warn(f"pull {image}: {e}")
            continue
        session.event("Image", image, "Pulled")


def push(session: Session, services=None) -> None:
    for _name, image in _images(session, services):
        session.event("Image", image, "Pushing")
        session.rt.push(image, err=session.err)
        session.event("Image", image, "Pushed")
