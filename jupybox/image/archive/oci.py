"""oci-archive: a tar of an OCI image layout (``oci-layout``, ``index.json`` with a
``org.opencontainers.image.ref.name`` annotation per tag, ``blobs/sha256/``) holding the stored
manifests, configs and layers as they are."""

from __future__ import annotations

from ...errors import DigestMismatch, StoreError, UsageError
from ..mediatypes import OCI_INDEX, OCI_MANIFEST
from .common import (CONTAINERD_NAME, INDEXES, MANIFESTS, REF_NAME, dumps, hex_of, manifest_of, parse_json,
                     register, sha256)
from .members import Members
from .tarwriter import TarWriter
from ..reference import parse_reference


def layout_of(store, images, *, tag_only_ref_name: bool = False) -> tuple[dict, list[tuple[str, int | None]]]:
    """(index.json, [(blob digest, size)] in write order) of an OCI layout holding ``images``
    (``(Image, full tag or None)`` pairs). ``ref.name`` is the full tag (skopeo's and umoci's
    reading), or with ``tag_only_ref_name`` only the tag, as docker 25+ and containerd write it."""
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    blobs: list[tuple[str, int | None]] = []
    seen_blobs: set[str] = set()
    for image, tag in images:
        mdata, man = manifest_of(store, image)
        mdigest = image.manifest_digest
        desc = {"mediaType": man.get("mediaType") or OCI_MANIFEST, "digest": mdigest, "size": len(mdata)}
        if tag:
            ref_name = parse_reference(tag).tag if tag_only_ref_name else tag
            desc["annotations"] = {CONTAINERD_NAME: tag, REF_NAME: ref_name}
        index["manifests"].append(desc)
        cdesc = man.get("config") or {}
        for d in [(mdigest, len(mdata)), (cdesc.get("digest"), cdesc.get("size"))] + \
                [(layer.get("digest"), layer.get("size")) for layer in man.get("layers") or []]:
            if d[0] not in seen_blobs:
                seen_blobs.add(d[0])
                blobs.append(d)
    return index, blobs


def write_layout(store, w: TarWriter, index: dict, blobs: list[tuple[str, int | None]], extra=()) -> None:
    """oci-layout, index.json, the ``extra`` (name, bytes) members, then the blobs."""
    w.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    w.add_bytes("index.json", dumps(index))
    for name, data in extra:
        w.add_bytes(name, data)
    w.add_dir("blobs")
    w.add_dir("blobs/sha256")
    for digest, size in blobs:
        w.add_file(f"blobs/sha256/{hex_of(digest)}", str(store.blob_path(digest)), size)


def save_oci(store, images, w: TarWriter) -> None:
    index, blobs = layout_of(store, images)
    write_layout(store, w, index, blobs)


def import_oci_image(store, members: Members, man: dict, what: str) -> bool:
    """Put config and layers of an OCI manifest from the archive into the store; False if some are missing."""
    descs = [man.get("config") or {}] + list(man.get("layers") or [])
    names = []
    for d in descs:
        dg = d.get("digest")
        if not isinstance(dg, str):
            raise StoreError(f"load: {what}: malformed descriptor")
        bname = f"blobs/sha256/{hex_of(dg)}"
        if not members.has(bname) and not store.has_blob(dg):
            return False
        names.append((bname, dg, d.get("mediaType")))
    for bname, dg, mt in names:
        if store.has_blob(dg):
            continue
        members.to_blob(bname, expected=dg, media_type=mt)
    return True


def load_oci(store, members: Members, name: str | None) -> list:
    if not members.has("oci-layout"):
        raise StoreError("load: index.json without oci-layout: not an OCI archive")
    layout = parse_json(members.read("oci-layout"), "oci-layout")
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise StoreError(f"load: unsupported OCI layout version {layout!r}")
    index = parse_json(members.read("index.json"), "index.json")
    descs = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(descs, list) or not descs:
        raise StoreError("load: index.json lists no manifests")
    by_digest: dict[str, list[str]] = {}
    order: list[str] = []
    manifests: dict[str, tuple[bytes, dict]] = {}
    for i, d in enumerate(descs):
        what = f"index.json entry {i}"
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            raise StoreError(f"load: {what}: malformed descriptor")
        mdigest, mdata, man = _pick_manifest(members, d, what)
        if mdigest not in by_digest:
            by_digest[mdigest] = []
            order.append(mdigest)
            manifests[mdigest] = (mdata, man)
        ref = _oci_ref(d.get("annotations") or {}, name)
        if ref and ref not in by_digest[mdigest]:
            by_digest[mdigest].append(ref)
    images = []
    for mdigest in order:
        mdata, man = manifests[mdigest]
        if not import_oci_image(store, members, man, f"manifest {mdigest}"):
            raise StoreError(f"load: manifest {mdigest}: a blob it references is missing from the archive")
        images.append(register(store, mdata, man.get("mediaType") or OCI_MANIFEST, by_digest[mdigest]))
    return images


def _pick_manifest(members: Members, d: dict, what: str) -> tuple[str, bytes, dict]:
    """An image manifest for the descriptor; through an index, the host platform's."""
    for _ in range(4):
        bname = f"blobs/sha256/{hex_of(d['digest'])}"
        data = members.read(bname)
        if sha256(data) != d["digest"]:
            raise DigestMismatch(f"load: {what}: {bname} does not match its digest")
        doc = parse_json(data, bname)
        mt = doc.get("mediaType") or d.get("mediaType")
        if mt in INDEXES or ("manifests" in doc and "layers" not in doc):
            d = _choose_platform(members, doc.get("manifests") or [], what)
            continue
        if mt not in MANIFESTS and not isinstance(doc.get("layers"), list):
            raise StoreError(f"load: {what}: unsupported manifest media type {mt!r}")
        return d["digest"], data, doc
    raise StoreError(f"load: {what}: indexes nested too deep")


def _choose_platform(members: Members, descs: list, what: str) -> dict:
    from ..registry.pull import host_platform, select_manifest

    present = [d for d in descs if isinstance(d, dict) and isinstance(d.get("digest"), str)
               and members.has(f"blobs/sha256/{hex_of(d['digest'])}")]
    if not present:
        raise StoreError(f"load: {what}: none of the index's manifests is in the archive")
    try:
        return select_manifest({"manifests": present}, host_platform())
    except Exception:
        if len(present) == 1:
            return present[0]
        raise StoreError(f"load: {what}: no manifest for the host's platform in the archive") from None


def _oci_ref(ann: dict, name: str | None) -> str | None:
    full = ann.get(CONTAINERD_NAME)
    ref = ann.get(REF_NAME)
    for cand in (full, ref):
        if cand and ("/" in cand or ":" in cand or "@" in cand):
            try:
                return str(parse_reference(cand))
            except UsageError:
                continue
    if ref and name:
        try:
            return str(parse_reference(f"{name}:{ref}"))
        except UsageError:
            raise StoreError(f"load: cannot name the image {name}:{ref}") from None
    if ref is None and name:
        return str(parse_reference(name))
    return None
