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

import contextlib
import hashlib
import io
import json
import os
import posixpath
import queue
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

from ..errors import DigestMismatch, StoreError, UnsafeArchive, UsageError
from .reference import parse_reference

__all__ = ["save", "load", "FORMATS"]

from .mediatypes import (DOCKER_LAYER, DOCKER_LAYER_FOREIGN, DOCKER_LAYER_GZIP, DOCKER_MANIFEST,
                         DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ND,
                         OCI_LAYER_ND_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST)

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"

FORMATS = ("docker-archive", "oci-archive")
_FORMAT_ALIASES = {"docker-archive": "docker-archive", "docker": "docker-archive",
                   "oci-archive": "oci-archive", "oci": "oci-archive"}
_UNCOMPRESSED = (OCI_LAYER, DOCKER_LAYER, OCI_LAYER_ND)
_GZIP = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN, OCI_LAYER_ND_GZIP)
_INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)

CHUNK = 1 << 20
BLOCK = 512
SMALL = 1 << 20  # while streaming, members up to this size are kept in memory; bigger ones go to the store


# ====================================================================== helpers

def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    algo, _, h = digest.partition(":")
    if algo != "sha256" or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise StoreError(f"invalid digest {digest!r}")
    return h


def _json(data: bytes, what: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise StoreError(f"{what} is not valid JSON ({e})") from None


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _tmpdir(store) -> str | None:
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


def _manifest_of(store, image) -> tuple[bytes, dict]:
    data = store.read_blob(image.manifest_digest)
    return data, _json(data, f"manifest {image.manifest_digest}")


def _blob_media_type(desc: dict) -> str:
    return desc.get("mediaType") or OCI_LAYER


def _familiar(ref: str) -> str:
    try:
        return parse_reference(ref).familiar()
    except UsageError:
        return ref


def _layer_kind(media_type: str, head: bytes = b"") -> str:
    if media_type in _UNCOMPRESSED:
        return "tar"
    if media_type in _GZIP:
        return "gzip"
    if media_type == OCI_LAYER_ZSTD or "zstd" in media_type:
        return "zstd"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    return "tar"


def _sniff(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return "tar"


# ====================================================================== tar writer

class _TarWriter:
    """A minimal tar writer (GNU format, mtime 0, root-owned) that can write a
    member whose size is only known afterwards: on a seekable output the
    header is patched in place, else the data is spooled to a temp file."""

    def __init__(self, fileobj, tmpdir: str | None):
        self.f = fileobj
        self.tmpdir = tmpdir
        try:
            self.seekable = bool(fileobj.seekable())
            if self.seekable:
                self.pos = fileobj.tell()
        except (AttributeError, OSError, ValueError):
            self.seekable = False
        if not self.seekable:
            self.pos = 0
        self.names: set[str] = set()
        try:
            self.fd = fileobj.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            self.fd = None

    def _info(self, name: str, size: int, kind=tarfile.REGTYPE, linkname: str = "", mode: int = 0o644):
        ti = tarfile.TarInfo(name)
        ti.size = size if kind == tarfile.REGTYPE else 0
        ti.type = kind
        ti.linkname = linkname
        ti.mode = 0o755 if kind == tarfile.DIRTYPE else mode
        ti.mtime = 0
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="strict")

    def _write(self, b) -> None:
        self.f.write(b)
        self.pos += len(b)

    def _pad(self, size: int) -> None:
        r = size % BLOCK
        if r:
            self._write(b"\0" * (BLOCK - r))

    def add_bytes(self, name: str, data: bytes) -> None:
        if name in self.names:
            return
        self.names.add(name)
        self._write(self._info(name, len(data)))
        self._write(data)
        self._pad(len(data))

    def add_dir(self, name: str) -> None:
        name = name.rstrip("/") + "/"
        if name in self.names:
            return
        self.names.add(name)
        self._write(self._info(name, 0, tarfile.DIRTYPE))

    def add_symlink(self, name: str, target: str) -> None:
        if name in self.names:
            return
        self.names.add(name)
        self._write(self._info(name, 0, tarfile.SYMTYPE, target, 0o777))

    def add_file(self, name: str, path: str, size: int | None = None) -> None:
        """A member copied from a file (kernel copy when both ends are files)."""
        if name in self.names:
            return
        self.names.add(name)
        if size is None:
            size = os.path.getsize(path)
        self._write(self._info(name, size))
        with open(path, "rb") as src:
            copied = self._copy(src, size)
        if copied != size:
            raise StoreError(f"{path}: changed while being archived")
        self._pad(size)

    def _copy(self, src, size: int) -> int:
        if self.fd is not None and hasattr(os, "copy_file_range"):
            try:
                self.f.flush()
                done = 0
                while done < size:
                    n = os.copy_file_range(src.fileno(), self.fd, size - done)
                    if n == 0:
                        break
                    done += n
                self.pos += done
                if done == size or done > 0:
                    if done < size:  # finish in user space
                        done += self._copy_py(src, size - done)
                    return done
            except OSError:
                pass  # e.g. a pipe on an old kernel, or EXDEV: fall back
        return self._copy_py(src, size)

    def _copy_py(self, src, size: int) -> int:
        done = 0
        while done < size:
            b = src.read(min(CHUNK, size - done))
            if not b:
                break
            self._write(b)
            done += len(b)
        return done

    def add_stream(self, name: str, chunks: Iterable[bytes]) -> int:
        """A member whose size is known only at the end; returns the size."""
        if name in self.names:
            for _ in chunks:
                pass
            return -1
        self.names.add(name)
        if self.seekable:
            start = self.pos
            self._write(self._info(name, 0))
            size = 0
            for b in chunks:
                self._write(b)
                size += len(b)
            end = self.pos
            self.f.seek(start)
            self.f.write(self._info(name, size))
            self.f.seek(end)
            self._pad(size)
            return size
        with tempfile.TemporaryFile(dir=self.tmpdir) as tmp:
            size = 0
            for b in chunks:
                tmp.write(b)
                size += len(b)
            tmp.seek(0)
            self._write(self._info(name, size))
            self._copy_py(tmp, size)
        self._pad(size)
        return size

    def close(self) -> None:
        self._write(b"\0" * (BLOCK * 2))
        # round up to a full record like tar does (some readers like it)
        rec = BLOCK * 20
        r = self.pos % rec
        if r:
            self._write(b"\0" * (rec - r))
        self.f.flush()


def _gunzip_raw(path: str):
    """The decompressed chunks of a gzip file (concatenated members allowed)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            if not raw:
                break
            while raw:
                out = d.decompress(raw, 4 * CHUNK)
                if out:
                    yield out
                raw = d.unconsumed_tail
                if d.eof:
                    rest = d.unused_data + raw
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    raw = rest
        out = d.flush()
        if out:
            yield out


def _in_thread(gen, depth: int = 8):
    """Run the generator ``gen`` in a thread, ``depth`` chunks ahead: zlib releases the
    GIL, so decompression overlaps with hashing and writing in the caller."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()
    _END = object()

    def run():
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    t = threading.Thread(target=run, name="jupybox-gunzip", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, (zlib.error, EOFError)):
                    raise StoreError(f"corrupt gzip data: {item}")
                raise item
            yield item
    finally:
        stop.set()
        t.join()
        gen.close()


def _gunzip_chunks(path: str, want_diff_id: str | None, what: str):
    """Decompress a gzip blob (in a helper thread), verifying the diff_id at the end."""
    h = hashlib.sha256()
    for out in _in_thread(_gunzip_raw(path)):
        h.update(out)
        yield out
    got = "sha256:" + h.hexdigest()
    if want_diff_id and got != want_diff_id:
        raise DigestMismatch(f"{what}: uncompressed digest {got} differs from the diff_id {want_diff_id}")


# ====================================================================== save

def _resolve_all(store, refs) -> list[tuple[object, str | None]]:
    """(image, familiar tag or None) for each ref, in order, without duplicates."""
    if isinstance(refs, str):
        refs = [refs]
    out = []
    seen = set()
    for ref in refs:
        image = store.resolve(ref)
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


def _v1_ids(diff_ids: list[str], config: bytes) -> list[str]:
    """skopeo's legacy layer IDs: chain IDs, the top one the config digest."""
    ids = []
    chain = None
    for i, d in enumerate(diff_ids):
        chain = d if chain is None else _sha256(f"{chain} {d}".encode())
        ids.append(_hex(chain))
    if ids:
        ids[-1] = hashlib.sha256(config).hexdigest()
    return ids


def _open_out(dest):
    if isinstance(dest, (str, os.PathLike)):
        return open(dest, "wb"), True
    if not hasattr(dest, "write"):
        raise UsageError("save: the destination must be a path or a binary file")
    return dest, False


def save(store, refs: str | Iterable[str], dest, format: str = "docker-archive") -> None:
    """Write the images ``refs`` (names or IDs) to ``dest`` (a path or a binary
    file, e.g. stdout's buffer) as a docker-archive or an oci-archive."""
    fmt = _FORMAT_ALIASES.get(format)
    if fmt is None:
        raise UsageError(f"unknown archive format {format!r} (use docker-archive or oci-archive)")
    images = _resolve_all(store, refs)
    out, owned = _open_out(dest)
    ok = False
    try:
        w = _TarWriter(out, _tmpdir(store))
        if fmt == "docker-archive":
            _save_docker(store, images, w)
        else:
            _save_oci(store, images, w)
        w.close()
        ok = True
    finally:
        if owned:
            out.close()
            if not ok:
                try:
                    os.unlink(dest)
                except OSError:
                    pass


def _save_docker(store, images, w: _TarWriter) -> None:
    entries: dict[str, dict] = {}  # config digest -> manifest.json entry
    plans = []
    repositories: dict[str, dict[str, str]] = {}
    for image, tag in images:
        mdata, man = _manifest_of(store, image)
        cdesc = man.get("config") or {}
        cdigest = cdesc.get("digest")
        config = store.read_blob(cdigest)
        cfg = _json(config, f"config {cdigest}")
        diff_ids = list(((cfg.get("rootfs") or {}).get("diff_ids")) or [])
        layers = man.get("layers") or []
        if len(diff_ids) != len(layers):
            raise StoreError(f"image {cdigest}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        entry = entries.get(cdigest)
        v1 = _v1_ids(diff_ids, config)
        if entry is None:
            entry = {"Config": f"{_hex(cdigest)}.json", "RepoTags": [],
                     "Layers": [f"{_hex(d)}.tar" for d in diff_ids]}
            entries[cdigest] = entry
            plans.append((cdigest, config, cfg, layers, diff_ids, v1))
        if tag:
            fam = _familiar(tag)
            if fam not in entry["RepoTags"]:
                entry["RepoTags"].append(fam)
            name, _, t = fam.rpartition(":")
            if v1:
                repositories.setdefault(name, {})[t] = v1[-1]
    # the index first: a streaming reader knows what follows
    w.add_bytes("manifest.json", _dumps(list(entries.values())))
    if repositories:
        w.add_bytes("repositories", _dumps(repositories))
    for cdigest, config, cfg, layers, diff_ids, v1 in plans:
        w.add_bytes(f"{_hex(cdigest)}.json", config)
        for i, (desc, diff_id) in enumerate(zip(layers, diff_ids)):
            name = f"{_hex(diff_id)}.tar"
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
            w.add_bytes(f"{vid}/json", _dumps(legacy))
            w.add_symlink(f"{vid}/layer.tar", f"../{name}")


def _write_layer_uncompressed(store, w: _TarWriter, name: str, desc: dict, diff_id: str) -> None:
    digest = desc["digest"]
    path = str(store.blob_path(digest))
    with open(path, "rb") as f:
        head = f.read(4)
    kind = _layer_kind(_blob_media_type(desc), head)
    if kind == "tar" and _sniff(head) == "tar":
        if digest != diff_id:
            raise StoreError(f"layer {digest}: uncompressed but its digest is not the diff_id {diff_id}")
        w.add_file(name, path, desc.get("size"))
    elif kind == "gzip" or _sniff(head) == "gzip":
        w.add_stream(name, _gunzip_chunks(path, diff_id, f"layer {digest}"))
    else:
        raise StoreError(f"layer {digest}: {kind} layers cannot be written to a docker-archive yet")


def _save_oci(store, images, w: _TarWriter) -> None:
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    blobs: list[tuple[str, int | None]] = []  # (digest, size) in write order
    seen_blobs: set[str] = set()
    for image, tag in images:
        mdata, man = _manifest_of(store, image)
        mdigest = image.manifest_digest
        mtype = man.get("mediaType") or OCI_MANIFEST
        desc = {"mediaType": mtype, "digest": mdigest, "size": len(mdata)}
        annotations = {}
        if tag:
            annotations[REF_NAME] = tag
            annotations[CONTAINERD_NAME] = tag
        if annotations:
            desc["annotations"] = annotations
        index["manifests"].append(desc)
        for d in [(mdigest, len(mdata)), ((man.get("config") or {}).get("digest"), (man.get("config") or {}).get("size"))] + \
                [(l.get("digest"), l.get("size")) for l in man.get("layers") or []]:
            if d[0] not in seen_blobs:
                seen_blobs.add(d[0])
                blobs.append(d)
    w.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    w.add_bytes("index.json", _dumps(index))
    w.add_dir("blobs")
    w.add_dir("blobs/sha256")
    for digest, size in blobs:
        w.add_file(f"blobs/sha256/{_hex(digest)}", str(store.blob_path(digest)), size)


# ====================================================================== load: reading members

def _norm(name: str) -> str:
    """An archive path, normalized; hostile paths raise UnsafeArchive."""
    n = name.replace("\\", "/")
    while n.startswith("./"):
        n = n[2:]
    if n.startswith("/"):
        raise UnsafeArchive(f"archive member with an absolute path: {name!r}")
    n = posixpath.normpath(n) if n else n
    if n == ".." or n.startswith("../"):
        raise UnsafeArchive(f"archive member escapes the archive: {name!r}")
    return "" if n == "." else n


class _Members:
    """The regular files of an archive: small ones in memory, big ones either
    read in place (a seekable tar) or already turned into store blobs
    (a stream, read once)."""

    def __init__(self, store):
        self.store = store
        self.small: dict[str, bytes] = {}
        self.blobs: dict[str, tuple[str, int]] = {}  # name -> (digest, size), already in the store
        self.infos: dict[str, tarfile.TarInfo] = {}  # name -> member of a seekable tar
        self.links: dict[str, str] = {}  # name -> archive path it points to
        self.tf: tarfile.TarFile | None = None
        self.created: list[str] = []  # blobs this load added to the store

    def _resolve(self, name: str) -> str:
        name = _norm(name)
        for _ in range(32):
            if name in self.links:
                name = self.links[name]
            else:
                return name
        raise UnsafeArchive(f"archive: too many levels of links at {name!r}")

    def has(self, name: str) -> bool:
        n = self._resolve(name)
        return n in self.small or n in self.blobs or n in self.infos

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        n = self._resolve(name)
        if n in self.small:
            return self.small[n]
        if n in self.infos:
            ti = self.infos[n]
            if ti.size > limit:
                raise StoreError(f"archive member {name} is too large ({ti.size} bytes)")
            return self.tf.extractfile(ti).read()
        if n in self.blobs:
            return self.store.read_blob(self.blobs[n][0])
        raise StoreError(f"archive: {name} is missing")

    def open(self, name: str):
        n = self._resolve(name)
        if n in self.small:
            return io.BytesIO(self.small[n])
        if n in self.infos:
            return self.tf.extractfile(self.infos[n])
        if n in self.blobs:
            return open(self.store.blob_path(self.blobs[n][0]), "rb")
        raise StoreError(f"archive: {name} is missing")

    def head(self, name: str, n: int = 8) -> bytes:
        f = self.open(name)
        try:
            return f.read(n)
        finally:
            f.close()

    def to_blob(self, name: str, expected: str | None = None, media_type: str | None = None) -> tuple[str, int]:
        """Put a member into the store; (digest, size)."""
        n = self._resolve(name)
        if n in self.blobs:
            d, size = self.blobs[n]
            if expected and d != expected:
                raise DigestMismatch(f"archive: {name} has digest {d}, expected {expected}")
            return d, size
        if n in self.small:
            data = self.small[n]
            d = _sha256(data)
            if expected and d != expected:
                raise DigestMismatch(f"archive: {name} has digest {d}, expected {expected}")
            if not self.store.has_blob(d):
                self.store.write_blob(data, media_type=media_type)
                self.created.append(d)
            self.blobs[n] = (d, len(data))
            return d, len(data)
        if n not in self.infos:
            raise StoreError(f"archive: {name} is missing")
        ti = self.infos[n]
        if expected and self.store.has_blob(expected):
            self.blobs[n] = (expected, ti.size)
            return expected, ti.size
        src = self.tf.extractfile(ti)
        d = _copy_to_store(self.store, src, ti.size, expected, name)
        if d not in self.created:
            self.created.append(d)
        self.blobs[n] = (d, ti.size)
        return d, ti.size


def _copy_to_store(store, src, size: int, expected: str | None, what: str) -> str:
    try:
        with store.open_blob_writer(expected_digest=expected, expected_size=size) as wr:
            left = size
            while left > 0:
                b = src.read(min(CHUNK, left))
                if not b:
                    raise StoreError(f"archive: {what} is truncated")
                wr.write(b)
                left -= len(b)
            return wr.commit()
    except DigestMismatch as e:
        raise DigestMismatch(f"archive: {what}: {e}") from None


def _open_in(src):
    if isinstance(src, (str, os.PathLike)):
        try:
            return open(src, "rb"), True
        except FileNotFoundError:
            raise UsageError(f"load: {src}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"load: {src} is a directory (expected a tar archive)") from None
    if not hasattr(src, "read"):
        raise UsageError("load: the source must be a path or a binary file")
    if isinstance(src, io.TextIOBase):
        src = src.buffer
    return src, False


def _seekable(f) -> bool:
    try:
        if not f.seekable():
            return False
        f.tell()
        return True
    except (AttributeError, OSError, ValueError):
        return False


def _read_members(store, f) -> _Members:
    m = _Members(store)
    if _seekable(f):
        start = f.tell()
        head = f.read(512)
        f.seek(start)
        kind = _sniff(head)
        if kind == "tar":
            try:
                m.tf = tarfile.open(fileobj=f, mode="r:")
            except tarfile.TarError as e:
                raise StoreError(f"load: not a tar archive ({e})") from None
            try:
                for ti in m.tf:
                    _index_member(m, ti, None)
            except tarfile.TarError as e:
                raise StoreError(f"load: damaged tar archive ({e})") from None
            return m
    # a stream (or a compressed archive): one pass, big members straight into the store
    try:
        tf = tarfile.open(fileobj=f, mode="r|*")
    except tarfile.TarError as e:
        raise StoreError(f"load: not a tar archive ({e})") from None
    try:
        for ti in tf:
            _index_member(m, ti, tf)
    except tarfile.TarError as e:
        raise StoreError(f"load: damaged tar archive ({e})") from None
    except (EOFError, zlib.error, OSError) as e:
        if isinstance(e, StoreError):
            raise
        raise StoreError(f"load: damaged archive ({e})") from None
    return m


def _index_member(m: _Members, ti: tarfile.TarInfo, stream: tarfile.TarFile | None) -> None:
    name = _norm(ti.name)
    if not name:
        return
    if ti.issym():
        target = ti.linkname
        if target.startswith("/"):
            target = target.lstrip("/")
        else:
            target = posixpath.join(posixpath.dirname(name), target)
        m.links[name] = _norm(target)
        return
    if ti.islnk():
        m.links[name] = _norm(ti.linkname)
        return
    if not ti.isreg():
        return
    if stream is None:
        m.infos[name] = ti
        return
    src = stream.extractfile(ti)
    if ti.size <= SMALL:
        m.small[name] = src.read()
        return
    expected = None
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256" and len(parts[2]) == 64:
        expected = "sha256:" + parts[2]
    if expected and m.store.has_blob(expected):
        m.blobs[name] = (expected, ti.size)  # tarfile skips the data itself
        return
    d = _copy_to_store(m.store, src, ti.size, expected, name)
    m.created.append(d)
    m.blobs[name] = (d, ti.size)


# ====================================================================== load: images

def load(store, src, *, name: str | None = None) -> list:
    """Load every image of a docker-archive or oci-archive (path, file, or
    stream such as ``sys.stdin.buffer``) into ``store``; return the Images.

    An OCI archive entry named only by a tag (``ref.name`` = ``latest``, as
    ``skopeo copy ... oci-archive:X:latest`` writes) gets the repository
    ``name`` if given, and is loaded untagged otherwise.
    """
    f, owned = _open_in(src)
    members = None
    lease = getattr(store, "lease", None)
    try:
        # the lease keeps a concurrent gc from collecting blobs before add_image references them
        with (lease() if callable(lease) else contextlib.nullcontext()):
            members = _read_members(store, f)
            if members.has("manifest.json"):
                images = _load_docker(store, members)
            elif members.has("index.json"):
                images = _load_oci(store, members, name)
            else:
                raise StoreError("load: neither manifest.json nor index.json in the archive: "
                                 "not an image archive")
        return images
    finally:
        if members is not None and members.tf is not None:
            members.tf.close()
        if owned:
            f.close()


def _refs_for(tags: Iterable[str], what: str) -> list[str]:
    out = []
    for t in tags:
        try:
            out.append(str(parse_reference(t)))
        except UsageError:
            raise StoreError(f"{what}: invalid tag {t!r}") from None
    return out


def _register(store, manifest: bytes, media_type: str, refs: list[str]):
    d = _sha256(manifest)
    if not store.has_blob(d):
        store.write_blob(manifest, media_type=media_type)
    image = store.add_image(d, refs)
    # the names this archive gave (the image may have others in the store already)
    image.loaded_refs = [parse_reference(r).familiar() for r in refs]
    return image


def _oci_manifests(members: _Members) -> dict[str, tuple[bytes, dict]]:
    """config digest -> (manifest bytes, manifest) for every image manifest in
    an OCI layout inside the archive (used to keep docker 25+ manifests)."""
    out = {}
    try:
        index = _json(members.read("index.json"), "index.json")
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
            bname = f"blobs/sha256/{_hex(d['digest'])}"
        except StoreError:
            continue
        if not members.has(bname):
            continue
        data = members.read(bname)
        if _sha256(data) != d["digest"]:
            raise DigestMismatch(f"archive: {bname} does not match its digest")
        doc = _json(data, bname)
        mt = doc.get("mediaType") or d.get("mediaType")
        if mt in _INDEXES or "manifests" in doc:
            stack.extend(doc.get("manifests") or [])
        elif isinstance(doc.get("config"), dict):
            out[doc["config"].get("digest")] = (data, doc)
    return out


def _load_docker(store, members: _Members) -> list:
    entries = _json(members.read("manifest.json"), "manifest.json")
    if not isinstance(entries, list) or not entries:
        raise StoreError("load: manifest.json is not a non-empty list")
    oci = _oci_manifests(members) if members.has("index.json") else {}
    images = []
    for i, e in enumerate(entries):
        what = f"manifest.json entry {i}"
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list):
            raise StoreError(f"load: {what} lacks Config/Layers")
        config = members.read(e["Config"])
        cdigest = _sha256(config)
        cfg = _json(config, f"{what}: config {e['Config']}")
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(e["Layers"]):
            raise StoreError(f"load: {what}: {len(e['Layers'])} layers but the config lists {len(diff_ids)} diff_ids")
        refs = _refs_for(e.get("RepoTags") or [], what)
        kept = oci.get(cdigest)
        if kept is not None:  # docker 25+: keep its manifest, and so its digest
            mdata, man = kept
            if _import_oci_image(store, members, man, what):
                images.append(_register(store, mdata, man.get("mediaType") or OCI_MANIFEST, refs))
                continue
        if not store.has_blob(cdigest):
            store.write_blob(config, media_type=OCI_CONFIG)
        layers = []
        for j, (lname, diff_id) in enumerate(zip(e["Layers"], diff_ids)):
            head = members.head(lname, 8)
            kind = _sniff(head)
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
        images.append(_register(store, _dumps(man), OCI_MANIFEST, refs))
    return images


def _check_gzip_diff_id(store, digest: str, diff_id: str, what: str) -> None:
    for _ in _gunzip_chunks(str(store.blob_path(digest)), diff_id, what):
        pass


def _import_oci_image(store, members: _Members, man: dict, what: str) -> bool:
    """Put config and layers of an OCI manifest from the archive into the store; False if some are missing."""
    descs = [man.get("config") or {}] + list(man.get("layers") or [])
    names = []
    for d in descs:
        dg = d.get("digest")
        if not isinstance(dg, str):
            raise StoreError(f"load: {what}: malformed descriptor")
        bname = f"blobs/sha256/{_hex(dg)}"
        if not members.has(bname) and not store.has_blob(dg):
            return False
        names.append((bname, dg, d.get("mediaType")))
    for bname, dg, mt in names:
        if store.has_blob(dg):
            continue
        members.to_blob(bname, expected=dg, media_type=mt)
    return True


def _load_oci(store, members: _Members, name: str | None) -> list:
    if not members.has("oci-layout"):
        raise StoreError("load: index.json without oci-layout: not an OCI archive")
    layout = _json(members.read("oci-layout"), "oci-layout")
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise StoreError(f"load: unsupported OCI layout version {layout!r}")
    index = _json(members.read("index.json"), "index.json")
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
        if not _import_oci_image(store, members, man, f"manifest {mdigest}"):
            raise StoreError(f"load: manifest {mdigest}: a blob it references is missing from the archive")
        images.append(_register(store, mdata, man.get("mediaType") or OCI_MANIFEST, by_digest[mdigest]))
    return images


def _pick_manifest(members: _Members, d: dict, what: str) -> tuple[str, bytes, dict]:
    """An image manifest for the descriptor; through an index, the host platform's."""
    for _ in range(4):
        bname = f"blobs/sha256/{_hex(d['digest'])}"
        data = members.read(bname)
        if _sha256(data) != d["digest"]:
            raise DigestMismatch(f"load: {what}: {bname} does not match its digest")
        doc = _json(data, bname)
        mt = doc.get("mediaType") or d.get("mediaType")
        if mt in _INDEXES or ("manifests" in doc and "layers" not in doc):
            d = _choose_platform(members, doc.get("manifests") or [], what)
            continue
        if mt not in _MANIFESTS and not isinstance(doc.get("layers"), list):
            raise StoreError(f"load: {what}: unsupported manifest media type {mt!r}")
        return d["digest"], data, doc
    raise StoreError(f"load: {what}: indexes nested too deep")


def _choose_platform(members: _Members, descs: list, what: str) -> dict:
    from ..registry.pull import host_platform, select_manifest

    present = [d for d in descs if isinstance(d, dict) and isinstance(d.get("digest"), str)
               and members.has(f"blobs/sha256/{_hex(d['digest'])}")]
    if not present:
        raise StoreError(f"load: {what}: none of the index's manifests is in the archive")
    try:
        return select_manifest({"manifests": present}, host_platform())
    except Exception:
        if len(present) == 1:
            return present[0]
        raise StoreError(f"load: {what}: no manifest for this machine's platform in the archive") from None


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
