"""``pull(store, "busybox")``: manifest → config and layers (in parallel) → the store.

Blobs are streamed into ``store.open_blob_writer`` and verified (size and
digest) while they stream; the writer commits atomically, so a crash or a
mismatch never leaves half a blob. Blobs the store already has are not
fetched; an image whose blobs are all present costs one manifest request.
Docker v2 schema 2 manifests and manifest lists are accepted as well as OCI
ones, and stored as they were served (their digest is the image's identity).
"""

from __future__ import annotations

import json
import os
import platform as _platform
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ..errors import RegistryError
from ..image import gc
from ..image.nospace import reported_as
from ..image.reference import parse_reference
from . import mediatypes as mt
from .client import Cancelled, Manifest, RegistryClient, check_digest
from .progress import ProgressCallback, serialized
from .sources import BlobSources

__all__ = ["pull", "host_platform", "parse_platform", "select_manifest", "manifest_blobs", "fetch_image"]

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}
_VARIANT = {"aarch64": "v8", "arm64": "v8", "armv7l": "v7", "armv6l": "v6"}


def host_platform() -> dict:
    m = _platform.machine().lower()
    p = {"os": "linux", "architecture": _ARCH.get(m, m)}
    if m in _VARIANT:
        p["variant"] = _VARIANT[m]
    return p


def parse_platform(text: str | dict | None) -> dict:
    """``"linux/arm64/v8"`` → ``{"os": "linux", "architecture": "arm64", "variant": "v8"}``."""
    if text is None:
        return host_platform()
    if isinstance(text, dict):
        return dict(text)
    parts = text.strip().split("/")
    if len(parts) == 1:
        parts = ["linux"] + parts
    if not (2 <= len(parts) <= 3) or not all(parts):
        raise RegistryError(f"invalid platform {text!r} (expected os/arch[/variant])")
    p = {"os": parts[0].lower(), "architecture": _ARCH.get(parts[1].lower(), parts[1].lower())}
    if len(parts) == 3:
        p["variant"] = parts[2].lower()
    return p


def _fmt_platform(p: dict) -> str:
    s = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return s + (f"/{p['variant']}" if p.get("variant") else "")


def select_manifest(index: dict, want: dict) -> dict:
    """The descriptor of the manifest for platform ``want`` in an OCI index or
    Docker manifest list (arm64 without a variant counts as v8)."""
    cands = []
    for d in index.get("manifests") or []:
        if not isinstance(d, dict):
            continue
        p = d.get("platform") or {}
        if p.get("os") != want["os"] or p.get("architecture") != want["architecture"]:
            continue
        wv, hv = want.get("variant"), p.get("variant")
        if want["architecture"] == "arm64":
            wv, hv = wv or "v8", hv or "v8"
        if wv and hv and wv != hv:
            continue
        if wv and not hv and want["architecture"] == "arm":
            continue
        # exact variant first, then no variant
        cands.append((0 if wv == hv else 1, d))
    if not cands:
        avail = sorted({_fmt_platform(d.get("platform") or {}) for d in index.get("manifests") or []
                        if isinstance(d, dict) and (d.get("platform") or {}).get("os") not in (None, "unknown")})
        raise RegistryError(f"no manifest for platform {_fmt_platform(want)} (available: {', '.join(avail) or 'none'})")
    cands.sort(key=lambda c: c[0])
    return cands[0][1]


def _desc(d, what: str) -> dict:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not isinstance(d.get("size"), int):
        raise RegistryError(f"malformed manifest: bad {what} descriptor")
    check_digest(d["digest"])
    if d["size"] < 0:
        raise RegistryError(f"malformed manifest: negative size in {what} descriptor")
    return d


def _have_zstd() -> bool:
    try:
        import zstandard  # noqa: F401
        return True
    except ImportError:
        return False


def manifest_blobs(doc: dict, media_type: str) -> tuple[dict, list[dict]]:
    """Validate an image manifest; its config and layer descriptors."""
    if media_type not in mt.IMAGE_MANIFESTS:
        raise RegistryError(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise RegistryError(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    config = _desc(doc.get("config"), "config")
    cmt = config.get("mediaType")
    if cmt not in mt.CONFIGS:
        raise RegistryError(f"not a container image: config media type {cmt!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise RegistryError("malformed manifest: no layers list")
    out = []
    for i, l in enumerate(layers):
        _desc(l, f"layer {i}")
        lmt = l.get("mediaType")
        if lmt not in mt.LAYERS:
            raise RegistryError(f"unsupported layer media type {lmt!r} (layer {i}, {l['digest']})")
        if lmt in (mt.OCI_LAYER_ZSTD, mt.OCI_LAYER_ND_ZSTD) and not _have_zstd():
            raise RegistryError(f"layer {i} ({l['digest']}) is zstd-compressed: that needs the 'zstandard' "
                                "Python package")
        out.append(l)
    return config, out


def resolve_manifest(client: RegistryClient, repo: str, reference: str, platform=None) -> tuple[Manifest, str | None]:
    """Fetch the manifest for ``reference``; from an index, the one for the platform.
    Returns (image manifest, digest of the index or None)."""
    m = client.get_manifest(repo, reference)
    if m.media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise RegistryError(f"{client.registry}/{repo}:{reference}: Docker image manifest schema 1 is not supported")
    index_digest = None
    for _depth in range(3):
        if m.media_type not in mt.INDEXES:
            break
        want = parse_platform(platform)
        d = select_manifest(m.json(), want)
        index_digest = index_digest or m.digest
        m = client.get_manifest(repo, d["digest"])
    if m.media_type not in mt.IMAGE_MANIFESTS:
        raise RegistryError(f"{client.registry}/{repo}:{reference}: unsupported manifest media type {m.media_type!r}")
    return m, index_digest


def _writer(store, digest: str, size: int):
    return store.open_blob_writer(expected_digest=digest, expected_size=size)


def fetch_blobs(store, client: RegistryClient, repo: str, descs: list[dict], *, progress=None,
                max_workers: int = 4, after=None) -> None:
    """Download the blobs of ``descs`` that the store lacks, in parallel; the first
    failure cancels the others and is raised once all threads are done.
    ``after(desc)`` runs in the worker once a blob is committed (to unpack it
    while the other blobs are still downloading)."""
    todo: list[dict] = []
    seen = set()
    for d in descs:
        if d["digest"] in seen:
            continue
        seen.add(d["digest"])
        if store.has_blob(d["digest"]):
            if progress:
                progress({"kind": "blob-done", "digest": d["digest"], "size": d["size"], "done": d["size"],
                          "status": "exists"})
            continue
        todo.append(d)
    if not todo:
        return
    cancel = threading.Event()

    def one(d: dict) -> None:
        digest, size = d["digest"], d["size"]
        if cancel.is_set():
            raise Cancelled("cancelled")
        if progress:
            progress({"kind": "blob-start", "digest": digest, "size": size, "action": "download"})
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress({"kind": "blob-progress", "digest": digest, "size": size, "done": done})

        try:
            with _writer(store, digest, size) as w:
                client.download_blob(repo, digest, w, size=size, progress=tick, cancel=cancel)
                w.commit()
        except BaseException:
            cancel.set()
            raise
        if progress:
            progress({"kind": "blob-done", "digest": digest, "size": size, "done": size, "status": "downloaded"})
        if after is not None:
            try:
                if cancel.is_set():
                    raise Cancelled("cancelled")
                after(d)
            except BaseException:
                cancel.set()
                raise

    # the biggest first, so that the slowest download starts first
    todo.sort(key=lambda d: -d["size"])
    if len(todo) == 1 or max_workers <= 1:
        for d in todo:
            one(d)
        return
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(todo)), thread_name_prefix="jupybox-pull") as ex:
        futs = [ex.submit(one, d) for d in todo]
        for f in futs:
            e = f.exception()
            if e is not None:
                errors.append(e)
    if errors:
        real = [e for e in errors if not isinstance(e, Cancelled)]
        raise (real or errors)[0]


def fetch_image(store, client: RegistryClient, repo: str, reference: str, *, platform=None,
                progress: ProgressCallback | None = None, max_workers: int = 4) -> Manifest:
    """Everything but the registration: the manifest and all its blobs into the store."""
    m, _index = resolve_manifest(client, repo, reference, platform)
    config, layers = manifest_blobs(m.json(), m.media_type)
    # the config first: it is small, and its diff_ids let each layer be unpacked as soon as it arrives
    fetch_blobs(store, client, repo, [config], progress=progress, max_workers=1)
    try:
        cfg = json.loads(store.read_blob(config["digest"]))
        diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or [])
    except (ValueError, AttributeError, TypeError):
        raise RegistryError(f"config {config['digest']} of {client.registry}/{repo} is not valid JSON") from None
    if len(diff_ids) != len(layers):
        raise RegistryError(f"{client.registry}/{repo}: the manifest lists {len(layers)} layers but the config "
                            f"{len(diff_ids)} diff_ids")
    by_digest = {l["digest"]: (l, diff) for l, diff in zip(layers, diff_ids)}

    def after(d: dict) -> None:  # unpack each layer as soon as it is here
        desc, diff = by_digest[d["digest"]]
        store.ensure_layer(desc, diff)

    fetch_blobs(store, client, repo, layers, progress=progress, max_workers=max_workers, after=after)
    if not store.has_blob(m.digest):
        got = store.write_blob(m.data, media_type=m.media_type)
        if got != m.digest:  # pragma: no cover - the store hashes what it was given
            raise RegistryError(f"store recorded manifest {m.digest} as {got}")
    try:
        BlobSources.for_store(store).add([config["digest"]] + [l["digest"] for l in layers],
                                         f"{client.registry}/{repo}")
    except Exception:
        pass
    return m


def pull(store, ref: str, *, platform: str | dict | None = None, progress: ProgressCallback | None = None,
         auth=None, authfile: str | os.PathLike | None = None, transport=None,
         insecure_registries: Iterable[str] = (), max_workers: int = 4, client: RegistryClient | None = None):
    """Pull ``ref`` (``busybox``, ``127.0.0.1:5000/x:1``, ``x@sha256:...``) into ``store``
    and return the registered Image. ``auth``: see :class:`RegistryClient`."""
    r = parse_reference(ref)
    progress = serialized(progress)
    own = client is None
    if client is None:
        client = RegistryClient(r.domain, auth=auth, authfile=authfile, transport=transport,
                                insecure_registries=insecure_registries)
    try:
        # the lease keeps a concurrent gc from collecting the blobs between their write and add_image
        with reported_as("pull"), store.lease():
            try:
                m = fetch_image(store, client, r.path, r.digest or r.tag, platform=platform, progress=progress,
                                max_workers=max_workers)
            finally:
                if own:
                    client.close()
            # by digest: name it repo@digest (docker's RepoDigests), and nothing is tagged
            image = store.add_image(m.digest, [str(r)])
    except BaseException:
        gc.after_failure(store)  # the blobs and layers of a failed pull do not stay behind
        raise
    if progress:
        progress({"kind": "done", "ref": str(r), "digest": m.digest, "id": getattr(image, "id", None)})
    return image
