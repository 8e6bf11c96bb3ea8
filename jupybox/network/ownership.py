"""Which store made a bridge or an nftables table, and collecting those of stores that are gone.

Bridges and tables live in a network namespace, not in the store: a store deleted with ``rm -rf``
(a test's temporary store, a demo's) would leave them for ever, holding their subnets. So each one
carries its store's identity: the bridge's alias and the table's comment say
``jupybox <store id> <mount namespace> <store path>`` (the id is ``<store>/id``, random, made once).
A store is gone when, from its own mount namespace, its path no longer holds that id (deleted, or
deleted and made again: another store), or when that mount namespace no longer exists (nothing can
use its objects any more). What is judged gone is deleted; what carries no such identity (made by
someone else, or by a jupybox before this) is never touched.

Collected by ``Networks`` when it makes a bridge, by ``prune`` and by ``system reset``.
"""

from __future__ import annotations

import os
import re

PREFIX = "jupybox"


def mount_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/mnt").st_ino)
    except OSError:
        return "0"


def label(layout) -> str:
    """``jupybox <id> <mntns> <path>`` for this store (made at its first use)."""
    return f"{PREFIX} {layout.store_id()} {mount_namespace()} {os.path.realpath(layout.root)}"


def bridge_alias(layout) -> str:
    return label(layout)[:255]


def table_comment(layout) -> str:
    """nftables keeps at most 128 bytes of a comment: a path that does not fit is left out (the
    table is then judged by its bridge, which carries the whole label)."""
    text = label(layout)
    if len(text.encode()) <= 127:
        return text
    return " ".join(text.split(" ")[:3])


def parse(text: str | None) -> tuple[str, str, str | None] | None:
    """(store id, mount namespace, store path or None) from a label, or None if it is not ours."""
    if not text or not text.startswith(PREFIX + " "):
        return None
    parts = text.split(" ", 3)
    if len(parts) < 3 or not re.fullmatch(r"[0-9a-f]{16,64}", parts[1]) or not parts[2].isdigit():
        return None
    return parts[1], parts[2], parts[3] if len(parts) == 4 else None


def _namespace_alive(mntns: str) -> bool:
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/ns/mnt") == f"mnt:[{mntns}]":
                    return True
            except OSError:
                continue
    return False


def gone(store_id: str, mntns: str, path: str | None, _alive_cache: dict | None = None) -> bool:
    """Is the store of this identity provably gone?"""
    if mntns != mount_namespace():
        cache = _alive_cache if _alive_cache is not None else {}
        if mntns not in cache:
            cache[mntns] = _namespace_alive(mntns)
        return not cache[mntns]
    if path is None:
        return False  # cannot tell (a table whose comment could not hold the path)
    try:
        with open(os.path.join(path, "id")) as f:
            return f.read().strip() != store_id
    except FileNotFoundError:
        return True
    except OSError:
        return False


def collect(keep_id: str | None = None) -> dict:
    """Delete the bridges and tables of stores that are gone (never ``keep_id``'s); what went."""
    from .. import errors
    from . import bridge, nat

    cache: dict = {}
    removed = {"bridges": [], "tables": []}
    owners: dict[str, tuple[str, str | None]] = {}  # store id -> (mntns, path), from the bridges
    try:
        links = bridge.aliases()
    except errors.JupyboxError:
        links = {}
    stale_links = []
    for name, alias in links.items():
        ident = parse(alias)
        if ident is None or ident[0] == keep_id:
            continue
        owners[ident[0]] = (ident[1], ident[2])
        if gone(*ident, _alive_cache=cache):
            stale_links.append(name)
    if stale_links:
        try:
            removed["bridges"] = bridge.delete_links(stale_links)
        except errors.JupyboxError:
            pass
    try:
        tables = nat.tables()
    except errors.JupyboxError:
        tables = []
    for table in tables:
        ident = parse(nat.table_comment(table))
        if ident is None or ident[0] == keep_id:
            continue
        store_id, mntns, path = ident
        if path is None and store_id in owners:
            mntns, path = owners[store_id]
        if gone(store_id, mntns, path, _alive_cache=cache):
            try:
                nat.delete_table(table)
                removed["tables"].append(table)
            except errors.JupyboxError:
                pass
    return removed
