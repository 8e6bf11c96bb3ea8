"""The image store: an OCI image layout plus unpacked layers, under one jupybox root.

::

    images/                 a real OCI image layout (skopeo/umoci read it: ``oci:<root>/images:<tag>``)
      oci-layout            {"imageLayoutVersion": "1.0.0"}
      index.json            one entry per name, one untagged entry per dangling image (:mod:`.index`)
      blobs/sha256/<hex>    manifests, configs, layer blobs (:mod:`.blobs`)
      .index.lock .gc.lock  flock(2) locks (:mod:`.locks`)
      .reserve              blocks given back when a removal meets a full disk (:mod:`.index`)
    layers/<diff-id hex>/   each layer unpacked once (:mod:`.layerdirs`)
    tmp/                    half-written entries named after their writer (:mod:`.scratch`)

This module is the store's face: images by name or id (list, resolve, tag, remove, add, create).
Garbage collection and ``image prune`` are in :mod:`.gc`, the consistency check in :mod:`.fsck`.

Names follow docker's normalization (``busybox`` → ``docker.io/library/busybox:latest``; see
:mod:`.reference`); display uses the familiar form (``busybox:latest``). Image id = the config
digest. ``Image.size`` = sum of the layer blob sizes as stored.

Atomicity: blobs and index.json are written to ``tmp/`` and renamed into place; an unpacked layer
directory is committed by one rename. A crash leaves only ``tmp/`` entries of a dead writer
(:meth:`ImageStore.remove_crash_leftovers`) and blobs or layers nothing references (:mod:`.gc`).
Every change to index.json or layers/ bumps the store's generation (``Layout.bump_generation``).

Leases: a pull writes blobs first and registers the manifest later; hold ``store.lease()``
around the whole sequence so a concurrent ``gc()`` does not collect blobs in between (gc waits).
"""

from __future__ import annotations

import copy
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ..errors import Conflict, ImageNotFound, StoreError, UsageError
from ..paths import Layout
from . import digest as dg
from . import index as ix
from . import mediatypes as mt
from . import scratch
from .blobs import Blobs, BlobWriter, atomic_write, canonical_json
from .host import HOST_NAME, host_architecture, host_image, is_host_reference
from .layerdirs import LayerDirs
from .locks import StoreLocks
from .model import Image, now_rfc3339
from .nospace import is_no_space, reported_as
from .reference import parse_reference

__all__ = ["ImageStore", "BlobWriter", "canonical_json"]

_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_HEX_PREFIX_RE = re.compile(r"^[0-9a-f]{1,64}$")


def not_found(text: str, hint: bool = True) -> ImageNotFound:
    """docker's "No such image: X"; for a name, how to get it (as `docker run` says it would pull)."""
    msg = f"No such image: {text}"
    if hint and not _HEX_PREFIX_RE.match(text) and not text.startswith("sha256:"):
        try:
            parse_reference(text)
            msg += f" (get it with `jupybox pull {text}`, or make it with `jupybox import ROOTFS.tar {text}`)"
        except UsageError:
            pass
    return ImageNotFound(msg)


class ImageStore:
    """Images in an OCI layout under ``root`` (a path or a :class:`~jupybox.paths.Layout`)."""

    def __init__(self, root: str | os.PathLike | Layout | None = None, *,
                 in_use: Callable[[str], bool] | None = None):
        self.layout = root if isinstance(root, Layout) else Layout(root)
        self.root = self.layout.images
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_root = self.layout.layers
        self.links_dir = self.layers_root / "l"
        self.tmp = self.layout.tmp
        self.index_path = self.root / "index.json"
        #: set by the runtime: ``in_use(image_id) -> bool``; ``remove`` refuses in-use images
        self.in_use = in_use
        self.locks = StoreLocks(self.root)
        self.blobs = Blobs(self.blobs_dir, self.tmp)
        self.index = ix.IndexFile(self.index_path, self.tmp, self.locks.index, self.layout.bump_generation)
        self.layers = LayerDirs(self.layers_root, self.tmp, self.blobs, self.layout.bump_generation)
        self._ensure()

    def _ensure(self) -> None:
        try:
            self.layout.ensure()
            self.blobs_dir.mkdir(parents=True, exist_ok=True)
            self.links_dir.mkdir(parents=True, exist_ok=True)
            layout_file = self.root / "oci-layout"
            if not layout_file.exists():
                atomic_write(layout_file, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}), self.tmp)
            if not self.index_path.exists():
                with self.locks.index():
                    if not self.index_path.exists():
                        self.index.write(ix.empty_index())
        except PermissionError:
            pass  # read-only use of a store we cannot write (e.g. a non-root user on /var/lib/jupybox)
        except OSError as e:
            if not is_no_space(e):
                raise  # a full disk: reading and removing still work

    # ------------------------------------------------------------------ the parts, for callers

    def lease(self):
        """Hold while writing blobs that are not yet referenced by index.json (a pull): gc waits."""
        return self.locks.lease()

    def blob_path(self, digest: str) -> Path:
        return self.blobs.path(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blobs.has(digest)

    def read_blob(self, digest: str) -> bytes:
        return self.blobs.read(digest)

    def read_json(self, digest: str) -> dict:
        return self.blobs.read_json(digest)

    def open_blob_writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        return self.blobs.writer(expected_digest, expected_size)

    def write_blob(self, data: bytes, media_type: str | None = None) -> str:
        """Store ``data`` as a blob and return its digest (``media_type`` is accepted for symmetry:
        blobs are untyped in an OCI layout; descriptors carry the type)."""
        return self.blobs.write(data)

    def tmp_file(self, kind: str) -> tuple[str, int]:
        """(path, fd) of a new file in tmp/ named after this process (see :mod:`.scratch`)."""
        return scratch.new_file(self.tmp, kind)

    def tmp_dir(self, kind: str) -> str:
        """A new directory in tmp/ named after this process (see :mod:`.scratch`)."""
        return scratch.new_dir(self.tmp, kind)

    def layer_path(self, diff_id: str) -> Path:
        return self.layers.path(diff_id)

    def has_layer(self, diff_id: str) -> bool:
        return self.layers.has(diff_id)

    def ensure_layer(self, desc: dict, diff_id: str | None):
        """Unpack the layer blob ``desc`` unless layers/<diff_id> exists (a ``layer.LayerInfo``)."""
        return self.layers.ensure(desc, diff_id)

    def adopt_layer_dir(self, path: str, diff_id: str) -> None:
        """Make a directory filled under tmp/ the unpacked layer ``diff_id`` (a build's)."""
        self.layers.adopt(path, diff_id)

    def layer_dirs(self, image: Image | str, relative: bool = False) -> list[str]:
        """Overlay lower dirs for ``image``, bottom → top (reverse them for ``lowerdir=``), as short
        paths ``<root>/layers/l/<id>`` (or ``l/<id>`` relative to :attr:`layers_root` with
        ``relative=True``, to chdir there and keep the mount options short, as docker does).
        Missing layer dirs are unpacked from their blobs first. The host image has none."""
        img = self.resolve(image) if isinstance(image, str) else image
        if img.is_host:
            return []
        with self.lease():
            dirs = self.layers.lower_dirs(img.layers, img.diff_ids, relative)
        if "io.jupybox.host-view" in ((img.config.get("config") or {}).get("Labels") or {}):
            from .hostbased import lower_dirs  # built FROM host: the host's view below the layers

            dirs = lower_dirs(self.layout, img.config, relative) + dirs
        return dirs

    # ------------------------------------------------------------------ garbage and checks

    def remove_crash_leftovers(self) -> dict:
        """What a kill -9 of a load, pull, import or build left: tmp/ entries whose writer is gone
        (never a live process's work), and, unless a load, pull or build is running (it holds a
        lease: not waited for), blobs and layer directories no image references. Needs no free
        space. Returns {"tmp", "blobs", "layers", "links": how many removed, "bytes": freed,
        "busy": True when the blobs and layers were left for later}."""
        from . import gc

        return gc.collect(self, wait=False)

    def gc(self) -> dict:
        """Remove crash leftovers, and blobs and layer dirs no image references (see :mod:`.gc`)."""
        from . import gc

        return gc.collect(self)

    def prune(self, *, all: bool = False, filters=None) -> dict:
        """``image prune``: dangling images (every unused one with ``all``), then garbage."""
        from . import gc

        with reported_as("image prune"):
            return gc.prune_images(self, all=all, filters=filters)

    def check(self, repair: bool = False) -> list[str]:
        """Find what a crash (or a disk) could leave wrong; with ``repair=True`` fix it."""
        from . import fsck

        with reported_as("fsck"):
            return fsck.check(self, repair=repair)

    # ------------------------------------------------------------------ images

    def _image_from_manifest(self, mdigest: str) -> tuple[dict, str, dict]:
        manifest = self.read_json(mdigest)
        if "manifests" in manifest or manifest.get("mediaType") in mt.INDEXES:
            raise StoreError(f"{mdigest} is an image index, not an image manifest (pick a platform first)")
        cdesc = manifest.get("config")
        if not isinstance(cdesc, dict) or not dg.is_digest(cdesc.get("digest")):
            raise StoreError(f"manifest {mdigest} has no valid config descriptor")
        config = self.read_json(cdesc["digest"])
        return manifest, cdesc["digest"], config

    def _load(self) -> list[Image]:
        """All images in index.json (entries whose blobs are missing are skipped: see check())."""
        idx = self.index.read()
        by_id: dict[str, Image] = {}
        order: list[str] = []
        for e in idx["manifests"]:
            d = e.get("digest")
            if not dg.is_digest(d):
                continue
            try:
                manifest, cid, config = self._image_from_manifest(d)
            except StoreError:
                continue
            img = by_id.get(cid)
            if img is None:
                img = Image(id=cid, config=config, manifest=manifest, manifest_digest=d, names=[], store=self)
                by_id[cid] = img
                order.append(cid)
            elif d not in img.manifest_digests:
                img.manifest_digests.append(d)
            name = ix.entry_name(e)
            if name and name not in img.names:
                try:
                    parse_reference(name, default_tag=None)
                except UsageError:
                    continue  # a hand-edited index: ignore the bad name, keep the image
                img.names.append(name)
        return [by_id[c] for c in order]

    def list(self) -> list[Image]:
        """All images, newest first; the built-in ``host`` image is always included (last)."""
        images = self._load()
        epoch = datetime.fromtimestamp(0, timezone.utc)
        images.sort(key=lambda i: i.created_at or epoch, reverse=True)
        images.append(host_image(self))
        return images

    def lookup(self, text: str, hint: bool = False) -> tuple[Image, str | None]:
        """(image, the full name it was found by, or None when found by id/digest)."""
        if not isinstance(text, str) or not text.strip():
            raise ImageNotFound(f"No such image: {text!r}")
        try:
            return self._lookup(text.strip())
        except ImageNotFound:
            raise not_found(text.strip(), hint) from None

    def _lookup(self, s: str) -> tuple[Image, str | None]:
        if is_host_reference(s):
            return host_image(self), HOST_NAME
        images = self._load()
        if s.startswith("sha256:"):
            hexpart = s[7:]
            if not _HEX_PREFIX_RE.match(hexpart):
                raise ImageNotFound(f"No such image: {s}")
            return self._by_id_prefix(images, hexpart, s), None
        if _HEX_RE.match(s):
            return self._by_id_prefix(images, s, s), None
        try:
            ref = parse_reference(s)
        except UsageError:
            if _HEX_PREFIX_RE.match(s):
                return self._by_id_prefix(images, s, s), None
            raise
        full = str(ref)
        if ref.digest is not None:
            for img in images:
                if ref.digest in img.manifest_digests and any(
                        parse_reference(n, default_tag=None).name == ref.name for n in img.names):
                    return img, None
                if full in img.names:
                    return img, full
        else:
            for img in images:
                if full in img.names:
                    return img, full
        if _HEX_PREFIX_RE.match(s):
            return self._by_id_prefix(images, s, s), None
        raise ImageNotFound(f"No such image: {s}")

    def _by_id_prefix(self, images: list[Image], hexprefix: str, text: str) -> Image:
        host = host_image(self)
        found = [i for i in images + [host] if i.id[7:].startswith(hexprefix)]
        if not found:
            raise ImageNotFound(f"No such image: {text}")
        if len(found) > 1:
            raise UsageError(f"multiple images found with provided prefix: {text}")
        return found[0]

    def resolve(self, ref_or_id: str, *, hint: bool = True) -> Image:
        """By name[:tag] or name@digest, by full or short image id (``sha256:`` optional), or
        ``host``. Raises ImageNotFound("No such image: X"), for a name followed by how to get it
        (``hint=False``: docker's bare message, as its management verbs print it)."""
        return self.lookup(ref_or_id, hint)[0]

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve(ref_or_id)
            return True
        except ImageNotFound:
            return False

    def tag(self, src: str, new_ref: str) -> Image:
        img = self.resolve(src, hint=False)
        if img.is_host:
            raise UsageError("the built-in host image cannot be tagged")
        ref = parse_reference(new_ref)
        if ref.digest is not None:
            raise UsageError(f"refusing to create a tag with a digest reference: {new_ref}")
        name = str(ref)
        if name == HOST_NAME:
            raise Conflict("'host' is the name of the built-in host image")
        desc = self._manifest_desc(img.manifest_digest)
        with reported_as("tag"), self.index.transaction() as idx:
            ix.set_name(idx, name, desc)
        return self.resolve(img.id)

    def _manifest_desc(self, mdigest: str) -> dict:
        manifest = self.read_json(mdigest)
        return {"mediaType": manifest.get("mediaType") or mt.OCI_MANIFEST, "digest": mdigest,
                "size": self.blob_path(mdigest).stat().st_size}

    @reported_as("rmi")
    def remove(self, ref: str, force: bool = False) -> list[str]:
        """``rmi``: untag ``ref``; when the image has no names left, delete its manifest and config
        (and layers no other image uses). Returns docker-like lines ("Untagged: ...", "Deleted: ...")."""
        if isinstance(ref, str) and is_host_reference(ref):
            raise Conflict("the built-in host image cannot be removed")
        img, by_name = self.lookup(ref)
        if img.is_host:
            raise Conflict("the built-in host image cannot be removed")
        used = bool(self.in_use and self.in_use(img.id))
        out: list[str] = []
        parsed = {n: parse_reference(n, default_tag=None) for n in img.names}
        if by_name is not None:
            # digest names (repo@sha256:...) go away with the last tag, as in docker
            others = [n for n in img.names if n != by_name and
                      (parsed[by_name].digest is not None or parsed[n].digest is None)]
            if others:
                with self.index.transaction(freeing=True) as idx:
                    idx["manifests"] = [e for e in idx["manifests"] if ix.entry_name(e) != by_name]
                return [f"Untagged: {parsed[by_name].familiar()}"]
        elif len({p.name for p in parsed.values()}) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {img.short_id} (must be forced) - "
                           f"image is referenced in multiple repositories")
        if used and not force:
            what = f'repository reference "{ref}"' if by_name else img.short_id
            raise Conflict(f"conflict: unable to remove {what} (must force) - "
                           f"a container is using its referenced image {img.short_id}")
        with self.index.transaction(freeing=True) as idx:
            current = [e for e in idx["manifests"] if e.get("digest") in img.manifest_digests]
            names = [n for n in (ix.entry_name(e) for e in current) if n]
            idx["manifests"] = [e for e in idx["manifests"] if e not in current]
            if used:  # forced while in use: keep it, untagged (dangling)
                for d in img.manifest_digests[:1]:
                    idx["manifests"].append(self._manifest_desc(d))
        out += [f"Untagged: {parse_reference(n, default_tag=None).familiar()}" for n in names]
        if used:
            return out
        from . import gc

        gc.drop_unreferenced(self, img.manifest_digests + [img.id] + [l.get("digest") for l in img.layers],
                             img.diff_ids)
        self.index.ensure_reserve()  # space was freed: the next full disk finds a reserve again
        out.append(f"Deleted: {img.id}")
        return out

    # ------------------------------------------------------------------ adding images

    @reported_as("registering the image")
    def add_image(self, manifest_digest: str, refs: list[str] | tuple[str, ...] = (), owner: str | None = None) -> Image:
        """Register a manifest whose config and layer blobs are in blobs/: verify, unpack the
        missing layers (checking each blob digest and diff_id), name it ``refs``. ``owner`` marks
        a new untagged entry as a process's for a while (``gc.OWNER``: a build's image for a RUN
        step), which garbage collection removes once that process is gone."""
        dg.validate(manifest_digest)
        if isinstance(refs, str):
            refs = [refs]
        names = []
        for r in refs:
            ref = parse_reference(r)
            if str(ref) == HOST_NAME:
                raise Conflict("'host' is the name of the built-in host image")
            names.append(str(ref))
        with self.lease():
            if not self.has_blob(manifest_digest):
                raise StoreError(f"manifest blob {manifest_digest} not found in the store")
            manifest, cid, config = self._image_from_manifest(manifest_digest)
            layers = manifest.get("layers") or []
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            if len(layers) != len(diff_ids):
                raise StoreError(f"image {cid}: manifest has {len(layers)} layers but config has "
                                 f"{len(diff_ids)} diff_ids")
            for desc, diff in zip(layers, diff_ids):
                self.layers.ensure(desc, diff)
            desc = self._manifest_desc(manifest_digest)
            with self.index.transaction() as idx:
                for name in names:
                    ix.set_name(idx, name, desc)
                if not any(e.get("digest") == manifest_digest for e in idx["manifests"]):
                    if owner and not names:
                        desc = dict(desc, annotations={ix.OWNER: owner})
                    idx["manifests"].append(desc)
        return self.resolve(cid)

    @reported_as("writing the image")
    def create_image(self, config: dict, layer_blobs: list[str], refs: list[str] | tuple[str, ...] = (),
                     *, annotations: dict | None = None) -> Image:
        """Write ``config`` and an OCI manifest for ``layer_blobs`` (digests of blobs already in the
        store, bottom to top) and register them. Missing ``rootfs.diff_ids`` are computed by
        unpacking; ``architecture``/``os``/``created`` get defaults."""
        from . import layerstream

        config = copy.deepcopy(config)
        with self.lease():
            descs = []
            for d in layer_blobs:
                dg.validate(d)
                p = self.blob_path(d)
                try:
                    with open(p, "rb") as f:
                        head = f.read(8)
                    size = p.stat().st_size
                except FileNotFoundError:
                    raise StoreError(f"layer blob {d} not found in the store") from None
                kind = layerstream.detect_compression(head)
                descs.append({"mediaType": mt.LAYER_BY_COMPRESSION.get(kind, mt.OCI_LAYER), "digest": d, "size": size})
            rootfs = config.get("rootfs") or {}
            diff_ids = list(rootfs.get("diff_ids") or [])
            if not diff_ids and descs:
                diff_ids = [self.layers.ensure(desc, None).diff_id for desc in descs]
            if len(diff_ids) != len(descs):
                raise StoreError(f"config has {len(diff_ids)} diff_ids for {len(descs)} layers")
            config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
            config.setdefault("architecture", host_architecture())
            config.setdefault("os", "linux")
            config.setdefault("created", now_rfc3339())
            config.setdefault("config", {})
            cbytes = canonical_json(config)
            cdigest = self.write_blob(cbytes)
            manifest = {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {"mediaType": mt.OCI_CONFIG, "digest": cdigest, "size": len(cbytes)},
                "layers": descs,
            }
            if annotations:
                manifest["annotations"] = dict(annotations)
            mdigest = self.write_blob(canonical_json(manifest))
            return self.add_image(mdigest, refs)

