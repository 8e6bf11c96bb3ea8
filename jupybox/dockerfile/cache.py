"""The build cache, under ``<root>/build-cache/``.

``keys/<2 hex>/<64 hex>.json``: one file per step result. The key is the sha256 of the JSON list
``[version, parent image id, instruction (expanded), build args it uses (name=value), extra]``
where *extra* is, for COPY/ADD, the checksum of the source entries' paths, types, modes, sizes,
link targets and contents (:func:`jupybox.dockerfile.copier.checksum`, no mtimes), and for RUN the
network mode. The value is the resulting image state: its full config (so the image id is
stable: a fully cached rebuild gives the same id) and its layer descriptors. A hit is used only
when every layer blob is still in the store (``jupybox image prune`` removes unreferenced blobs,
and with them the cache entries of images nobody tagged: a later build simply redoes them).

``files/<sha256 of the context path>.json``: content digests of context files keyed by
(device, inode, size, mtime, ctime), so an unchanged context is not read again; a ``touch``
changes the ctime and mtime, the file is hashed again, the digest is the same, and the step is
still cached. Entries are plain files written by rename: a torn or corrupt one is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os

CACHE_VERSION = 2  # 2: BuildKit's heredoc escapes, WORKDIR owned by USER, --mount in RUN keys


def make_key(parts) -> str:
    data = json.dumps([CACHE_VERSION] + list(parts), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class BuildCache:
    def __init__(self, root: str | os.PathLike):
        self.dir = os.path.join(os.fspath(root), "build-cache")
        self.keys = os.path.join(self.dir, "keys")

    def _path(self, key: str) -> str:
        return os.path.join(self.keys, key[:2], key + ".json")

    def get(self, key: str) -> dict | None:
        try:
            with open(self._path(key), "rb") as f:
                value = json.loads(f.read())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) and "config" in value and "layers" in value else None

    def put(self, key: str, value: dict) -> None:
        _write_atomic(self._path(key), json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                                                  sort_keys=True).encode("utf-8", "surrogateescape"))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def clear(self) -> int:
        """Remove every step result and file digest (``builder prune``); the bytes freed."""
        freed = 0
        for sub in ("keys", "files"):
            top = os.path.join(self.dir, sub)
            for dirpath, dirnames, filenames in os.walk(top, topdown=False):
                for n in filenames:
                    p = os.path.join(dirpath, n)
                    try:
                        freed += os.lstat(p).st_blocks * 512
                        os.unlink(p)
                    except FileNotFoundError:
                        pass
                for n in dirnames:
                    try:
                        os.rmdir(os.path.join(dirpath, n))
                    except OSError:
                        pass
        return freed

    def files(self, context_root: str | None) -> "FileHashes":
        return FileHashes(self, context_root)


class FileHashes:
    """Content digests of one context directory's files, keyed by their stat identity."""

    def __init__(self, cache: BuildCache, context_root: str | None):
        self.path = None
        self.data: dict[str, list] = {}
        self.dirty = False
        if context_root is None:
            return
        name = hashlib.sha256(os.path.abspath(context_root).encode("utf-8", "surrogateescape")).hexdigest()
        self.path = os.path.join(cache.dir, "files", name + ".json")
        try:
            with open(self.path, "rb") as f:
                data = json.loads(f.read())
            if isinstance(data, dict):
                self.data = data
        except (OSError, ValueError):
            pass

    def get(self, rel: str, key: tuple) -> str | None:
        v = self.data.get(rel)
        if isinstance(v, list) and len(v) == 2 and v[0] == list(key):
            return v[1]
        return None

    def put(self, rel: str, key: tuple, digest: str) -> None:
        self.data[rel] = [list(key), digest]
        self.dirty = True

    def save(self) -> None:
        if self.dirty and self.path is not None:
            _write_atomic(self.path, json.dumps(self.data, separators=(",", ":"),
                                                ensure_ascii=False).encode("utf-8", "surrogateescape"))
            self.dirty = False
