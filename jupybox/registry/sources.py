"""Which repositories a blob is known to exist in (like docker's v2 metadata).

A pull records ``digest -> ["registry/repo", ...]``; a push to another
repository of the same registry tries a cross-repository mount from those
first, which costs one request instead of an upload. The record is a hint:
a wrong entry only costs a mount request that the registry answers with an
ordinary upload session.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

_LOCK = threading.Lock()
MAX_PER_BLOB = 8


def _path_for(store) -> Path | None:
    for attr in ("layout", "paths"):
        lay = getattr(store, attr, None)
        cache = getattr(lay, "cache", None)
        if cache is not None:
            return Path(cache) / "registry-sources.json"
    root = getattr(store, "root", None)
    if root is not None:
        return Path(root) / "cache" / "registry-sources.json"
    return None


class BlobSources:
    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None

    @classmethod
    def for_store(cls, store) -> "BlobSources":
        return cls(_path_for(store))

    def _load(self) -> dict:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, digest: str) -> list[str]:
        return list(self._load().get(digest) or [])

    def add(self, digests, repo_name: str) -> None:
        """Record that ``digests`` exist in ``registry/repo``."""
        if self.path is None:
            return
        with _LOCK:
            data = self._load()
            changed = False
            for d in digests:
                lst = data.setdefault(d, [])
                if repo_name in lst:
                    continue
                lst.insert(0, repo_name)
                del lst[MAX_PER_BLOB:]
                changed = True
            if not changed:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".sources.", dir=str(self.path.parent))
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f)
                os.replace(tmp, self.path)
            except OSError:
                pass  # a hint only
