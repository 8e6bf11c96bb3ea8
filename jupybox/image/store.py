"""The image store: an OCI image layout plus unpacked layers, under one jupybox root.

::

    images/                 a real OCI image layout (skopeo/umoci read it: ``oci:<root>/images:<tag>``)
      oci-layout            {"imageLayoutVersion": "1.0.0"}
      index.json            one entry per name (and one untagged entry per dangling image)
      blobs/sha256/<hex>    manifests, configs, layer blobs
      .index.lock           flock: serializes read-modify-write of index.json
      .gc.lock              flock: shared = a lease (blobs being written/registered), exclusive = gc
    layers/<diff-id hex>/   each layer unpacked once, by diff_id: an overlay lower dir
    layers/l/<short>        -> ../<diff-id hex>: short paths for overlay's one-page mount options
    tmp/                    half-written blobs (blob-*), layers (layer-*), index files (index-*)

Names: every index entry carries ``org.opencontainers.image.ref.name`` = the tag (the OCI layout
convention, so ``skopeo inspect oci:<root>/images:<tag>`` works when the tag is unique in the
store) and ``io.jupybox.image.name`` = the full normalized reference, docker's normalization
(``busybox`` → ``docker.io/library/busybox:latest``; see :mod:`.reference`); display uses the
familiar form (``busybox:latest``). An image that loses its last name while a container uses it
stays as an entry without annotations (dangling, ``<none>:<none>``).

Image id = the config digest. ``Image.size`` = sum of the layer blob sizes as stored.

Atomicity: blobs and index.json are written to ``tmp/`` (fsync'ed) and renamed into place; an
unpacked layer directory is committed by one rename. A crash leaves only unreferenced ``tmp/``
entries, which :meth:`ImageStore.check` and :meth:`ImageStore.gc` remove (``tmp/`` entries are
flock'ed while in use, so a concurrent process's work is never taken for garbage).

Leases: a pull writes blobs first and registers the manifest later; hold ``store.lease()``
around the whole sequence so a concurrent ``gc()`` does not collect blobs in between (gc waits).
"""

from __future__ import annotations

import copy
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from ..errors import Conflict, DigestMismatch, ImageNotFound, StoreError, UsageError
from ..paths import Layout
from . import digest as dg
from . import mediatypes as mt
from .host import HOST_NAME, host_architecture, host_image, is_host_reference
def _layer():
    """The layer module (tarfile, decompressors, threads): imported when a layer is handled, so
    that `jupybox run` of an unpacked image does not pay ~6 ms for it."""
    from . import layer

    return layer
from .model import Image, now_rfc3339
from .reference import parse_reference

SHORT_LINK_LENGTHS = (12, 16, 24, 32, 64)
TMP_PREFIXES = ("blob-", "layer-", "index-", "import-")
FOREIGN_TMP_MAX_AGE = 3600  # other components' unlocked tmp/ entries older than this are garbage
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_HEX_PREFIX_RE = re.compile(r"^[0-9a-f]{1,64}$")


def canonical_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def _fsync_dir(path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class BlobWriter:
    """A blob being written: ``.write(b)``, then ``.commit() -> digest``. Used as a context manager,
    an exception (or leaving without commit) removes the temporary file."""

    def __init__(self, store: "ImageStore", expected_digest: str | None = None, expected_size: int | None = None):
        if expected_digest is not None:
            dg.validate(expected_digest)
        self._store = store
        self.expected_digest = expected_digest
        self.expected_size = expected_size
        self.path, self._fd = store._tmp_file("blob-")
        self._h = hashlib.sha256()
        self.size = 0
        self.committed: str | None = None

    def write(self, data) -> int:
        if self._fd is None:
            raise StoreError("blob writer is closed")
        n = len(data)
        if self.expected_size is not None and self.size + n > self.expected_size:
            self.abort()
            raise DigestMismatch(f"blob larger than expected size {self.expected_size}")
        self._h.update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.size += n
        return n

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def commit(self) -> str:
        if self.committed:
            return self.committed
        if self._fd is None:
            raise StoreError("blob writer is closed")
        d = self.digest
        try:
            if self.expected_size is not None and self.size != self.expected_size:
                raise DigestMismatch(f"blob size mismatch: expected {self.expected_size}, got {self.size}")
            if self.expected_digest is not None and d != self.expected_digest:
                raise DigestMismatch(f"blob digest mismatch: expected {self.expected_digest}, got {d}")
            os.fsync(self._fd)
        except BaseException:
            self.abort()
            raise
        self._store._adopt_blob(self.path, d, self._fd)
        self._fd = None
        self.committed = d
        return d

    def abort(self) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self.committed:
            self.abort()


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
        self._json_cache: dict[str, dict] = {}
        self._local = threading.local()
        self._ensure()

    # ------------------------------------------------------------------ layout, locks, tmp

    def _ensure(self) -> None:
        try:
            self.layout.ensure()
            self.blobs_dir.mkdir(parents=True, exist_ok=True)
            self.links_dir.mkdir(parents=True, exist_ok=True)
            layout_file = self.root / "oci-layout"
            if not layout_file.exists():
                self._atomic_write(layout_file, canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
            if not self.index_path.exists():
                with self._index_lock():
                    if not self.index_path.exists():
                        self._write_index({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []})
        except PermissionError:
            pass  # read-only use of a store we cannot write (e.g. a non-root user on /var/lib/jupybox)

    def _lockfile(self, name: str) -> int:
        return os.open(self.root / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        # lock order, everywhere: .gc.lock (a lease, or gc's exclusive lock) before .index.lock;
        # writing index.json needs a tmp file, which needs a lease: taking it first avoids a
        # deadlock with a check(repair=True) that holds the exclusive lock and wants the index.
        with self.lease():
            fd = self._lockfile(".index.lock")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Hold while writing blobs that are not yet referenced by index.json (a pull): gc waits."""
        if getattr(self._local, "exclusive", False):
            yield  # this thread is the gc/check itself
            return
        fd = self._lockfile(".gc.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def _exclusive(self, wait: bool = True) -> Iterator[bool]:
        fd = self._lockfile(".gc.lock")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                got = True
            except BlockingIOError:
                got = False
            self._local.exclusive = got
            yield got
        finally:
            self._local.exclusive = False
            os.close(fd)

    def _tmp_file(self, prefix: str) -> tuple[str, int]:
        """A new flock'ed file in tmp/ (created under a lease, so gc never sees it unlocked)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        with self.lease():
            for _ in range(100):
                path = str(self.tmp / f"{prefix}{os.getpid()}-{os.urandom(6).hex()}")
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
                except FileExistsError:
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX)
                return path, fd
        raise StoreError("cannot create a temporary file in " + str(self.tmp))

    def _atomic_write(self, path, data: bytes) -> None:
        tmp, fd = self._tmp_file("index-")
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, 0o644)
            os.fsync(fd)
            os.rename(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        finally:
            os.close(fd)
        _fsync_dir(os.path.dirname(path))

    # ------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / dg.hex_of(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        """The blob's bytes, verified against its digest."""
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} not found in the store") from None
        actual = dg.sha256_bytes(data)
        if actual != digest:
            raise DigestMismatch(f"blob {digest} is corrupt (content hashes to {actual}); run check(repair=True)")
        return data

    def read_json(self, digest: str) -> dict:
        """A JSON blob (manifest, config), verified and cached (blobs are immutable)."""
        obj = self._json_cache.get(digest)
        if obj is None:
            try:
                obj = json.loads(self.read_blob(digest))
            except ValueError:
                raise StoreError(f"blob {digest} is not valid JSON") from None
            if not isinstance(obj, dict):
                raise StoreError(f"blob {digest} is not a JSON object")
            self._json_cache[digest] = obj
        return obj

    def open_blob_writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected_digest, expected_size)

    def write_blob(self, data: bytes, media_type: str | None = None) -> str:
        """Store ``data`` as a blob and return its digest (``media_type`` is accepted for symmetry:
        blobs are untyped in an OCI layout; descriptors carry the type)."""
        d = dg.sha256_bytes(data)
        if self.has_blob(d):
            return d
        with self.open_blob_writer(d, len(data)) as w:
            w.write(data)
            return w.commit()

    def _adopt_blob(self, tmp_path: str, digest: str, fd: int | None = None) -> None:
        """Move a complete, fsync'ed tmp file into blobs/ (dedup if already there)."""
        try:
            dest = self.blob_path(digest)
            if dest.exists():
                os.unlink(tmp_path)
            else:
                if fd is not None:
                    os.fchmod(fd, 0o644)
                os.rename(tmp_path, dest)
                _fsync_dir(self.blobs_dir)
        finally:
            if fd is not None:
                os.close(fd)

    # ------------------------------------------------------------------ index.json

    def _read_index(self) -> dict:
        try:
            idx = json.loads(self.index_path.read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        except ValueError:
            raise StoreError(f"{self.index_path} is not valid JSON; run check(repair=True)") from None
        if not isinstance(idx, dict) or not isinstance(idx.get("manifests", []), list):
            raise StoreError(f"{self.index_path} is not an OCI image index")
        idx.setdefault("manifests", [])
        return idx

    def _write_index(self, idx: dict) -> None:
        idx.setdefault("schemaVersion", 2)
        idx.setdefault("mediaType", mt.OCI_INDEX)
        self._atomic_write(self.index_path, json.dumps(idx, indent=1, ensure_ascii=False).encode() + b"\n")

    @contextmanager
    def _index_txn(self) -> Iterator[dict]:
        with self._index_lock():
            idx = self._read_index()
            yield idx
            self._write_index(idx)

    @staticmethod
    def _entry_name(entry: dict) -> str | None:
        return (entry.get("annotations") or {}).get(mt.ANNOTATION_NAME)

    @staticmethod
    def _set_name(idx: dict, name: str, desc: dict) -> None:
        """Point ``name`` (full normalized) at the manifest ``desc``; a previous holder that is left
        without any entry is kept as a dangling (untagged) entry."""
        entries = idx["manifests"]
        old = [e for e in entries if ImageStore._entry_name(e) == name]
        for e in old:
            entries.remove(e)
        for e in old:
            if e["digest"] != desc["digest"] and not any(x["digest"] == e["digest"] for x in entries):
                entries.append({k: v for k, v in e.items() if k != "annotations"})
        ref = parse_reference(name, default_tag=None)
        ann = {mt.ANNOTATION_NAME: name}
        if ref.tag is not None and ref.digest is None:
            ann[mt.ANNOTATION_REF_NAME] = ref.tag
        new = {"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"], "annotations": ann}
        for i, e in enumerate(entries):  # take over the image's dangling entry, if any
            if e["digest"] == desc["digest"] and ImageStore._entry_name(e) is None:
                entries[i] = new
                return
        entries.append(new)

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
        idx = self._read_index()
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
            name = self._entry_name(e)
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

    def _lookup(self, text: str) -> tuple[Image, str | None]:
        """(image, the full name it was found by, or None when found by id/digest)."""
        if not isinstance(text, str) or not text.strip():
            raise ImageNotFound(f"No such image: {text!r}")
        s = text.strip()
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

    def resolve(self, ref_or_id: str) -> Image:
        """By name[:tag] or name@digest, by full or short image id (``sha256:`` optional), or
        ``host``. Raises ImageNotFound("No such image: X")."""
        return self._lookup(ref_or_id)[0]

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve(ref_or_id)
            return True
        except ImageNotFound:
            return False

    def tag(self, src: str, new_ref: str) -> Image:
        img = self.resolve(src)
        if img.is_host:
            raise UsageError("the built-in host image cannot be tagged")
        ref = parse_reference(new_ref)
        if ref.digest is not None:
            raise UsageError(f"refusing to create a tag with a digest reference: {new_ref}")
        name = str(ref)
        if name == HOST_NAME:
            raise Conflict("'host' is the name of the built-in host image")
        desc = self._manifest_desc(img.manifest_digest)
        with self._index_txn() as idx:
            self._set_name(idx, name, desc)
        return self.resolve(img.id)

    def _manifest_desc(self, mdigest: str) -> dict:
        manifest = self.read_json(mdigest)
        return {"mediaType": manifest.get("mediaType") or mt.OCI_MANIFEST, "digest": mdigest,
                "size": self.blob_path(mdigest).stat().st_size}

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """``rmi``: untag ``ref``; when the image has no names left, delete its manifest and config
        (and layers no other image uses). Returns docker-like lines ("Untagged: ...", "Deleted: ...")."""
        if isinstance(ref, str) and is_host_reference(ref):
            raise Conflict("the built-in host image cannot be removed")
        img, by_name = self._lookup(ref)
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
                with self._index_txn() as idx:
                    idx["manifests"] = [e for e in idx["manifests"] if self._entry_name(e) != by_name]
                return [f"Untagged: {parsed[by_name].familiar()}"]
        elif len({p.name for p in parsed.values()}) > 1 and not force:
            raise Conflict(f"conflict: unable to delete {img.short_id} (must be forced) - "
                           f"image is referenced in multiple repositories")
        if used and not force:
            what = f'repository reference "{ref}"' if by_name else img.short_id
            raise Conflict(f"conflict: unable to remove {what} (must force) - "
                           f"a container is using its referenced image {img.short_id}")
        with self._index_txn() as idx:
            current = [e for e in idx["manifests"] if e.get("digest") in img.manifest_digests]
            names = [n for n in (self._entry_name(e) for e in current) if n]
            idx["manifests"] = [e for e in idx["manifests"] if e not in current]
            if used:  # forced while in use: keep it, untagged (dangling)
                for d in img.manifest_digests[:1]:
                    idx["manifests"].append(self._manifest_desc(d))
        out += [f"Untagged: {parse_reference(n, default_tag=None).familiar()}" for n in names]
        if used:
            return out
        self._delete_image_blobs(img)
        out.append(f"Deleted: {img.id}")
        return out

    def _delete_image_blobs(self, img: Image) -> None:
        with self._exclusive(wait=False) as got:
            if not got:
                return  # a lease is held (a pull in progress): leave it to gc
            keep_blobs, keep_layers = self._referenced()
            for d in img.manifest_digests + [img.id] + [l.get("digest") for l in img.layers]:
                if dg.is_digest(d) and d not in keep_blobs:
                    try:
                        os.unlink(self.blob_path(d))
                    except FileNotFoundError:
                        pass
            for diff in img.diff_ids:
                if dg.is_digest(diff) and diff not in keep_layers:
                    self._remove_layer_dir(dg.hex_of(diff))

    # ------------------------------------------------------------------ adding images

    def add_image(self, manifest_digest: str, refs: list[str] | tuple[str, ...] = ()) -> Image:
        """Register a manifest whose config and layer blobs are in blobs/: verify, unpack the
        missing layers (checking each blob digest and diff_id), name it ``refs``."""
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
                self._ensure_layer(desc, diff)
            desc = self._manifest_desc(manifest_digest)
            with self._index_txn() as idx:
                for name in names:
                    self._set_name(idx, name, desc)
                if not any(e.get("digest") == manifest_digest for e in idx["manifests"]):
                    idx["manifests"].append(desc)
        return self.resolve(cid)

    def create_image(self, config: dict, layer_blobs: list[str], refs: list[str] | tuple[str, ...] = (),
                     *, annotations: dict | None = None) -> Image:
        """Write ``config`` and an OCI manifest for ``layer_blobs`` (digests of blobs already in the
        store, bottom to top) and register them. Missing ``rootfs.diff_ids`` are computed by
        unpacking; ``architecture``/``os``/``created`` get defaults."""
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
                kind = _layer().detect_compression(head)
                descs.append({"mediaType": mt.LAYER_BY_COMPRESSION.get(kind, mt.OCI_LAYER), "digest": d, "size": size})
            rootfs = config.get("rootfs") or {}
            diff_ids = list(rootfs.get("diff_ids") or [])
            if not diff_ids and descs:
                diff_ids = [self._ensure_layer(desc, None).diff_id for desc in descs]
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

    # ------------------------------------------------------------------ layers

    def layer_path(self, diff_id: str) -> Path:
        return self.layers_root / dg.hex_of(diff_id)

    def has_layer(self, diff_id: str) -> bool:
        return self.layer_path(diff_id).is_dir()

    def _ensure_layer(self, desc: dict, diff_id: str | None):
        """Unpack the layer blob ``desc`` unless layers/<diff_id> exists; returns what is known (a
        ``layer.LayerInfo``)."""
        bdigest = desc.get("digest") if isinstance(desc, dict) else None
        if not dg.is_digest(bdigest):
            raise StoreError(f"invalid layer descriptor: {desc!r}")
        if diff_id is not None:
            dg.validate(diff_id)
            if self.has_layer(diff_id):
                self._short_link(dg.hex_of(diff_id))
                return _layer().LayerInfo(diff_id, bdigest, int(desc.get("size", 0)), -1, "", 0, str(self.layer_path(diff_id)), True)
        blob = self.blob_path(bdigest)
        if not blob.is_file():
            raise StoreError(f"layer blob {bdigest} is missing from the store (pull the image again)")
        size = desc.get("size")

        def dest(info) -> str:
            return str(self.layers_root / dg.hex_of(info.diff_id))

        info = _layer().unpack_layer(str(blob), dest, tmp_dir=self.tmp, expected_diff_id=diff_id,
                            expected_digest=bdigest, expected_size=int(size) if size is not None else None)
        self._short_link(dg.hex_of(info.diff_id))
        return info

    def _short_link(self, hexd: str, create: bool = True) -> str | None:
        """The short name in layers/l/ for layer ``hexd`` (created if missing)."""
        target = "../" + hexd
        for n in SHORT_LINK_LENGTHS:
            name = hexd[:n]
            p = self.links_dir / name
            try:
                cur = os.readlink(p)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.symlink(target, p)
                    return name
                except FileExistsError:
                    cur = os.readlink(p)
            except OSError as e:
                if e.errno == errno.EINVAL:  # not a symlink: occupied by junk
                    continue
                raise
            if cur == target:
                return name
        raise StoreError(f"no short link name available for layer {hexd}")

    def layer_dirs(self, image: Image | str, relative: bool = False) -> list[str]:
        """Overlay lower dirs for ``image``, bottom → top (reverse them for ``lowerdir=``), as short
        paths ``<root>/layers/l/<id>`` (or ``l/<id>`` relative to :attr:`layers_root` with
        ``relative=True``, to chdir there and keep the mount options short, as docker does).
        Missing layer dirs are unpacked from their blobs first. The host image has none."""
        img = self.resolve(image) if isinstance(image, str) else image
        if img.is_host:
            return []
        out = []
        with self.lease():
            for desc, diff in zip(img.layers, img.diff_ids):
                if not self.has_layer(diff):
                    self._ensure_layer(desc, diff)
                short = self._short_link(dg.hex_of(diff))
                out.append(f"l/{short}" if relative else str(self.links_dir / short))
        return out

    def _remove_layer_dir(self, hexd: str) -> None:
        p = self.layers_root / hexd
        if p.is_dir() and not p.is_symlink():
            # rename first: the removal of a big tree is not atomic, the rename is
            trash = self.tmp / f"layer-rm-{hexd[:12]}-{os.urandom(4).hex()}"
            try:
                os.rename(p, trash)
            except OSError:
                trash = p
            _layer().remove_tree(trash)
        for n in SHORT_LINK_LENGTHS:
            lp = self.links_dir / hexd[:n]
            try:
                if os.readlink(lp) == "../" + hexd:
                    os.unlink(lp)
            except OSError:
                pass

    # ------------------------------------------------------------------ gc and check

    def _referenced(self, idx: dict | None = None) -> tuple[set[str], set[str]]:
        """(blob digests, layer diff_ids) reachable from index.json."""
        idx = idx if idx is not None else self._read_index()
        blobs: set[str] = set()
        layers: set[str] = set()
        todo = [e.get("digest") for e in idx["manifests"]]
        while todo:
            d = todo.pop()
            if not dg.is_digest(d) or d in blobs:
                continue
            blobs.add(d)
            try:
                m = self.read_json(d)
            except StoreError:
                continue
            for sub in m.get("manifests") or []:
                todo.append(sub.get("digest"))
            c = (m.get("config") or {}).get("digest")
            if dg.is_digest(c):
                blobs.add(c)
                try:
                    cfg = self.read_json(c)
                    layers.update(x for x in (cfg.get("rootfs") or {}).get("diff_ids") or [] if dg.is_digest(x))
                except StoreError:
                    pass
            for l in m.get("layers") or []:
                if dg.is_digest(l.get("digest")):
                    blobs.add(l["digest"])
        return blobs, layers

    def _tmp_garbage(self) -> list[Path]:
        """tmp/ entries nobody holds a lock on (ours), or old unlocked entries of other components."""
        out = []
        try:
            names = os.listdir(self.tmp)
        except FileNotFoundError:
            return out
        now = time.time()
        for n in names:
            p = self.tmp / n
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if not n.startswith(TMP_PREFIXES) and now - st.st_mtime < FOREIGN_TMP_MAX_AGE:
                continue
            if stat.S_ISLNK(st.st_mode):
                out.append(p)
                continue
            try:
                fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                out.append(p)
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
        return out

    @staticmethod
    def _size_of(p: Path) -> int:
        total = 0
        try:
            st = os.lstat(p)
        except OSError:
            return 0
        if not stat.S_ISDIR(st.st_mode):
            return st.st_blocks * 512
        for dirpath, dirnames, filenames in os.walk(p):
            for f in filenames + dirnames:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
                except OSError:
                    pass
        return total

    def _remove_path(self, p: Path) -> None:
        try:
            if p.is_dir() and not p.is_symlink():
                _layer().remove_tree(p)
            else:
                os.unlink(p)
        except FileNotFoundError:
            pass

    def gc(self) -> dict:
        """Remove blobs and layer dirs no image references, dangling short links and tmp/ leftovers.
        Waits for leases (pulls in progress). Returns counts and bytes freed."""
        res = {"blobs": 0, "layers": 0, "links": 0, "tmp": 0, "bytes": 0}
        with self._exclusive(wait=True):
            keep_blobs, keep_layers = self._referenced()
            for p in self._tmp_garbage():
                res["bytes"] += self._size_of(p)
                self._remove_path(p)
                res["tmp"] += 1
            for n in os.listdir(self.blobs_dir):
                if ("sha256:" + n) in keep_blobs:
                    continue
                p = self.blobs_dir / n
                res["bytes"] += self._size_of(p)
                self._remove_path(p)
                self._json_cache.pop("sha256:" + n, None)
                res["blobs"] += 1
            for n in os.listdir(self.layers_root):
                if n == "l" or not _HEX_RE.match(n) or ("sha256:" + n) in keep_layers:
                    continue
                res["bytes"] += self._size_of(self.layers_root / n)
                self._remove_layer_dir(n)
                res["layers"] += 1
            res["links"] = self._clean_links(repair=True)[1]
        return res

    def _clean_links(self, repair: bool) -> tuple[list[str], int]:
        problems, n = [], 0
        try:
            names = os.listdir(self.links_dir)
        except FileNotFoundError:
            return problems, 0
        for name in names:
            p = self.links_dir / name
            try:
                target = os.readlink(p)
            except OSError:
                target = None
            ok = target is not None and target.startswith("../") and _HEX_RE.match(target[3:]) \
                and target[3:].startswith(name) and (self.layers_root / target[3:]).is_dir()
            if not ok:
                problems.append(f"dangling short link layers/l/{name}")
                if repair:
                    self._remove_path(p)
                    n += 1
        return problems, n

    def check(self, repair: bool = False) -> list[str]:
        """Find what a crash (or a disk) could leave wrong; with ``repair=True`` fix it. Returns one
        line per problem (suffixed "(repaired)" when fixed)."""
        problems: list[str] = []

        def report(msg: str, fixed: bool) -> None:
            problems.append(msg + (" (repaired)" if fixed else ""))

        with self._exclusive(wait=True):
            # oci-layout
            try:
                ok = json.loads((self.root / "oci-layout").read_bytes()).get("imageLayoutVersion") == mt.OCI_LAYOUT_VERSION
            except (OSError, ValueError, AttributeError):
                ok = False
            if not ok:
                if repair:
                    self._atomic_write(self.root / "oci-layout", canonical_json({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}))
                report("images/oci-layout missing or invalid", repair)
            # tmp leftovers
            for p in self._tmp_garbage():
                if repair:
                    self._remove_path(p)
                report(f"leftover temporary entry tmp/{p.name}", repair)
            # blobs that do not hash to their name
            for n in sorted(os.listdir(self.blobs_dir)):
                p = self.blobs_dir / n
                if not _HEX_RE.match(n) or not p.is_file() or p.is_symlink():
                    if repair:
                        self._remove_path(p)
                    report(f"stray entry in blobs/sha256: {n}", repair)
                    continue
                actual, _ = dg.sha256_file(p)
                if actual != "sha256:" + n:
                    if repair:
                        self._remove_path(p)
                    self._json_cache.pop("sha256:" + n, None)
                    report(f"corrupt blob sha256:{n} (content hashes to {actual})", repair)
            # index.json
            try:
                idx = self._read_index()
            except StoreError as e:
                report(f"index.json unreadable: {e}", repair)
                if repair:
                    with self._index_lock():
                        self._write_index(self._rebuild_index())
                idx = self._read_index() if repair else {"manifests": []}
            bad_entries = []
            for e in idx["manifests"]:
                label = self._entry_name(e) or e.get("digest") or "?"
                if label and "/" in label:
                    try:
                        label = parse_reference(label, default_tag=None).familiar()
                    except UsageError:
                        pass
                d = e.get("digest")
                if not dg.is_digest(d) or not self.has_blob(d):
                    bad_entries.append(e)
                    report(f"index entry {label} points at a missing manifest {d}", repair)
                    continue
                try:
                    manifest, cid, config = self._image_from_manifest(d)
                except StoreError as err:
                    bad_entries.append(e)
                    report(f"index entry {label}: {err}", repair)
                    continue
                broken = False
                for desc, diff in zip(manifest.get("layers") or [], (config.get("rootfs") or {}).get("diff_ids") or []):
                    have_dir = dg.is_digest(diff) and self.has_layer(diff)
                    have_blob = dg.is_digest(desc.get("digest")) and self.has_blob(desc["digest"])
                    if have_dir:
                        if dg.is_digest(diff) and repair:
                            self._short_link(dg.hex_of(diff))
                        if not have_blob:
                            report(f"image {label}: layer blob {desc.get('digest')} missing (the image runs, "
                                   f"but cannot be pushed or saved)", False)
                        continue
                    if not have_blob:
                        broken = True
                        report(f"image {label}: layer {diff} has neither a directory nor a blob", repair)
                        continue
                    fixed = False
                    if repair:
                        try:
                            self._ensure_layer(desc, diff)
                            fixed = True
                        except StoreError as err:
                            broken = True
                            report(f"image {label}: layer {diff} cannot be unpacked: {err}", repair)
                            continue
                    report(f"image {label}: layer {diff} is not unpacked", fixed)
                if broken:
                    bad_entries.append(e)
            if repair and bad_entries:
                with self._index_txn() as idx2:
                    bad = [(e.get("digest"), self._entry_name(e)) for e in bad_entries]
                    idx2["manifests"] = [e for e in idx2["manifests"]
                                         if (e.get("digest"), self._entry_name(e)) not in bad]
            links, _ = self._clean_links(repair)
            for msg in links:
                report(msg, repair)
        return problems

    def _rebuild_index(self) -> dict:
        """An index listing every manifest blob found (untagged): the names are lost."""
        entries = []
        for n in sorted(os.listdir(self.blobs_dir)):
            d = "sha256:" + n
            try:
                m = self.read_json(d)
            except (StoreError, OSError):
                continue
            if m.get("mediaType") in mt.MANIFESTS or ("config" in m and "layers" in m):
                entries.append(self._manifest_desc(d))
        return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
