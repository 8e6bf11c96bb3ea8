"""``jupybox fsck [--repair]``: what a crash or a damaged disk can leave wrong in the image store.

Checked: the OCI layout marker, ``tmp/`` entries of dead writers, blobs that do not hash to their
name, index.json (unreadable: rebuilt from the manifest blobs, names lost), index entries whose
manifest, config or layers are missing, layers not unpacked (unpacked again from their blobs),
short links that point nowhere. One line per problem, suffixed "(repaired)" when fixed.
"""

from __future__ import annotations

import json
import os
import re

from ..errors import StoreError, UsageError
from . import digest as dg
from . import index as ix
from . import mediatypes as mt
from . import scratch
from .blobs import atomic_write, canonical_json
from .reference import parse_reference

_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def _label(entry: dict) -> str:
    label = ix.entry_name(entry) or entry.get("digest") or "?"
    if "/" in label:
        try:
            label = parse_reference(label, default_tag=None).familiar()
        except UsageError:
            pass
    return label


def rebuilt_index(store) -> dict:
    """An index listing every manifest blob found (untagged): the names are lost."""
    entries = []
    for n in store.blobs.names():
        d = "sha256:" + n
        try:
            m = store.blobs.read_json(d)
        except (StoreError, OSError):
            continue
        if m.get("mediaType") in mt.MANIFESTS or ("config" in m and "layers" in m):
            entries.append(store._manifest_desc(d))
    return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}


def _check_layers(store, label: str, manifest: dict, config: dict, repair: bool, report) -> bool:
    """Report the image's layer problems (fixing what can be); False if it cannot run."""
    ok = True
    for desc, diff in zip(manifest.get("layers") or [], (config.get("rootfs") or {}).get("diff_ids") or []):
        have_dir = dg.is_digest(diff) and store.layers.has(diff)
        have_blob = dg.is_digest(desc.get("digest")) and store.blobs.has(desc["digest"])
        if have_dir:
            if repair:
                store.layers.short_link(dg.hex_of(diff))
            if not have_blob:
                report(f"image {label}: layer blob {desc.get('digest')} missing (the image runs, "
                       f"but cannot be pushed or saved)", False)
            continue
        if not have_blob:
            ok = False
            report(f"image {label}: layer {diff} has neither a directory nor a blob", repair)
            continue
        fixed = False
        if repair:
            try:
                store.layers.ensure(desc, diff)
                fixed = True
            except StoreError as err:
                ok = False
                report(f"image {label}: layer {diff} cannot be unpacked: {err}", repair)
                continue
        report(f"image {label}: layer {diff} is not unpacked", fixed)
    return ok


def check(store, repair: bool = False) -> list[str]:
    problems: list[str] = []

    def report(msg: str, fixed: bool) -> None:
        problems.append(msg + (" (repaired)" if fixed else ""))

    for p in scratch.leftovers(store.tmp):
        if repair:
            scratch.discard(p)
        report(f"leftover temporary entry tmp/{p.name}", repair)
    # a lease: no gc removes what is being looked at; loads and pulls go on (they only add, and
    # name an image only once its blobs and layers are in place)
    with store.locks.lease():
        layout_file = store.root / "oci-layout"
        try:
            ok = json.loads(layout_file.read_bytes()).get("imageLayoutVersion") == mt.OCI_LAYOUT_VERSION
        except (OSError, ValueError, AttributeError):
            ok = False
        if not ok:
            if repair:
                atomic_write(layout_file, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}), store.tmp)
            report("images/oci-layout missing or invalid", repair)
        removed_blobs = False
        for n in store.blobs.names():
            p = store.blobs.dir / n
            if not _HEX_RE.match(n) or not p.is_file() or p.is_symlink():
                if repair:
                    if p.is_dir() and not p.is_symlink():
                        scratch.remove_tree(p)
                    else:
                        os.unlink(p)
                report(f"stray entry in blobs/sha256: {n}", repair)
                continue
            actual, _ = dg.sha256_file(p)
            if actual != "sha256:" + n:
                if repair:
                    store.blobs.remove(n)
                    removed_blobs = True
                report(f"corrupt blob sha256:{n} (content hashes to {actual})", repair)
        if removed_blobs:
            store.layout.bump_generation()
        try:
            idx = store.index.read()
        except StoreError as e:
            report(f"index.json unreadable: {e}", repair)
            if repair:
                with store.locks.index():
                    store.index.write(rebuilt_index(store))
            idx = store.index.read() if repair else {"manifests": []}
        bad_entries = []
        for e in idx["manifests"]:
            label = _label(e)
            d = e.get("digest")
            if not dg.is_digest(d) or not store.blobs.has(d):
                bad_entries.append(e)
                report(f"index entry {label} points at a missing manifest {d}", repair)
                continue
            try:
                manifest, _cid, config = store._image_from_manifest(d)
            except StoreError as err:
                bad_entries.append(e)
                report(f"index entry {label}: {err}", repair)
                continue
            if not _check_layers(store, label, manifest, config, repair, report):
                bad_entries.append(e)
        if repair and bad_entries:
            bad = [(e.get("digest"), ix.entry_name(e)) for e in bad_entries]
            with store.index.transaction(freeing=True) as idx2:
                idx2["manifests"] = [e for e in idx2["manifests"] if (e.get("digest"), ix.entry_name(e)) not in bad]
        links, _ = store.layers.clean_links(repair)
        for msg in links:
            report(msg, repair)
    return problems
