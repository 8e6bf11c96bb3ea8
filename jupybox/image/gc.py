"""Garbage: what no image references, and ``image prune`` (docker's semantics).

:func:`collect` removes crash leftovers of ``tmp/``, then, under the exclusive gc lock (which a
load, pull or build in progress holds shared: waited for, or with ``wait=False`` left for the next
time), blobs and layer directories that index.json does not reach. :func:`prune_images` first removes images (the dangling ones, or with ``all`` every image
no container uses, as ``docker image prune [-a]``), then collects. Nothing here needs free space:
the index is rewritten with the store's reserve when the disk is full (see :mod:`.index`).
"""

from __future__ import annotations

from typing import Iterable

from . import digest as dg
from . import index as ix
from . import scratch
from .filters import PruneFilters
from .reference import parse_reference
from ..errors import StoreError


def referenced(store, idx: dict | None = None) -> tuple[set[str], set[str]]:
    """(blob digests, layer diff_ids) reachable from index.json."""
    idx = idx if idx is not None else store.index.read()
    blobs: set[str] = set()
    layers: set[str] = set()
    todo = [e.get("digest") for e in idx["manifests"]]
    while todo:
        d = todo.pop()
        if not dg.is_digest(d) or d in blobs:
            continue
        blobs.add(d)
        try:
            m = store.blobs.read_json(d)
        except StoreError:
            continue
        for sub in m.get("manifests") or []:
            todo.append(sub.get("digest"))
        c = (m.get("config") or {}).get("digest")
        if dg.is_digest(c):
            blobs.add(c)
            try:
                cfg = store.blobs.read_json(c)
                layers.update(x for x in (cfg.get("rootfs") or {}).get("diff_ids") or [] if dg.is_digest(x))
            except StoreError:
                pass
        for layer in m.get("layers") or []:
            if dg.is_digest(layer.get("digest")):
                blobs.add(layer["digest"])
    return blobs, layers


def _sweep(store, blob_names: Iterable[str], layer_names: Iterable[str]) -> dict:
    """Remove the given blobs and layer dirs (hex names) that nothing references; the caller holds
    the exclusive lock."""
    keep_blobs, keep_layers = referenced(store)
    res = {"blobs": 0, "layers": 0, "bytes": 0}
    for n in set(blob_names):
        if "sha256:" + n in keep_blobs:
            continue
        p = store.blobs.dir / n
        size = scratch.size_of(p)
        if p.exists():
            store.blobs.remove(n)
            res["blobs"] += 1
            res["bytes"] += size
    for n in set(layer_names):
        if "sha256:" + n in keep_layers:
            continue
        p = store.layers.root / n
        if p.is_dir():
            res["bytes"] += scratch.size_of(p)
            store.layers.remove(n)
            res["layers"] += 1
    if res["blobs"]:
        store.layout.bump_generation()
    return res


def drop_unreferenced(store, blob_digests: Iterable[str], diff_ids: Iterable[str]) -> int:
    """After ``rmi``: remove those of an image's blobs and layers that no other image uses; bytes
    freed. Skipped (left to gc) while a pull or a load holds a lease."""
    with store.locks.exclusive(wait=False) as got:
        if not got:
            return 0
        return _sweep(store, [dg.hex_of(d) for d in blob_digests if dg.is_digest(d)],
                      [dg.hex_of(d) for d in diff_ids if dg.is_digest(d)])["bytes"]


def after_failure(store) -> None:
    """A load, pull or import failed: remove the blobs and layers it committed before failing,
    which nothing references (when no other writer holds a lease; else the next gc does)."""
    with store.locks.exclusive(wait=False) as got:
        if got:
            _sweep(store, store.blobs.names(), store.layers.names())


def collect(store, wait: bool = True) -> dict:
    """Crash leftovers, then unreferenced blobs and layer dirs, and dangling short links. While a
    load, pull or build holds a lease, waits for it, or with ``wait=False`` leaves the blobs and
    layers for the next time (``"busy": True``). Returns counts and bytes freed."""
    n, freed = scratch.remove_leftovers(store.tmp)
    res = {"blobs": 0, "layers": 0, "links": 0, "tmp": n, "bytes": freed, "busy": False}
    with store.locks.exclusive(wait=wait) as got:
        if not got:
            res["busy"] = True
            return res
        res["owned"] = _drop_orphaned_entries(store)
        res["host_views"] = _drop_unused_host_views(store)
        swept = _sweep(store, store.blobs.names(), store.layers.names())
        res["links"] = store.layers.clean_links(repair=True)[1]
    for k in ("blobs", "layers", "bytes"):
        res[k] += swept[k]
    return res


def _drop_orphaned_entries(store) -> int:
    """Untagged entries made for a process's own use (``index.OWNER``) whose process is gone: a
    build killed in a RUN step leaves its step's image registered. Its blobs and layers go with the
    sweep that follows, as any unreferenced ones."""
    from ..procs import pid_alive

    def orphaned(e: dict) -> bool:
        owner = (e.get("annotations") or {}).get(ix.OWNER)
        if not owner or ix.entry_name(e) is not None:
            return False
        pid, _, start = owner.partition(":")
        try:
            return not pid_alive(int(pid), int(start))
        except ValueError:
            return True  # not ours to understand: made by nothing alive

    if not any(orphaned(e) for e in store.index.read()["manifests"]):
        return 0  # (the index is not written: that would count as a change of the store)
    with store.index.transaction(freeing=True) as idx:
        gone = [e for e in idx["manifests"] if orphaned(e)]
        idx["manifests"] = [e for e in idx["manifests"] if e not in gone]
    return len(gone)


def _drop_unused_host_views(store) -> int:
    """Views of the host's environment (``FROM host``, ``commit host``) that no image is built on
    any more: each holds the hard links of a whole environment. A build making one holds a lease,
    so none is being made while this runs."""
    from . import hostbased, hostview

    keep = {k for k in (hostbased.view_key(img.config) for img in store._load()) if k}
    return len(hostview.prune(store.layout, keep))


def _familiar(name: str) -> str:
    ref = parse_reference(name, default_tag=None)
    return f"{ref.familiar_name()}@{ref.digest}" if ref.digest else ref.familiar()


def _parents(images: list) -> set[str]:
    """Ids of images whose layers are a proper prefix of another image's (docker keeps such
    "parents" of a build when it prunes dangling images: only heads are dangling)."""
    chains = {tuple(i.diff_ids) for i in images}
    out = set()
    for img in images:
        mine = tuple(img.diff_ids)
        if any(len(c) > len(mine) and c[:len(mine)] == mine for c in chains):
            out.add(img.id)
    return out


def prune_images(store, *, all: bool = False, filters: PruneFilters | Iterable[str] | None = None) -> dict:
    """``docker image prune``: remove the dangling images (``all``: every image no container uses),
    those created before ``until`` and matching the ``label`` filters when given, then garbage.
    Returns {"deleted": ["untagged: NAME" | "deleted: ID", ...], "bytes": reclaimed}."""
    if not isinstance(filters, PruneFilters):
        filters = PruneFilters.parse(filters or [])
    images = store._load()
    parents = set() if all else _parents(images)
    victims = []
    for img in images:
        if not all and (img.names or img.id in parents):
            continue
        if not filters.matches(img):
            continue
        if store.in_use and store.in_use(img.id):
            continue
        victims.append(img)
    lines: list[str] = []
    freed = 0
    if victims:
        digests = {d for img in victims for d in img.manifest_digests}
        with store.index.transaction(freeing=True) as idx:
            idx["manifests"] = [e for e in idx["manifests"] if e.get("digest") not in digests]
        for img in victims:
            lines += [f"untagged: {_familiar(n)}" for n in img.names]
            lines.append(f"deleted: {img.id}")
    # a load, pull or build in progress holds a lease for minutes: prune does not wait for it
    garbage = collect(store, wait=False)
    freed += garbage["bytes"]
    store.index.ensure_reserve()
    return {"deleted": lines, "bytes": freed, "images": len(victims), "busy": garbage["busy"]}
