"""The Python API: what the CLI's verbs, the notebook magics and user code call.

    import jupybox
    c = jupybox.run("host", ["python3", "-c", "print(42)"], memory="256m", cpus=0.5)
    c.wait(); print(c.logs())

Containers started here are created by the launcher daemon (``runtime.launcherd``), never by
forking the calling process: a notebook kernel is threaded and may be huge.
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
    """The launcher daemon serving this process for ``root`` (spawned on first use)."""
    from .runtime.client import LauncherClient

    key = _key(root)
    with _lock:
        client = _clients.get(key)
        if client is None or not client.alive():
            client = _clients[key] = LauncherClient(key)
        return client


def shutdown(wait: float | None = 5.0) -> None:
    """Close this process's launcher daemons (containers started attached die with them; detached
    ones are monitored until they exit). With ``wait``, wait that long for the daemons to go."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
    if wait:
        for client in clients:
            try:
                client.proc.wait(timeout=wait)
            except Exception:  # noqa: BLE001 - a daemon still busy with detached containers
                pass


@atexit.register
def _close_launchers() -> None:
    shutdown(wait=None)


def run(image: str, command=None, *, root=None, stdin=None, stdout=None, stderr=None, detach: bool = False,
        **options) -> Container:
    """Create and start a container; return at once (``.wait()`` for its exit code).

    Options are ``jupybox run``'s: memory="256m", cpus=0.5, pids_limit=100, env={...},
    volumes=["/data:/data:ro"], workdir, user, name, network="none"|"host", remove=True,
    read_only, init, privileged, cap_add, cap_drop, entrypoint, hostname, tmpfs, labels.
    stdout/stderr: file objects or fds the container writes to directly (None: its log files).
    ``detach=True`` keeps it running if this process exits; otherwise it dies with us.
    """
    spec = make_spec(image, command, **options)
    eng = engine(root)
    client = launcher(root)
    fds, opened = (None, []) if stdin is None and stdout is None and stderr is None else stdio_fds(stdin, stdout, stderr)
    try:
        reply = client.run(spec.to_dict(), fds, attached=not detach)
    finally:
        for fd in opened:
            os.close(fd)
    rec = eng.records.get(reply["id"]) if not spec.remove else _ghost(eng, reply["id"])
    return Container(eng, rec, client)


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
    rec = eng.create(make_spec(image, command, **options))
    return Container(eng, rec, launcher(root))


def container(name_or_id: str, *, root=None) -> Container:
    eng = engine(root)
    return Container(eng, eng.records.get(name_or_id), _clients.get(_key(root)))


def containers(all: bool = False, *, root=None) -> list[Container]:  # noqa: A002 - docker's flag name
    eng = engine(root)
    out = []
    for rec in eng.records.all():
        c = Container(eng, rec, _clients.get(_key(root)))
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
    return engine(root).prune()
