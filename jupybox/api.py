"""The Python API: what the CLI's verbs, the notebook magics and user code call.

    import jupybox
    c = jupybox.run("host", ["python3", "-c", "print(42)"], memory="256m", cpus=0.5)
    c.wait(); print(c.logs())

Containers are started by the store's service (``jupybox.service``), never by forking the calling
process: a notebook kernel is threaded and may be huge. This process keeps one connection to the
service per store (spawning the service on first use).
"""

from __future__ import annotations

import atexit
import os
import threading

from .paths import Layout
from .runtime.container import Container, stdio_fds
from .runtime.engine import Engine
from .runtime.options import make_spec
from .runtime.state import Status

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_clients: dict[str, object] = {}


def _key(root) -> str:
    return str(Layout(root).root)


def engine(root=None) -> Engine:
    key = _key(root)
    with _lock:
        if key not in _engines:
            _engines[key] = Engine(key)
        return _engines[key]


def launcher(root=None):
    """This process's client of the service of ``root`` (connected, and the service spawned, on
    first use; again after the service died)."""
    from .service.client import Client

    key = _key(root)
    with _lock:
        client = _clients.get(key)
        if client is None or not client.alive():
            client = _clients[key] = Client(key)
        return client


def _service_of(root):
    return lambda: launcher(root)


def shutdown(wait: float | None = 5.0) -> None:
    """Close this process's connections to the services (containers it started attached die with
    them; detached ones stay with their service)."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


@atexit.register
def _close_launchers() -> None:
    shutdown(wait=None)


def run(image: str, command=None, *, root=None, stdin=None, stdout=None, stderr=None, detach: bool = False,
        **options) -> Container:
    """Create and start a container; return at once (``.wait()`` for its exit code).

    Options are ``jupybox run``'s: memory="256m", cpus=0.5, pids_limit=100, env={...},
    volumes=["/data:/data:ro"], workdir, user, name, network="none"|"host", remove=True,
    read_only, init, privileged, cap_add, cap_drop, entrypoint, hostname, tmpfs, labels.
    stdout/stderr: file objects or fds the container writes to directly (both None: its log files;
    one None: /dev/null for it).
    ``detach=True`` keeps it running if this process exits; otherwise it dies with us.
    """
    spec = make_spec(image, command, **options)
    eng = engine(root)
    client = launcher(root)
    if stdout is None and stderr is None:  # its log files (and our stdin, if given)
        fds, opened = ((), []) if stdin is None else ((stdin if isinstance(stdin, int) else stdin.fileno(),), [])
    else:
        fds, opened = stdio_fds(stdin, stdout, stderr)
    try:
        reply = client.run(spec.to_dict(), fds, attached=not detach)
    finally:
        for fd in opened:
            os.close(fd)
    rec = eng.records.get(reply["id"]) if not spec.remove else _ghost(eng, reply["id"])
    return Container(eng, rec, _service_of(root), name=reply.get("name"))


def _ghost(eng: Engine, cid: str):
    """A --rm container may be gone before we look: keep a record object that knows its id."""
    from .runtime.records import Record

    rec = Record(eng.layout, cid)
    try:
        rec.config
    except Exception:  # noqa: BLE001
        pass
    return rec


def create(image: str, command=None, *, root=None, **options) -> Container:
    eng = engine(root)
    reply = launcher(root).request("create", spec=make_spec(image, command, **options).to_dict())
    return Container(eng, eng.records.get(reply["id"]), _service_of(root), name=reply.get("name"))


def container(name_or_id: str, *, root=None) -> Container:
    eng = engine(root)
    return Container(eng, eng.records.get(name_or_id), _service_of(root))


def containers(all: bool = False, *, root=None) -> list[Container]:  # noqa: A002 - docker's flag name
    from .service import adopt_orphans

    eng = engine(root)
    adopt_orphans(eng)
    out = []
    for rec in eng.records.all():
        c = Container(eng, rec, _service_of(root))
        try:
            if all or c.state().status is Status.RUNNING:
                out.append(c)
        except Exception:  # noqa: BLE001 - removed meanwhile
            continue
    return out


def images(*, root=None):
    return engine(root).store.list()


def image(ref: str, *, root=None):
    return engine(root).store.resolve(ref)


def volumes(*, root=None):
    from .runtime.volumes import Volumes

    return Volumes(engine(root).layout).list()


def prune(*, root=None) -> dict:
    return launcher(root).request("prune")["result"]


def reset(root=None) -> dict:
    """Remove the store and everything it made on the host (``jupybox system reset``): its service
    and containers (killed), bridges, nftables table, cgroups, then the store's directory."""
    from .service import stop_all

    key = _key(root)
    with _lock:
        client = _clients.pop(key, None)
        _engines.pop(key, None)
    if client is not None:
        client.close()
    stop_all(key)
    return Engine(key).reset()
