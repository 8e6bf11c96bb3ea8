"""docker-archive: what ``docker save`` writes and ``docker load`` reads.

::

    manifest.json     [{"Config": "<hex>.json", "RepoTags": ["busybox:latest"], "Layers": ["<diffid>.tar", ...]}]
    repositories      {"busybox": {"latest": "<v1 id of the top layer>"}}
    <hex>.json        the image config, byte for byte (so the image ID survives the trip)
    <diffid>.tar      each layer UNCOMPRESSED (its sha256 is the config's diff_id), written once
    <v1id>/VERSION, <v1id>/json, <v1id>/layer.tar -> ../<diffid>.tar   the legacy chain (as skopeo writes it)

Docker 25+ writes an OCI layout instead, with a ``manifest.json`` whose paths point into
``blobs/sha256/`` (see :mod:`.oci`); loading one keeps its OCI manifest, and so its digest.
"""

from __future__ import annotations

import hashlib

from ...errors import DigestMismatch, StoreError
from ..mediatypes import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST
from .common import (INDEXES, dumps, familiar, hex_of, layer_kind, blob_media_type, manifest_of, parse_json,
                     refs_for, register, sha256, sniff)
from .members import Members
from .oci import import_oci_image, layout_of, write_layout
from .tarwriter import TarWriter, gunzip_chunks


def _v1_ids(diff_ids: list[str], config: bytes) -> list[str]:
    """skopeo's legacy layer IDs: chain IDs, the top one the config digest."""
    ids = []
    chain = None
    for i, d in enumerate(diff_ids):
        chain = d if chain is None else sha256(f"{chain} {d}".encode())
        ids.append(hex_of(chain))
    if ids:
        ids[-1] = hashlib.sha256(config).hexdigest()
    return ids


def save_docker(store, images, w: TarWriter) -> None:
    entries: dict[str, dict] = {}  # config digest -> manifest.json entry
    plans = []
    repositories: dict[str, dict[str, str]] = {}
    for image, tag in images:
        mdata, man = manifest_of(store, image)
        cdesc = man.get("config") or {}
        cdigest = cdesc.get("digest")
        config = store.read_blob(cdigest)
        cfg = parse_json(config, f"config {cdigest}")
        diff_ids = list(((cfg.get("rootfs") or {}).get("diff_ids")) or [])
        layers = man.get("layers") or []
        if len(diff_ids) != len(layers):
            raise StoreError(f"image {cdigest}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        entry = entries.get(cdigest)
        v1 = _v1_ids(diff_ids, config)
        if entry is None:
            entry = {"Config": f"{hex_of(cdigest)}.json", "RepoTags": [],
                     "Layers": [f"{hex_of(d)}.tar" for d in diff_ids]}
            entries[cdigest] = entry
            plans.append((cdigest, config, cfg, layers, diff_ids, v1))
        if tag:
            fam = familiar(tag)
            if fam not in entry["RepoTags"]:
                entry["RepoTags"].append(fam)
            name, _, t = fam.rpartition(":")
            if v1:
                repositories.setdefault(name, {})[t] = v1[-1]
    # the index first: a streaming reader knows what follows
    w.add_bytes("manifest.json", dumps(list(entries.values())))
    if repositories:
        w.add_bytes("repositories", dumps(repositories))
    for cdigest, config, cfg, layers, diff_ids, v1 in plans:
        w.add_bytes(f"{hex_of(cdigest)}.json", config)
        for i, (desc, diff_id) in enumerate(zip(layers, diff_ids)):
            name = f"{hex_of(diff_id)}.tar"
            if name not in w.names:
                _write_layer_uncompressed(store, w, name, desc, diff_id)
            # the legacy chain (what docker 1.9-era tools read); layer.tar is a symlink, never a second copy
            vid = v1[i]
            if f"{vid}/" in w.names:
                continue
            w.add_dir(vid)
            w.add_bytes(f"{vid}/VERSION", b"1.0")
            legacy = {"id": vid, "created": "1970-01-01T00:00:00Z",
                      "container_config": {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                                           "AttachStdout": False, "AttachStderr": False, "Tty": False,
                                           "OpenStdin": False, "StdinOnce": False, "Env": None, "Cmd": None,
                                           "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
                                           "OnBuild": None, "Labels": None}}
            if i > 0:
                legacy["parent"] = v1[i - 1]
            if i == len(v1) - 1:
                for k in ("architecture", "config", "container", "container_config", "created",
                          "docker_version", "os"):
                    if k in cfg:
                        legacy[k] = cfg[k]
            w.add_bytes(f"{vid}/json", dumps(legacy))
            w.add_symlink(f"{vid}/layer.tar", f"../{name}")


def save_docker_oci(store, images, w: TarWriter) -> None:
    """What docker 25+ writes: an OCI layout (with docker's annotations) plus a manifest.json and a
    repositories file whose paths point into ``blobs/sha256/``, so that docker 20.10 to 24 load it
    as a docker-archive and docker 25+, containerd, skopeo as an OCI layout. Blobs stay as stored
    (a gzipped layer stays gzipped: every docker decompresses what manifest.json points at)."""
    index, blobs = layout_of(store, images, tag_only_ref_name=True)
    entries: dict[str, dict] = {}  # config digest -> manifest.json entry
    repositories: dict[str, dict[str, str]] = {}
    for image, tag in images:
        _, man = manifest_of(store, image)
        cdigest = (man.get("config") or {}).get("digest")
        entry = entries.get(cdigest)
        if entry is None:
            entry = {"Config": f"blobs/sha256/{hex_of(cdigest)}", "RepoTags": [],
                     "Layers": [f"blobs/sha256/{hex_of(layer.get('digest'))}" for layer in man.get("layers") or []]}
            entries[cdigest] = entry
        if tag:
            fam = familiar(tag)
            if fam not in entry["RepoTags"]:
                entry["RepoTags"].append(fam)
            if image.diff_ids:  # docker 25 names the top layer's diff_id here
                name, _, t = fam.rpartition(":")
                repositories.setdefault(name, {})[t] = hex_of(image.diff_ids[-1])
    extra = [("manifest.json", dumps(list(entries.values())))]
    if repositories:
        extra.append(("repositories", dumps(repositories)))
    write_layout(store, w, index, blobs, extra)


def _write_layer_uncompressed(store, w: TarWriter, name: str, desc: dict, diff_id: str) -> None:
    digest = desc["digest"]
    path = str(store.blob_path(digest))
    with open(path, "rb") as f:
        head = f.read(4)
    kind = layer_kind(blob_media_type(desc), head)
    if kind == "tar" and sniff(head) == "tar":
        if digest != diff_id:
            raise StoreError(f"layer {digest}: uncompressed but its digest is not the diff_id {diff_id}")
        w.add_file(name, path, desc.get("size"))
    elif kind == "gzip" or sniff(head) == "gzip":
        w.add_stream(name, gunzip_chunks(path, diff_id, f"layer {digest}"))
    else:
        raise StoreError(f"layer {digest}: {kind} layers cannot be written to a docker-archive yet")


def _oci_manifests(members: Members) -> dict[str, tuple[bytes, dict]]:
    """config digest -> (manifest bytes, manifest) for every image manifest in
    an OCI layout inside the archive (used to keep docker 25+ manifests)."""
    out = {}
    try:
        index = parse_json(members.read("index.json"), "index.json")
    except StoreError:
        return out
    stack = list(index.get("manifests") or [])
    seen = 0
    while stack and seen < 256:
        seen += 1
        d = stack.pop()
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            continue
        try:
            bname = f"blobs/sha256/{hex_of(d['digest'])}"
        except StoreError:
            continue
        if not members.has(bname):
            continue
        data = members.read(bname)
        if sha256(data) != d["digest"]:
            raise DigestMismatch(f"archive: {bname} does not match its digest")
        doc = parse_json(data, bname)
        mt = doc.get("mediaType") or d.get("mediaType")
        if mt in INDEXES or "manifests" in doc:
            stack.extend(doc.get("manifests") or [])
        elif isinstance(doc.get("config"), dict):
            out[doc["config"].get("digest")] = (data, doc)
    return out


def load_docker(store, members: Members) -> list:
    entries = parse_json(members.read("manifest.json"), "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise StoreError("load: manifest.json is not a non-empty list")
    oci = _oci_manifests(members) if members.has("index.json") else {}
    images = []
    for i, e in enumerate(entries):
        what = f"manifest.json entry {i}"
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list):
            raise StoreError(f"load: {what} lacks Config/Layers")
        config = members.read(e["Config"])
        cdigest = sha256(config)
        cfg = parse_json(config, f"{what}: config {e['Config']}")
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(e["Layers"]):
            raise StoreError(f"load: {what}: {len(e['Layers'])} layers but the config lists {len(diff_ids)} diff_ids")
        refs = refs_for(e.get("RepoTags") or [], what)
        kept = oci.get(cdigest)
        if kept is not None:  # docker 25+: keep its manifest, and so its digest
            mdata, man = kept
            if import_oci_image(store, members, man, what):
                images.append(register(store, mdata, man.get("mediaType") or OCI_MANIFEST, refs))
                continue
        if not store.has_blob(cdigest):
            store.write_blob(config, media_type=OCI_CONFIG)
        layers = []
        for j, (lname, diff_id) in enumerate(zip(e["Layers"], diff_ids)):
            head = members.head(lname, 8)
            kind = sniff(head)
            if kind == "zstd":
                raise StoreError(f"load: {what}: layer {lname} is zstd-compressed (not supported)")
            if kind not in ("tar", "gzip"):
                raise StoreError(f"load: {what}: layer {lname} is {kind}-compressed (not supported)")
            expected = diff_id if kind == "tar" else None
            try:
                digest, size = members.to_blob(lname, expected=expected)
            except DigestMismatch:
                raise DigestMismatch(f"load: {what}: layer {lname} does not match its diff_id {diff_id}") from None
            if kind == "gzip":
                _check_gzip_diff_id(store, digest, diff_id, f"{what}: layer {lname}")
            layers.append({"mediaType": OCI_LAYER if kind == "tar" else OCI_LAYER_GZIP,
                           "digest": digest, "size": size})
        man = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": cdigest, "size": len(config)},
               "layers": layers}
        images.append(register(store, dumps(man), OCI_MANIFEST, refs))
    return images


def _check_gzip_diff_id(store, digest: str, diff_id: str, what: str) -> None:
    for _ in gunzip_chunks(str(store.blob_path(digest)), diff_id, what):
        pass
