"""The store's service: one process per store that starts, watches and ends its containers.

    client (CLI, notebook kernel, API) ──JSON over a unix socket in <store>/run (0700)──▶ service
    service ──vfork+exec of a sealed memfd──▶ jupybox-init (C): H ─▶ PID 1 ─▶ the command

- ``address``: where the socket is, who may connect (same uid, not in any container), spawning
- ``wire``, ``messages``: the frames and the schema of every request (no pickle, bounded sizes)
- ``server``: the loop and the requests; ``monitor``: exits, releases, cleanups, waits;
  ``pool``: sandboxes made ahead; ``adopt``: taking over after a crash of a previous service
- ``client``: the threaded client of the API and the blocking connection of the CLI
"""

from __future__ import annotations


def stop(root, force: bool = True) -> bool:
    """Shut down the service of ``root`` if one runs (``force``: killing its containers); True if
    one was running. Tests use it so that their leak checks see a store with nothing alive."""
    from . import address
    from .client import Connection

    if address.connect(root) is None:
        return False
    conn = Connection(root)
    try:
        conn.call("shutdown", force=force)
    finally:
        conn.close()
    return True


def adopt_orphans(engine) -> None:
    """Containers recorded as running whose service died are re-adopted by the next one: start it
    (``ping``) before reading them, so a listing says how they are now."""
    from .server import orphans

    if orphans(engine):
        from .client import Connection

        conn = Connection(engine.layout.root)
        try:
            conn.call("ping")
        finally:
            conn.close()
