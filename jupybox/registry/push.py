"""``push(store, "127.0.0.1:5000/app:1")``: the stored manifest, config and layers, as they are.

For each blob: a cross-repository mount when the blob is known to live in
another repository of the same registry, else a HEAD (skip it if the registry
has it), else an upload (monolithic PUT, or PATCH chunks for big blobs). Then
the manifest, byte for byte, so its digest on the registry is the stored one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from ..errors import ImageNotFound, RegistryError
from ..image.reference import parse_reference
from . import mediatypes as mt
from .client import Cancelled, RegistryClient
from .progress import ProgressCallback, serialized
from .pull import manifest_blobs
from .sources import BlobSources

__all__ = ["push", "push_blobs"]


def _media_type(doc: dict, data: bytes) -> str:
    m = doc.get("mediaType")
    if m:
        return m
    if "manifests" in doc:
        return mt.OCI_INDEX
    return mt.OCI_MANIFEST


def push_blobs(store, client: RegistryClient, repo: str, descs: list[dict], *, progress=None,
               mount_from: Iterable[str] = (), chunk_size: int | None = None, max_workers: int = 4) -> None:
    sources = BlobSources.for_store(store)
    prefix = client.registry + "/"
    cancel = threading.Event()
    extra = [r for r in mount_from if r]

    def one(d: dict) -> None:
        digest, size = d["digest"], d["size"]
        if cancel.is_set():
            raise Cancelled("cancelled")
        try:
            status = _push_one(d)
        except BaseException:
            cancel.set()
            raise
        if progress:
            progress({"kind": "blob-done", "digest": digest, "size": size, "done": size, "status": status})

    def _push_one(d: dict) -> str:
        digest, size = d["digest"], d["size"]
        if not store.has_blob(digest):
            raise RegistryError(f"blob {digest} is missing from the local store")
        location = None
        known = [s[len(prefix):] for s in sources.get(digest) if s.startswith(prefix)]
        for from_repo in dict.fromkeys(extra + known):
            if from_repo == repo:
                continue
            res = client.mount_blob(repo, digest, from_repo)
            if res == "mounted":
                return "mounted"
            location = res  # the registry opened an upload instead: use it
            break
        if location is None and client.blob_size(repo, digest) is not None:
            return "exists"
        if progress:
            progress({"kind": "blob-start", "digest": digest, "size": size, "action": "upload"})
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress({"kind": "blob-progress", "digest": digest, "size": size, "done": done})
            if cancel.is_set():
                raise Cancelled("cancelled")

        client.upload_blob(repo, digest, size, store.blob_path(digest), chunk_size=chunk_size,
                           progress=tick, location=location)
        return "uploaded"

    todo = list({d["digest"]: d for d in descs}.values())
    todo.sort(key=lambda d: -d["size"])
    if len(todo) <= 1 or max_workers <= 1:
        for d in todo:
            one(d)
    else:
        errors = []
        with ThreadPoolExecutor(max_workers=min(max_workers, len(todo)), thread_name_prefix="jupybox-push") as ex:
            for f in [ex.submit(one, d) for d in todo]:
                e = f.exception()
                if e is not None:
                    errors.append(e)
        if errors:
            real = [e for e in errors if not isinstance(e, Cancelled)]
            raise (real or errors)[0]
    try:
        sources.add([d["digest"] for d in todo], f"{client.registry}/{repo}")
    except Exception:
        pass


def push(store, ref: str, *, source: str | None = None, progress: ProgressCallback | None = None,
         auth=None, authfile: str | os.PathLike | None = None, transport=None,
         insecure_registries: Iterable[str] = (), mount_from: Iterable[str] = (),
         chunk_size: int | None = None, max_workers: int = 4, client: RegistryClient | None = None) -> str:
    """Push the local image ``source`` (default: ``ref`` itself) to ``ref`` and
    return the manifest digest. ``mount_from``: repositories of the same
    registry to try a cross-repository mount from (pulls record them too)."""
    r = parse_reference(ref)
    try:
        image = store.resolve(source or ref, hint=False)
    except ImageNotFound:
        raise ImageNotFound(f"An image does not exist locally with the tag: {source or ref}") from None
    from ..image.hostbased import check_portable

    check_portable(image, "push")  # FROM host: the host's view is no layer a registry can hold
    mdigest = image.manifest_digest
    data = store.read_blob(mdigest)
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise RegistryError(f"stored manifest {mdigest} is not JSON ({e})") from None
    media_type = _media_type(doc, data)
    config, layers = manifest_blobs(doc, media_type)
    progress = serialized(progress)
    own = client is None
    if client is None:
        client = RegistryClient(r.domain, auth=auth, authfile=authfile, transport=transport,
                                insecure_registries=insecure_registries)
    try:
        push_blobs(store, client, r.path, layers + [config], progress=progress, mount_from=mount_from,
                   chunk_size=chunk_size, max_workers=max_workers)
        digest = client.put_manifest(r.path, r.digest or r.tag, data, media_type)
    finally:
        if own:
            client.close()
    if digest != mdigest:  # pragma: no cover - put_manifest hashes the same bytes
        raise RegistryError(f"pushed manifest digest {digest} differs from the stored {mdigest}")
    if progress:
        progress({"kind": "done", "ref": str(r), "digest": digest, "id": getattr(image, "id", None)})
    return digest
