"""``save`` images to a tar archive and ``load`` them back: docker-archive and oci-archive.

docker-archive (what ``docker save``/``docker load`` speak)::

    manifest.json     [{"Config": "<hex>.json", "RepoTags": ["busybox:latest"], "Layers": ["<diffid>.tar", ...]}]
    repositories      {"busybox": {"latest": "<v1 id of the top layer>"}}
    <hex>.json        the image config, byte for byte (so the image ID survives the trip)
    <diffid>.tar      each layer UNCOMPRESSED (its sha256 is the config's diff_id), written once
    <v1id>/VERSION, <v1id>/json, <v1id>/layer.tar -> ../<diffid>.tar   the legacy chain (as skopeo writes it)

oci-archive: a tar of an OCI image layout (``oci-layout``, ``index.json`` with a
``org.opencontainers.image.ref.name`` annotation per tag, ``blobs/sha256/``)
holding the stored manifests, configs and layers as they are.

``load`` reads docker-archives from docker 20.10 (``<v1id>/layer.tar``), docker
25+ (an OCI layout plus a manifest.json pointing into ``blobs/sha256/``),
skopeo and podman, and OCI archives; several images and tags per archive; from
a path, a file, or a non-seekable stream (stdin), in one pass. A layer is
stored as the archive holds it: an uncompressed tar stays uncompressed
(``application/vnd.oci.image.layer.v1.tar``, whose digest is its diff_id: no
compression on the way in, which is what makes ``load`` fast), a gzipped one
stays gzipped. diff_ids are verified.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ...errors import StoreError, UsageError
from ..reference import parse_reference
from .. import gc, scratch
from ..blobs import renamed_into_place
from ..nospace import reported_as
from .common import tmp_dir_of
from .docker import load_docker, save_docker, save_docker_oci
from .members import open_in, read_members
from .oci import load_oci, save_oci
from .tarwriter import TarWriter

__all__ = ["save", "load", "FORMATS"]

#: docker-archive: docker's format up to version 24 (the default: every docker reads it);
#: oci-archive: an OCI image layout; docker-oci-archive: what docker 25+ writes, both at once
FORMATS = ("docker-archive", "oci-archive", "docker-oci-archive")
_FORMAT_ALIASES = {"docker-archive": "docker-archive", "docker": "docker-archive",
                   "oci-archive": "oci-archive", "oci": "oci-archive",
                   "docker-oci-archive": "docker-oci-archive", "docker25": "docker-oci-archive"}


def _resolve_all(store, refs) -> list[tuple[object, str | None]]:
    """(image, familiar tag or None) for each ref, in order, without duplicates."""
    if isinstance(refs, str):
        refs = [refs]
    out = []
    seen = set()
    for ref in refs:
        image = store.resolve(ref, hint=False)
        from ..hostbased import check_portable

        check_portable(image, "save")  # FROM host: the host's view is no layer an archive can hold
        tag = None
        try:
            r = parse_reference(ref)
            if r.tag is not None and not r.digest:
                tag = str(r)
        except UsageError:
            pass  # an image ID
        if tag is not None and not _image_has_ref(image, tag):
            # resolved through something else (an ID prefix that parses as a name)
            tag = None
        key = (image.manifest_digest, tag)
        if key in seen:
            continue
        seen.add(key)
        out.append((image, tag))
    if not out:
        raise UsageError("save: no image given")
    return out


def _image_has_ref(image, full: str) -> bool:
    refs = getattr(image, "refs", None)
    if refs is None:
        return True
    norm = set()
    for r in refs:
        try:
            norm.add(str(parse_reference(r)))
        except UsageError:
            norm.add(r)
    return full in norm


def save(store, refs: str | Iterable[str], dest, format: str = "docker-archive") -> None:
    """Write the images ``refs`` (names or IDs) to ``dest`` (a path or a binary file, e.g. stdout's
    buffer) in ``format`` (see :data:`FORMATS`). A path is written to a temporary file beside it
    and renamed at the end, as docker does: a failed save (a full disk) leaves nothing behind and
    an existing file as it was."""
    fmt = _FORMAT_ALIASES.get(format)
    if fmt is None:
        raise UsageError(f"unknown archive format {format!r} (use {', '.join(FORMATS)})")
    images = _resolve_all(store, refs)
    with reported_as("save"):
        if not isinstance(dest, (str, os.PathLike)):
            if not hasattr(dest, "write"):
                raise UsageError("save: the destination must be a path or a binary file")
            _write(store, images, dest, fmt)
            return
        dest = os.fspath(dest)
        tmp = os.path.join(os.path.dirname(os.path.abspath(dest)), f".{os.path.basename(dest)}.{scratch.name('save')}")
        with renamed_into_place(tmp, dest), open(tmp, "xb") as out:
            _write(store, images, out, fmt)


def _write(store, images, out, fmt: str) -> None:
    w = TarWriter(out, tmp_dir_of(store))
    if fmt == "docker-archive":
        save_docker(store, images, w)
    elif fmt == "oci-archive":
        save_oci(store, images, w)
    else:
        save_docker_oci(store, images, w)
    w.close()


def load(store, src, *, name: str | None = None) -> list:
    """Load every image of a docker-archive or oci-archive (path, file, or
    stream such as ``sys.stdin.buffer``) into ``store``; return the Images.

    An OCI archive entry named only by a tag (``ref.name`` = ``latest``, as
    ``skopeo copy ... oci-archive:X:latest`` writes) gets the repository
    ``name`` if given, and is loaded untagged otherwise. On a failure (a damaged archive, a full
    disk) what the load had stored so far is removed again.
    """
    f, owned = open_in(src)
    members = None
    try:
        # the lease keeps a concurrent gc from collecting blobs before add_image references them
        with reported_as("load"), store.lease():
            members = read_members(store, f)
            if members.has("manifest.json"):
                return load_docker(store, members)
            if members.has("index.json"):
                return load_oci(store, members, name)
            raise StoreError("load: neither manifest.json nor index.json in the archive: not an image archive")
    except BaseException:
        gc.after_failure(store)
        raise
    finally:
        if members is not None and members.tf is not None:
            members.tf.close()
        if owned:
            f.close()
