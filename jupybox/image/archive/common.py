"""What the archive formats share: hashing, JSON, layer kinds, naming, registering an image."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from collections.abc import Iterable

from ...errors import StoreError, UsageError
from ..mediatypes import (DOCKER_LAYER, DOCKER_LAYER_FOREIGN, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
                          DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ND,
                          OCI_LAYER_ND_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST)
from ..reference import parse_reference

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

UNCOMPRESSED = (OCI_LAYER, DOCKER_LAYER, OCI_LAYER_ND)
GZIP = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN, OCI_LAYER_ND_GZIP)
INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)

CHUNK = 1 << 20


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest: str) -> str:
    algo, _, h = digest.partition(":")
    if algo != "sha256" or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise StoreError(f"invalid digest {digest!r}")
    return h


def parse_json(data: bytes, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise StoreError(f"{what} is not valid JSON ({e})") from None


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def tmp_dir_of(store) -> str | None:
    for attr in ("tmp", "tmp_dir", "tmpdir"):
        p = getattr(store, attr, None)
        if isinstance(p, (str, os.PathLike)) and not callable(p):
            os.makedirs(p, exist_ok=True)
            return str(p)
    lay = getattr(store, "layout", None)
    if lay is not None and getattr(lay, "tmp", None) is not None:
        os.makedirs(lay.tmp, exist_ok=True)
        return str(lay.tmp)
    root = getattr(store, "root", None)
    if root is not None:
        p = Path(root) / "tmp"
        p.mkdir(parents=True, exist_ok=True)
        return str(p)
    return None


def manifest_of(store, image) -> tuple[bytes, dict]:
    data = store.read_blob(image.manifest_digest)
    return data, parse_json(data, f"manifest {image.manifest_digest}")


def blob_media_type(desc: dict) -> str:
    return desc.get("mediaType") or OCI_LAYER


def familiar(ref: str) -> str:
    try:
        return parse_reference(ref).familiar()
    except UsageError:
        return ref


def layer_kind(media_type: str, head: bytes = b"") -> str:
    if media_type in UNCOMPRESSED:
        return "tar"
    if media_type in GZIP:
        return "gzip"
    if media_type == OCI_LAYER_ZSTD or "zstd" in media_type:
        return "zstd"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    return "tar"


def sniff(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return "tar"


def refs_for(tags: Iterable[str], what: str) -> list[str]:
    out = []
    for t in tags:
        try:
            out.append(str(parse_reference(t)))
        except UsageError:
            raise StoreError(f"{what}: invalid tag {t!r}") from None
    return out


def register(store, manifest: bytes, media_type: str, refs: list[str]):
    d = sha256(manifest)
    if not store.has_blob(d):
        store.write_blob(manifest, media_type=media_type)
    image = store.add_image(d, refs)
    # the names this archive gave (the image may have others in the store already)
    image.loaded_refs = [parse_reference(r).familiar() for r in refs]
    return image
